// Test helpers for the gateway: a throwaway gateway with known tokens, a raw-WebSocket tunnel client, and a
// bridge that puts a real MCP SDK server behind that tunnel (what `connect` does, minus the subprocess).

import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import {
  type CallToolRequest,
  CallToolRequestSchema,
  type CallToolResult,
  ListToolsRequestSchema,
  type ServerNotification,
} from "@modelcontextprotocol/sdk/types.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { type Frame, parseFrame } from "../../lib/frames.ts";
import { classify, type JsonObject } from "../../lib/jsonrpc.ts";
import { type Gateway, type GatewayOptions, startGateway } from "../../lib/gateway/gateway.ts";
import { createTokenStore } from "../../lib/gateway/token_store.ts";
import { deadline } from "../../lib/delay.ts";

/** Tokens of the test gateway. */
export const TOKENS = {
  alice: "tok-alice-0123456789",
  bob: "tok-bob-0123456789",
  aliceConnectOnly: "tok-alice-connect-0123456789",
  aliceClientOnly: "tok-alice-client-0123456789",
  admin: "tok-admin-0123456789",
} as const;

export const TOKENS_FILE = `# test tokens
${TOKENS.alice}: alice
${TOKENS.bob}: bob
${TOKENS.aliceConnectOnly}: {owner: alice, roles: [connect]}
${TOKENS.aliceClientOnly}: {owner: alice, roles: [client]}
${TOKENS.admin}: {owner: ops, roles: [admin]}
`;

/** Starts a gateway on an ephemeral loopback port with {@link TOKENS}. */
export async function startTestGateway(
  options: Partial<Omit<GatewayOptions, "tokens">> = {},
): Promise<Gateway> {
  return await startGateway({
    tokens: await createTokenStore({ tokensFile: TOKENS_FILE }),
    hostname: "127.0.0.1",
    port: 0,
    ...options,
  });
}

/** Waits for a promise, but no longer than `ms` (lib/delay.ts `deadline`, named for what it waits on). */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return deadline(promise, ms, what);
}

/** The WebSocket URL of a gateway. */
export function wsUrl(gateway: Gateway): string {
  return `${gateway.url.replace(/^http/, "ws")}/reverse-proxy/ws`;
}

/** A raw tunnel client: a WebSocket that records every frame it receives. */
export class TunnelClient {
  readonly socket: WebSocket;
  readonly frames: Frame[] = [];
  readonly closed: Promise<CloseEvent>;
  #waiters: (() => void)[] = [];
  /** Called for every frame as it arrives. */
  onFrame: ((frame: Frame) => void) | undefined;

  private constructor(socket: WebSocket) {
    this.socket = socket;
    this.closed = new Promise((resolve) =>
      socket.addEventListener("close", resolve, { once: true })
    );
    socket.addEventListener("message", (event) => {
      const frame = parseFrame(String(event.data));
      if (frame instanceof Error) throw frame;
      this.frames.push(frame);
      this.onFrame?.(frame);
      for (const wake of this.#waiters.splice(0)) wake();
    });
    socket.addEventListener("close", () => {
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  /** Opens a link; rejects with the error text (`Invalid status code: 401`) when refused. */
  static async open(gateway: Gateway, token: string | undefined): Promise<TunnelClient> {
    const socket = new WebSocket(
      wsUrl(gateway),
      token === undefined ? undefined : { headers: { Authorization: `Bearer ${token}` } },
    );
    const client = new TunnelClient(socket);
    const opened = new Promise<void>((resolve, reject) => {
      socket.addEventListener("open", () => resolve(), { once: true });
      socket.addEventListener(
        "error",
        (event) => reject(new Error((event as ErrorEvent).message ?? "error")),
        { once: true },
      );
    });
    try {
      await within(opened, 5_000, "the WebSocket to open");
    } catch (error) {
      await within(client.closed, 5_000, "the refused WebSocket to close").catch(() => {});
      throw error;
    }
    return client;
  }

  send(frame: JsonObject): void {
    this.socket.send(JSON.stringify(frame));
  }

  /** Waits for the first frame (not yet taken) that matches, and takes it. */
  async next(match: (frame: Frame) => boolean, ms = 5_000, what = "a frame"): Promise<Frame> {
    const find = () => {
      const index = this.frames.findIndex(match);
      return index < 0 ? undefined : this.frames.splice(index, 1)[0];
    };
    const deadline = Date.now() + ms;
    while (true) {
      const found = find();
      if (found !== undefined) return found;
      if (this.socket.readyState === WebSocket.CLOSED) {
        throw new Error(`Socket closed waiting for ${what}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`Timed out waiting for ${what}`);
      await within(new Promise<void>((resolve) => this.#waiters.push(resolve)), left, what);
    }
  }

  /** Registers and returns the `register_ack`. */
  async register(name: string, protocol = "mcp"): Promise<Frame> {
    this.send({
      type: "register",
      sessionId: crypto.randomUUID().replaceAll("-", ""),
      server: { name, description: `test server ${name}`, protocol },
    });
    return await this.next((f) => f.type === "register_ack", 5_000, "register_ack");
  }

  /** Closes the socket and waits (bounded) for the close event. */
  async close(code = 1000): Promise<void> {
    if (this.socket.readyState !== WebSocket.CLOSED) {
      try {
        this.socket.close(code);
      } catch {
        // already closing
      }
    }
    await within(this.closed, 5_000, "the tunnel socket to close").catch(() => {});
  }
}

/** What the test server saw, for assertions; `waitCancelled` waits on the event, not a timer. */
export class ServerLog extends EventTarget {
  readonly cancelled: string[] = [];
  readonly calls: string[] = [];

  cancel(tag: string): void {
    this.cancelled.push(tag);
    this.dispatchEvent(new Event("cancelled"));
  }

  async waitCancelled(tag: string, ms = 5_000): Promise<void> {
    let listener: (() => void) | undefined;
    const seen = new Promise<void>((resolve) => {
      listener = () => {
        if (this.cancelled.includes(tag)) resolve();
      };
      this.addEventListener("cancelled", listener);
      listener();
    });
    try {
      await within(seen, ms, `the server to see '${tag}' cancelled`);
    } finally {
      this.removeEventListener("cancelled", listener!);
    }
  }
}

/**
 * A real MCP SDK server with test tools: `echo {text, delayMs?}`, `slow {steps, stepMs}` (progress, obeys
 * cancellation), `big {bytes}`, `roots` (asks the client for roots/list), `chatty {count, bytes}` (up to
 * `count` progress notifications with a `bytes`-long message, yielding to the event loop between them, until
 * cancelled).
 */
export function createTestServer(name = "test-server"): { server: Server; log: ServerLog } {
  const log = new ServerLog();
  const server = new Server({ name, version: "1.0.0" }, {
    capabilities: { tools: { listChanged: true }, logging: {} },
  });
  server.setRequestHandler(ListToolsRequestSchema, () => ({
    tools: ["echo", "slow", "big", "roots", "chatty"].map((tool) => ({
      name: tool,
      inputSchema: { type: "object" as const },
    })),
  }));
  server.setRequestHandler(CallToolRequestSchema, async (
    request: CallToolRequest,
    extra: { signal: AbortSignal; sendNotification: (n: ServerNotification) => Promise<void> },
  ): Promise<CallToolResult> => {
    const args = (request.params.arguments ?? {}) as Record<string, unknown>;
    log.calls.push(request.params.name);
    switch (request.params.name) {
      case "echo": {
        const delayMs = Number(args.delayMs ?? 0);
        if (delayMs > 0) await abortableDelay(delayMs, extra.signal);
        return { content: [{ type: "text", text: String(args.text) }] };
      }
      case "slow": {
        const steps = Number(args.steps ?? 3);
        const stepMs = Number(args.stepMs ?? 20);
        const token = request.params._meta?.progressToken;
        try {
          for (let i = 1; i <= steps; i++) {
            await abortableDelay(stepMs, extra.signal);
            if (token !== undefined) {
              await extra.sendNotification({
                method: "notifications/progress",
                params: { progressToken: token, progress: i, total: steps },
              });
            }
          }
        } catch (error) {
          log.cancel(String(args.tag ?? "slow"));
          throw error;
        }
        return { content: [{ type: "text", text: `done ${steps}` }] };
      }
      case "chatty": {
        const count = Number(args.count ?? 100);
        const message = "x".repeat(Number(args.bytes ?? 1024));
        const token = request.params._meta?.progressToken;
        try {
          for (let i = 1; i <= count && token !== undefined; i++) {
            await abortableDelay(0, extra.signal);
            await extra.sendNotification({
              method: "notifications/progress",
              params: { progressToken: token, progress: i, message },
            });
          }
        } catch (error) {
          log.cancel(String(args.tag ?? "chatty"));
          throw error;
        }
        return { content: [{ type: "text", text: `sent ${count}` }] };
      }
      case "big": {
        const bytes = Number(args.bytes ?? 1024);
        return { content: [{ type: "text", text: "x".repeat(bytes) }] };
      }
      case "roots": {
        const result = await server.listRoots();
        return {
          content: [{
            type: "text",
            text: result.roots.map((r: { uri: string }) => r.uri).join(","),
          }],
        };
      }
      default:
        throw new Error(`Unknown tool ${request.params.name}`);
    }
  });
  return { server, log };
}

function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason ?? new Error("aborted"));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Puts an SDK server behind a tunnel client the way `connect` does: initializes it once (declaring the
 * client capabilities a proxy must pass on), answers the gateway's `initialize` from that result, swallows
 * the matching `notifications/initialized`, and relays everything else with the right frame types.
 */
export async function bridge(
  tunnel: TunnelClient,
  server: Server,
): Promise<{ close(): Promise<void> }> {
  const [local, remote] = InMemoryTransport.createLinkedPair();
  await server.connect(remote);
  const pending = new Map<number, (message: JsonObject) => void>();
  let sessionId = "";
  local.onmessage = (message: unknown) => {
    const value = message as unknown as JsonObject;
    const kind = classify(value);
    if (kind === "response" && typeof value.id === "number" && pending.has(value.id)) {
      pending.get(value.id)!(value);
      pending.delete(value.id);
      return;
    }
    const type = kind === "response" ? "response" : kind === "request" ? "request" : "notification";
    if (tunnel.socket.readyState === WebSocket.OPEN) {
      tunnel.send({ type, sessionId, payload: value });
    }
  };
  await local.start();
  const initialized = new Promise<JsonObject>((resolve) => pending.set(-1, resolve));
  await local.send({
    jsonrpc: "2.0",
    id: -1,
    method: "initialize",
    params: {
      protocolVersion: "2025-11-25",
      capabilities: { roots: { listChanged: true }, sampling: {}, elicitation: {} },
      clientInfo: { name: "test-bridge", version: "1" },
    },
  });
  const init = await within(initialized, 5_000, "the local server to initialize");
  await local.send({ jsonrpc: "2.0", method: "notifications/initialized" });
  let swallowInitialized = false;
  tunnel.onFrame = (frame) => {
    if (frame.type === "register_ack") sessionId = String(frame.sessionId);
    if (frame.type !== "request" && frame.type !== "response") return;
    const payload = frame.payload as JsonObject;
    if (payload.method === "initialize") {
      swallowInitialized = true;
      tunnel.send({
        type: "response",
        sessionId,
        payload: { jsonrpc: "2.0", id: payload.id, result: init.result },
      });
      return;
    }
    if (payload.method === "notifications/initialized" && swallowInitialized) {
      swallowInitialized = false;
      return;
    }
    void local.send(payload as never);
  };
  return {
    async close() {
      await local.close();
      await server.close();
    },
  };
}

/** A connected SDK MCP client for `/servers/<name>/mcp`. */
export async function connectClient(
  gateway: Gateway,
  name: string,
  token: string,
  options: { roots?: string[] } = {},
): Promise<Client> {
  const client = new Client(
    { name: "test-client", version: "1.0.0" },
    { capabilities: options.roots ? { roots: { listChanged: false } } : {} },
  );
  if (options.roots) {
    const { ListRootsRequestSchema } = await import("@modelcontextprotocol/sdk/types.js");
    const roots = options.roots;
    client.setRequestHandler(ListRootsRequestSchema, () => ({
      roots: roots.map((uri) => ({ uri, name: uri })),
    }));
  }
  const transport = new StreamableHTTPClientTransport(
    new URL(`${gateway.url}/servers/${name}/mcp`),
    { requestInit: { headers: { Authorization: `Bearer ${token}` } } },
  );
  await within(client.connect(transport), 10_000, "the MCP client to connect");
  return client;
}

/** A tunnel with a registered test server behind it. */
export interface ServedServer {
  tunnel: TunnelClient;
  ack: Frame;
  log: ServerLog;
  close(): Promise<void>;
}

/** Opens a link as `token`, registers `name`, and bridges a test server behind it. */
export async function serveTestServer(
  gateway: Gateway,
  name: string,
  token: string = TOKENS.alice,
): Promise<ServedServer> {
  const tunnel = await TunnelClient.open(gateway, token);
  const { server, log } = createTestServer(name);
  const bridged = await bridge(tunnel, server);
  const ack = await tunnel.register(name);
  return {
    tunnel,
    ack,
    log,
    async close() {
      await tunnel.close();
      await bridged.close();
    },
  };
}
