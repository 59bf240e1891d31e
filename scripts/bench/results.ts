// The shape of one repetition's figures (and of their medians, which keep that shape), as written to the
// bench JSON and read back by `--compare`.

import type { FeatureFigures } from "./features.ts";
import type { MemoryProbes } from "./memory.ts";
import type { PeakRss, ServerFigures } from "./paths.ts";
import type { ReconnectFigures } from "./reconnect.ts";
import type { ServerKind } from "./servers.ts";
import { median } from "./stats.ts";
import type { Figures } from "./workload.ts";

/** Everything one repetition measured. */
export interface Repetition {
  hop: Figures & { peerRss: PeakRss };
  httpHop: Figures;
  baseline: { hwm: number; rss: number };
  servers: Partial<Record<ServerKind, ServerFigures>>;
  reconnect?: ReconnectFigures;
  /** Feature rows by id (features.ts). */
  features?: Record<string, FeatureFigures>;
  memory?: MemoryProbes;
}

/**
 * The median of every numeric leaf across repetitions, keeping the shape of the first; arrays (samples)
 * are joined.
 */
export function medianOf<T>(values: T[]): T {
  const first = values[0];
  if (typeof first === "number") return median(values as number[]) as T;
  if (Array.isArray(first)) return values.flatMap((v) => v as unknown[]) as T;
  if (typeof first !== "object" || first === null) return first as T;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(first)) {
    out[key] = medianOf(values.map((v) => (v as Record<string, unknown>)[key]));
  }
  return out as T;
}

/** Every numeric leaf of a result as `path.to.leaf` → value (for `--compare`). */
export function flatten(value: unknown, prefix = "", out = new Map<string, number>()) {
  if (typeof value === "number") {
    if (Number.isFinite(value)) out.set(prefix, value);
  } else if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    for (const [key, child] of Object.entries(value)) {
      flatten(child, prefix === "" ? key : `${prefix}.${key}`, out);
    }
  }
  return out;
}
