// A small MCP server of our own over stdio (newline-delimited JSON-RPC): the server `demo` runs with nothing
// else installed, and the echo floor of the benchmarks, so the hot path parses each line once and writes once.

import { isObject } from "../util/json_object.ts";
import meta from "../../deno.json" with { type: "json" };
import { delay } from "../util/delay.ts";
import { LineFramer } from "../util/line_splitter.ts";
import { C_DEFAULT_MAX_FRAME_BYTES } from "../protocol/frames.ts";
import {
  classify,
  ErrorCode,
  errorResponse,
  idKey,
  type JsonObject,
  type JsonRpcId,
} from "../protocol/jsonrpc.ts";

/** Options of {@link runDemoServer}. */
export interface DemoServerOptions {
  /** Newline-delimited JSON-RPC in. Default `Deno.stdin.readable`. */
  input?: ReadableStream<Uint8Array>;
  /** Newline-delimited JSON-RPC out; closed when `input` ends. Default `Deno.stdout.writable`. */
  output?: WritableStream<Uint8Array>;
  /** Bound on the client's answer to the `roots` tool's `roots/list` request. Default 30 000 ms. */
  rootsTimeoutMs?: number;
}

/** Protocol versions the demo server speaks, newest first; the first is the answer to any other. */
export const DEMO_PROTOCOL_VERSIONS = [
  "2025-11-25",
  "2025-06-18",
  "2025-03-26",
  "2024-11-05",
] as const;

/** The `serverInfo.name` the demo server reports. */
export const DEMO_SERVER_NAME = "mcp-rproxy-demo";

/**
 * The largest `big` text that passes through `serve` with its defaults: its frame limit less room for the
 * JSON-RPC answer and the frame around the text (a few hundred bytes; 64 KiB is ample).
 */
export const MAX_BIG_BYTES = C_DEFAULT_MAX_FRAME_BYTES - 64 * 1024;
const MAX_STEPS = 10_000;
const MAX_STEP_MS = 60_000;

const TOOLS = [
  {
    name: "echo",
    description: "Echoes back the input",
    inputSchema: {
      type: "object",
      properties: { message: { type: "string", description: "Message to echo" } },
      required: ["message"],
    },
  },
  {
    name: "add",
    description: "Adds two numbers",
    inputSchema: {
      type: "object",
      properties: {
        a: { type: "number", description: "First number" },
        b: { type: "number", description: "Second number" },
      },
      required: ["a", "b"],
    },
  },
  {
    name: "long-running",
    description: "Runs for steps × stepMs, sending notifications/progress after each step",
    inputSchema: {
      type: "object",
      properties: {
        steps: { type: "integer", minimum: 0, maximum: MAX_STEPS, default: 5 },
        stepMs: { type: "integer", minimum: 0, maximum: MAX_STEP_MS, default: 100 },
      },
    },
  },
  {
    name: "big",
    description: "Returns a text of exactly `bytes` bytes",
    inputSchema: {
      type: "object",
      properties: { bytes: { type: "integer", minimum: 0, maximum: MAX_BIG_BYTES } },
      required: ["bytes"],
    },
  },
  {
    name: "roots",
    description: "Asks the client for its roots (roots/list) and returns the answer",
    inputSchema: { type: "object", properties: {} },
  },
  {
    name: "stats",
    description: "Returns how often this process was initialized and how many requests it answered",
    inputSchema: { type: "object", properties: {} },
  },
];

/** A JSON-RPC error a handler throws; the dispatcher turns it into the error response. */
class RpcError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
    this.name = "RpcError";
  }
}

function text(value: string): JsonObject {
  return { content: [{ type: "text", text: value }] };
}

function integerArg(args: JsonObject, name: string, fallback: number, max: number): number {
  const value = args[name] ?? fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > max) {
    throw new RpcError(
      ErrorCode.InvalidParams,
      `Argument '${name}' must be an integer in 0..${max}: got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** One server session over one pair of streams. */
class DemoServer {
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #encoder = new TextEncoder();
  #rootsTimeoutMs: number;
  #stop = new AbortController();
  /** Requests in flight that can be cancelled (by `notifications/cancelled`). */
  #running = new Map<string, AbortController>();
  #tasks = new Set<Promise<void>>();
  /** Our own requests to the client, by id key. */
  #outgoing = new Map<string, (message: JsonObject) => void>();
  #nextId = 1;
  #initializeCount = 0;
  #requests = 0;
  #writeError: unknown;

  constructor(writer: WritableStreamDefaultWriter<Uint8Array>, rootsTimeoutMs: number) {
    this.#writer = writer;
    this.#rootsTimeoutMs = rootsTimeoutMs;
  }

  /** Writes one message with one write; a broken output is remembered and ends the read loop. */
  send(message: JsonObject): void {
    if (this.#writeError !== undefined) return;
    this.#writer.write(this.#encoder.encode(JSON.stringify(message) + "\n")).catch((error) => {
      this.#writeError ??= error;
    });
  }

  get broken(): boolean {
    return this.#writeError !== undefined;
  }

  /** Waits while the output is full, so a client that does not read cannot grow our queue without bound. */
  async drain(): Promise<void> {
    const size = this.#writer.desiredSize;
    if (size !== null && size <= 0) await this.#writer.ready;
  }

  handleLine(line: string): void {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch (error) {
      this.send(
        errorResponse(null, ErrorCode.ParseError, `Parse error: ${(error as Error).message}`),
      );
      return;
    }
    if (Array.isArray(message)) {
      if (message.length === 0) {
        this.send(errorResponse(null, ErrorCode.InvalidRequest, "Empty batch"));
      }
      for (const item of message) this.#handleMessage(item);
      return;
    }
    this.#handleMessage(message);
  }

  #handleMessage(message: unknown): void {
    switch (classify(message)) {
      case "request":
        return this.#handleRequest(message as JsonObject);
      case "notification":
        return this.#handleNotification(message as JsonObject);
      case "response": {
        const id = (message as JsonObject).id;
        if (typeof id !== "string" && typeof id !== "number") return;
        const key = idKey(id);
        const resolve = this.#outgoing.get(key);
        this.#outgoing.delete(key);
        resolve?.(message as JsonObject);
        return;
      }
      default: {
        const id = isObject(message) ? message.id : undefined;
        const replyId = typeof id === "string" || typeof id === "number" ? id : null;
        this.send(errorResponse(replyId, ErrorCode.InvalidRequest, "Invalid Request"));
      }
    }
  }

  #handleNotification(message: JsonObject): void {
    if (message.method === "notifications/cancelled" && isObject(message.params)) {
      const id = message.params.requestId;
      if (typeof id === "string" || typeof id === "number") this.#running.get(idKey(id))?.abort();
    }
    // notifications/initialized, roots/list_changed and the rest need no answer.
  }

  #handleRequest(request: JsonObject): void {
    this.#requests++;
    const id = request.id as JsonRpcId;
    const params = request.params === undefined ? {} : request.params;
    try {
      if (!isObject(params)) {
        throw new RpcError(ErrorCode.InvalidParams, "Params must be an object");
      }
      switch (request.method) {
        case "initialize":
          return this.send({ jsonrpc: "2.0", id, result: this.#initialize(params) });
        case "ping":
          return this.send({ jsonrpc: "2.0", id, result: {} });
        case "tools/list":
          return this.send({ jsonrpc: "2.0", id, result: { tools: TOOLS } });
        case "tools/call":
          return this.#callTool(id, params);
        default:
          throw new RpcError(
            ErrorCode.MethodNotFound,
            `Method not found: ${String(request.method)}`,
          );
      }
    } catch (error) {
      this.#replyError(id, error);
    }
  }

  #replyError(id: JsonRpcId, error: unknown): void {
    if (error instanceof RpcError) this.send(errorResponse(id, error.code, error.message));
    else this.send(errorResponse(id, ErrorCode.InternalError, String(error)));
  }

  #initialize(params: JsonObject): JsonObject {
    this.#initializeCount++;
    const asked = params.protocolVersion;
    const protocolVersion = (DEMO_PROTOCOL_VERSIONS as readonly unknown[]).includes(asked)
      ? asked
      : DEMO_PROTOCOL_VERSIONS[0];
    return {
      protocolVersion,
      capabilities: { tools: { listChanged: false } },
      serverInfo: { name: DEMO_SERVER_NAME, version: meta.version },
    };
  }

  #callTool(id: JsonRpcId, params: JsonObject): void {
    const args = params.arguments === undefined ? {} : params.arguments;
    if (!isObject(args)) throw new RpcError(ErrorCode.InvalidParams, "Arguments must be an object");
    switch (params.name) {
      case "echo": {
        if (typeof args.message !== "string") {
          throw new RpcError(ErrorCode.InvalidParams, "Argument 'message' must be a string");
        }
        return this.send({ jsonrpc: "2.0", id, result: text(`Echo: ${args.message}`) });
      }
      case "add": {
        const { a, b } = args;
        if (typeof a !== "number" || typeof b !== "number") {
          throw new RpcError(ErrorCode.InvalidParams, "Arguments 'a' and 'b' must be numbers");
        }
        return this.send({
          jsonrpc: "2.0",
          id,
          result: text(`The sum of ${a} and ${b} is ${a + b}.`),
        });
      }
      case "big": {
        const bytes = integerArg(args, "bytes", -1, MAX_BIG_BYTES);
        return this.send({ jsonrpc: "2.0", id, result: text("x".repeat(bytes)) });
      }
      case "stats":
        return this.send({
          jsonrpc: "2.0",
          id,
          result: text(
            JSON.stringify({ initializeCount: this.#initializeCount, requests: this.#requests }),
          ),
        });
      case "long-running": {
        const steps = integerArg(args, "steps", 5, MAX_STEPS);
        const stepMs = integerArg(args, "stepMs", 100, MAX_STEP_MS);
        const meta = params._meta;
        const token = isObject(meta) ? meta.progressToken : undefined;
        return this.#spawn(id, (signal) => this.#longRunning(steps, stepMs, token, signal));
      }
      case "roots":
        return this.#spawn(id, (signal) => this.#roots(signal));
      default:
        throw new RpcError(ErrorCode.InvalidParams, `Unknown tool: ${String(params.name)}`);
    }
  }

  /** Runs a slow handler off the read loop (it may need to read the client's answers meanwhile). */
  #spawn(id: JsonRpcId, work: (signal: AbortSignal) => Promise<JsonObject>): void {
    const key = idKey(id);
    const controller = new AbortController();
    const onStop = () => controller.abort();
    this.#stop.signal.addEventListener("abort", onStop, { once: true });
    this.#running.set(key, controller);
    const task = work(controller.signal).then(
      (result) => this.send({ jsonrpc: "2.0", id, result }),
      (error) => {
        // A cancelled request gets no response (MCP); after input ended nobody is listening.
        if (!controller.signal.aborted) this.#replyError(id, error);
      },
    ).finally(() => {
      this.#stop.signal.removeEventListener("abort", onStop);
      this.#running.delete(key);
      this.#tasks.delete(task);
    });
    this.#tasks.add(task);
  }

  async #longRunning(
    steps: number,
    stepMs: number,
    token: unknown,
    signal: AbortSignal,
  ): Promise<JsonObject> {
    const sendProgress = typeof token === "string" || typeof token === "number";
    for (let step = 1; step <= steps; step++) {
      await delay(stepMs, signal);
      if (sendProgress) {
        this.send({
          jsonrpc: "2.0",
          method: "notifications/progress",
          params: {
            progressToken: token,
            progress: step,
            total: steps,
            message: `Step ${step} of ${steps}`,
          },
        });
      }
    }
    return text(`Long running operation completed: ${steps} steps of ${stepMs} ms.`);
  }

  async #roots(signal: AbortSignal): Promise<JsonObject> {
    const id = `demo-${this.#nextId++}`;
    const key = idKey(id);
    const answer = new Promise<JsonObject>((resolve, reject) => {
      const timer = setTimeout(() => {
        finish();
        reject(
          new RpcError(
            ErrorCode.InternalError,
            `roots/list timed out after ${this.#rootsTimeoutMs} ms`,
          ),
        );
      }, this.#rootsTimeoutMs);
      const onAbort = () => {
        finish();
        reject(signal.reason);
      };
      const finish = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        this.#outgoing.delete(key);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#outgoing.set(key, (message) => {
        finish();
        resolve(message);
      });
    });
    this.send({ jsonrpc: "2.0", id, method: "roots/list" });
    const response = await answer;
    if ("error" in response) {
      return { ...text(`roots/list failed: ${JSON.stringify(response.error)}`), isError: true };
    }
    const result = isObject(response.result) ? response.result : {};
    return { ...text(JSON.stringify(result)), structuredContent: result };
  }

  /** Input ended: abort what is still running and wait for it to settle. */
  async finish(): Promise<void> {
    this.#stop.abort();
    await Promise.allSettled([...this.#tasks]);
  }
}

/**
 * Runs the demo MCP server on newline-delimited JSON-RPC until `input` ends, then closes `output`.
 *
 * Tools: `echo {message}` → "Echo: <message>"; `add {a, b}`; `long-running {steps, stepMs}` with
 * `notifications/progress` per step when the call has `_meta.progressToken`; `big {bytes}` → a text of that
 * many bytes; `roots` → asks the client `roots/list` and returns the answer; `stats` → initialize and request
 * counts of this process.
 *
 * @example
 * ```ts
 * import { runDemoServer } from "./server.ts";
 * const input = ReadableStream.from([
 *   new TextEncoder().encode('{"jsonrpc":"2.0","id":1,"method":"ping"}\n'),
 * ]);
 * const chunks: Uint8Array[] = [];
 * const output = new WritableStream<Uint8Array>({ write: (chunk) => void chunks.push(chunk) });
 * await runDemoServer({ input, output });
 * console.log(new TextDecoder().decode(chunks[0])); // {"jsonrpc":"2.0","id":1,"result":{}}
 * ```
 */
export async function runDemoServer(options: DemoServerOptions = {}): Promise<void> {
  const {
    input = Deno.stdin.readable,
    output = Deno.stdout.writable,
    rootsTimeoutMs = 30_000,
  } = options;
  const writer = output.getWriter();
  const reader = input.getReader();
  const server = new DemoServer(writer, rootsTimeoutMs);
  const framer = new LineFramer((line) => {
    if (line.text.trim() !== "") server.handleLine(line.text);
  });
  try {
    for (;;) {
      const { value: chunk, done } = await reader.read();
      if (done) break;
      framer.push(chunk);
      if (server.broken) break;
      await server.drain();
    }
    framer.finish();
  } finally {
    await server.finish();
    reader.releaseLock();
    await writer.close().catch(() => {});
  }
}
