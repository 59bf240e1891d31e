// The driver's side of every path, all in one style: send a JSON-RPC request as text, match the answer by
// numeric id after one JSON.parse, resolve. Stdio, a raw WebSocket (the hop), a minimal contract-A gateway
// and Streamable HTTP POSTs differ only in framing.

import { readLines } from "../../lib/util/line_splitter.ts";
import { deadline } from "../../lib/util/delay.ts";

/** A parsed JSON-RPC response. */
export type Json = { [key: string]: unknown };

/** One way of calling a server: `text` is a complete JSON-RPC request whose id is `id`. */
export interface RpcClient {
  call(id: number, text: string): Promise<Json>;
  close(): Promise<void>;
}

const encoder = new TextEncoder();

/** Calls waiting for their answer, by id. */
class Pending {
  #waiting = new Map<number, { resolve: (value: Json) => void; reject: (error: Error) => void }>();

  wait(id: number): Promise<Json> {
    return new Promise((resolve, reject) => this.#waiting.set(id, { resolve, reject }));
  }

  /** Settles the call a parsed message answers; anything else (notifications, requests) is ignored. */
  settle(message: unknown): void {
    if (typeof message !== "object" || message === null) return;
    const m = message as Json;
    if (typeof m.id !== "number" || m.method !== undefined) return;
    const waiter = this.#waiting.get(m.id);
    if (waiter === undefined) return;
    this.#waiting.delete(m.id);
    waiter.resolve(m);
  }

  failAll(error: Error): void {
    for (const waiter of this.#waiting.values()) waiter.reject(error);
    this.#waiting.clear();
  }
}

/** Waits for a promise, but no longer than `ms` (lib/delay.ts `deadline`, named for what it waits on). */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return deadline(promise, ms, what);
}

/** Stops a process group: SIGTERM, then SIGKILL after `graceMs`. Never throws. */
export async function stopProcess(
  child: Deno.ChildProcess,
  options: { graceMs?: number; group?: boolean } = {},
): Promise<void> {
  const { graceMs = 3000, group = false } = options;
  const signal = (name: Deno.Signal) => {
    try {
      if (group) Deno.kill(-child.pid, name);
      else child.kill(name);
    } catch {
      // Already gone.
    }
  };
  signal("SIGTERM");
  try {
    await within(child.status, graceMs, `process ${child.pid} to exit`);
  } catch {
    signal("SIGKILL");
    await within(child.status, graceMs, `process ${child.pid} to die`).catch(() => {});
  }
}

/** The MCP server spoken to directly over its stdin and stdout: the floor. */
export class StdioClient implements RpcClient {
  readonly child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #pending = new Pending();
  #done: Promise<void>;

  constructor(command: string[]) {
    const [program, ...args] = command;
    this.child = new Deno.Command(program!, {
      args,
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
      detached: true,
    }).spawn();
    this.#writer = this.child.stdin.getWriter();
    this.#writer.closed.catch(() => {});
    this.#done = readLines(this.child.stdout, (line) => {
      let message: unknown;
      try {
        message = JSON.parse(line);
      } catch {
        return;
      }
      this.#pending.settle(message);
    }).then(() => this.#pending.failAll(new Error("The server's stdout ended")));
  }

  call(id: number, text: string): Promise<Json> {
    const answer = this.#pending.wait(id);
    this.#writer.write(encoder.encode(text + "\n")).catch(() => {});
    return answer;
  }

  /** Writes a notification (no answer). */
  notify(text: string): void {
    this.#writer.write(encoder.encode(text + "\n")).catch(() => {});
  }

  async close(): Promise<void> {
    await this.#writer.close().catch(() => {});
    try {
      await within(this.child.status, 1000, "the server to exit on EOF");
    } catch {
      await stopProcess(this.child, { group: true });
    }
    await within(this.#done, 2000, "the server's stdout to end").catch(() => {});
  }
}

/** Accepts WebSocket upgrades on 127.0.0.1 (any path) and hands each socket over, in order. */
export class WsAcceptor {
  readonly port: number;
  #server: Deno.HttpServer<Deno.NetAddr>;
  #sockets: WebSocket[] = [];
  #waiters: ((socket: WebSocket) => void)[] = [];
  #all = new Set<WebSocket>();

  constructor() {
    this.#server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
      if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return new Response("Expected a WebSocket upgrade", { status: 400 });
      }
      const { socket, response } = Deno.upgradeWebSocket(req, { idleTimeout: 0 });
      this.#all.add(socket);
      socket.addEventListener("close", () => this.#all.delete(socket));
      const waiter = this.#waiters.shift();
      if (waiter) waiter(socket);
      else this.#sockets.push(socket);
      return response;
    });
    this.port = this.#server.addr.port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The next accepted socket (already accepted or the next one to come), within `timeoutMs`. */
  next(timeoutMs: number): Promise<WebSocket> {
    const ready = this.#sockets.shift();
    if (ready) return Promise.resolve(ready);
    let waiter!: (socket: WebSocket) => void;
    const accepted = new Promise<WebSocket>((resolve) => waiter = resolve);
    this.#waiters.push(waiter);
    return within(accepted, timeoutMs, "a WebSocket connection").finally(() => {
      const at = this.#waiters.indexOf(waiter);
      if (at >= 0) this.#waiters.splice(at, 1);
    });
  }

  async close(): Promise<void> {
    for (const socket of this.#all) {
      try {
        socket.close(1001, "bench done");
      } catch {
        // Closing already.
      }
    }
    await this.#server.shutdown();
  }
}

/** Resolves when the socket is open (server-side sockets open right after the upgrade response). */
function opened(socket: WebSocket, timeoutMs: number): Promise<void> {
  if (socket.readyState === WebSocket.OPEN) return Promise.resolve();
  return within(
    new Promise<void>((resolve, reject) => {
      socket.addEventListener("open", () => resolve(), { once: true });
      socket.addEventListener("close", () => reject(new Error("closed before open")), {
        once: true,
      });
    }),
    timeoutMs,
    "the WebSocket to open",
  );
}

/** The raw hop: JSON-RPC text sent as is to a peer that echoes it (or answers `big`). */
export class HopClient implements RpcClient {
  #socket: WebSocket;
  #pending = new Pending();

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.onmessage = (event) => this.#pending.settle(JSON.parse(event.data as string));
    socket.onclose = () => this.#pending.failAll(new Error("The hop closed"));
  }

  /** Waits for the first text message ("ready") from the peer. */
  static async accept(acceptor: WsAcceptor, timeoutMs: number): Promise<HopClient> {
    const socket = await acceptor.next(timeoutMs);
    await opened(socket, timeoutMs);
    const ready = within(
      new Promise<void>((resolve) => socket.onmessage = () => resolve()),
      timeoutMs,
      "the hop peer's ready message",
    );
    await ready;
    return new HopClient(socket);
  }

  call(id: number, text: string): Promise<Json> {
    const answer = this.#pending.wait(id);
    this.#socket.send(text);
    return answer;
  }

  close(): Promise<void> {
    try {
      this.#socket.close(1000, "bench done");
    } catch {
      // Closing already.
    }
    return Promise.resolve();
  }
}

/**
 * A minimal contract-A gateway on one accepted link: `register` → `register_ack` success, one heartbeat
 * reply per heartbeat, requests out as `request` frames, answers from `response` frames. Records nothing.
 */
export class ContractAClient implements RpcClient {
  /** performance.now() when the register_ack was sent. */
  registeredAt = 0;
  readonly sessionId = crypto.randomUUID().replaceAll("-", "");
  #socket: WebSocket;
  #pending = new Pending();
  #prefix: string;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    this.#prefix = `{"type":"request","sessionId":"${this.sessionId}","payload":`;
    socket.onclose = () => this.#pending.failAll(new Error("The link closed"));
  }

  /** Accepts the next link and completes its registration within `timeoutMs`. */
  static async accept(acceptor: WsAcceptor, timeoutMs: number): Promise<ContractAClient> {
    const socket = await acceptor.next(timeoutMs);
    const client = new ContractAClient(socket);
    let registered!: () => void;
    const done = new Promise<void>((resolve) => registered = resolve);
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data as string) as Json;
      switch (frame.type) {
        case "register":
          socket.send(
            JSON.stringify({
              type: "register_ack",
              sessionId: client.sessionId,
              status: "success",
            }),
          );
          client.registeredAt = performance.now();
          registered();
          return;
        case "heartbeat":
          socket.send(JSON.stringify({ type: "heartbeat", sessionId: client.sessionId }));
          return;
        case "response":
        case "notification":
          client.#pending.settle(frame.payload);
      }
    };
    await within(done, timeoutMs, "registration");
    return client;
  }

  call(id: number, text: string): Promise<Json> {
    const answer = this.#pending.wait(id);
    this.#socket.send(this.#prefix + text + "}");
    return answer;
  }

  /** Sends a notification in a `request` frame (contract A has no other way). */
  notify(text: string): void {
    this.#socket.send(this.#prefix + text + "}");
  }

  close(): Promise<void> {
    try {
      this.#socket.close(1000, "bench done");
    } catch {
      // Closing already.
    }
    return Promise.resolve();
  }
}

/** Finds the JSON-RPC message with `id` among the `data:` lines of an SSE body. */
function fromSse(body: string, id: number): Json | undefined {
  let start = 0;
  while (start < body.length) {
    let end = body.indexOf("\n", start);
    if (end < 0) end = body.length;
    if (body.startsWith("data: ", start)) {
      const message = JSON.parse(body.slice(start + 6, end)) as Json;
      if (message.id === id && message.method === undefined) return message;
    }
    start = end + 1;
  }
  return undefined;
}

/**
 * An MCP client over Streamable HTTP with plain `fetch`: one POST a call, `Accept: application/json,
 * text/event-stream` as real clients send, the answer read as JSON or from the SSE body.
 */
export class HttpMcpClient implements RpcClient {
  #url: string;
  #headers: Record<string, string>;

  constructor(url: string, token: string) {
    this.#url = url;
    this.#headers = {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      authorization: `Bearer ${token}`,
    };
  }

  /** `initialize` (takes the session id) and `notifications/initialized`. */
  async initialize(text: string): Promise<Json> {
    const response = await fetch(this.#url, { method: "POST", headers: this.#headers, body: text });
    const session = response.headers.get("mcp-session-id");
    const answer = await this.#read(response, 0);
    if (session === null) {
      throw new Error(`initialize gave no Mcp-Session-Id: ${JSON.stringify(answer)}`);
    }
    const version = ((answer.result as Json | undefined)?.protocolVersion as string) ??
      "2025-11-25";
    this.#headers = {
      ...this.#headers,
      "mcp-session-id": session,
      "mcp-protocol-version": version,
    };
    const initialized = await fetch(this.#url, {
      method: "POST",
      headers: this.#headers,
      body: '{"jsonrpc":"2.0","method":"notifications/initialized"}',
    });
    await initialized.body?.cancel();
    return answer;
  }

  async #read(response: Response, id: number): Promise<Json> {
    const body = await response.text();
    if (!response.ok) throw new Error(`HTTP ${response.status}: ${body.slice(0, 200)}`);
    const type = response.headers.get("content-type") ?? "";
    const message = type.startsWith("text/event-stream") ? fromSse(body, id) : JSON.parse(body);
    if (message === undefined) throw new Error(`No answer for id ${id} in ${body.slice(0, 200)}`);
    return message as Json;
  }

  async call(id: number, text: string): Promise<Json> {
    const response = await fetch(this.#url, { method: "POST", headers: this.#headers, body: text });
    return await this.#read(response, id);
  }

  /** Drops the session headers: for the HTTP hop floor, which has no MCP session. */
  static raw(url: string): HttpMcpClient {
    return new HttpMcpClient(url, "none");
  }

  async close(): Promise<void> {
    if (this.#headers["mcp-session-id"] === undefined) return;
    const response = await fetch(this.#url, { method: "DELETE", headers: this.#headers }).catch(
      () => undefined,
    );
    await response?.body?.cancel();
  }
}
