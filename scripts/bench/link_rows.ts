// Two feature rows of issue 17 (target 6), each measuring its own floor in the same repetition: the SSE
// link against the WebSocket link (issue 16), and per-client instances against one shared instance
// (issue 14), both through serve + connect with the demo server.

import { HttpMcpClient, type Json, type RpcClient, StdioClient } from "./clients.ts";
import { DenoProcess } from "./children.ts";
import { type ProgramOptions, runServe, runStdio, startServe } from "./paths.ts";
import {
  connectArgs,
  ids,
  INITIALIZE,
  INITIALIZED,
  type ServerKind,
  SERVERS,
  START_TIMEOUT_MS,
  TOKEN,
} from "./servers.ts";
import { median } from "./stats.ts";
import { type Figures, mcpMessages, measure, type MeasureOptions } from "./workload.ts";

/** What the two rows share. */
export interface RowContext {
  program: ProgramOptions;
  tokensFile: string;
  options: MeasureOptions;
  /** Measure the row's own floor first (alternate it between repetitions). */
  floorFirst: boolean;
}

/** The SSE link row: serve + connect over each transport, and the stdio floor they add to. */
export interface SseLinkFigures {
  sse: Figures;
  webSocket: Figures;
  stdio: Figures;
}

/** Runs serve + connect `--transport sse` and `--transport websocket`, and the stdio floor. */
export async function runSseLink(context: RowContext): Promise<SseLinkFigures> {
  const kind: ServerKind = "demo";
  const options = { ...context.options, bigBytes: 0 };
  const over = (transport: "sse" | "websocket") =>
    runServe(kind, options, context.program, context.tokensFile, ["--transport", transport]);
  const stdio = await runStdio(kind, options);
  const webSocket = context.floorFirst ? await over("websocket") : undefined;
  const sse = await over("sse");
  return { sse, webSocket: webSocket ?? await over("websocket"), stdio };
}

/** Spreads calls over several clients by id, so that one workload drives them all at once. */
export class RoundRobin implements RpcClient {
  #clients: RpcClient[];
  constructor(clients: RpcClient[]) {
    this.#clients = clients;
  }
  call(id: number, text: string): Promise<Json> {
    return this.#clients[id % this.#clients.length]!.call(id, text);
  }
  async close(): Promise<void> {
    await Promise.all(this.#clients.map((c) => c.close()));
  }
}

/** The per-client row. */
export interface PerClientFigures {
  /** New MCP session → its `initialize` answered → its first echo answered, ms (median; samples). */
  firstCallMs: number;
  firstCallSamples: number[];
  /** The server's own start: spawn → `initialize` answered over stdio, ms (median; samples). */
  serverStartMs: number;
  serverStartSamples: number[];
  /** 8 clients, an instance each. */
  perClient: Figures;
  /** 8 clients on one shared instance. */
  shared: Figures;
}

/** Clients in the throughput comparison. */
export const PER_CLIENT_CLIENTS = 8;
/** New sessions timed for the first-call figure, per repetition. */
const FIRST_CALL_SAMPLES = 5;

const echo = mcpMessages(false).echo;

/** The server's own start, as the stdio floor measures it: spawn → `initialize` answered. */
async function serverStartMs(kind: ServerKind): Promise<number> {
  const start = performance.now();
  const client = new StdioClient(SERVERS[kind].command);
  try {
    const init = await client.call(0, INITIALIZE);
    if (init.error !== undefined) throw new Error(`initialize: ${JSON.stringify(init.error)}`);
    const ms = performance.now() - start;
    client.notify(INITIALIZED);
    return ms;
  } finally {
    await client.close();
  }
}

/** serve + one connect carrying the demo server, shared or per client; `use` gets its MCP URL. */
async function withServeConnect<T>(
  context: RowContext,
  perClient: boolean,
  use: (mcpUrl: string) => Promise<T>,
): Promise<T> {
  const serve = await startServe(context.program, context.tokensFile);
  let connect: DenoProcess | undefined;
  try {
    const extra = perClient ? ["--isolation", "per-client", "--max-instances", "32"] : [];
    connect = new DenoProcess(context.program.script, connectArgs(serve.url, "demo", extra), {
      env: { REVERSE_PROXY_TOKEN: TOKEN },
      denoFlags: context.program.denoFlags,
    });
    const registered = await connect.waitForEvent("registered", START_TIMEOUT_MS);
    const mcpUrl = registered.json.mcpUrl;
    if (typeof mcpUrl !== "string") throw new Error("connect's 'registered' event has no mcpUrl");
    return await use(mcpUrl);
  } finally {
    await connect?.stop();
    await serve.process.stop();
  }
}

/** `count` clients, each initialized (a new MCP session each), driven as one. */
async function clientsOn(mcpUrl: string, count: number): Promise<HttpMcpClient[]> {
  const clients: HttpMcpClient[] = [];
  for (let i = 0; i < count; i++) {
    const client = new HttpMcpClient(mcpUrl, TOKEN);
    clients.push(client);
    await client.initialize(INITIALIZE);
  }
  return clients;
}

/** 8 clients through `mcpUrl`: the workload spread over them. */
async function throughputOf(mcpUrl: string, options: MeasureOptions): Promise<Figures> {
  const clients = await clientsOn(mcpUrl, PER_CLIENT_CLIENTS);
  const all = new RoundRobin(clients);
  try {
    return await measure(all, mcpMessages(false), { ...options, bigBytes: 0 }, ids());
  } finally {
    await all.close();
  }
}

/** Runs the per-client row once. */
export async function runPerClient(context: RowContext): Promise<PerClientFigures> {
  const starts: number[] = [];
  for (let i = 0; i < FIRST_CALL_SAMPLES; i++) starts.push(await serverStartMs("demo"));
  const shared = () =>
    withServeConnect(context, false, (url) => throughputOf(url, context.options));
  const sharedFirst = context.floorFirst ? await shared() : undefined;
  const perClient = await withServeConnect(context, true, async (mcpUrl) => {
    const firstCalls: number[] = [];
    for (let i = 0; i < FIRST_CALL_SAMPLES; i++) {
      const client = new HttpMcpClient(mcpUrl, TOKEN);
      try {
        const start = performance.now();
        await client.initialize(INITIALIZE);
        const answer = await client.call(1, echo(1));
        if (answer.error !== undefined) throw new Error(`echo: ${JSON.stringify(answer.error)}`);
        firstCalls.push(performance.now() - start);
      } finally {
        await client.close();
      }
    }
    return { firstCalls, figures: await throughputOf(mcpUrl, context.options) };
  });
  return {
    firstCallMs: median(perClient.firstCalls) ?? NaN,
    firstCallSamples: perClient.firstCalls,
    serverStartMs: median(starts) ?? NaN,
    serverStartSamples: starts,
    perClient: perClient.figures,
    shared: sharedFirst ?? await shared(),
  };
}
