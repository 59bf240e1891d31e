// The driver's side of every path, all in one style: send a JSON-RPC request as text, match the answer by
// numeric id after one JSON.parse, resolve. Stdio, a raw WebSocket (the hop), a minimal contract-A gateway
// and Streamable HTTP POSTs differ only in framing.

import http from "node:http";
import { Buffer } from "node:buffer";
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

  /** Listens on `port` (0: a free one; a port given again after a close: the gateway is back). */
  constructor(port = 0) {
    this.#server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, (req) => {
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

  /** The gateway drops the link (a close frame with `code`), as a gateway restarting or failing over does. */
  drop(code: number, reason: string): void {
    this.#socket.close(code, reason);
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

/** One answer read whole: status, the headers the client needs, and the body as text. */
interface HttpAnswer {
  status: number;
  contentType: string;
  sessionId: string | undefined;
  body: string;
}

/**
 * An MCP client over Streamable HTTP, driven as the independent runs drive it: `node:http` with a
 * keep-alive agent, one POST a call, `Accept: application/json, text/event-stream` as real clients send,
 * the answer read as JSON or from the SSE body. The same driver measures the HTTP echo floor, serve +
 * connect and the peers (`--peers`).
 */
export class HttpMcpClient implements RpcClient {
  #url: URL;
  #headers: Record<string, string>;
  #agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

  constructor(url: string, token: string | undefined) {
    this.#url = new URL(url);
    this.#headers = {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
    };
  }

  #request(method: string, text?: string): Promise<HttpAnswer> {
    return new Promise((resolve, reject) => {
      const body = text === undefined ? undefined : Buffer.from(text);
      const request = http.request(this.#url, {
        method,
        agent: this.#agent,
        headers: body === undefined
          ? this.#headers
          : { ...this.#headers, "content-length": String(body.byteLength) },
      }, (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("error", reject);
        response.on("end", () => {
          const session = response.headers["mcp-session-id"];
          resolve({
            status: response.statusCode ?? 0,
            contentType: response.headers["content-type"] ?? "",
            sessionId: typeof session === "string" ? session : undefined,
            body: Buffer.concat(chunks).toString("utf8"),
          });
        });
      });
      request.on("error", reject);
      request.end(body);
    });
  }

  /** `initialize` (takes the session id) and `notifications/initialized`. */
  async initialize(text: string): Promise<Json> {
    const response = await this.#request("POST", text);
    const answer = this.#read(response, 0);
    if (response.sessionId === undefined) {
      throw new Error(`initialize gave no Mcp-Session-Id: ${JSON.stringify(answer)}`);
    }
    const version = ((answer.result as Json | undefined)?.protocolVersion as string) ??
      "2025-11-25";
    this.#headers = {
      ...this.#headers,
      "mcp-session-id": response.sessionId,
      "mcp-protocol-version": version,
    };
    const initialized = await this.#request(
      "POST",
      '{"jsonrpc":"2.0","method":"notifications/initialized"}',
    );
    if (initialized.status >= 300) {
      throw new Error(`notifications/initialized: HTTP ${initialized.status}`);
    }
    return answer;
  }

  #read(response: HttpAnswer, id: number): Json {
    const { body, status, contentType } = response;
    if (status < 200 || status >= 300) throw new Error(`HTTP ${status}: ${body.slice(0, 200)}`);
    const message = contentType.startsWith("text/event-stream")
      ? fromSse(body, id)
      : JSON.parse(body);
    if (message === undefined) throw new Error(`No answer for id ${id} in ${body.slice(0, 200)}`);
    return message as Json;
  }

  async call(id: number, text: string): Promise<Json> {
    return this.#read(await this.#request("POST", text), id);
  }

  /** For the HTTP echo floor, which has no MCP session and no token. */
  static raw(url: string): HttpMcpClient {
    return new HttpMcpClient(url, undefined);
  }

  async close(): Promise<void> {
    try {
      if (this.#headers["mcp-session-id"] !== undefined) {
        await within(this.#request("DELETE"), 5_000, "DELETE of the MCP session").catch(() => {});
      }
    } finally {
      this.#agent.destroy();
    }
  }
}
