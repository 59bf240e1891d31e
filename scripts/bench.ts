// `deno task bench`: what a tunnel costs on top of the server it carries, on loopback, in one run, against
// floors measured in the same run; PASS/FAIL per target of issue 17; JSON to bench-results/. The parts
// live in scripts/bench/: config (options), paths (floors and tunnels), reconnect, features (per-feature
// rows), memory, peers (--peers), targets, report, compare (--compare), reconnect_distribution.

import { PATHS } from "./bench/children.ts";
import type { Json } from "./bench/clients.ts";
import { type BenchConfig, HELP, parseBenchArgs } from "./bench/config.ts";
import { compareReport, readBenchJson } from "./bench/compare.ts";
import { FEATURE_ROWS } from "./bench/features.ts";
import { runMemoryProbes } from "./bench/memory.ts";
import {
  type ProgramOptions,
  runBaseline,
  runHop,
  runHttpHop,
  runServe,
  runStdio,
  runTunnelA,
  type TunnelFigures,
} from "./bench/paths.ts";
import {
  evaluatePeers,
  installSupergateway,
  type PeersRepetition,
  peersTable,
  runPeers,
} from "./bench/peers.ts";
import { machineInfo } from "./bench/procfs.ts";
import { runReconnect } from "./bench/reconnect.ts";
import { reconnectDistributionReport } from "./bench/reconnect_distribution.ts";
import { pathsTable, sectionsReport } from "./bench/report.ts";
import { medianOf, type Repetition } from "./bench/results.ts";
import { TOKEN } from "./bench/servers.ts";
import { evaluate, type Target } from "./bench/targets.ts";

const NOISE = "Measured on a machine shared with other work: figures move from run to run; the " +
  "targets compare with floors measured in the same run.";

function printTargets(targets: Target[]): void {
  for (const t of targets) {
    console.log(`${t.pass ? "PASS" : "FAIL"}  ${t.path}: ${t.name}: ${t.detail}`);
  }
}

async function writeJson(config: BenchConfig, name: string, body: Record<string, unknown>) {
  await Deno.mkdir(config.outDir, { recursive: true });
  const stamp = new Date().toISOString().replaceAll(":", "-").replace(/\..*$/, "");
  const file = `${config.outDir}/${name}-${stamp}.json`;
  await Deno.writeTextFile(file, JSON.stringify(body satisfies Json, null, 2));
  return file;
}

/** One repetition of the full run. */
async function repetition(
  config: BenchConfig,
  rep: number,
  program: ProgramOptions,
  tokensFile: string,
  log: (what: string) => void,
): Promise<Repetition> {
  const { measure: options, sections } = config;
  const result: Repetition = {
    hop: undefined!,
    httpHop: undefined!,
    baseline: undefined!,
    servers: {},
  };
  if (sections.has("paths")) {
    log("raw WebSocket hop");
    result.hop = await runHop(options);
    log("bare HTTP echo hop");
    result.httpHop = await runHttpHop(options);
    log("baseline RSS");
    result.baseline = await runBaseline();
    for (const kind of config.servers) {
      log(`stdio floor (${kind})`);
      const stdio = await runStdio(kind, options);
      // Alternate which of the two goes first, so that neither always gets the quieter slot.
      const order = rep % 2 === 1
        ? ["bare relay", "connect"] as const
        : ["connect", "bare relay"] as const;
      const measured: Partial<Record<"bare relay" | "connect", TunnelFigures>> = {};
      for (const which of order) {
        log(`${which === "connect" ? "tunnel A" : "bare relay"} (${kind})`);
        measured[which] = await runTunnelA(kind, options, which, program);
      }
      log(`serve+connect (${kind})`);
      const serve = await runServe(kind, options, program, tokensFile);
      result.servers[kind] = {
        stdio,
        relay: measured["bare relay"]!,
        tunnelA: measured.connect!,
        serve,
      };
    }
  }
  if (sections.has("reconnect")) {
    log("re-registration");
    result.reconnect = await runReconnect(program, { drops: config.drops, downMs: config.downMs });
  }
  if (sections.has("features")) {
    result.features = {};
    for (const row of FEATURE_ROWS) {
      if (row.run === undefined || (config.rows !== undefined && !config.rows.has(row.id))) {
        continue;
      }
      log(row.title);
      result.features[row.id] = await row.run({ program, tokensFile, options });
    }
  }
  if (sections.has("memory")) {
    log("memory layers");
    result.memory = await runMemoryProbes();
  }
  return result;
}

async function main(args: string[]): Promise<number> {
  const config = parseBenchArgs(args);
  if (config.mode === "help") {
    console.log(HELP);
    return 0;
  }
  if (config.mode === "distribution") {
    console.log(reconnectDistributionReport({ seed: config.seed }));
    return 0;
  }
  if (config.bundle) {
    await Deno.stat(PATHS.bundle).catch(() => {
      throw new Error(`${PATHS.bundle} is missing: run 'deno task bundle' first`);
    });
  }
  const earlier = config.compare === undefined ? undefined : await readBenchJson(config.compare);
  const program: ProgramOptions = {
    script: config.bundle ? PATHS.bundle : PATHS.main,
    // main.ts runs as the installed command runs it (scripts/install.ts): `serve` and the demo load only
    // when chosen. The bundle runs as its least-privilege lines say, without the flag.
    denoFlags: config.bundle ? [] : ["--unstable-lazy-dynamic-imports"],
  };
  if (config.profile !== undefined) {
    await Deno.mkdir(config.profile, { recursive: true });
    program.denoFlags.push("--cpu-prof", `--cpu-prof-dir=${config.profile}`);
  }
  const machine = machineInfo();
  const m = config.measure;
  console.log(
    `mcp-rproxy bench${
      config.mode === "peers" ? " --peers" : ""
    }: ${machine.cpus} × ${machine.cpuModel}, ${machine.memoryMiB} MiB, Linux ${machine.kernel}, Deno ${machine.deno}, V8 ${machine.v8}`,
  );
  console.log(
    `${config.reps} repetition(s); ${m.calls} sequential calls after ${m.warmup} warm-up; ${m.throughputCalls} calls with ${m.inflight} in flight; ${
      config.mode === "peers"
        ? "no large result"
        : `${(m.bigBytes / 1024 / 1024).toFixed(0)} MiB result`
    }; program ${
      config.bundle
        ? "dist/mcp-rproxy/main.js"
        : "main.ts (as installed: --unstable-lazy-dynamic-imports)"
    }. ${NOISE}`,
  );

  const tokensFile = await Deno.makeTempFile({ prefix: "mcp-rproxy-bench-", suffix: ".tokens" });
  const started = performance.now();
  const stamp = (rep: number) => (what: string) =>
    console.error(
      `[rep ${rep}/${config.reps}, ${((performance.now() - started) / 1000).toFixed(0)} s] ${what}`,
    );
  const common = {
    command: `deno task bench ${args.join(" ")}`.trim(),
    date: new Date().toISOString(),
    machine,
    config: {
      ...config,
      sections: [...config.sections],
      ...(config.rows === undefined ? {} : { rows: [...config.rows] }),
    },
    units: { latency: "µs", throughput: "calls/s", time: "ms", rss: "bytes" },
  };
  try {
    await Deno.writeTextFile(tokensFile, `${TOKEN} bench\n`);
    if (config.mode === "peers") {
      const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-peers-" });
      try {
        console.error(`installing supergateway into ${dir}`);
        const gateway = await installSupergateway(dir);
        console.log(`supergateway 4.0.0 on Node ${gateway.nodeVersion}`);
        const reps: PeersRepetition[] = [];
        for (let rep = 1; rep <= config.reps; rep++) {
          reps.push(
            await runPeers(gateway, config.servers, m, program, tokensFile, rep, stamp(rep)),
          );
        }
        const medians = medianOf(reps);
        const targets = evaluatePeers(medians);
        console.log(`\nMedians of ${config.reps} repetition(s), same node:http driver for both:`);
        console.log(peersTable(medians));
        console.log("");
        printTargets(targets);
        const file = await writeJson(config, "bench-peers", {
          ...common,
          durationSeconds: Math.round((performance.now() - started) / 1000),
          supergateway: { version: "4.0.0", node: gateway.nodeVersion },
          medians,
          targets,
          repetitions: reps,
        });
        if (earlier) {
          console.log(`\n${compareReport({ medians, targets }, earlier, config.compare!)}`);
        }
        console.log(`\nWrote ${file} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
      } finally {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
      return 0;
    }
    const repetitions: Repetition[] = [];
    for (let rep = 1; rep <= config.reps; rep++) {
      repetitions.push(await repetition(config, rep, program, tokensFile, stamp(rep)));
    }
    const medians = medianOf(repetitions);
    const targets = evaluate(medians);
    console.log("");
    if (config.sections.has("paths")) {
      console.log(
        `Medians of ${config.reps} repetition(s). Latency: sequential tools/call echo round trips; "+p50" added over the stdio floor; "/floor" throughput (${m.inflight} in flight) over the stdio floor's.`,
      );
      console.log(
        `"start ms": stdio = server spawn → initialized; tunnels = launch of connect → registered. "CPU µs/call": CPU time of connect (+ serve) per echo call, all echo phases; "in flight": the same in the timed phase with ${m.inflight} calls in flight only. RSS: VmHWM (MiB) of connect (of the relay on its row; of the echo peer on the hop row; of serve on its own row).`,
      );
      console.log(pathsTable(medians));
      console.log("");
    }
    console.log(sectionsReport(medians, config.reps));
    printTargets(targets);
    const file = await writeJson(config, "bench", {
      ...common,
      durationSeconds: Math.round((performance.now() - started) / 1000),
      medians,
      targets,
      repetitions,
    });
    if (earlier) console.log(`\n${compareReport({ medians, targets }, earlier, config.compare!)}`);
    console.log(`\nWrote ${file} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
    return 0;
  } finally {
    await Deno.remove(tokensFile).catch(() => {});
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
