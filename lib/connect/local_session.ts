// The proxy's one MCP session with the local server: it initializes the server once per process, answers
// tunneled `initialize` requests from the held result, tracks requests in flight so that none is left
// unanswered, and classifies everything the server writes.

import { deadline } from "../util/delay.ts";
import { ServerStartError } from "./errors.ts";
import {
  classify,
  ErrorCode,
  errorResponse,
  factsOf,
  idKey,
  type JsonObject,
  type JsonRpcId,
  type JsonRpcResponse,
  type MessageFacts,
  scanFacts,
} from "../protocol/jsonrpc.ts";
import { isOneLine, SCAN_ABOVE_CHARS } from "../protocol/json_scan.ts";
import type { OversizedLine } from "../util/line_splitter.ts";
import { logger, truncate } from "../util/log.ts";
import { LATEST_PROTOCOL_VERSION } from "../protocol/mcp_versions.ts";
import { type ServerExit, StdioServer } from "./stdio_server.ts";
import {
  describeQueueFull,
  type QueueFull,
  type QueueOutcome,
  type StdinQueueLimits,
} from "./stdin_queue.ts";
import { VERSION } from "../util/version.ts";

const log = logger("server");

/** A message from the server: what routing needs of it, and its JSON text, passed on as is. */
export interface ServerMessage {
  kind: "response" | "notification" | "request";
  /** Requests and responses (null in an error response to an unreadable request). */
  id?: JsonRpcId | null;
  /** Requests and notifications. */
  method?: string;
  /** The message's own JSON text (the stdout line, or the re-serialized batch element). */
  text: string;
  /** Byte length of `text` when known (a whole line); undefined for batch elements. */
  bytes?: number;
  /** For responses: what was recorded when the request went to the server. */
  request?: InFlight;
}

/** A request from the tunnel that the server has not answered yet. */
export interface InFlight {
  id: JsonRpcId;
  method: string;
  /** The link generation it arrived on; an answer for an older link cannot be routed. */
  generation: number;
}

/** A message from the tunnel the server's stdin queue had no room for. */
export interface RefusedMessage {
  kind: "request" | "notification" | "response";
  method?: string;
  /** The sentence the refused request was answered with (also right for a log line). */
  reason: string;
  full: QueueFull;
}

/** Options of {@link LocalSession.start}. */
export interface LocalSessionOptions {
  command: string[];
  /** Bounds of what waits to be written to the server's stdin. */
  queueLimits?: StdinQueueLimits;
  /** Called for every message refused because the server's stdin queue is full (count it, log it). */
  onQueueFull?: (refused: RefusedMessage) => void;
  /** Deadline for the server's `initialize` reply, in milliseconds. */
  initTimeoutMs?: number;
  /** Grace between SIGTERM and SIGKILL when stopping, in milliseconds. */
  graceMs?: number;
  /** Everything the server writes after initialization, in order. May return a promise to pause reading. */
  onMessage: (message: ServerMessage) => void | Promise<void>;
  /** A request whose answer is too large for the server's line limit. */
  onOversized?: (line: OversizedLine, id: JsonRpcId | undefined) => void;
  onStderr?: (line: string) => void;
  /** Called with the process as soon as it is spawned, so that a caller can kill it during start-up. */
  onSpawn?: (server: StdioServer) => void;
  /** Aborting it during start-up stops the server and rejects with the signal's reason. */
  signal?: AbortSignal;
}

const INTERNAL_ID_PREFIX = `mcp-rproxy-${crypto.randomUUID()}-`;

/** Finds a top-level-looking `"id"` in the first bytes of a line that was too long to parse. */
function sniffId(head: string): JsonRpcId | undefined {
  const match = /"id"\s*:\s*(-?\d+(?:\.\d+)?|"(?:[^"\\]|\\.)*")/.exec(head);
  if (!match?.[1]) return undefined;
  try {
    return JSON.parse(match[1]) as JsonRpcId;
  } catch {
    return undefined;
  }
}

/** The local server and the MCP session the proxy holds with it. */
export class LocalSession {
  /** The server's `initialize` result, held for the life of the process. */
  readonly initializeResult: JsonObject;
  readonly server: StdioServer;
  #inFlight = new Map<string, InFlight>();
  #initializedToSwallow = 0;
  #onMessage: LocalSessionOptions["onMessage"];
  #onQueueFull: LocalSessionOptions["onQueueFull"];
  #ready = false;

  private constructor(server: StdioServer, result: JsonObject, options: LocalSessionOptions) {
    this.server = server;
    this.initializeResult = result;
    this.#onMessage = options.onMessage;
    this.#onQueueFull = options.onQueueFull;
  }

  /**
   * Queues a message for the server. For a request, returns the error to answer it with when it could
   * not be queued; a notification or response that finds no room is dropped (and reported).
   */
  #write(
    text: string,
    kind: RefusedMessage["kind"],
    method: string | undefined,
    id?: JsonRpcId,
  ): JsonRpcResponse | undefined {
    const outcome: QueueOutcome = this.server.write(text);
    if (outcome.kind === "queued") return undefined;
    if (outcome.kind === "closed") {
      return id === undefined ? undefined : errorResponse(
        id,
        ErrorCode.ServerUnavailable,
        "The local MCP server is not running",
      );
    }
    const reason = describeQueueFull(outcome);
    this.#onQueueFull?.({
      kind,
      ...(method === undefined ? {} : { method }),
      reason,
      full: outcome,
    });
    return id === undefined ? undefined : errorResponse(id, ErrorCode.ServerUnavailable, reason);
  }

  /**
   * Starts the server and initializes it: `initialize` with a deadline, then `notifications/initialized`.
   *
   * @throws {ServerStartError} if the program cannot start, exits, or does not answer in time
   * @throws the signal's reason if it aborts first (the server is stopped)
   */
  static async start(options: LocalSessionOptions): Promise<LocalSession> {
    const { command, initTimeoutMs = 30_000, signal } = options;
    let session: LocalSession | undefined;
    let early: ((line: { text: string; bytes: number }) => void) | undefined;
    const server = StdioServer.spawn({
      command,
      ...(options.graceMs === undefined ? {} : { graceMs: options.graceMs }),
      ...(options.queueLimits === undefined ? {} : { queueLimits: options.queueLimits }),
      ...(options.onStderr === undefined ? {} : { onStderr: options.onStderr }),
      onLine: (line) => session ? session.#onLine(line.text, line.bytes) : early?.(line),
      onOversized: (line) => {
        const id = sniffId(line.head);
        log.error(
          "Local server wrote a line of {bytes} bytes, over the limit; not forwarded{idText}",
          {
            bytes: line.bytes,
            idText: id === undefined ? "" : ` (answering id ${JSON.stringify(id)} with an error)`,
          },
        );
        if (session) options.onOversized?.(line, id);
      },
    });
    options.onSpawn?.(server);
    // Start-up can take a while (npx downloads): a shutdown request must not wait for it.
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      if (signal === undefined) return;
      onAbort = () => reject(signal.reason);
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    });
    aborted.catch(() => {});
    const id = `${INTERNAL_ID_PREFIX}init`;
    const reply = new Promise<JsonRpcResponse>((resolve) => {
      early = (line) => {
        let value: unknown;
        try {
          value = JSON.parse(line.text);
        } catch {
          log.warn("Local server wrote a line that is not JSON during start-up; ignored");
          log.debug("Line: {line}", { line: truncate(line.text) });
          return;
        }
        if (classify(value) === "response" && (value as JsonRpcResponse).id === id) {
          resolve(value as JsonRpcResponse);
        } else {
          log.debug("Local server wrote before initialization completed; ignored: {line}", {
            line: truncate(line.text),
          });
        }
      };
    });
    const commandText = command.join(" ");
    try {
      await server.send(JSON.stringify({
        jsonrpc: "2.0",
        id,
        method: "initialize",
        params: {
          protocolVersion: LATEST_PROTOCOL_VERSION,
          // Declared so the server offers its full feature set; what the gateway cannot deliver is answered
          // with an error at once (see Tunnel).
          capabilities: { roots: { listChanged: true }, sampling: {}, elicitation: {} },
          clientInfo: { name: "mcp-rproxy", version: VERSION },
        },
      }));
      const outcome = await deadline(
        Promise.race([reply, server.exited, aborted]),
        initTimeoutMs,
        "initialize",
      );
      if (!("jsonrpc" in outcome)) {
        throw new ServerStartError(
          `Local server '${commandText}' exited (${
            describeExit(outcome)
          }) before answering initialize`,
        );
      }
      if (
        outcome.error !== undefined || typeof outcome.result !== "object" || outcome.result === null
      ) {
        throw new ServerStartError(
          `Local server '${commandText}' refused initialize: ${
            JSON.stringify(outcome.error ?? outcome.result)
          }`,
        );
      }
      session = new LocalSession(server, outcome.result as JsonObject, options);
      await server.send('{"jsonrpc":"2.0","method":"notifications/initialized"}');
      session.#ready = true;
      return session;
    } catch (error) {
      await server.stop();
      if (error instanceof ServerStartError || signal?.aborted) throw error;
      if (error instanceof DOMException && error.name === "TimeoutError") {
        throw new ServerStartError(
          `Local server '${commandText}' did not answer initialize within ${initTimeoutMs} ms; is it an MCP stdio server?`,
          { cause: error },
        );
      }
      throw new ServerStartError(
        `Local server '${commandText}' failed to start: ${(error as Error).message}`,
        { cause: error },
      );
    } finally {
      if (onAbort) signal?.removeEventListener("abort", onAbort);
    }
  }

  /** The server's name from its `initialize` result. */
  get serverInfo(): { name?: string; title?: string; version?: string } {
    const info = this.initializeResult.serverInfo;
    return typeof info === "object" && info !== null ? info as Record<string, string> : {};
  }

  /** Requests from the tunnel the server has not answered. */
  get inFlightCount(): number {
    return this.#inFlight.size;
  }

  #onLine(text: string, bytes: number): void | Promise<void> {
    let value: unknown;
    // A long line is scanned for its routing fields, not parsed: parsing a result of many MiB builds a
    // second copy of it only to read its id.
    if (text.length > SCAN_ABOVE_CHARS) {
      const facts = scanFacts(text);
      if (facts === undefined) return this.#notJson(text);
      if (facts !== "batch") return this.#route(facts, text, bytes);
    }
    try {
      value = JSON.parse(text);
    } catch {
      return this.#notJson(text);
    }
    if (Array.isArray(value)) {
      const pauses: Promise<void>[] = [];
      for (const element of value) {
        const pause = this.#route(factsOf(element), JSON.stringify(element), undefined);
        if (pause) pauses.push(pause);
      }
      if (pauses.length > 0) return Promise.all(pauses).then(() => {});
      return;
    }
    return this.#route(factsOf(value), text, bytes);
  }

  #notJson(text: string): void {
    log.warn("Local server wrote a line that is not JSON-RPC; not forwarded");
    log.debug("Line: {line}", { line: truncate(text) });
  }

  #route(facts: MessageFacts, text: string, bytes: number | undefined): void | Promise<void> {
    const { kind, id } = facts;
    if (kind === "invalid") {
      log.warn("Local server wrote a message that is not JSON-RPC 2.0; not forwarded");
      log.debug("Message: {line}", { line: truncate(text) });
      return;
    }
    const message: ServerMessage = { kind, text };
    if (bytes !== undefined) message.bytes = bytes;
    if (facts.method !== undefined) message.method = facts.method;
    if (id !== undefined) message.id = id;
    if (kind === "response") {
      if (typeof id === "string" && id.startsWith(INTERNAL_ID_PREFIX)) return; // a late duplicate of ours
      const key = id === null || id === undefined ? undefined : idKey(id);
      const request = key === undefined ? undefined : this.#inFlight.get(key);
      if (key !== undefined) this.#inFlight.delete(key);
      if (request !== undefined) message.request = request;
    }
    return this.#onMessage(message);
  }

  /**
   * Takes a request or notification from the tunnel. Returns a response to send back at once when the
   * proxy answers it itself (`initialize`, or a server that can no longer be written to); otherwise
   * undefined and the server's answer arrives through `onMessage`.
   */
  fromTunnel(payload: JsonObject, generation: number): JsonRpcResponse | undefined {
    const kind = classify(payload);
    if (kind === "request") {
      const id = payload.id as JsonRpcId;
      const method = payload.method as string;
      if (method === "initialize") {
        this.#initializedToSwallow++;
        return { jsonrpc: "2.0", id, result: this.initializeResult };
      }
      if (!this.server.writable) {
        return errorResponse(
          id,
          ErrorCode.ServerUnavailable,
          "The local MCP server is not running",
        );
      }
      // Queued in order, or refused at once; if the write fails later the server is gone, and its exit
      // answers every call in flight.
      const refused = this.#write(JSON.stringify(payload), "request", method, id);
      if (refused === undefined) this.#inFlight.set(idKey(id), { id, method, generation });
      return refused;
    }
    if (kind === "notification") {
      if (payload.method === "notifications/initialized" && this.#initializedToSwallow > 0) {
        // The server was initialized once, by us; it must not see a second `initialized`.
        this.#initializedToSwallow--;
        return undefined;
      }
      if (payload.method === "notifications/cancelled") {
        const params = payload.params as { requestId?: unknown } | undefined;
        const requestId = params?.requestId;
        if (typeof requestId === "string" || typeof requestId === "number") {
          this.#inFlight.delete(idKey(requestId));
        }
      }
      return this.#write(JSON.stringify(payload), "notification", String(payload.method));
    }
    if (kind === "response") {
      // An answer to a request the server made (roots/list, sampling, …).
      return this.#write(JSON.stringify(payload), "response", undefined);
    }
    log.warn("Gateway sent a payload that is not JSON-RPC 2.0; not forwarded");
    const id = payload.id;
    return typeof id === "string" || typeof id === "number"
      ? errorResponse(id, ErrorCode.InvalidRequest, "Invalid JSON-RPC request")
      : undefined;
  }

  /**
   * Forwards one message from the tunnel given as JSON text, as is, when the proxy has nothing to do with
   * its content: a request, notification or response other than `initialize`, `notifications/initialized`
   * and `notifications/cancelled`, on one line. `facts` are what the frame parser found in the same pass.
   * Returns true when forwarded; a response to send back when it is a request the server's input queue
   * has no room for; false when the caller should parse it and use {@link LocalSession.fromTunnel} instead
   * (those methods, a batch, invalid JSON-RPC, a text with line breaks between its tokens, or a server
   * that can no longer be written to).
   */
  forwardText(
    text: string,
    facts: MessageFacts | "batch",
    generation: number,
  ): boolean | JsonRpcResponse {
    if (!this.server.writable) return false;
    if (facts === "batch" || facts.kind === "invalid") return false;
    const { method } = facts;
    if (
      method === "initialize" || method === "notifications/initialized" ||
      method === "notifications/cancelled"
    ) return false;
    // The server reads one message per line; a pretty-printed payload has line breaks between tokens.
    if (!isOneLine(text)) return false;
    if (facts.kind === "request") {
      const id = facts.id as JsonRpcId;
      const refused = this.#write(text, "request", method, id);
      if (refused !== undefined) return refused;
      this.#inFlight.set(idKey(id), { id, method: method!, generation });
      return true;
    }
    this.#write(text, facts.kind, method);
    return true;
  }

  /** Writes a message of the proxy's own to the server (an answer to a server-initiated request). */
  reply(response: JsonRpcResponse): void {
    this.#write(JSON.stringify(response), "response", undefined);
  }

  /**
   * Removes and returns the requests in flight (all, or those of one link generation), so that the caller
   * can answer each with an error.
   */
  takeInFlight(generation?: number): InFlight[] {
    const taken: InFlight[] = [];
    for (const [key, request] of this.#inFlight) {
      if (generation === undefined || request.generation === generation) {
        taken.push(request);
        this.#inFlight.delete(key);
      }
    }
    return taken;
  }

  /** True once initialized and until the process exits. */
  get alive(): boolean {
    return this.#ready && this.server.writable;
  }

  /** Stops the server (stdin EOF, SIGTERM to its group, SIGKILL after the grace period). */
  stop(): Promise<ServerExit> {
    return this.server.stop();
  }
}

/** "code 1" or "signal SIGKILL". */
export function describeExit(exit: ServerExit): string {
  return exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
}
