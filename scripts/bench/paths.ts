// The paths every repetition measures with one server: the floors (the server over stdio, a raw WebSocket
// hop, a bare HTTP echo hop, an idle Deno baseline) and the tunnels (the bare relay and connect against a
// contract-A gateway in this process, and serve + connect driven over Streamable HTTP).

import { ContractAClient, HopClient, HttpMcpClient, StdioClient, WsAcceptor } from "./clients.ts";
import { DenoProcess, freePort, PATHS, type SeenEvent, waitHealthy } from "./children.ts";
import { readCpuNs, readRss, readSyscalls } from "./procfs.ts";
import {
  connectArgs,
  ids,
  INITIALIZE,
  INITIALIZED,
  serveArgs,
  type ServerKind,
  SERVERS,
  START_TIMEOUT_MS,
  TOKEN,
} from "./servers.ts";
import {
  type Figures,
  HOP_MESSAGES,
  mcpMessages,
  measure,
  type MeasureOptions,
} from "./workload.ts";

/** VmHWM (bytes) of a process after it is up, after the load phases and after the large result. */
export interface PeakRss {
  idleHwm: number;
  loadHwm: number;
  bigHwm?: number;
}

/** Where connect's start-up went, in ms from its launch (its own log events, read by the driver). */
export interface Startup {
  /** connect spawns the server (its early start: before it loads the rest of itself). */
  serverStarting?: number;
  /** The server answered `initialize`. */
  serverStarted?: number;
  /** connect dials the gateway. */
  connecting?: number;
  registered: number;
}

/** What one tunnel run adds to the figures. */
export interface TunnelFigures extends Figures {
  launchToRegisteredMs: number;
  startup: Startup;
  /** CPU time of the connect process (or the relay) per echo call, all its threads, warm-up to end of load. */
  connectCpuUsPerCall: number;
  /** The same for the serve process (serve + connect path only). */
  serveCpuUsPerCall?: number;
  /** CPU µs per call of connect (or the relay) in the timed phase with calls in flight only. */
  connectInflightCpuUsPerCall: number;
  /** The same for serve (serve + connect path only): what target 4 bounds. */
  serveInflightCpuUsPerCall?: number;
  /** serve's write syscalls per call with calls in flight (frames coalesced per tick lower it). */
  serveInflightWritesPerCall?: number;
  rss: PeakRss & { endRss: number };
  /** serve's own peaks (serve + connect path only). */
  serveRss?: PeakRss;
}

/** The server driven directly over stdio. */
export interface StdioFigures extends Figures {
  /** Spawn → answer to `initialize`, in ms: the server's own start. */
  spawnToInitializedMs: number;
}

/** Every path measured with one server. */
export interface ServerFigures {
  stdio: StdioFigures;
  relay: TunnelFigures;
  tunnelA: TunnelFigures;
  serve: TunnelFigures;
}

/** Extra `deno run` flags for connect and serve (`--profile`), and which program to run. */
export interface ProgramOptions {
  script: string;
  denoFlags: string[];
}

export async function runStdio(kind: ServerKind, options: MeasureOptions): Promise<StdioFigures> {
  const server = SERVERS[kind];
  const start = performance.now();
  const client = new StdioClient(server.command);
  try {
    const init = await client.call(0, INITIALIZE);
    if (init.error !== undefined) throw new Error(`initialize: ${JSON.stringify(init.error)}`);
    const spawnToInitializedMs = performance.now() - start;
    client.notify(INITIALIZED);
    const figures = await measure(client, mcpMessages(server.hasBig), options, ids());
    return { ...figures, spawnToInitializedMs };
  } finally {
    await client.close();
  }
}

export async function runHop(options: MeasureOptions): Promise<Figures & { peerRss: PeakRss }> {
  const acceptor = new WsAcceptor();
  const peer = new DenoProcess(PATHS.hopChild, [`ws://127.0.0.1:${acceptor.port}/`]);
  try {
    const client = await HopClient.accept(acceptor, START_TIMEOUT_MS);
    try {
      // The peer is a bare Deno program under the same load: how much RSS load alone adds.
      const peerRss: PeakRss = { idleHwm: readRss(peer.pid).hwm, loadHwm: 0 };
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

/** The bare HTTP hop: a trivial node:http echo, driven by the same node:http driver as serve. */
export async function runHttpHop(options: MeasureOptions): Promise<Figures> {
  const port = freePort();
  const peer = new DenoProcess(PATHS.httpChild, [String(port)]);
  const client = HttpMcpClient.raw(`http://127.0.0.1:${port}/`);
  try {
    await waitHealthy(`http://127.0.0.1:${port}/`, START_TIMEOUT_MS);
    return await measure(client, HOP_MESSAGES, options, ids());
  } finally {
    await client.close();
    await peer.stop();
  }
}

/** An idle bare Deno program holding a WebSocket and a child: what any Deno tunnel holds at least. */
export async function runBaseline(): Promise<{ hwm: number; rss: number }> {
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

/** connect's start-up events, in ms from its launch. */
export async function startupOf(process: DenoProcess, registered: SeenEvent): Promise<Startup> {
  const at = async (event: string) => {
    const seen = await process.waitForEvent(event, 1).catch(() => undefined);
    if (seen === undefined) return undefined;
    // A server spawned by connect's early start is logged once logging is up: the line says how long ago.
    const ago = typeof seen.json.spawnedMsAgo === "number" ? seen.json.spawnedMsAgo : 0;
    return seen.at - process.launchedAt - ago;
  };
  const startup: Startup = { registered: registered.at - process.launchedAt };
  for (
    const [key, event] of [["serverStarting", "server_starting"], [
      "serverStarted",
      "server_started",
    ], ["connecting", "connecting"]] as const
  ) {
    const ms = await at(event);
    if (ms !== undefined) startup[key] = ms;
  }
  return startup;
}

/** Measures a connect process through `client`, reading its RSS peak at the end of each phase. */
async function measureTunnel(
  connect: DenoProcess,
  client: { call: StdioClient["call"]; close(): Promise<void> },
  kind: ServerKind,
  options: MeasureOptions,
  registered: SeenEvent,
  serve?: DenoProcess,
): Promise<TunnelFigures> {
  const rss: TunnelFigures["rss"] = { idleHwm: readRss(connect.pid).hwm, loadHwm: 0, endRss: 0 };
  const serveRss: PeakRss | undefined = serve
    ? { idleHwm: readRss(serve.pid).hwm, loadHwm: 0 }
    : undefined;
  const cpu = { connect: 0, serve: 0 };
  const inflight = { connect: 0, serve: 0, writes: 0 };
  const figures = await measure(client, mcpMessages(SERVERS[kind].hasBig), {
    ...options,
    onStart: () => {
      cpu.connect = readCpuNs(connect.pid);
      if (serve) cpu.serve = readCpuNs(serve.pid);
    },
    onInflightStart: () => {
      inflight.connect = readCpuNs(connect.pid);
      if (serve) {
        inflight.serve = readCpuNs(serve.pid);
        inflight.writes = readSyscalls(serve.pid).writes;
      }
    },
    onPhaseEnd: (phase) => {
      const now = readRss(connect.pid);
      if (phase === "load") {
        rss.loadHwm = now.hwm;
        const connectNs = readCpuNs(connect.pid);
        cpu.connect = connectNs - cpu.connect;
        inflight.connect = connectNs - inflight.connect;
        if (serve) {
          const serveNs = readCpuNs(serve.pid);
          cpu.serve = serveNs - cpu.serve;
          inflight.serve = serveNs - inflight.serve;
          inflight.writes = readSyscalls(serve.pid).writes - inflight.writes;
          serveRss!.loadHwm = readRss(serve.pid).hwm;
        }
      } else {
        rss.bigHwm = now.hwm;
        if (serve) serveRss!.bigHwm = readRss(serve.pid).hwm;
      }
    },
  }, ids());
  rss.endRss = readRss(connect.pid).rss;
  const perCall = (ns: number) => ns / 1000 / figures.echoCalls;
  return {
    ...figures,
    launchToRegisteredMs: registered.at - connect.launchedAt,
    startup: await startupOf(connect, registered),
    connectCpuUsPerCall: perCall(cpu.connect),
    connectInflightCpuUsPerCall: inflight.connect / 1000 / options.throughputCalls,
    ...(serve && serveRss
      ? {
        serveCpuUsPerCall: perCall(cpu.serve),
        serveInflightCpuUsPerCall: inflight.serve / 1000 / options.throughputCalls,
        serveInflightWritesPerCall: inflight.writes / options.throughputCalls,
        serveRss,
      }
      : {}),
    rss,
  };
}

/**
 * Measures a process that dials a contract-A gateway in this process: `connect` (tunnel A), or the bare
 * relay (the relay floor: what Deno's I/O alone costs on the same path).
 */
export async function runTunnelA(
  kind: ServerKind,
  options: MeasureOptions,
  program: "connect" | "bare relay",
  programOptions: ProgramOptions,
): Promise<TunnelFigures> {
  const acceptor = new WsAcceptor();
  const dialer = program === "connect"
    ? new DenoProcess(programOptions.script, connectArgs(acceptor.url, kind), {
      denoFlags: programOptions.denoFlags,
    })
    : new DenoProcess(PATHS.bareRelayChild, [acceptor.url, "--", ...SERVERS[kind].command]);
  try {
    const link = await ContractAClient.accept(acceptor, START_TIMEOUT_MS);
    const registered = await dialer.waitForEvent("registered", START_TIMEOUT_MS);
    try {
      const init = await link.call(0, INITIALIZE);
      if (init.error !== undefined) throw new Error(`initialize: ${JSON.stringify(init.error)}`);
      link.notify(INITIALIZED);
      return await measureTunnel(dialer, link, kind, options, registered);
    } finally {
      await link.close();
    }
  } finally {
    await dialer.stop();
    await acceptor.close();
  }
}

/** A running serve on a free port, healthy. */
export async function startServe(
  programOptions: ProgramOptions,
  tokensFile: string,
): Promise<{ process: DenoProcess; url: string }> {
  const port = freePort();
  const process = new DenoProcess(programOptions.script, serveArgs(port, tokensFile), {
    denoFlags: programOptions.denoFlags,
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitHealthy(`${url}/healthz`, START_TIMEOUT_MS);
  } catch (error) {
    await process.stop();
    throw error;
  }
  return { process, url };
}

/**
 * serve + connect, an MCP client over Streamable HTTP in front (the MCP-client path); `connectFlags` are
 * added to connect's command line (`--transport sse` for the SSE link row).
 */
export async function runServe(
  kind: ServerKind,
  options: MeasureOptions,
  programOptions: ProgramOptions,
  tokensFile: string,
  connectFlags: string[] = [],
): Promise<TunnelFigures> {
  const serve = await startServe(programOptions, tokensFile);
  let connect: DenoProcess | undefined;
  try {
    connect = new DenoProcess(programOptions.script, connectArgs(serve.url, kind, connectFlags), {
      env: { REVERSE_PROXY_TOKEN: TOKEN },
      denoFlags: programOptions.denoFlags,
    });
    const registered = await connect.waitForEvent("registered", START_TIMEOUT_MS);
    const mcpUrl = registered.json.mcpUrl;
    if (typeof mcpUrl !== "string") throw new Error("connect's 'registered' event has no mcpUrl");
    const client = new HttpMcpClient(mcpUrl, TOKEN);
    try {
      await client.initialize(INITIALIZE);
      return await measureTunnel(connect, client, kind, options, registered, serve.process);
    } finally {
      await client.close();
    }
  } finally {
    await connect?.stop();
    await serve.process.stop();
  }
}
