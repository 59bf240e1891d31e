// `deno task bench`: what a tunnel costs on top of the server it carries, on loopback, in one run. Floors:
// the server driven directly over stdio, a raw WebSocket echo between two Deno processes, and a bare relay
// (the least any Deno tunnel must do on the contract-A path). Tunnels: `connect` against a minimal contract-A
// gateway in this process, and `serve` + `connect`. Prints a table with each tunnel figure as a ratio to
// its floor, PASS/FAIL per target, and writes JSON to bench-results/.

import { parseArgs } from "node:util";
import {
  ContractAClient,
  HopClient,
  HttpMcpClient,
  type Json,
  StdioClient,
  WsAcceptor,
} from "./bench/clients.ts";
import { DenoProcess, freePort, PATHS, ROOT, waitHealthy } from "./bench/children.ts";
import { machineInfo, readCpuNs, readRss } from "./bench/procfs.ts";
import { median } from "./bench/stats.ts";
import { type ReplicaFigures, runReplicas } from "./bench/replicas.ts";
import {
  type Figures,
  HOP_MESSAGES,
  mcpMessages,
  measure,
  type MeasureOptions,
} from "./bench/workload.ts";

const HELP = `deno task bench [options]

Measures MCP calls through mcp-rproxy against their floors (stdio, raw WebSocket hop) on 127.0.0.1.

  --reps N               repetitions; targets use the median of each figure (default 3)
  --calls N              sequential echo calls measured after warm-up (default 2000)
  --warmup N             sequential warm-up calls (default 300)
  --throughput-calls N   calls for the throughput phase (default 6000)
  --inflight N           calls in flight in the throughput phase (default 16)
  --big-mib N            size of the large result in MiB, 0 = skip (default 16)
  --servers LIST         comma-separated: demo, everything (default demo,everything)
  --no-replicas          skip the replica row (two serve --redis on a redis-server; demo server)
  --bundle               run dist/mcp-rproxy/main.js (deno task bundle) instead of main.ts
  --quick                smoke run: 1 repetition, 500 calls, 1500 in flight, demo server only
  --out DIR              where the JSON goes (default bench-results)
  --profile DIR          run connect and serve with --cpu-prof into DIR (figures then include the
                         profiler's cost: for finding hot spots, not for the record)
  -h, --help             this text
`;

const MIB = 1024 * 1024;
const TOKEN = crypto.randomUUID().replaceAll("-", "");
const START_TIMEOUT_MS = 60_000;
const EVERYTHING = "npm:@modelcontextprotocol/server-everything@2026.8.31";

type ServerKind = "demo" | "everything";

const SERVERS: Record<ServerKind, { command: string[]; hasBig: boolean }> = {
  demo: { command: [Deno.execPath(), "run", "--quiet", PATHS.demoServer], hasBig: true },
  everything: {
    command: [Deno.execPath(), "run", "--quiet", "-A", EVERYTHING, "stdio"],
    hasBig: false,
  },
};

const INITIALIZE =
  `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"mcp-rproxy-bench","version":"0"}}}`;
const INITIALIZED = `{"jsonrpc":"2.0","method":"notifications/initialized"}`;

/** What one tunnel run adds to the figures. */
interface TunnelFigures extends Figures {
  launchToRegisteredMs: number;
  /** CPU time of the connect process per echo call (all its threads), from warm-up to the end of load. */
  connectCpuUsPerCall: number;
  /** The same for the serve process (serve + connect path only). */
  serveCpuUsPerCall?: number;
  rss: { idleHwm: number; loadHwm: number; bigHwm?: number; endRss: number };
}

interface StdioFigures extends Figures {
  spawnToInitializedMs: number;
}

/** A floor peer's own VmHWM after it is up, after the load phases and after the large result. */
interface PeerRss {
  idleHwm: number;
  loadHwm: number;
  bigHwm?: number;
}

interface Repetition {
  hop: Figures & { peerRss: PeerRss };
  httpHop: Figures;
  baseline: { hwm: number; rss: number };
  servers: Partial<
    Record<ServerKind, ServerFigures>
  >;
  /** Same-replica and cross-replica calls in the same run (two replicas, demo server). */
  replicas?: ReplicaFigures;
}

/** Every path measured with one server. */
interface ServerFigures {
  stdio: StdioFigures;
  relay: TunnelFigures;
  tunnelA: TunnelFigures;
  serve: TunnelFigures;
}

function positive(name: string, value: string | undefined, fallback: number, zeroOk = false) {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || (n === 0 && !zeroOk)) {
    throw new RangeError(
      `--${name} must be a ${zeroOk ? "non-negative" : "positive"} integer: got ${value}`,
    );
  }
  return n;
}

function ids(): () => number {
  let next = 1;
  return () => next++;
}

function mib(bytes: number | undefined): string {
  return bytes === undefined ? "-" : (bytes / MIB).toFixed(1);
}

async function runStdio(kind: ServerKind, options: MeasureOptions): Promise<StdioFigures> {
  const server = SERVERS[kind];
  const start = performance.now();
  const client = new StdioClient(server.command);
  try {
    const init = await client.call(0, INITIALIZE).then((r) => {
      if (r.error !== undefined) throw new Error(`initialize failed: ${JSON.stringify(r.error)}`);
      return r;
    });
    const spawnToInitializedMs = performance.now() - start;
    void init;
    client.notify(INITIALIZED);
    const figures = await measure(client, mcpMessages(server.hasBig), options, ids());
    return { ...figures, spawnToInitializedMs };
  } finally {
    await client.close();
  }
}

async function runHop(options: MeasureOptions): Promise<Figures & { peerRss: PeerRss }> {
  const acceptor = new WsAcceptor();
  const peer = new DenoProcess(PATHS.hopChild, [`ws://127.0.0.1:${acceptor.port}/`]);
  try {
    const client = await HopClient.accept(acceptor, START_TIMEOUT_MS);
    try {
      // The peer is a bare Deno program under the same load: how much RSS load alone adds.
      const peerRss: PeerRss = { idleHwm: readRss(peer.pid).hwm, loadHwm: 0 };
      const figures = await measure(client, HOP_MESSAGES, {
        ...options,
        onPhaseEnd: (phase) => {
          if (phase === "load") peerRss.loadHwm = readRss(peer.pid).hwm;
          else peerRss.bigHwm = readRss(peer.pid).hwm;
        },
      }, ids());
      return { ...figures, peerRss };
    } finally {
      await client.close();
    }
  } finally {
    await peer.stop();
    await acceptor.close();
  }
}

async function runHttpHop(options: MeasureOptions): Promise<Figures> {
  const port = freePort();
  const peer = new DenoProcess(PATHS.httpChild, [String(port)]);
  try {
    await waitHealthy(`http://127.0.0.1:${port}/`, START_TIMEOUT_MS);
    return await measure(
      HttpMcpClient.raw(`http://127.0.0.1:${port}/`),
      HOP_MESSAGES,
      options,
      ids(),
    );
  } finally {
    await peer.stop();
  }
}

async function runBaseline(): Promise<{ hwm: number; rss: number }> {
  const acceptor = new WsAcceptor();
  const peer = new DenoProcess(PATHS.baselineChild, [
    `ws://127.0.0.1:${acceptor.port}/`,
    "--",
    ...SERVERS.demo.command,
  ]);
  try {
    const client = await HopClient.accept(acceptor, START_TIMEOUT_MS);
    // Let it settle into idle, as `connect` is idle when its idle figure is read.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const { hwm, rss } = readRss(peer.pid);
    await client.close();
    return { hwm, rss };
  } finally {
    await peer.stop();
    await acceptor.close();
  }
}

function connectArgs(gateway: string, kind: ServerKind): string[] {
  return [
    "connect",
    "--gateway",
    gateway,
    "--log-format",
    "json",
    "--log-level",
    "info",
    "--server-name",
    `bench-${kind}`,
    "--",
    ...SERVERS[kind].command,
  ];
}

/** Measures a connect process through `client`, reading its RSS peak at the end of each phase. */
async function measureTunnel(
  connect: DenoProcess,
  client: { call: StdioClient["call"]; close(): Promise<void> },
  kind: ServerKind,
  options: MeasureOptions,
  launchToRegisteredMs: number,
  serve?: DenoProcess,
): Promise<TunnelFigures> {
  const idle = readRss(connect.pid);
  const rss: TunnelFigures["rss"] = { idleHwm: idle.hwm, loadHwm: 0, endRss: 0 };
  const cpu = { connect: 0, serve: 0 };
  const figures = await measure(client, mcpMessages(SERVERS[kind].hasBig), {
    ...options,
    onStart: () => {
      cpu.connect = readCpuNs(connect.pid);
      if (serve) cpu.serve = readCpuNs(serve.pid);
    },
    onPhaseEnd: (phase) => {
      const now = readRss(connect.pid);
      if (phase === "load") {
        rss.loadHwm = now.hwm;
        cpu.connect = readCpuNs(connect.pid) - cpu.connect;
        if (serve) cpu.serve = readCpuNs(serve.pid) - cpu.serve;
      } else rss.bigHwm = now.hwm;
    },
  }, ids());
  rss.endRss = readRss(connect.pid).rss;
  const perCall = (ns: number) => ns / 1000 / figures.echoCalls;
  return {
    ...figures,
    launchToRegisteredMs,
    connectCpuUsPerCall: perCall(cpu.connect),
    ...(serve ? { serveCpuUsPerCall: perCall(cpu.serve) } : {}),
    rss,
  };
}

function script(bundle: boolean): string {
  return bundle ? PATHS.bundle : PATHS.main;
}

/** Extra `deno run` flags for connect and serve (`--profile`). */
let programFlags: string[] = [];

/**
 * Measures a process that dials a contract-A gateway in this process: `connect` (tunnel A), or the bare
 * relay (the relay floor: what Deno's I/O alone costs on the same path).
 */
async function runTunnelA(
  kind: ServerKind,
  options: MeasureOptions,
  program: "connect" | "bare relay",
  bundle: boolean,
): Promise<TunnelFigures> {
  const acceptor = new WsAcceptor();
  const dialer = program === "connect"
    ? new DenoProcess(script(bundle), connectArgs(acceptor.url, kind), { denoFlags: programFlags })
    : new DenoProcess(PATHS.bareRelayChild, [acceptor.url, "--", ...SERVERS[kind].command]);
  try {
    const link = await ContractAClient.accept(acceptor, START_TIMEOUT_MS);
    const registered = await dialer.waitForEvent("registered", START_TIMEOUT_MS);
    try {
      const init = await link.call(0, INITIALIZE);
      if (init.error !== undefined) throw new Error(`initialize: ${JSON.stringify(init.error)}`);
      link.notify(INITIALIZED);
      return await measureTunnel(
        dialer,
        link,
        kind,
        options,
        registered.at - dialer.launchedAt,
      );
    } finally {
      await link.close();
    }
  } finally {
    await dialer.stop();
    await acceptor.close();
  }
}

async function runServe(
  kind: ServerKind,
  options: MeasureOptions,
  bundle: boolean,
  tokensFile: string,
): Promise<TunnelFigures> {
  const port = freePort();
  const serve = new DenoProcess(script(bundle), [
    "serve",
    "--listen",
    `127.0.0.1:${port}`,
    "--tokens-file",
    tokensFile,
    "--log-level",
    "warning",
    // The figures are of the tunnel: sessions are not saved (the state store is off the hot path anyway).
    "--state-dir",
    "none",
  ], { denoFlags: programFlags });
  let connect: DenoProcess | undefined;
  try {
    await waitHealthy(`http://127.0.0.1:${port}/healthz`, START_TIMEOUT_MS);
    connect = new DenoProcess(script(bundle), connectArgs(`http://127.0.0.1:${port}`, kind), {
      env: { REVERSE_PROXY_TOKEN: TOKEN },
      denoFlags: programFlags,
    });
    const registered = await connect.waitForEvent("registered", START_TIMEOUT_MS);
    const mcpUrl = registered.json.mcpUrl;
    if (typeof mcpUrl !== "string") throw new Error("connect's 'registered' event has no mcpUrl");
    const client = new HttpMcpClient(mcpUrl, TOKEN);
    try {
      await client.initialize(INITIALIZE);
      return await measureTunnel(
        connect,
        client,
        kind,
        options,
        registered.at - connect.launchedAt,
        serve,
      );
    } finally {
      await client.close();
    }
  } finally {
    await connect?.stop();
    await serve.stop();
  }
}

// ---- report ------------------------------------------------------------------------------------

interface Medians {
  hop: Figures & { peerRss: PeerRss };
  httpHop: Figures;
  baseline: { hwm: number; rss: number };
  servers: Partial<Record<ServerKind, ServerFigures>>;
  replicas?: ReplicaFigures;
}

/** The median of every numeric leaf across repetitions, keeping the shape of the first. */
function medianOf<T>(values: T[]): T {
  const first = values[0];
  if (typeof first === "number") return median(values as number[]) as T;
  if (typeof first !== "object" || first === null) return first as T;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(first)) {
    out[key] = medianOf(values.map((v) => (v as Record<string, unknown>)[key]));
  }
  return out as T;
}

function pad(text: string, width: number, left = false): string {
  return left ? text.padEnd(width) : text.padStart(width);
}

function n(value: number | undefined, digits = 0): string {
  return value === undefined || !Number.isFinite(value) ? "-" : value.toFixed(digits);
}

interface Target {
  path: string;
  name: string;
  pass: boolean;
  detail: string;
}

function evaluate(m: Medians, bigBytes: number): Target[] {
  const targets: Target[] = [];
  const hop = m.hop;
  const budgetUs = 1.5 * hop.p50Us;
  for (const [kind, s] of Object.entries(m.servers) as [ServerKind, Medians["servers"]["demo"]][]) {
    if (!s) continue;
    for (const [label, t] of [["tunnel A", s.tunnelA], ["serve+connect", s.serve]] as const) {
      const path = `${label} (${kind})`;
      const added = t.p50Us - s.stdio.p50Us;
      targets.push({
        path,
        name: "sequential p50 added ≤ 1.5 × hop p50",
        pass: added <= budgetUs,
        detail: `${n(added)} µs added (${n(t.p50Us)} − ${n(s.stdio.p50Us)}) vs ${
          n(budgetUs)
        } µs (1.5 × ${n(hop.p50Us)})`,
      });
      const share = t.callsPerSecond / s.stdio.callsPerSecond;
      targets.push({
        path,
        name: "throughput (16 in flight) ≥ 85 % of stdio",
        pass: share >= 0.85,
        detail: `${n(t.callsPerSecond)} vs ${n(s.stdio.callsPerSecond)} calls/s = ${
          n(share * 100, 1)
        } %`,
      });
      const launchBudget = s.stdio.spawnToInitializedMs + 100;
      targets.push({
        path,
        name: "launch → registered ≤ server spawn → initialized + 100 ms",
        pass: t.launchToRegisteredMs <= launchBudget,
        detail: `${n(t.launchToRegisteredMs, 1)} ms vs ${n(launchBudget, 1)} ms (${
          n(s.stdio.spawnToInitializedMs, 1)
        } + 100)`,
      });
      const rssBudget = m.baseline.hwm + 16 * MIB;
      targets.push({
        path,
        name: "peak RSS idle ≤ baseline + 16 MiB",
        pass: t.rss.idleHwm <= rssBudget,
        detail: `${mib(t.rss.idleHwm)} MiB vs ${mib(rssBudget)} MiB (${mib(m.baseline.hwm)} + 16)`,
      });
      targets.push({
        path,
        name: "peak RSS under load ≤ baseline + 16 MiB",
        pass: t.rss.loadHwm <= rssBudget,
        detail: `${mib(t.rss.loadHwm)} MiB vs ${mib(rssBudget)} MiB`,
      });
      if (t.rss.bigHwm !== undefined && t.bigMs !== undefined && hop.bigMs !== undefined) {
        const bigBudget = m.baseline.hwm + 16 * MIB + 3 * bigBytes;
        targets.push({
          path,
          name: `peak RSS with the ${mib(bigBytes)} MiB result ≤ baseline + 16 MiB + 3 × ${
            mib(bigBytes)
          } MiB`,
          pass: t.rss.bigHwm <= bigBudget,
          detail: `${mib(t.rss.bigHwm)} MiB vs ${mib(bigBudget)} MiB`,
        });
        targets.push({
          path,
          name: `${mib(bigBytes)} MiB result ≤ 4 × raw hop`,
          pass: t.bigMs <= 4 * hop.bigMs,
          detail: `${n(t.bigMs, 1)} ms vs ${n(4 * hop.bigMs, 1)} ms (4 × ${n(hop.bigMs, 1)})`,
        });
      }
    }
  }
  if (m.replicas !== undefined) {
    const { same, cross } = m.replicas;
    const path = "replicas (demo)";
    const added = cross.p50Us - same.p50Us;
    targets.push({
      path,
      name: "cross-replica p50 added over same-replica ≤ 0.30 ms",
      pass: added <= 300,
      detail: `${n(added)} µs added (${n(cross.p50Us)} − ${n(same.p50Us)})`,
    });
    const share = cross.callsPerSecond / same.callsPerSecond;
    targets.push({
      path,
      name: "cross-replica throughput (16 in flight) ≥ 70 % of same-replica",
      pass: share >= 0.7,
      detail: `${n(cross.callsPerSecond)} vs ${n(same.callsPerSecond)} calls/s = ${
        n(share * 100, 1)
      } %`,
    });
  }
  return targets;
}

function table(m: Medians): string {
  const head = [
    pad("path", 26, true),
    pad("p50 µs", 8),
    pad("p90 µs", 8),
    pad("p99 µs", 8),
    pad("+p50 µs", 8),
    pad("/hop", 6),
    pad("calls/s", 9),
    pad("/floor", 7),
    pad("start ms", 9),
    pad("RSS idle", 9),
    pad("RSS load", 9),
    pad("RSS big", 8),
    pad("big ms", 8),
    pad("/hop", 6),
    pad("CPU µs/call", 12),
  ];
  const rows = [head.join(" ")];
  const hop = m.hop;
  const row = (cells: string[]) => rows.push(cells.join(" "));
  row([
    pad("raw WebSocket hop", 26, true),
    pad(n(hop.p50Us), 8),
    pad(n(hop.p90Us), 8),
    pad(n(hop.p99Us), 8),
    pad("", 8),
    pad("", 6),
    pad(n(hop.callsPerSecond), 9),
    pad("", 7),
    pad("", 9),
    pad(mib(hop.peerRss.idleHwm), 9),
    pad(mib(hop.peerRss.loadHwm), 9),
    pad(mib(hop.peerRss.bigHwm), 8),
    pad(n(hop.bigMs, 1), 8),
    pad("1.00", 6),
  ]);
  row([
    pad("baseline: Deno+WS+child", 26, true),
    ...[8, 8, 8, 8, 6, 9, 7, 9].map((w) => pad("", w)),
    pad(mib(m.baseline.hwm), 9),
    pad("", 9),
    pad("", 8),
    pad("", 8),
    pad("", 6),
  ]);
  const http = m.httpHop;
  row([
    pad("raw HTTP hop (fetch)", 26, true),
    pad(n(http.p50Us), 8),
    pad(n(http.p90Us), 8),
    pad(n(http.p99Us), 8),
    pad("", 8),
    pad("", 6),
    pad(n(http.callsPerSecond), 9),
    pad("", 7),
    pad("", 9),
    pad("", 9),
    pad("", 9),
    pad("", 8),
    pad(n(http.bigMs, 1), 8),
    pad(http.bigMs && hop.bigMs ? n(http.bigMs / hop.bigMs, 2) : "", 6),
  ]);
  for (const [kind, s] of Object.entries(m.servers) as [ServerKind, Medians["servers"]["demo"]][]) {
    if (!s) continue;
    const floor = s.stdio;
    row([
      pad(`stdio floor (${kind})`, 26, true),
      pad(n(floor.p50Us), 8),
      pad(n(floor.p90Us), 8),
      pad(n(floor.p99Us), 8),
      pad("0", 8),
      pad("", 6),
      pad(n(floor.callsPerSecond), 9),
      pad("1.00", 7),
      pad(n(floor.spawnToInitializedMs, 1), 9),
      pad("", 9),
      pad("", 9),
      pad("", 8),
      pad(n(floor.bigMs, 1), 8),
      pad(floor.bigMs && hop.bigMs ? n(floor.bigMs / hop.bigMs, 2) : "", 6),
    ]);
    const paths = [["bare relay A", s.relay], ["tunnel A", s.tunnelA], [
      "serve+connect",
      s.serve,
    ]] as const;
    for (const [label, t] of paths) {
      const added = t.p50Us - floor.p50Us;
      row([
        pad(`${label} (${kind})`, 26, true),
        pad(n(t.p50Us), 8),
        pad(n(t.p90Us), 8),
        pad(n(t.p99Us), 8),
        pad(n(added), 8),
        pad(n(added / hop.p50Us, 2), 6),
        pad(n(t.callsPerSecond), 9),
        pad(n(t.callsPerSecond / floor.callsPerSecond, 2), 7),
        pad(n(t.launchToRegisteredMs, 1), 9),
        pad(mib(t.rss.idleHwm), 9),
        pad(mib(t.rss.loadHwm), 9),
        pad(mib(t.rss.bigHwm), 8),
        pad(n(t.bigMs, 1), 8),
        pad(t.bigMs && hop.bigMs ? n(t.bigMs / hop.bigMs, 2) : "", 6),
        pad(
          n(t.connectCpuUsPerCall, 1) +
            (t.serveCpuUsPerCall === undefined ? "" : ` +${n(t.serveCpuUsPerCall, 0)}`),
          12,
        ),
      ]);
    }
  }
  if (m.replicas !== undefined) {
    const { same, cross } = m.replicas;
    for (const [label, t] of [["same-replica", same], ["cross-replica", cross]] as const) {
      const added = t.p50Us - same.p50Us;
      row([
        pad(`${label} (demo)`, 26, true),
        pad(n(t.p50Us), 8),
        pad(n(t.p90Us), 8),
        pad(n(t.p99Us), 8),
        pad(n(added), 8),
        pad(n(added / hop.p50Us, 2), 6),
        pad(n(t.callsPerSecond), 9),
        pad(n(t.callsPerSecond / same.callsPerSecond, 2), 7),
        pad("", 9),
        pad("", 9),
        pad("", 9),
        pad("", 8),
        pad(n(t.bigMs, 1), 8),
        pad(t.bigMs && hop.bigMs ? n(t.bigMs / hop.bigMs, 2) : "", 6),
      ]);
    }
  }
  return rows.join("\n");
}

// ---- main --------------------------------------------------------------------------------------

async function main(args: string[]): Promise<number> {
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
      bundle: { type: "boolean" },
      "no-replicas": { type: "boolean" },
      quick: { type: "boolean" },
      out: { type: "string" },
      profile: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const quick = values.quick === true;
  const reps = positive("reps", values.reps, quick ? 1 : 3);
  const bigBytes = positive("big-mib", values["big-mib"], 16, true) * MIB;
  const options: MeasureOptions = {
    warmup: positive("warmup", values.warmup, quick ? 100 : 300, true),
    calls: positive("calls", values.calls, quick ? 500 : 2000),
    throughputCalls: positive("throughput-calls", values["throughput-calls"], quick ? 1500 : 6000),
    inflight: positive("inflight", values.inflight, 16),
    bigBytes,
    phaseTimeoutMs: 120_000,
  };
  const servers = (values.servers ?? (quick ? "demo" : "demo,everything")).split(",").map((s) =>
    s.trim()
  );
  for (const s of servers) {
    if (!(s in SERVERS)) {
      throw new RangeError(`--servers: unknown server '${s}' (demo, everything)`);
    }
  }
  const bundle = values.bundle === true;
  if (bundle) {
    await Deno.stat(PATHS.bundle).catch(() => {
      throw new Error(`${PATHS.bundle} is missing: run 'deno task bundle' first`);
    });
  }
  const outDir = values.out ?? `${ROOT}bench-results`;
  if (values.profile !== undefined) {
    await Deno.mkdir(values.profile, { recursive: true });
    programFlags = ["--cpu-prof", `--cpu-prof-dir=${values.profile}`];
  }

  const machine = machineInfo();
  const config = {
    reps,
    ...options,
    servers,
    program: bundle ? "dist/mcp-rproxy/main.js" : "main.ts",
  };
  console.log(
    `mcp-rproxy bench: ${machine.cpus} × ${machine.cpuModel}, ${machine.memoryMiB} MiB, Linux ${machine.kernel}, Deno ${machine.deno}, V8 ${machine.v8}`,
  );
  console.log(
    `${reps} repetition(s); ${options.calls} sequential calls after ${options.warmup} warm-up; ${options.throughputCalls} calls with ${options.inflight} in flight; ${
      mib(bigBytes)
    } MiB result; program ${config.program}`,
  );

  const tokensFile = await Deno.makeTempFile({ prefix: "mcp-rproxy-bench-", suffix: ".tokens" });
  const repetitions: Repetition[] = [];
  const started = performance.now();
  try {
    await Deno.writeTextFile(tokensFile, `${TOKEN} bench\n`);
    for (let rep = 1; rep <= reps; rep++) {
      const log = (what: string) =>
        console.error(
          `[rep ${rep}/${reps}, ${((performance.now() - started) / 1000).toFixed(0)} s] ${what}`,
        );
      log("raw WebSocket hop");
      const hop = await runHop(options);
      log("raw HTTP hop");
      const httpHop = await runHttpHop(options);
      log("baseline RSS");
      const baseline = await runBaseline();
      const repetition: Repetition = { hop, httpHop, baseline, servers: {} };
      for (const kind of servers as ServerKind[]) {
        log(`stdio floor (${kind})`);
        const stdio = await runStdio(kind, options);
        // Alternate which of the two goes first, so that neither always gets the quieter slot.
        const order = rep % 2 === 1
          ? ["bare relay", "connect"] as const
          : ["connect", "bare relay"] as const;
        const measured: Partial<Record<"bare relay" | "connect", TunnelFigures>> = {};
        for (const program of order) {
          log(`${program === "connect" ? "tunnel A" : "bare relay"} (${kind})`);
          measured[program] = await runTunnelA(kind, options, program, bundle);
        }
        const relay = measured["bare relay"]!;
        const tunnelA = measured.connect!;
        log(`serve+connect (${kind})`);
        const serve = await runServe(kind, options, bundle, tokensFile);
        repetition.servers[kind] = { stdio, relay, tunnelA, serve };
      }
      if (values["no-replicas"] !== true) {
        log("replicas: same-replica and cross-replica (demo)");
        repetition.replicas = await runReplicas({
          measure: options,
          script: script(bundle),
          tokensFile,
          token: TOKEN,
          initialize: INITIALIZE,
          crossFirst: rep % 2 === 0,
          startTimeoutMs: START_TIMEOUT_MS,
          denoFlags: programFlags,
        });
      }
      repetitions.push(repetition);
    }
  } finally {
    await Deno.remove(tokensFile).catch(() => {});
  }

  const medians: Medians = medianOf(repetitions);
  const targets = evaluate(medians, bigBytes);
  console.log("");
  console.log(
    `Medians of ${reps} repetition(s). Latency: sequential tools/call echo round trips. "+p50": added over the stdio floor; "/hop": that as a multiple of the hop p50.`,
  );
  console.log(
    `"start ms": stdio = server spawn → initialized; tunnels = launch of connect → registered. "CPU µs/call": CPU time of connect (+ serve) per echo call. RSS: VmHWM (MiB) of connect; of the echo peer on the hop row; of an idle bare Deno program holding a WebSocket and a child on the baseline row.`,
  );
  console.log(table(medians));
  console.log("");
  for (const t of targets) {
    console.log(`${t.pass ? "PASS" : "FAIL"}  ${t.path}: ${t.name}: ${t.detail}`);
  }

  await Deno.mkdir(outDir, { recursive: true });
  const stamp = new Date().toISOString().replaceAll(":", "-").replace(/\..*$/, "");
  const file = `${outDir}/bench-${stamp}.json`;
  await Deno.writeTextFile(
    file,
    JSON.stringify(
      {
        command: `deno task bench ${args.join(" ")}`.trim(),
        date: new Date().toISOString(),
        durationSeconds: Math.round((performance.now() - started) / 1000),
        machine,
        config,
        units: { latency: "µs", throughput: "calls/s", time: "ms", rss: "bytes" },
        medians,
        targets,
        repetitions,
      } satisfies Json,
      null,
      2,
    ),
  );
  console.log(`\nWrote ${file} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
