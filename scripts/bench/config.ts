// The command line of `deno task bench`: its help, its options with their defaults, checked up front.

import { parseArgs } from "node:util";
import { ROOT } from "./children.ts";
import { FEATURE_ROWS } from "./features.ts";
import { type ServerKind, SERVERS } from "./servers.ts";
import type { MeasureOptions } from "./workload.ts";

export const HELP = `deno task bench [options]

Measures MCP calls through mcp-rproxy against floors measured in the same run (the server over stdio, a
raw WebSocket hop, a bare HTTP echo hop, a bare relay), prints PASS/FAIL per target of issue 17 and
writes JSON to bench-results/.

Modes:
  (none)                  the full run: paths, re-registration, feature rows, memory layers
  --peers                 supergateway 4.0 (installed from npm into a temporary folder) against
                          serve + connect, same server, same driver
  --reconnect-distribution
                          print the reconnect schedule over 100 simulated drops (seeded; no network)

Options:
  --reps N                repetitions; targets use the median of each figure (default 3)
  --calls N               sequential echo calls measured after warm-up (default 2000)
  --warmup N              sequential warm-up calls (default 300)
  --throughput-calls N    calls for the throughput phase (default 6000)
  --inflight N            calls in flight in the throughput phase (default 16)
  --big-mib N             size of the large result in MiB, 0 = skip (default 16)
  --servers LIST          comma-separated: demo, everything (default demo,everything)
  --sections LIST         comma-separated: paths, reconnect, features, memory (default all)
  --rows LIST             comma-separated feature row ids (four-servers, sse-link, per-client,
                          cross-replica): only these rows, and only the features section unless
                          --sections says otherwise (for quick A/B runs of one row)
  --drops N               drops of a healthy link per repetition (default 3)
  --down-ms N             how long the gateway is down in the restart measure (default 2000)
  --bundle                run dist/mcp-rproxy/main.js (deno task bundle) instead of main.ts
  --quick                 smoke run: 1 repetition, 500 calls, 1500 in flight, demo server only
  --out DIR               where the JSON goes (default bench-results)
  --compare FILE          print each figure's change against an earlier bench JSON of the same mode
  --profile DIR           run connect and serve with --cpu-prof into DIR (figures then include the
                          profiler's cost: for finding hot spots, not for the record); summarise a
                          profile with: deno run -A scripts/bench/profile_summary.ts FILE
  --seed N                seed of --reconnect-distribution (default 17)
  -h, --help              this text
`;

/** The sections of the full run. */
export const SECTIONS = ["paths", "reconnect", "features", "memory"] as const;
export type Section = typeof SECTIONS[number];

/** What the command line asked for. */
export interface BenchConfig {
  mode: "help" | "full" | "peers" | "distribution";
  reps: number;
  measure: MeasureOptions;
  servers: ServerKind[];
  sections: Set<Section>;
  /** Feature rows to run (ids); all when absent. */
  rows?: Set<string>;
  drops: number;
  downMs: number;
  bundle: boolean;
  outDir: string;
  compare?: string;
  profile?: string;
  seed: number;
}

function count(name: string, value: string | undefined, fallback: number, zeroOk = false) {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || (n === 0 && !zeroOk)) {
    throw new RangeError(
      `--${name} must be a ${zeroOk ? "non-negative" : "positive"} integer: got ${value}`,
    );
  }
  return n;
}

function list<T extends string>(name: string, text: string, allowed: readonly T[]): T[] {
  const items = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const item of items) {
    if (!allowed.includes(item as T)) {
      throw new RangeError(`--${name}: unknown '${item}' (choose from ${allowed.join(", ")})`);
    }
  }
  return items as T[];
}

/**
 * Reads the command line.
 *
 * @throws {TypeError} for an unknown option (node:util parseArgs), {RangeError} for a bad value
 */
export function parseBenchArgs(args: string[]): BenchConfig {
  const { values } = parseArgs({
    args,
    options: {
      reps: { type: "string" },
      calls: { type: "string" },
      warmup: { type: "string" },
      "throughput-calls": { type: "string" },
      inflight: { type: "string" },
      "big-mib": { type: "string" },
      servers: { type: "string" },
      sections: { type: "string" },
      rows: { type: "string" },
      drops: { type: "string" },
      "down-ms": { type: "string" },
      bundle: { type: "boolean" },
      quick: { type: "boolean" },
      out: { type: "string" },
      compare: { type: "string" },
      profile: { type: "string" },
      peers: { type: "boolean" },
      "reconnect-distribution": { type: "boolean" },
      seed: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  const quick = values.quick === true;
  const mode = values.help
    ? "help"
    : values["reconnect-distribution"]
    ? "distribution"
    : values.peers
    ? "peers"
    : "full";
  const kinds = Object.keys(SERVERS) as ServerKind[];
  const rows = values.rows === undefined
    ? undefined
    : list("rows", values.rows, FEATURE_ROWS.map((row) => row.id));
  const sections = values.sections ?? (rows === undefined ? SECTIONS.join(",") : "features");
  return {
    mode,
    reps: count("reps", values.reps, quick ? 1 : 3),
    measure: {
      warmup: count("warmup", values.warmup, quick ? 100 : 300, true),
      calls: count("calls", values.calls, quick ? 500 : 2000),
      throughputCalls: count("throughput-calls", values["throughput-calls"], quick ? 1500 : 6000),
      inflight: count("inflight", values.inflight, 16),
      bigBytes: count("big-mib", values["big-mib"], 16, true) * 1024 * 1024,
      phaseTimeoutMs: 120_000,
    },
    servers: list("servers", values.servers ?? (quick ? "demo" : "demo,everything"), kinds),
    sections: new Set(list("sections", sections, SECTIONS)),
    ...(rows === undefined ? {} : { rows: new Set(rows) }),
    drops: count("drops", values.drops, quick ? 2 : 3),
    downMs: count("down-ms", values["down-ms"], 2000, true),
    bundle: values.bundle === true,
    outDir: values.out ?? `${ROOT}bench-results`,
    ...(values.compare === undefined ? {} : { compare: values.compare }),
    ...(values.profile === undefined ? {} : { profile: values.profile }),
    seed: count("seed", values.seed, 17, true),
  };
}
