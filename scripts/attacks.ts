// `deno task attacks`: runs every attack of tests/attack/ (the same scenario code the tests run) against a
// fresh serve each, and prints what it cost: serve's peak RSS and RSS after recovery, and the victim
// owner's echo latency during the attack against its own baseline measured just before, in the same run.
// Exits 1 if an attack broke a bound or could not be carried out. Writes JSON to bench-results/.

import { parseArgs } from "node:util";
import { ATTACKS } from "../tests/attack/scenarios/all.ts";
import {
  type AttackRun,
  BASELINE_CALLS,
  brokenBounds,
  latency,
  runAttack,
} from "../tests/attack/run_attack.ts";

const HELP = `deno task attacks [options]

Runs each attack of tests/attack/ against a real serve on 127.0.0.1, with a victim owner calling echo
through a real connect tunnel, and prints serve's memory and the victim's latency for each.

  --only TEXT    only the attacks whose name contains TEXT (case-insensitive)
  --out DIR      where the JSON goes (default bench-results)
  -h, --help     this text
`;

const MIB = 1024 * 1024;
const ROOT = new URL("..", import.meta.url).pathname;

function mib(bytes: number): string {
  return (bytes / MIB).toFixed(0);
}

function ms(value: number): string {
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

function ratio(during: number, before: number): string {
  return before > 0 ? `${(during / before).toFixed(1)}×` : "-";
}

/** One line of the table, or the attack's failure. */
interface Row {
  name: string;
  run?: AttackRun<unknown>;
  broken: string[];
}

function table(rows: Row[]): string {
  const width = Math.max(6, ...rows.map((r) => r.name.length));
  const head = [
    "attack".padEnd(width),
    "RSS base".padStart(8),
    "peak".padStart(6),
    "bound".padStart(6),
    "held".padStart(5),
    "after".padStart(6),
    "back s".padStart(6),
    "calls".padStart(6),
    "p50 base".padStart(8),
    "p50 att".padStart(8),
    "×".padStart(5),
    "p99 base".padStart(8),
    "p99 att".padStart(8),
    "×".padStart(5),
    "bounds",
  ];
  const lines = [head.join(" ")];
  for (const { name, run, broken } of rows) {
    if (run === undefined) {
      lines.push(`${name.padEnd(width)} could not be carried out: ${broken.join("; ")}`);
      continue;
    }
    const before = latency(run.victimBaseline);
    const during = latency(run.victimDuring);
    lines.push([
      name.padEnd(width),
      mib(run.baselineRss).padStart(8),
      mib(run.peakRss).padStart(6),
      `+${mib(run.rssBound)}`.padStart(6),
      mib(run.peakHeld).padStart(5),
      mib(run.recovery.rss).padStart(6),
      (run.recovery.ms / 1000).toFixed(1).padStart(6),
      String(run.victimDuring.ok + run.victimDuring.failed).padStart(6),
      ms(before.p50).padStart(8),
      ms(during.p50).padStart(8),
      ratio(during.p50, before.p50).padStart(5),
      ms(before.p99).padStart(8),
      ms(during.p99).padStart(8),
      ratio(during.p99, before.p99).padStart(5),
      broken.length === 0 ? "held" : "BROKEN",
    ].join(" "));
  }
  return lines.join("\n");
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      only: { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const only = values.only?.toLowerCase();
  const chosen = ATTACKS.filter(({ scenario }) =>
    only === undefined || scenario.name.toLowerCase().includes(only)
  );
  if (chosen.length === 0) {
    console.error(`No attack name contains '${values.only}'`);
    return 2;
  }
  const started = performance.now();
  const rows: Row[] = [];
  for (const { scenario } of chosen) {
    const elapsed = ((performance.now() - started) / 1000).toFixed(0);
    console.error(`[${elapsed} s] ${scenario.name}`);
    try {
      const run = await runAttack(scenario);
      rows.push({ name: scenario.name, run, broken: brokenBounds(run) });
    } catch (error: unknown) {
      rows.push({ name: scenario.name, broken: [String(error)] });
    }
  }
  const seconds = (performance.now() - started) / 1000;
  console.log("");
  console.log(
    `RSS of serve in MiB: before the attack, its peak during it, the bound on the rise, the most its memory budget counted as held (sampled every 100 ms), after the attack ended and "back s" seconds of recovery. Latency of the victim owner's echo calls in ms (one every 20 ms through a real connect tunnel): ${BASELINE_CALLS} calls before the attack ("base"), all calls during it ("att"), and the ratio.`,
  );
  console.log(table(rows));
  for (const { name, broken } of rows) {
    for (const line of broken) console.log(`BROKEN  ${name}: ${line}`);
  }
  const outDir = values.out ?? `${ROOT}bench-results`;
  await Deno.mkdir(outDir, { recursive: true });
  const stamp = new Date().toISOString().replaceAll(":", "-").replace(/\..*$/, "");
  const file = `${outDir}/attacks-${stamp}.json`;
  await Deno.writeTextFile(
    file,
    JSON.stringify(
      {
        command: `deno task attacks ${args.join(" ")}`.trim(),
        date: new Date().toISOString(),
        durationSeconds: Math.round(seconds),
        units: { rss: "bytes", latency: "ms" },
        attacks: rows.map(({ name, run, broken }) => ({
          name,
          broken,
          ...(run === undefined ? {} : {
            baselineRss: run.baselineRss,
            peakRss: run.peakRss,
            peakHeld: run.peakHeld,
            rssBound: run.rssBound,
            recovery: run.recovery,
            attackMs: run.attackMs,
            victimBaseline: { ...latency(run.victimBaseline), calls: run.victimBaseline.ok },
            victimDuring: {
              ...latency(run.victimDuring),
              ok: run.victimDuring.ok,
              failed: run.victimDuring.failed,
            },
          }),
        })),
      },
      null,
      2,
    ),
  );
  console.log(`\nWrote ${file} (${seconds.toFixed(0)} s)`);
  return rows.every((r) => r.broken.length === 0) ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
