// Spike: which HTTP + WebSocket server stack should `mcp-rproxy serve` run on under Deno 2.9? It chose S2
// (docs/architecture.md, "Why serve runs on node:http + ws"); kept so that the decision can be re-measured.
//   S1  Deno.serve + Deno.upgradeWebSocket                (what serve used before)
//   S2  node:http / node:https + npm ws (WebSocketServer, noServer, handleUpgrade on `upgrade`)
//
// One run measures both stacks on 127.0.0.1 and prints a table:
//   a) server CPU per proxied call at 16 in flight (HTTP POST -> WebSocket tunnel peer -> HTTP answer)
//   b) server memory under 60 MiB WebSocket frames against a 32 MiB limit (1 and 8 clients, text and binary)
//   c) slow headers, slow bodies and idle keep-alive connections: when each is closed, with what, fd counts
//   d) feature checks: 4xxx close codes, refused upgrades, SSE backpressure, early 413, TLS, permissions
//
// The script re-runs itself as the server (`server`), the tunnel peer (`peer`) and the load driver
// (`driver`); every server runs with the exact permission flags under test (SERVER_FLAGS below), so a
// missing permission fails the run. The npm imports (ws, @types/ws) are the repository's deno.json's.
//
//   deno run -A scripts/spike/serve_stack.ts [--calls 20000] [--warmup 2000] [--reps 3] [--quick]

import { Buffer } from "node:buffer";
import http from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { parseArgs } from "node:util";
// @ts-types="@types/ws"
import type { WebSocket as WsSocket } from "ws";

const MIB = 1024 * 1024;
const SCRIPT = new URL(import.meta.url).pathname;
const SCRIPT_DIR = new URL(".", import.meta.url).pathname;
type Stack = "s1" | "s2";
const STACKS: Stack[] = ["s1", "s2"];
const LABEL: Record<Stack, string> = { s1: "S1 Deno.serve", s2: "S2 node:http+ws" };
/** What ws reads from the environment at import time (buffer-util.js, validation.js). */
const WS_ENV = "WS_NO_BUFFER_UTIL,WS_NO_UTF_8_VALIDATE";
/** The permissions each server runs with: the minimal set this spike proves sufficient. */
const SERVER_FLAGS: Record<Stack, string[]> = {
  s1: ["--allow-net=127.0.0.1"],
  s2: ["--allow-net=127.0.0.1", `--allow-env=${WS_ENV}`],
};

// ---------------------------------------------------------------------------------------------------
// Shared helpers

type Fields = Record<string, unknown>;

/** One JSON line on stdout: how a child tells the orchestrator what happened, with a wall-clock stamp. */
function emit(event: string, fields: Fields = {}): void {
  console.log(JSON.stringify({ event, at: Date.now(), ...fields }));
}

async function deadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Yields the lines of a byte stream (lines here are short JSON events). */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let pending = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    pending += text;
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, nl);
      pending = pending.slice(nl + 1);
    }
  }
  if (pending !== "") yield pending;
}

function portOf(server: http.Server): number {
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("server has no TCP address");
  return address.port;
}

// ---------------------------------------------------------------------------------------------------
// Role `server`: the gateway-shaped server on one stack. Routes (both stacks unless noted):
//   POST /mcp        body forwarded as a text frame to the tunnel peer; its answer is the response
//   GET  /healthz    {"ok":true}
//   POST /upload     reads the body under --max-body-bytes; 413 early (declared or while streaming)
//   WS   /tunnel     the tunnel peer                     WS /sink   refuses frames over --max-frame-bytes
//   WS   /close4001  closes at once with 4001 + reason   WS /refuse401, /refuse403: refused with JSON
//   GET  /sse?mode=drain|bound  (S2) SSE writer: waits for `drain`, or drops a client past a byte bound

interface ServerConfig {
  stack: Stack;
  maxFrameBytes: number;
  maxBodyBytes: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  checkIntervalMs: number;
  sseBoundBytes: number;
  tls: { cert: string; key: string } | undefined;
}

const CALL_TIMEOUT_MS = 10_000;

/** The tunnel: calls in flight keyed by a tunnel-side id, as serve's call table does. */
class Tunnel {
  #send: ((text: string) => void) | undefined;
  #pending = new Map<
    number,
    { id: unknown; resolve: (text: string) => void; timer: ReturnType<typeof setTimeout> }
  >();
  #next = 0;

  attach(send: (text: string) => void): void {
    this.#send = send;
    emit("tunnel-open");
  }

  call(body: string): Promise<string> | undefined {
    if (this.#send === undefined) return undefined;
    const message = JSON.parse(body) as { id?: unknown };
    const id = ++this.#next;
    const { promise, resolve, reject } = Promise.withResolvers<string>();
    const timer = setTimeout(() => {
      this.#pending.delete(id);
      reject(new Error("call timed out"));
    }, CALL_TIMEOUT_MS);
    this.#pending.set(id, { id: message.id, resolve, timer });
    this.#send(JSON.stringify({ ...message, id }));
    return promise;
  }

  onFrame(text: string): void {
    const message = JSON.parse(text) as { id?: unknown };
    const entry = typeof message.id === "number" ? this.#pending.get(message.id) : undefined;
    if (entry === undefined) return;
    this.#pending.delete(message.id as number);
    clearTimeout(entry.timer);
    entry.resolve(JSON.stringify({ ...message, id: entry.id }));
  }
}

/** The echo tool's answer to a tools/call, as the tunnel peer (and the no-tunnel route) give it. */
function answerFor(requestText: string): string {
  const request = JSON.parse(requestText) as {
    id: unknown;
    params?: { arguments?: { message?: string } };
  };
  const text = request.params?.arguments?.message ?? "";
  return JSON.stringify({
    jsonrpc: "2.0",
    id: request.id,
    result: { content: [{ type: "text", text }] },
  });
}

const REFUSALS: Record<string, number> = { "/refuse401": 401, "/refuse403": 403 };

function refusalBody(status: number): string {
  return JSON.stringify({ error: status === 401 ? "Missing bearer token" : "Token not allowed" });
}

function runS1(config: ServerConfig, tunnel: Tunnel): void {
  const json = { "content-type": "application/json" };
  function sink(request: Request): Response {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event: MessageEvent<string | ArrayBuffer>) => {
      const data = event.data;
      // ASCII payloads here: string length is the UTF-8 length.
      const bytes = typeof data === "string" ? data.length : data.byteLength;
      if (bytes <= config.maxFrameBytes) return;
      emit("frame-refused", { bytes, binary: typeof data !== "string" });
      socket.close(1009, `frame of ${bytes} bytes exceeds ${config.maxFrameBytes}`);
    };
    socket.onclose = (event) => emit("ws-close", { code: event.code });
    return response;
  }
  async function upload(request: Request): Promise<Response> {
    const declared = request.headers.get("content-length");
    if (declared !== null && Number(declared) > config.maxBodyBytes) {
      emit("upload-refused", { declared: Number(declared), bytesRead: 0 });
      await request.body?.cancel();
      return Response.json({ error: "Body too large" }, { status: 413 });
    }
    let total = 0;
    for await (const chunk of request.body ?? []) {
      total += chunk.length;
      if (total > config.maxBodyBytes) {
        emit("upload-refused", { bytesRead: total });
        return Response.json({ error: "Body too large" }, { status: 413 });
      }
    }
    return Response.json({ bytes: total });
  }
  async function handle(request: Request): Promise<Response> {
    const path = new URL(request.url).pathname;
    if (path === "/mcp") {
      if (Number(request.headers.get("content-length")) > config.maxBodyBytes) {
        return Response.json({ error: "Body too large" }, { status: 413 });
      }
      const answer = tunnel.call(await request.text());
      if (answer === undefined) return Response.json({ error: "No tunnel" }, { status: 503 });
      return new Response(await answer, { headers: json });
    }
    if (path === "/direct") return new Response(answerFor(await request.text()), { headers: json });
    if (path === "/healthz") return Response.json({ ok: true });
    if (path === "/upload") return await upload(request);
    const refusal = REFUSALS[path];
    if (refusal !== undefined) {
      return new Response(refusalBody(refusal), { status: refusal, headers: json });
    }
    if (path === "/tunnel") {
      const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: 60 });
      socket.onopen = () => tunnel.attach((text) => socket.send(text));
      socket.onmessage = (event: MessageEvent<string>) => tunnel.onFrame(event.data);
      return response;
    }
    if (path === "/sink") return sink(request);
    if (path === "/close4001") {
      const { socket, response } = Deno.upgradeWebSocket(request);
      socket.onopen = () => socket.close(4001, "session ended by spike");
      return response;
    }
    return Response.json({ error: "Not found" }, { status: 404 });
  }
  Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    ...(config.tls ?? {}),
    onListen: ({ port }) => emit("listening", { port }),
  }, handle);
}

async function runS2(config: ServerConfig, tunnel: Tunnel): Promise<void> {
  // Loaded here, not at the top: ws reads its env variables at import, and S1 must run without them.
  // @ts-types="@types/ws"
  const { WebSocketServer } = await import("ws");
  const options: http.ServerOptions = {
    headersTimeout: config.headersTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    connectionsCheckingInterval: config.checkIntervalMs,
  };
  const server = config.tls === undefined
    ? http.createServer(options, handle)
    : https.createServer({ ...options, ...config.tls }, handle);
  const wss = new WebSocketServer({ noServer: true, maxPayload: config.maxFrameBytes });

  function reply(res: http.ServerResponse, status: number, body: string, close = false): void {
    res.writeHead(status, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(body),
      ...(close ? { connection: "close" } : {}),
    });
    res.end(body);
  }
  /** Reads a body under the limit; a larger one is answered 413 as soon as it is known to be larger. */
  function readBody(req: http.IncomingMessage, res: http.ServerResponse): Promise<string> | null {
    const declared = Number(req.headers["content-length"] ?? NaN);
    if (declared > config.maxBodyBytes) {
      emit("upload-refused", { declared, bytesRead: 0 });
      reply(res, 413, JSON.stringify({ error: "Body too large" }), true);
      return null;
    }
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let total = 0;
      const onData = (chunk: Buffer) => {
        total += chunk.length;
        if (total <= config.maxBodyBytes) return void chunks.push(chunk);
        req.off("data", onData);
        emit("upload-refused", { bytesRead: total });
        // `connection: close` makes the server drop the socket after the answer instead of reading
        // (and discarding) the rest of the body to keep the connection alive.
        reply(res, 413, JSON.stringify({ error: "Body too large" }), true);
        reject(new Error("too large"));
      };
      req.on("data", onData);
      req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
      req.on("error", reject);
    });
  }
  function sse(res: http.ServerResponse, mode: string): void {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    const chunk = `event: message\ndata: ${"x".repeat(16 * 1024)}\n\n`;
    const limit = 256 * MIB; // bound on what one probe may write
    let written = 0;
    if (mode === "drain") {
      while (written < limit && res.write(chunk)) written += chunk.length;
      written += chunk.length;
      emit("sse-backpressure", {
        written,
        writableLength: res.writableLength,
        highWaterMark: res.writableHighWaterMark,
      });
      const timer = setTimeout(() => {
        emit("sse-no-drain");
        res.destroy();
      }, 10_000);
      res.once("drain", () => {
        clearTimeout(timer);
        emit("sse-drain", { writableLength: res.writableLength });
        res.end("event: end\ndata: {}\n\n");
      });
      return;
    }
    // A producer that cannot pause (frames from a shared link): one message a macrotask, and the stream is
    // dropped once the bytes the client has not taken pass the bound.
    const step = () => {
      if (res.destroyed || written >= limit) return;
      res.write(chunk);
      written += chunk.length;
      if (res.writableLength > config.sseBoundBytes) {
        emit("sse-overflow", { written, writableLength: res.writableLength });
        res.destroy();
        return;
      }
      setImmediate(step);
    };
    step();
  }
  function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://server");
    if (url.pathname === "/mcp") {
      readBody(req, res)?.then((body) => {
        const answer = tunnel.call(body);
        if (answer === undefined) return reply(res, 503, JSON.stringify({ error: "No tunnel" }));
        return answer.then((text) => reply(res, 200, text));
      }).catch(() => {
        if (!res.headersSent) reply(res, 502, JSON.stringify({ error: "Call failed" }));
      });
    } else if (url.pathname === "/direct") {
      readBody(req, res)?.then((body) => reply(res, 200, answerFor(body))).catch(() => {});
    } else if (url.pathname === "/healthz") {
      reply(res, 200, JSON.stringify({ ok: true }));
    } else if (url.pathname === "/upload") {
      readBody(req, res)?.then((body) => reply(res, 200, JSON.stringify({ bytes: body.length })))
        .catch(() => {});
    } else if (url.pathname === "/sse") {
      sse(res, url.searchParams.get("mode") ?? "drain");
    } else {
      reply(res, 404, JSON.stringify({ error: "Not found" }));
    }
  }
  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = new URL(req.url ?? "/", "http://server").pathname;
    const refusal = REFUSALS[path] ?? (["/tunnel", "/sink", "/close4001"].includes(path) ? 0 : 404);
    if (refusal !== 0) {
      const body = refusalBody(refusal);
      socket.end(
        `HTTP/1.1 ${refusal} ${http.STATUS_CODES[refusal]}\r\ncontent-type: application/json\r\n` +
          `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
        () => socket.destroy(),
      );
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws: WsSocket) => {
      if (path === "/tunnel") {
        tunnel.attach((text) => ws.send(text));
        ws.on("message", (data: Buffer) => tunnel.onFrame(data.toString("utf8")));
      } else if (path === "/close4001") {
        ws.close(4001, "session ended by spike");
      } else {
        const raw = socket as Socket;
        ws.on(
          "error",
          (error: Error & { code?: string }) =>
            emit("ws-error", {
              code: error.code,
              message: error.message,
              bytesRead: raw.bytesRead,
            }),
        );
        ws.on("close", (code: number) => emit("ws-close", { code, bytesRead: raw.bytesRead }));
      }
    });
  });
  server.listen(0, "127.0.0.1", () => emit("listening", { port: portOf(server) }));
}

async function serverRole(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      stack: { type: "string" },
      "max-frame-bytes": { type: "string", default: String(32 * MIB) },
      "max-body-bytes": { type: "string", default: String(1 * MIB) },
      "headers-timeout-ms": { type: "string", default: "10000" },
      "request-timeout-ms": { type: "string", default: "30000" },
      "keep-alive-timeout-ms": { type: "string", default: "5000" },
      "check-interval-ms": { type: "string", default: "1000" },
      "sse-bound-bytes": { type: "string", default: String(1 * MIB) },
      "tls-dir": { type: "string" },
    },
  });
  const stack = values.stack === "s2" ? "s2" : "s1";
  const tlsDir = values["tls-dir"];
  const config: ServerConfig = {
    stack,
    maxFrameBytes: Number(values["max-frame-bytes"]),
    maxBodyBytes: Number(values["max-body-bytes"]),
    headersTimeoutMs: Number(values["headers-timeout-ms"]),
    requestTimeoutMs: Number(values["request-timeout-ms"]),
    keepAliveTimeoutMs: Number(values["keep-alive-timeout-ms"]),
    checkIntervalMs: Number(values["check-interval-ms"]),
    sseBoundBytes: Number(values["sse-bound-bytes"]),
    tls: tlsDir === undefined ? undefined : {
      cert: Deno.readTextFileSync(`${tlsDir}/server.pem`),
      key: Deno.readTextFileSync(`${tlsDir}/server.key`),
    },
  };
  const tunnel = new Tunnel();
  if (stack === "s1") runS1(config, tunnel);
  else await runS2(config, tunnel);
  // The orchestrator holds stdin: when it goes away, so does the server.
  for await (const _ of Deno.stdin.readable) { /* ignore input */ }
  Deno.exit(0);
}

// ---------------------------------------------------------------------------------------------------
// Role `peer`: the tunnel client (Deno's WebSocket), answers every request frame with a result frame.

async function peerRole(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { port: { type: "string" } } });
  const socket = new WebSocket(`ws://127.0.0.1:${values.port}/tunnel`);
  socket.onmessage = (event: MessageEvent<string>) => socket.send(answerFor(event.data));
  socket.onclose = () => Deno.exit(0);
  for await (const _ of Deno.stdin.readable) { /* ignore input */ }
  Deno.exit(0);
}

// ---------------------------------------------------------------------------------------------------
// Role `driver`: node:http with a keep-alive agent, N calls in flight. Warm-up, then waits for "go" on
// stdin so the orchestrator can read the server's CPU time exactly around the measured calls.

function callBody(id: number): string {
  // About 150 bytes, the size of a small tools/call.
  return JSON.stringify({
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: { name: "echo", arguments: { message: `hello from call ${id} of the serve spike` } },
  });
}

async function driverRole(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: "string" },
      calls: { type: "string" },
      warmup: { type: "string" },
      inflight: { type: "string" },
      path: { type: "string", default: "/mcp" },
    },
  });
  const port = Number(values.port);
  const inflight = Number(values.inflight);
  const agent = new http.Agent({ keepAlive: true, maxSockets: inflight });
  function call(id: number): Promise<number> {
    const body = callBody(id);
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const request = http.request({
        host: "127.0.0.1",
        port,
        path: values.path,
        method: "POST",
        agent,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      }, (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if (response.statusCode !== 200 || !text.includes(`"id":${id}`)) {
            reject(new Error(`call ${id}: HTTP ${response.statusCode} ${text.slice(0, 200)}`));
          } else resolve(performance.now() - started);
        });
      });
      request.setTimeout(CALL_TIMEOUT_MS, () => request.destroy(new Error(`call ${id} timed out`)));
      request.on("error", reject);
      request.end(body);
    });
  }
  async function run(count: number): Promise<{ ms: number; latencies: number[] }> {
    const latencies: number[] = [];
    let next = 0;
    const started = performance.now();
    await Promise.all(Array.from({ length: inflight }, async () => {
      while (next < count) latencies.push(await call(next++));
    }));
    return { ms: performance.now() - started, latencies };
  }
  await run(Number(values.warmup));
  emit("warm");
  const reader = lines(Deno.stdin.readable);
  await reader.next(); // "go"
  const { ms, latencies } = await run(Number(values.calls));
  latencies.sort((a, b) => a - b);
  emit("done", {
    calls: latencies.length,
    ms,
    p50: latencies[Math.floor(latencies.length * 0.5)],
    p99: latencies[Math.floor(latencies.length * 0.99)],
  });
  agent.destroy();
  Deno.exit(0);
}

// ---------------------------------------------------------------------------------------------------
// The orchestrator's view of a child process: its JSON events, its stdin, its /proc entries.

interface Event extends Fields {
  event: string;
  at: number;
}

class Child {
  readonly pid: number;
  readonly events: Event[] = [];
  #process: Deno.ChildProcess;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #stderr = "";
  #exited = false;
  #waiters = new Set<() => void>();

  constructor(role: string, flags: string[], args: string[]) {
    const process = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--no-prompt", ...flags, SCRIPT, role, ...args],
      cwd: SCRIPT_DIR,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    }).spawn();
    this.#process = process;
    this.pid = process.pid;
    this.#stdin = process.stdin.getWriter();
    void this.#read();
    void (async () => {
      for await (const text of process.stderr.pipeThrough(new TextDecoderStream())) {
        if (this.#stderr.length < 16_384) this.#stderr += text;
      }
    })();
  }

  async #read(): Promise<void> {
    for await (const line of lines(this.#process.stdout)) {
      try {
        this.events.push(JSON.parse(line) as Event);
      } catch {
        continue; // not an event
      }
      for (const wake of this.#waiters) wake();
    }
    this.#exited = true;
    for (const wake of this.#waiters) wake();
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** Waits for the `count`-th event named `name`. */
  async waitEvent(name: string, ms: number, count = 1): Promise<Event> {
    const found = () => this.events.filter((e) => e.event === name)[count - 1];
    const { promise, resolve, reject } = Promise.withResolvers<Event>();
    const check = () => {
      const event = found();
      if (event !== undefined) resolve(event);
      else if (this.#exited) {
        reject(new Error(`child exited: ${this.#stderr.trim().slice(0, 500)}`));
      }
    };
    this.#waiters.add(check);
    check();
    try {
      return await deadline(promise, ms, `event ${name} #${count}`);
    } finally {
      this.#waiters.delete(check);
    }
  }

  async send(line: string): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(`${line}\n`));
  }

  /** CPU time used so far (utime + stime), in clock ticks. */
  cpuTicks(): number {
    const stat = Deno.readTextFileSync(`/proc/${this.pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  }

  rss(): { rss: number; hwm: number } {
    const status = Deno.readTextFileSync(`/proc/${this.pid}/status`);
    const kib = (field: string) =>
      Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) * 1024;
    return { rss: kib("VmRSS"), hwm: kib("VmHWM") };
  }

  fdCount(): number {
    return [...Deno.readDirSync(`/proc/${this.pid}/fd`)].length;
  }

  async stop(): Promise<Deno.CommandStatus> {
    await this.#stdin.close().catch(() => {});
    try {
      return await deadline(this.#process.status, 3_000, "child exit");
    } catch {
      try {
        this.#process.kill("SIGKILL");
      } catch { /* already gone */ }
      return await this.#process.status;
    }
  }
}

interface Options {
  calls: number;
  warmup: number;
  inflight: number;
  reps: number;
  frameMib: number;
  slowConns: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  checkIntervalMs: number;
  tlsDir: string;
}

function serverArgs(options: Options, extra: string[] = []): string[] {
  return [
    `--headers-timeout-ms=${options.headersTimeoutMs}`,
    `--request-timeout-ms=${options.requestTimeoutMs}`,
    `--keep-alive-timeout-ms=${options.keepAliveTimeoutMs}`,
    `--check-interval-ms=${options.checkIntervalMs}`,
    ...extra,
  ];
}

async function withServer<T>(
  stack: Stack,
  args: string[],
  body: (server: Child, port: number) => Promise<T>,
  flags: string[] = SERVER_FLAGS[stack],
): Promise<T> {
  const server = new Child("server", flags, [`--stack=${stack}`, ...args]);
  try {
    const { port } = await server.waitEvent("listening", 30_000);
    return await body(server, Number(port));
  } finally {
    await server.stop();
  }
}

// ---------------------------------------------------------------------------------------------------
// a) CPU per call

interface CpuRun {
  usPerCall: number;
  callsPerS: number;
  p50Ms: number;
  p99Ms: number;
}

/** `/mcp` goes through the tunnel peer; `/direct` is answered by the server itself (HTTP cost alone). */
async function cpuRun(
  stack: Stack,
  options: Options,
  run: { clkTck: number; path: "/mcp" | "/direct" },
): Promise<CpuRun> {
  return await withServer(stack, serverArgs(options), async (server, port) => {
    const peer = run.path === "/mcp"
      ? new Child("peer", ["--allow-net=127.0.0.1"], [`--port=${port}`])
      : undefined;
    let driver: Child | undefined;
    const clkTck = run.clkTck;
    try {
      if (peer !== undefined) await server.waitEvent("tunnel-open", 30_000);
      driver = new Child("driver", ["--allow-net=127.0.0.1"], [
        `--path=${run.path}`,
        `--port=${port}`,
        `--calls=${options.calls}`,
        `--warmup=${options.warmup}`,
        `--inflight=${options.inflight}`,
      ]);
      await driver.waitEvent("warm", 120_000);
      const before = server.cpuTicks();
      await driver.send("go");
      const done = await driver.waitEvent("done", 300_000);
      const ticks = server.cpuTicks() - before;
      return {
        usPerCall: (ticks / clkTck) * 1e6 / Number(done.calls),
        callsPerS: Number(done.calls) / (Number(done.ms) / 1000),
        p50Ms: Number(done.p50),
        p99Ms: Number(done.p99),
      };
    } finally {
      await driver?.stop();
      await peer?.stop();
    }
  });
}

// ---------------------------------------------------------------------------------------------------
// b) A WebSocket frame over the limit

interface FrameRun {
  baselineMiB: number;
  peakOverBaselineMiB: number;
  reactedAfterMiB: number;
  reactedAfterMs: number;
  readByCloseMiB: number | undefined;
  clientCodes: string;
  clientClosedMs: number;
}

async function frameRun(
  stack: Stack,
  options: Options,
  scenario: { clients: number; binary: boolean },
): Promise<FrameRun> {
  const args = serverArgs(options, [`--max-frame-bytes=${32 * MIB}`]);
  return await withServer(stack, args, async (server, port) => {
    const sockets = Array.from({ length: scenario.clients }, () => {
      const socket = new WebSocket(`ws://127.0.0.1:${port}/sink`);
      const closed = new Promise<{ code: number; at: number }>((resolve) => {
        socket.onclose = (event) => resolve({ code: event.code, at: Date.now() });
      });
      const open = new Promise<void>((resolve, reject) => {
        socket.onopen = () => resolve();
        socket.onerror = (event) => reject(new Error((event as ErrorEvent).message));
      });
      return { socket, closed, open };
    });
    const payload = scenario.binary
      ? new Uint8Array(options.frameMib * MIB)
      : "x".repeat(options.frameMib * MIB);
    try {
      await deadline(Promise.all(sockets.map((s) => s.open)), 10_000, "sink sockets open");
      await delay(500); // let the server settle before the idle baseline
      const baseline = server.rss().rss;
      let sampled = baseline;
      const sampler = setInterval(() => sampled = Math.max(sampled, server.rss().rss), 5);
      const sentAt = Date.now();
      for (const { socket } of sockets) socket.send(payload);
      const closes = await deadline(
        Promise.all(sockets.map((s) => s.closed)),
        60_000,
        "clients closed",
      );
      clearInterval(sampler);
      const reaction = stack === "s1" ? "frame-refused" : "ws-error";
      const reactions = await Promise.all(
        sockets.map((_, i) => server.waitEvent(reaction, 5_000, i + 1)),
      );
      const serverCloses = await Promise.all(
        sockets.map((_, i) => server.waitEvent("ws-close", 5_000, i + 1)),
      );
      const peak = Math.max(server.rss().hwm, sampled);
      const codes = new Map<number, number>();
      for (const { code } of closes) codes.set(code, (codes.get(code) ?? 0) + 1);
      const reactedBytes = reactions.map((e) => Number(e.bytesRead ?? e.bytes));
      const closeBytes = serverCloses.map((e) => Number(e.bytesRead));
      return {
        baselineMiB: baseline / MIB,
        peakOverBaselineMiB: (peak - baseline) / MIB,
        reactedAfterMiB: Math.max(...reactedBytes) / MIB,
        reactedAfterMs: Math.max(...reactions.map((e) => e.at)) - sentAt,
        readByCloseMiB: stack === "s2" ? Math.max(...closeBytes) / MIB : undefined,
        clientCodes: [...codes].map(([code, n]) => `${code}×${n}`).join(" "),
        clientClosedMs: Math.max(...closes.map((c) => c.at)) - sentAt,
      };
    } finally {
      for (const { socket } of sockets) socket.close();
    }
  });
}

// ---------------------------------------------------------------------------------------------------
// c) Slow headers, slow bodies, idle keep-alive connections

interface SlowKind {
  closed: number;
  total: number;
  medianS: number | undefined;
  maxS: number | undefined;
  statuses: string;
}

interface SlowRun {
  kinds: Record<string, SlowKind>;
  fds: number[];
  fastOk: number;
  fastTotal: number;
  fastMaxMs: number;
  windowS: number;
}

const encoder = new TextEncoder();

/** A raw TCP client: records when the server answered and closed it, and the status line it got. */
class RawConnection {
  readonly opened = performance.now();
  closedAt: number | undefined;
  answeredAt: number | undefined;
  received = "";
  #conn: Deno.TcpConn;
  #done: Promise<void> | undefined;
  #answered = Promise.withResolvers<void>();

  constructor(conn: Deno.TcpConn, read: boolean) {
    this.#conn = conn;
    if (read) this.startReading();
  }

  /** Opens a connection; with `read: false` it reads nothing until {@link startReading}. */
  static async open(port: number, read = true): Promise<RawConnection> {
    return new RawConnection(await Deno.connect({ hostname: "127.0.0.1", port }), read);
  }

  get status(): string {
    return /^HTTP\/1\.1 (\d+)/.exec(this.received)?.[1] ?? "none";
  }

  /** Resolves at the first byte from the server or when it closed the connection. */
  get answered(): Promise<void> {
    return this.#answered.promise;
  }

  get done(): Promise<void> {
    return this.#done ?? Promise.resolve();
  }

  startReading(): void {
    this.#done ??= this.#read();
  }

  async #read(): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    const decoder = new TextDecoder();
    try {
      for (let n = await this.#conn.read(buffer); n !== null; n = await this.#conn.read(buffer)) {
        this.answeredAt ??= performance.now();
        if (this.received.length < 4096) this.received += decoder.decode(buffer.subarray(0, n));
        this.#answered.resolve();
      }
    } catch {
      // reset by the server, or closed by us
    }
    this.closedAt ??= performance.now();
    this.#answered.resolve();
  }

  async write(text: string | Uint8Array): Promise<boolean> {
    try {
      const bytes = typeof text === "string" ? encoder.encode(text) : text;
      for (let off = 0; off < bytes.length;) off += await this.#conn.write(bytes.subarray(off));
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    try {
      this.#conn.close();
    } catch { /* closed already */ }
    await this.done;
  }
}

async function slowRun(stack: Stack, options: Options): Promise<SlowRun> {
  const windowMs = options.requestTimeoutMs + 3 * options.checkIntervalMs + 1_000;
  return await withServer(stack, serverArgs(options), async (server, port) => {
    const kinds: Record<string, RawConnection[]> = { headers: [], body: [], idle: [] };
    const fds: number[] = [server.fdCount()];
    const fast: number[] = [];
    let fastTotal = 0;
    const client = Deno.createHttpClient({});
    try {
      for (let i = 0; i < options.slowConns; i++) {
        const conn = await RawConnection.open(port);
        kinds.headers!.push(conn);
        await conn.write("POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty");
      }
      for (let i = 0; i < options.slowConns; i++) {
        const conn = await RawConnection.open(port);
        kinds.body!.push(conn);
        await conn.write(
          `POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n` +
            `Content-Length: ${MIB}\r\n\r\n`,
        );
      }
      for (let i = 0; i < 10; i++) {
        const conn = await RawConnection.open(port);
        kinds.idle!.push(conn);
        await conn.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      }
      const started = performance.now();
      const open = () => Object.values(kinds).flat().filter((c) => c.closedAt === undefined);
      for (let tick = 1; performance.now() - started < windowMs && open().length > 0; tick++) {
        await delay(Math.max(0, started + tick * 1_000 - performance.now()));
        for (const conn of kinds.body!) {
          if (conn.closedAt === undefined) void conn.write("0123456789");
        }
        fds.push(server.fdCount());
        const t0 = performance.now();
        fastTotal++;
        const response = await deadline(
          fetch(`http://127.0.0.1:${port}/healthz`, { client }),
          5_000,
          "fast request",
        ).catch(() => undefined);
        if (response?.status === 200) fast.push(performance.now() - t0);
        await response?.body?.cancel();
      }
      const result: Record<string, SlowKind> = {};
      for (const [kind, conns] of Object.entries(kinds)) {
        // The idle ones are timed from their answer: that is when the keep-alive wait starts.
        const times = conns.filter((c) => c.closedAt !== undefined).map((c) =>
          (c.closedAt! - (kind === "idle" ? c.answeredAt ?? c.opened : started)) / 1000
        );
        const statuses = new Map<string, number>();
        for (const c of conns) {
          const status = kind === "idle"
            ? (c.closedAt === undefined ? "open" : "closed")
            : c.status;
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
        }
        result[kind] = {
          closed: times.length,
          total: conns.length,
          medianS: times.length > 0 ? median(times) : undefined,
          maxS: times.length > 0 ? Math.max(...times) : undefined,
          statuses: [...statuses].map(([s, n]) => `${s}×${n}`).join(" "),
        };
      }
      return {
        kinds: result,
        fds,
        fastOk: fast.length,
        fastTotal,
        fastMaxMs: fast.length > 0 ? Math.max(...fast) : NaN,
        windowS: windowMs / 1000,
      };
    } finally {
      await Promise.all(Object.values(kinds).flat().map((c) => c.close()));
      client.close();
    }
  });
}

// ---------------------------------------------------------------------------------------------------
// d) Feature checks

/** What a Deno WebSocket client sees: the error event's text and the close code and reason. */
async function wsOutcome(url: string, client?: Deno.HttpClient): Promise<string> {
  const socket = client === undefined ? new WebSocket(url) : new WebSocket(url, { client });
  let error = "";
  socket.onerror = (event) => error = (event as ErrorEvent).message;
  const closed = new Promise<CloseEvent>((resolve) => socket.onclose = resolve);
  try {
    const event = await deadline(closed, 5_000, `close of ${url}`);
    return `close ${event.code}${event.reason === "" ? "" : ` "${event.reason}"`}` +
      (error === "" ? "" : `; error "${error}"`);
  } finally {
    socket.close();
  }
}

async function uploadDeclared(port: number): Promise<string> {
  const conn = await RawConnection.open(port);
  try {
    await conn.write(
      `POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${10 * MIB}\r\n\r\n`,
    );
    await deadline(conn.answered, 5_000, "answer to a declared 10 MiB body");
    return `${conn.status} before any body byte (declared 10 MiB)`;
  } finally {
    await conn.close();
  }
}

async function uploadChunked(port: number, server: Child): Promise<string> {
  const refusedBefore = server.events.filter((e) => e.event === "upload-refused").length;
  const conn = await RawConnection.open(port);
  const data = "y".repeat(64 * 1024);
  const chunk = encoder.encode(`${data.length.toString(16)}\r\n${data}\r\n`);
  let sent = 0;
  let sentAtAnswer: number | undefined;
  try {
    await conn.write(
      "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    const until = performance.now() + 10_000;
    while (sent < 64 * MIB && conn.closedAt === undefined && performance.now() < until) {
      if (conn.answeredAt !== undefined) sentAtAnswer ??= sent;
      const ok = await deadline(conn.write(chunk), 3_000, "upload write").catch(() => false);
      if (!ok) break;
      sent += data.length;
    }
    if (conn.answeredAt !== undefined) sentAtAnswer ??= sent;
    await deadline(conn.done, 3_000, "upload connection closed").catch(() => {});
    const refused = await server.waitEvent("upload-refused", 1_000, refusedBefore + 1)
      .catch(() => undefined);
    const read = refused === undefined ? "?" : (Number(refused.bytesRead) / MIB).toFixed(2);
    const answered = sentAtAnswer === undefined
      ? "no answer"
      : `answered after ${(sentAtAnswer / MIB).toFixed(2)} MiB sent`;
    const closed = conn.closedAt === undefined ? "left open" : "closed";
    return `${conn.status}, server read ${read} MiB, ${answered}, connection ${closed} after ${
      (sent / MIB).toFixed(2)
    } MiB`;
  } finally {
    await conn.close();
  }
}

async function sseChecks(port: number, server: Child): Promise<{ drain: string; bound: string }> {
  const slow = await RawConnection.open(port, false);
  let drain: string;
  try {
    await slow.write("GET /sse?mode=drain HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    const pressure = await server.waitEvent("sse-backpressure", 10_000);
    slow.startReading();
    const drained = await server.waitEvent("sse-drain", 10_000).catch(() => undefined);
    drain = `write() false after ${(Number(pressure.written) / MIB).toFixed(2)} MiB, ` +
      `writableLength ${(Number(pressure.writableLength) / 1024).toFixed(0)} KiB ` +
      `(hwm ${Number(pressure.highWaterMark) / 1024} KiB); ` +
      (drained === undefined ? "no drain" : `drain fired when the client read`);
  } finally {
    await slow.close();
  }
  const stuck = await RawConnection.open(port, false);
  try {
    await stuck.write("GET /sse?mode=bound HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    const overflow = await server.waitEvent("sse-overflow", 20_000);
    return {
      drain,
      bound:
        `dropped at writableLength ${(Number(overflow.writableLength) / MIB).toFixed(2)} MiB ` +
        `after ${(Number(overflow.written) / MIB).toFixed(2)} MiB written (bound 1 MiB)`,
    };
  } finally {
    await stuck.close();
  }
}

async function tlsCheck(stack: Stack, options: Options): Promise<string> {
  const flags = [...SERVER_FLAGS[stack], `--allow-read=${options.tlsDir}`];
  return await withServer(stack, [`--tls-dir=${options.tlsDir}`], async (_server, port) => {
    const client = Deno.createHttpClient({
      caCerts: [Deno.readTextFileSync(`${options.tlsDir}/ca.pem`)],
    });
    try {
      const response = await deadline(
        fetch(`https://localhost:${port}/healthz`, { client }),
        5_000,
        "https fetch",
      );
      const body = await response.text();
      const ws = await wsOutcome(`wss://localhost:${port}/close4001`, client);
      return `fetch ${response.status} ${body}; wss ${ws}`;
    } finally {
      client.close();
    }
  }, flags);
}

async function permissionCheck(): Promise<string> {
  try {
    await withServer("s2", [], () => Promise.resolve(), ["--allow-net=127.0.0.1"]);
    return "starts with --allow-net=127.0.0.1 alone";
  } catch (error: unknown) {
    const text = error instanceof Error ? error.message : String(error);
    return /NotCapable: [^\n]*/.exec(text)?.[0]?.replace(/, run again.*/, "") ?? text.slice(0, 200);
  }
}

type Row = [string, string, string];

async function checks(stack: Stack, options: Options): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  await withServer(stack, serverArgs(options), async (server, port) => {
    out.set("4xxx close reaches client", await wsOutcome(`ws://127.0.0.1:${port}/close4001`));
    out.set("upgrade refused 401 + JSON", await wsOutcome(`ws://127.0.0.1:${port}/refuse401`));
    out.set("upgrade refused 403 + JSON", await wsOutcome(`ws://127.0.0.1:${port}/refuse403`));
    out.set("413 on declared length", await uploadDeclared(port));
    out.set("413 while streaming (1 MiB limit)", await uploadChunked(port, server));
    if (stack === "s2") {
      const sse = await sseChecks(port, server);
      out.set("SSE: write()/drain", sse.drain);
      out.set("SSE: writableLength bound", sse.bound);
    } else {
      out.set(
        "SSE: write()/drain",
        "n/a (ReadableStream desiredSize, the gateway's sse_stream.ts)",
      );
      out.set("SSE: writableLength bound", "n/a (see above)");
    }
  });
  out.set("TLS: fetch + wss with caCerts", await tlsCheck(stack, options));
  out.set("permissions needed", SERVER_FLAGS[stack].join(" "));
  if (stack === "s2") out.set("with --allow-net=127.0.0.1 alone", await permissionCheck());
  else out.set("with --allow-net=127.0.0.1 alone", "runs");
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Orchestrator

const HELP = `deno run -A serve_stack.ts [options]

Measures S1 (Deno.serve + Deno.upgradeWebSocket) against S2 (node:http + npm ws) on 127.0.0.1.

  --calls N                 measured calls per CPU run (default 20000)
  --warmup N                warm-up calls per CPU run (default 2000)
  --inflight N              calls in flight (default 16)
  --reps N                  CPU runs per stack, order alternating; medians reported (default 3)
  --frame-mib N             size of the oversized WebSocket frame; the limit is 32 MiB (default 60)
  --slow-conns N            connections of each slow kind (default 50)
  --headers-timeout-ms N    S2 headersTimeout for the slow test (default 3000; serve would use 10000)
  --request-timeout-ms N    S2 requestTimeout (default 8000; serve would use 30000)
  --keep-alive-timeout-ms N S2 keepAliveTimeout (default 5000)
  --check-interval-ms N     S2 connectionsCheckingInterval (default 1000)
  --tls-dir DIR             server.pem, server.key, ca.pem (default: the repository's tests/fixtures/tls)
  --only LIST               a,b,c,d (default all)
  --quick                   1 rep of 3000 calls, 10 slow connections of each kind
  --json FILE               also write the figures as JSON
  -h, --help                this text
`;

function defaultTlsDir(): string {
  return `${SCRIPT_DIR}../../tests/fixtures/tls`;
}

async function clockTicks(): Promise<number> {
  const { stdout } = await new Deno.Command("getconf", { args: ["CLK_TCK"] }).output();
  return Number(new TextDecoder().decode(stdout).trim());
}

function table(rows: Row[]): string {
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd())
    .join("\n");
}

const fmt = (n: number | undefined, digits = 1) => n === undefined ? "-" : n.toFixed(digits);

async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      calls: { type: "string", default: "20000" },
      warmup: { type: "string", default: "2000" },
      inflight: { type: "string", default: "16" },
      reps: { type: "string", default: "3" },
      "frame-mib": { type: "string", default: "60" },
      "slow-conns": { type: "string", default: "50" },
      "headers-timeout-ms": { type: "string", default: "3000" },
      "request-timeout-ms": { type: "string", default: "8000" },
      "keep-alive-timeout-ms": { type: "string", default: "5000" },
      "check-interval-ms": { type: "string", default: "1000" },
      "tls-dir": { type: "string", default: defaultTlsDir() },
      only: { type: "string", default: "a,b,c,d" },
      quick: { type: "boolean", default: false },
      json: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return console.log(HELP);
  const options: Options = {
    calls: values.quick ? 3000 : Number(values.calls),
    warmup: values.quick ? 500 : Number(values.warmup),
    inflight: Number(values.inflight),
    reps: values.quick ? 1 : Number(values.reps),
    frameMib: Number(values["frame-mib"]),
    slowConns: values.quick ? 10 : Number(values["slow-conns"]),
    headersTimeoutMs: Number(values["headers-timeout-ms"]),
    requestTimeoutMs: Number(values["request-timeout-ms"]),
    keepAliveTimeoutMs: Number(values["keep-alive-timeout-ms"]),
    checkIntervalMs: Number(values["check-interval-ms"]),
    tlsDir: values["tls-dir"],
  };
  const only = new Set(values.only.split(","));
  const started = performance.now();
  const progress = (text: string) =>
    console.error(`[${((performance.now() - started) / 1000).toFixed(0).padStart(3)} s] ${text}`);
  const rows: Row[] = [["", LABEL.s1, LABEL.s2]];
  const figures: Fields = { options };
  const notes: string[] = [];

  if (only.has("a")) {
    const clkTck = await clockTicks();
    const paths = { "/mcp": "via the tunnel peer", "/direct": "HTTP only, no tunnel hop" } as const;
    const runs: Record<string, Record<Stack, CpuRun[]>> = {};
    for (let rep = 0; rep < options.reps; rep++) {
      for (const stack of rep % 2 === 0 ? STACKS : [...STACKS].reverse()) {
        for (const path of ["/mcp", "/direct"] as const) {
          const run = await cpuRun(stack, options, { clkTck, path });
          progress(
            `a) ${stack} ${path} rep ${rep + 1}: ${fmt(run.usPerCall, 0)} µs/call, ${
              fmt(run.callsPerS, 0)
            } calls/s, p50 ${fmt(run.p50Ms, 2)} ms`,
          );
          (runs[path] ??= { s1: [], s2: [] })[stack].push(run);
        }
      }
    }
    figures.cpu = runs;
    for (const [path, label] of Object.entries(paths)) {
      const of = runs[path]!;
      const med = (stack: Stack, key: keyof CpuRun) => median(of[stack].map((r) => r[key]));
      const each = (stack: Stack) => of[stack].map((r) => fmt(r.usPerCall, 0)).join("/");
      const cells = (pick: (stack: Stack) => string) => STACKS.map(pick) as [string, string];
      rows.push(
        [
          `a) ${label}: server CPU µs/call (median; runs)`,
          ...cells((s) => `${fmt(med(s, "usPerCall"), 0)} (${each(s)})`),
        ],
        [`a) ${label}: calls/s`, ...cells((s) => fmt(med(s, "callsPerS"), 0))],
        [
          `a) ${label}: latency p50 / p99 ms`,
          ...cells((s) => `${fmt(med(s, "p50Ms"), 2)} / ${fmt(med(s, "p99Ms"), 2)}`),
        ],
      );
    }
    notes.push(
      `a) ${options.calls} calls after ${options.warmup} warm-up, ${options.inflight} in flight, ` +
        `node:http keep-alive driver; medians of ${options.reps} runs, stack order alternating`,
    );
  }

  if (only.has("b")) {
    const scenarios = [
      { name: `${options.frameMib} MiB text ×1`, clients: 1, binary: false },
      { name: `${options.frameMib} MiB text ×8`, clients: 8, binary: false },
      { name: `${options.frameMib} MiB binary ×1`, clients: 1, binary: true },
    ];
    const frames: Fields = {};
    for (const scenario of scenarios) {
      const result: Partial<Record<Stack, FrameRun>> = {};
      for (const stack of STACKS) {
        result[stack] = await frameRun(stack, options, scenario);
        progress(`b) ${stack} ${scenario.name}: ${JSON.stringify(result[stack])}`);
      }
      frames[scenario.name] = result;
      const cell = (stack: Stack, pick: (r: FrameRun) => string) => pick(result[stack]!);
      const row = (label: string, pick: (r: FrameRun) => string): Row => [
        `b) ${scenario.name}: ${label}`,
        cell("s1", pick),
        cell("s2", pick),
      ];
      rows.push(
        row(
          "peak RSS over idle MiB (idle)",
          (r) => `+${fmt(r.peakOverBaselineMiB, 0)} (${fmt(r.baselineMiB, 0)})`,
        ),
        row(
          "refused after MiB received / ms",
          (r) => `${fmt(r.reactedAfterMiB, 2)} / ${fmt(r.reactedAfterMs, 0)}`,
        ),
        row(
          "MiB read by server by close",
          (r) => r.readByCloseMiB === undefined ? "(whole frame)" : fmt(r.readByCloseMiB, 1),
        ),
        row("client close code, ms", (r) => `${r.clientCodes}, ${fmt(r.clientClosedMs, 0)}`),
      );
    }
    figures.frames = frames;
  }

  if (only.has("c")) {
    const slow: Partial<Record<Stack, SlowRun>> = {};
    for (const stack of STACKS) {
      slow[stack] = await slowRun(stack, options);
      progress(`c) ${stack}: ${JSON.stringify(slow[stack])}`);
    }
    figures.slow = slow;
    const n = options.slowConns;
    const labels: Record<string, string> = {
      headers: `${n} half headers, silent`,
      body: `${n} bodies of 1 MiB at 10 B/s`,
      idle: "10 idle keep-alive after one answer",
    };
    for (const kind of ["headers", "body", "idle"]) {
      rows.push([
        `c) ${labels[kind]}: closed, median/max s, status`,
        ...STACKS.map((stack) => {
          const k = slow[stack]!.kinds[kind]!;
          return `${k.closed}/${k.total}, ${fmt(k.medianS)}/${fmt(k.maxS)} s, ${k.statuses}`;
        }) as [string, string],
      ]);
    }
    rows.push(
      [
        "c) server fds each second",
        ...STACKS.map((s) => slow[s]!.fds.join(" ")) as [string, string],
      ],
      [
        "c) fast GET /healthz meanwhile: ok, max ms",
        ...STACKS.map((s) =>
          `${slow[s]!.fastOk}/${slow[s]!.fastTotal}, ${fmt(slow[s]!.fastMaxMs)} ms`
        ) as [string, string],
      ],
    );
    notes.push(
      `c) window ${fmt(slow.s1!.windowS)} s; S2 headersTimeout ${options.headersTimeoutMs} ms, ` +
        `requestTimeout ${options.requestTimeoutMs} ms, keepAliveTimeout ${options.keepAliveTimeoutMs} ms, ` +
        `connectionsCheckingInterval ${options.checkIntervalMs} ms; S1 has no such settings`,
    );
  }

  if (only.has("d")) {
    const results: Partial<Record<Stack, Map<string, string>>> = {};
    for (const stack of STACKS) {
      results[stack] = await checks(stack, options);
      progress(`d) ${stack} checked`);
    }
    figures.checks = Object.fromEntries(STACKS.map((s) => [s, Object.fromEntries(results[s]!)]));
    for (const key of results.s1!.keys()) {
      rows.push([`d) ${key}`, results.s1!.get(key) ?? "", results.s2!.get(key) ?? ""]);
    }
  }

  console.log(
    `\nserve stack spike, deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} CPUs, ${
      fmt((performance.now() - started) / 1000, 0)
    } s\n`,
  );
  console.log(table(rows));
  if (notes.length > 0) console.log(`\n${notes.join("\n")}`);
  if (values.json !== undefined) {
    Deno.writeTextFileSync(values.json, JSON.stringify(figures, null, 2));
  }
}

if (import.meta.main) {
  const [role, ...rest] = Deno.args;
  if (role === "server") await serverRole(rest);
  else if (role === "peer") await peerRole(rest);
  else if (role === "driver") await driverRole(rest);
  else await main(Deno.args);
}
