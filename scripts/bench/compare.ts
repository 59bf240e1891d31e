// `deno task bench --compare FILE`: every figure of this run beside the same figure of an earlier bench
// JSON (any earlier version of this bench: figures are matched by their path in `medians`), and the
// targets whose outcome changed.

import { flatten } from "./results.ts";
import type { Target } from "./targets.ts";

/** The parts of a bench JSON that a comparison reads. */
export interface BenchJson {
  date?: string;
  command?: string;
  medians: unknown;
  targets?: Target[];
}

/** Reads an earlier bench JSON. */
export async function readBenchJson(file: string): Promise<BenchJson> {
  let json: unknown;
  try {
    json = JSON.parse(await Deno.readTextFile(file));
  } catch (error) {
    throw new Error(`--compare: cannot read ${file} as JSON: ${(error as Error).message}`);
  }
  if (typeof json !== "object" || json === null || !("medians" in json)) {
    throw new Error(`--compare: ${file} is not a bench result (it has no 'medians')`);
  }
  return json as BenchJson;
}

/** Lower is better for these figures (latency, time, memory, CPU); higher for calls per second. */
function lowerIsBetter(path: string): boolean {
  return !/callsPerSecond|echoCalls/.test(path);
}

function format(path: string, value: number): string {
  if (/Hwm|rss\b|Rss|hwm|memory\./.test(path)) return `${(value / 1024 / 1024).toFixed(1)} MiB`;
  if (/Us(PerCall)?$/.test(path)) return `${value.toFixed(1)} µs`;
  if (/Ms$|startup\./.test(path)) return `${value.toFixed(1)} ms`;
  return value.toFixed(value >= 100 ? 0 : 2);
}

/** The comparison of `current` medians with an earlier file's, as printed lines. */
export function compareReport(
  current: { medians: unknown; targets: Target[] },
  earlier: BenchJson,
  file: string,
): string {
  const before = flatten(earlier.medians);
  const now = flatten(current.medians);
  const lines = [
    `Compared with ${file}${
      earlier.date ? ` (${earlier.date})` : ""
    }: figure, before → now, change (+ better / − worse)`,
  ];
  const width = Math.max(...[...now.keys()].map((k) => k.length), 20);
  let shown = 0;
  for (const [path, value] of now) {
    const old = before.get(path);
    if (old === undefined || /echoCalls|downMs/.test(path)) continue;
    const change = old === 0 ? 0 : (value - old) / old;
    const better = lowerIsBetter(path) ? change < 0 : change > 0;
    const sign = Math.abs(change) < 0.005 ? " " : better ? "+" : "−";
    lines.push(
      `  ${path.padEnd(width)} ${format(path, old).padStart(12)} → ${
        format(path, value).padStart(12)
      }  ${(change >= 0 ? "+" : "") + (change * 100).toFixed(1)} % ${sign}`,
    );
    shown++;
  }
  const added = [...now.keys()].filter((k) => !before.has(k)).length;
  if (added > 0) lines.push(`  (${added} figure(s) of this run have no counterpart there)`);
  if (shown === 0) lines.push("  (no figure in common)");
  const outcome = new Map((earlier.targets ?? []).map((t) => [`${t.path}: ${t.name}`, t.pass]));
  const changed = current.targets.filter((t) => {
    const was = outcome.get(`${t.path}: ${t.name}`);
    return was !== undefined && was !== t.pass;
  });
  for (const t of changed) {
    lines.push(`  target ${t.pass ? "FAIL → PASS" : "PASS → FAIL"}: ${t.path}: ${t.name}`);
  }
  return lines.join("\n");
}
