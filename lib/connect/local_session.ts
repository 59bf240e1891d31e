// The proxy's one MCP session with a local server: it initializes the server once per process (or upstream
// session), answers tunneled `initialize` requests from the held result, tracks requests in flight so that
// none is left unanswered, and classifies everything the server writes. Which transport carries the
// messages (stdio, Streamable HTTP, SSE) is the LocalTransport's business.

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
import { isObject } from "../util/json_object.ts";
import type { OversizedLine } from "../util/line_splitter.ts";
import { logger, truncate } from "../util/log.ts";
import { initializeServer, InitReply, INTERNAL_ID_PREFIX } from "./local_handshake.ts";
import { readOversized } from "./oversized_line.ts";
import type {
  LocalTransport,
  LocalTransportEvents,
  LocalTransportLimits,
  OpenTransport,
} from "./local_transport.ts";
import { StdioServer } from "./stdio_server.ts";
import { describeQueueFull, type QueueFull, type QueueOutcome } from "./stdin_queue.ts";

export { describeExit } from "./stdio_server.ts";

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
  /** The MCP client session whose instance wrote it (per-client isolation). */
  clientSession?: string;
}

/** A request from the tunnel that the server has not answered yet. */
export interface InFlight {
  id: JsonRpcId;
  method: string;
  /** The link generation it arrived on; an answer for an older link cannot be routed. */
  generation: number;
  /** The MCP client session whose instance it went to (per-client isolation). */
  clientSession?: string;
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
export interface LocalSessionOptions extends LocalTransportLimits {
  /** A stdio server's program and arguments: the transport when `open` is not given. */
  command?: string[];
  /** Opens the way to the server (stdio, HTTP, SSE); a stdio child of `command` when absent. */
  open?: OpenTransport;
  /** Called for every message refused because the server's input queue is full (count it, log it). */
  onQueueFull?: (refused: RefusedMessage) => void;
  /** Deadline for the server's `initialize` reply, in milliseconds. */
  initTimeoutMs?: number;
  /** Everything the server writes after initialization, in order. May return a promise to pause reading. */
  onMessage: (message: ServerMessage) => void | Promise<void>;
  /** A request whose answer is too large for the server's line limit. */
  onOversized?: (line: OversizedLine, id: JsonRpcId | undefined) => void;
  onStderr?: (line: string) => void;
  /** Called with the transport as soon as it is open, so that a caller can kill it during start-up. */
  onSpawn?: (transport: LocalTransport) => void;
  /** Aborting it during start-up stops the server and rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * A per-client instance: the MCP client session it serves (stamped on its messages and calls) and that
   * client's `initialize` parameters; `sendInitialized` false when the client sends its own.
   */
  instance?: { clientSession: string; params: JsonObject; sendInitialized: boolean };
}

/** A stdio child of `options.command`. */
function openStdio(options: LocalSessionOptions): OpenTransport {
  return (events) =>
    StdioServer.spawn({
      command: options.command ?? [],
      ...(options.graceMs === undefined ? {} : { graceMs: options.graceMs }),
      ...(options.queueLimits === undefined ? {} : { queueLimits: options.queueLimits }),
      ...(events.onStderr === undefined ? {} : { onStderr: events.onStderr }),
      onLine: events.onLine,
      ...(events.onOversized === undefined ? {} : { onOversized: events.onOversized }),
    });
}

/** The local server and the MCP session the proxy holds with it. */
export class LocalSession {
  /** The server's `initialize` result, held for the life of the process. */
  readonly initializeResult: JsonObject;
  /** The way to the server. */
  readonly transport: LocalTransport;
  #inFlight = new Map<string, InFlight>();
  #initializedToSwallow = 0;
  #onMessage: LocalSessionOptions["onMessage"];
  #onQueueFull: LocalSessionOptions["onQueueFull"];
  #ready = false;
  /** The MCP client session of a per-client instance. */
  readonly clientSession: string | undefined;

  private constructor(
    transport: LocalTransport,
    result: JsonObject,
    options: LocalSessionOptions,
  ) {
    this.transport = transport;
    this.initializeResult = result;
    this.#onMessage = options.onMessage;
    this.#onQueueFull = options.onQueueFull;
    this.clientSession = options.instance?.clientSession;
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
    const outcome: QueueOutcome = this.transport.write(text);
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
   * Starts the server (or opens the upstream) and initializes it: `initialize` with a deadline, then
   * `notifications/initialized`.
   *
   * @throws {ServerStartError} if the server cannot start, ends, or does not answer in time
   * @throws the signal's reason if it aborts first (the server is stopped)
   */
  static async start(options: LocalSessionOptions): Promise<LocalSession> {
    const { initTimeoutMs = 30_000, signal } = options;
    let session: LocalSession | undefined;
    const reply = new InitReply();
    const events: LocalTransportEvents = {
      onLine: (line) => session ? session.#onLine(line.text, line.bytes) : reply.take(line),
      onOversized: (line) => {
        const { request, ids } = readOversized(line);
        const id = session === undefined ? undefined : session.#oversizedCall(ids);
        const answered = request?.id ?? id;
        log.error(
          "Local server wrote a message of {bytes} bytes, over the limit; not forwarded{idText}",
          {
            event: "message_too_large",
            bytes: line.bytes,
            idText: answered === undefined
              ? ""
              : ` (answering id ${JSON.stringify(answered)} with an error)`,
          },
        );
        if (session === undefined) return reply.tooLong(ids, line.bytes);
        options.onOversized?.(line, id);
        // The server's own request: it learns why at once instead of waiting for an answer.
        if (request !== undefined) {
          session.reply(errorResponse(
            request.id,
            ErrorCode.MessageTooLarge,
            `mcp-rproxy cannot deliver '${request.method}': the request (${line.bytes} bytes) exceeds the largest message connect takes from the server (connect --max-message-bytes)`,
          ));
        }
      },
      ...(options.onStderr === undefined ? {} : { onStderr: options.onStderr }),
    };
    const open = options.open ?? openStdio(options);
    let transport: LocalTransport;
    try {
      transport = await open(events);
    } catch (error) {
      if (error instanceof ServerStartError || signal?.aborted) throw error;
      throw new ServerStartError(`Cannot start the local server: ${(error as Error).message}`, {
        cause: error,
      });
    }
    options.onSpawn?.(transport);
    try {
      const { instance } = options;
      const result = await initializeServer(transport, {
        reply,
        initTimeoutMs,
        signal,
        ...(instance === undefined
          ? {}
          : { params: instance.params, sendInitialized: instance.sendInitialized }),
      });
      session = new LocalSession(transport, result, options);
      transport.initialized();
      session.#ready = true;
      return session;
    } catch (error) {
      await transport.stop();
      throw error;
    }
  }

  /** The server's name from its `initialize` result. */
  get serverInfo(): { name?: string; title?: string; version?: string } {
    const info = this.initializeResult.serverInfo;
    return typeof info === "object" && info !== null ? info as Record<string, string> : {};
  }

  /**
   * The call in flight a line too long to pass answers, taken out of flight (its caller gets an error
   * instead); undefined when none of the ids read in the line is in flight.
   */
  #oversizedCall(ids: JsonRpcId[]): JsonRpcId | undefined {
    for (const id of ids) {
      if (this.#inFlight.delete(idKey(id))) return id;
    }
    return undefined;
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
    if (this.clientSession !== undefined) message.clientSession = this.clientSession;
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
      if (!this.transport.writable) {
        return errorResponse(
          id,
          ErrorCode.ServerUnavailable,
          "The local MCP server is not running",
        );
      }
      // Queued in order, or refused at once; if the write fails later the server is gone, and its exit
      // answers every call in flight.
      const refused = this.#write(JSON.stringify(payload), "request", method, id);
      if (refused === undefined) this.#track(id, method, generation);
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
    // An element of a batch may be any JSON value, null included.
    const id = isObject(payload) ? payload.id : undefined;
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
    if (!this.transport.writable) return false;
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
      this.#track(id, method!, generation);
      return true;
    }
    this.#write(text, facts.kind, method);
    return true;
  }

  #track(id: JsonRpcId, method: string, generation: number): void {
    const call: InFlight = { id, method, generation };
    if (this.clientSession !== undefined) call.clientSession = this.clientSession;
    this.#inFlight.set(idKey(id), call);
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

  /** True once initialized and until the transport ends. */
  get alive(): boolean {
    return this.#ready && this.transport.writable;
  }

  /** Stops the server: stdio EOF, SIGTERM to its group, SIGKILL after the grace; HTTP: ends the session. */
  stop(): Promise<unknown> {
    return this.transport.stop();
  }
}
