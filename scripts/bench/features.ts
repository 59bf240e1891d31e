// Per-feature rows (issue 17, target 6): one entry per feature, each measured in the same run as the paths
// it is compared with and held to the target written in its own issue. A feature still being built has
// an entry without `run`: the report lists it as not measured yet, and its issue adds `run` and `evaluate`
// here, in one place (see docs/performance.md, "Adding a feature row").

import { HttpMcpClient } from "./clients.ts";
import { DenoProcess } from "./children.ts";
import { readCpuNs, readRss } from "./procfs.ts";
import { PER_CLIENT_CLIENTS, RoundRobin, runPerClient, runSseLink } from "./link_rows.ts";
import { type FloorFigures, type ReplicaCpu, runReplicas } from "./replicas.ts";
import { type ProgramOptions, startServe, type TunnelFigures } from "./paths.ts";
import {
  ids,
  INITIALIZE,
  manyServersArgs,
  type ServerKind,
  START_TIMEOUT_MS,
  TOKEN,
} from "./servers.ts";
import type { Target } from "./targets.ts";
import { type Figures, mcpMessages, measure, type MeasureOptions } from "./workload.ts";

/** What a feature row measured: the figures of its path, plus whatever else its target needs. */
export interface FeatureFigures extends Figures {
  /** CPU µs per call of connect and serve, when the row runs them. */
  connectCpuUsPerCall?: number;
  serveCpuUsPerCall?: number;
  /** connect's VmHWM after the load phases, bytes. */
  connectLoadHwm?: number;
  /** Launch of connect → every server registered, ms. */
  launchToRegisteredMs?: number;
  /** The cross-replica row: the same calls through the replica that holds the tunnel. */
  sameReplica?: Figures & { cpuUsPerCall?: ReplicaCpu };
  /** The cross-replica row: CPU µs per call of each process on its path. */
  cpuUsPerCall?: ReplicaCpu;
  /**
   * The cross-replica row: the bare Redis two-hop round trip between two processes (XADD → XREAD → XADD
   * back → XREAD), envelope-sized entries, on the same redis-server in the same run.
   */
  redisFloor?: FloorFigures;
  /** The SSE link row: the same path over the WebSocket link, and the stdio floor of that run. */
  webSocketLink?: Figures;
  stdioFloor?: Figures;
  /** The per-client row (its own figures are 8 clients, an instance each): 8 clients on one instance. */
  sharedInstance?: Figures;
  /** The per-client row: a new session's `initialize` + first echo, ms; and the server's own start. */
  firstCallMs?: number;
  firstCallSamples?: number[];
  serverStartMs?: number;
  serverStartSamples?: number[];
}

/** What a row may use: how to run the programs, the token file, the workload. */
export interface FeatureContext {
  program: ProgramOptions;
  tokensFile: string;
  options: MeasureOptions;
}

/** The medians a row's target compares with (same run). */
export interface FeatureBaseline {
  /** serve + connect with one demo server. */
  serveDemo?: TunnelFigures;
  /** tunnel A with one demo server. */
  tunnelADemo?: TunnelFigures;
}

/** One row: a feature, the issue that owns it, its target in that issue's words. */
export interface FeatureRow {
  id: string;
  issue: number;
  title: string;
  /** The target as its issue words it. */
  target: string;
  /** Measures the row; absent while the feature is not on this branch. */
  run?: (context: FeatureContext) => Promise<FeatureFigures>;
  /** PASS/FAIL of the row against the same run's medians. */
  evaluate?: (row: FeatureFigures, baseline: FeatureBaseline) => Target[];
}

const MANY = 4;

/** serve + one connect carrying 4 demo servers on one link; calls spread over the 4, 16 in flight. */
async function runManyServers(context: FeatureContext): Promise<FeatureFigures> {
  const kind: ServerKind = "demo";
  const serve = await startServe(context.program, context.tokensFile);
  let connect: DenoProcess | undefined;
  const clients: HttpMcpClient[] = [];
  try {
    connect = new DenoProcess(context.program.script, manyServersArgs(serve.url, kind, MANY), {
      env: { REVERSE_PROXY_TOKEN: TOKEN },
      denoFlags: context.program.denoFlags,
    });
    const urls = new Set<string>();
    let last = 0;
    await connect.waitForEvent("registered", START_TIMEOUT_MS);
    for (let i = 1; i <= MANY; i++) {
      const seen = await connect.waitForEvent(
        "registered",
        START_TIMEOUT_MS,
        (json) => json.server === `bench-${kind}-${i}`,
      );
      urls.add(String(seen.json.mcpUrl));
      last = Math.max(last, seen.at);
    }
    for (const url of urls) {
      const client = new HttpMcpClient(url, TOKEN);
      clients.push(client);
      await client.initialize(INITIALIZE);
    }
    const cpu = { connect: 0, serve: 0 };
    let connectLoadHwm = 0;
    const figures = await measure(new RoundRobin(clients), mcpMessages(false), {
      ...context.options,
      bigBytes: 0,
      onStart: () => {
        cpu.connect = readCpuNs(connect!.pid);
        cpu.serve = readCpuNs(serve.process.pid);
      },
      onPhaseEnd: () => {
        cpu.connect = readCpuNs(connect!.pid) - cpu.connect;
        cpu.serve = readCpuNs(serve.process.pid) - cpu.serve;
        connectLoadHwm = readRss(connect!.pid).hwm;
      },
    }, ids());
    return {
      ...figures,
      connectCpuUsPerCall: cpu.connect / 1000 / figures.echoCalls,
      serveCpuUsPerCall: cpu.serve / 1000 / figures.echoCalls,
      connectLoadHwm,
      launchToRegisteredMs: last - connect.launchedAt,
    };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await connect?.stop();
    await serve.process.stop();
  }
}

let replicaRuns = 0;
let sseRuns = 0;
let perClientRuns = 0;

/** serve + connect over the SSE link, with the WebSocket link and the stdio floor of the same run. */
async function runSseRow(context: FeatureContext): Promise<FeatureFigures> {
  const { sse, webSocket, stdio } = await runSseLink({
    ...context,
    floorFirst: sseRuns++ % 2 === 0,
  });
  return { ...sse, webSocketLink: webSocket, stdioFloor: stdio };
}

/** 8 clients, an instance each, with 8 clients on one shared instance and the server's own start. */
async function runPerClientRow(context: FeatureContext): Promise<FeatureFigures> {
  const row = await runPerClient({ ...context, floorFirst: perClientRuns++ % 2 === 0 });
  return {
    ...row.perClient,
    sharedInstance: row.shared,
    firstCallMs: row.firstCallMs,
    firstCallSamples: row.firstCallSamples,
    serverStartMs: row.serverStartMs,
    serverStartSamples: row.serverStartSamples,
  };
}

/**
 * Two replicas on one redis-server, connect on the first: the cross-replica figures, with the
 * same-replica ones of the same run beside them. Which path goes first alternates between repetitions.
 */
async function runCrossReplica(context: FeatureContext): Promise<FeatureFigures> {
  const { same, cross, floor } = await runReplicas({
    measure: context.options,
    program: context.program,
    tokensFile: context.tokensFile,
    crossFirst: replicaRuns++ % 2 === 0,
  });
  return { ...cross, sameReplica: same, redisFloor: floor };
}

/** Every feature row, in report order. */
export const FEATURE_ROWS: FeatureRow[] = [
  {
    id: "four-servers",
    issue: 13,
    title: "4 servers on one link (serve + connect)",
    target: "aggregate throughput ≥ 80 % of the one-server figure, in the same run",
    run: runManyServers,
    evaluate(row, baseline) {
      const one = baseline.serveDemo;
      if (one === undefined) return [];
      const share = row.callsPerSecond / one.callsPerSecond;
      return [{
        path: "4 servers on one link (demo)",
        name: "aggregate throughput ≥ 80 % of one server's (issue 13)",
        pass: share >= 0.8,
        detail: `${row.callsPerSecond.toFixed(0)} vs ${one.callsPerSecond.toFixed(0)} calls/s = ${
          (share * 100).toFixed(1)
        } % (p50 ${row.p50Us.toFixed(0)} vs ${one.p50Us.toFixed(0)} µs)`,
      }];
    },
  },
  {
    id: "sse-link",
    issue: 16,
    title: "SSE link vs WebSocket link",
    target: "p50 added ≤ 2× the WebSocket link's, throughput ≥ 50 % of it, in the same run",
    run: runSseRow,
    evaluate(row) {
      const ws = row.webSocketLink;
      const floor = row.stdioFloor;
      if (ws === undefined || floor === undefined) return [];
      const path = "SSE link (serve + connect, demo)";
      const added = row.p50Us - floor.p50Us;
      const wsAdded = ws.p50Us - floor.p50Us;
      const share = row.callsPerSecond / ws.callsPerSecond;
      return [{
        path,
        name: "p50 added ≤ 2 × the WebSocket link's (issue 16)",
        pass: added <= 2 * wsAdded,
        detail: `${added.toFixed(0)} µs vs ${(2 * wsAdded).toFixed(0)} µs (2 × ${
          wsAdded.toFixed(0)
        }; stdio floor p50 ${floor.p50Us.toFixed(0)} µs)`,
      }, {
        path,
        name: "throughput (16 in flight) ≥ 50 % of the WebSocket link's (issue 16)",
        pass: share >= 0.5,
        detail: `${row.callsPerSecond.toFixed(0)} vs ${ws.callsPerSecond.toFixed(0)} calls/s = ${
          (share * 100).toFixed(1)
        } %`,
      }];
    },
  },
  {
    id: "per-client",
    issue: 14,
    title: "per-client instances",
    target:
      "first call of a new per-client session ≤ the server's own start → initialize answer + 50 ms; 8 clients × 1 instance each ≥ the throughput of 8 clients on one shared instance",
    run: runPerClientRow,
    evaluate(row) {
      const shared = row.sharedInstance;
      const { firstCallMs, serverStartMs } = row;
      if (shared === undefined || firstCallMs === undefined || serverStartMs === undefined) {
        return [];
      }
      const path = "per-client instances (serve + connect, demo)";
      const budget = serverStartMs + 50;
      const share = row.callsPerSecond / shared.callsPerSecond;
      return [{
        path,
        name: "first call of a new session ≤ the server's own start + 50 ms (issue 14)",
        pass: firstCallMs <= budget,
        detail: `${firstCallMs.toFixed(1)} ms (initialize + first echo) vs ${
          budget.toFixed(1)
        } ms (spawn → initialize ${serverStartMs.toFixed(1)} + 50)`,
      }, {
        path,
        name:
          `${PER_CLIENT_CLIENTS} clients × 1 instance ≥ ${PER_CLIENT_CLIENTS} clients on one instance (issue 14)`,
        pass: share >= 1,
        detail: `${row.callsPerSecond.toFixed(0)} vs ${
          shared.callsPerSecond.toFixed(0)
        } calls/s = ${(share * 100).toFixed(1)} % (p50 ${row.p50Us.toFixed(0)} vs ${
          shared.p50Us.toFixed(0)
        } µs)`,
      }];
    },
  },
  {
    id: "cross-replica",
    issue: 12,
    title: "cross-replica (Redis) path vs same replica",
    target: "p50 added over the same-replica path ≤ 0.30 ms, throughput ≥ 70 % of it",
    run: runCrossReplica,
    evaluate(row) {
      const same = row.sameReplica;
      if (same === undefined) return [];
      const path = "cross-replica (demo, two replicas on one redis-server)";
      const added = row.p50Us - same.p50Us;
      const share = row.callsPerSecond / same.callsPerSecond;
      const floor = row.redisFloor;
      return [{
        path,
        name: "p50 added over the same-replica path ≤ 0.30 ms (issue 12)",
        pass: added <= 300,
        detail: `${added.toFixed(0)} µs added (${row.p50Us.toFixed(0)} − ${same.p50Us.toFixed(0)})${
          floor === undefined ? "" : `; Redis floor: p50 ${floor.p50Us.toFixed(0)} µs round trip`
        }`,
      }, {
        path,
        name: "throughput (16 in flight) ≥ 70 % of the same-replica path (issue 12)",
        pass: share >= 0.7,
        detail: `${row.callsPerSecond.toFixed(0)} vs ${same.callsPerSecond.toFixed(0)} calls/s = ${
          (share * 100).toFixed(1)
        } %${
          floor === undefined
            ? ""
            : `; Redis floor: ${floor.callsPerSecond.toFixed(0)} round trips/s in flight`
        }`,
      }];
    },
  },
];
