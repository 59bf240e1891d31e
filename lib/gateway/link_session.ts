// One tunnel link: a WebSocket from `mcp-rproxy connect` (or an A/B-style client), its registration, its
// calls in flight with rewritten ids, its held `initialize` result, and its liveness.

import { deadline } from "../delay.ts";
import { CloseCode, Extension, type Frame, parseFrame, utf8Length } from "../frames.ts";
import {
  classify,
  ErrorCode,
  errorResponse,
  idKey,
  type JsonObject,
  type JsonRpcId,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from "../jsonrpc.ts";
import { logger } from "../log.ts";
import type { ServeMetrics } from "../metrics.ts";
import { CallTable, restoreProgress, restoreResponse } from "./call_table.ts";
import { normalizeServerName } from "./session_registry.ts";
import type { Identity } from "./token_store.ts";

const log = logger("serve", "link");

/** Protocol version the gateway asks for when it initializes a tunneled server. */
export const GATEWAY_PROTOCOL_VERSION = "2025-11-25";

/** Extensions of contract C announced in `register_ack`. */
export const GATEWAY_EXTENSIONS = [
  Extension.ServerRequests,
  Extension.LargeFrames,
  Extension.EvictClose,
];

/** Longest description kept from `register` (contract B's limit). */
const MAX_DESCRIPTION_LENGTH = 1024;
/** Window over which malformed frames are counted. */
const BAD_FRAME_WINDOW_MS = 60_000;

/** Limits of one link. */
export interface LinkLimits {
  /** Largest inbound text frame, in UTF-8 bytes; a larger one closes the link with 1009. */
  maxFrameBytes: number;
  /** Calls in flight through this link; more are refused with a JSON-RPC error at once. */
  maxInflight: number;
  /** Default deadline of a call, in milliseconds. */
  callTimeoutMs: number;
  /** Malformed frames tolerated within a minute before the link is closed with 1008. */
  maxBadFrames: number;
}

/** What a link asks of the gateway that owns it. */
export interface LinkHost {
  /** A `register` arrived: claim a name. Returns the final name and MCP URL, or an Error to refuse. */
  register(link: LinkSession, wanted: string): { name: string; mcpUrl: string } | Error;
  /** The server sent a notification that is not progress for a call (list changes, logs, …). */
  serverNotification(link: LinkSession, message: JsonRpcNotification): void;
  /**
   * The server sent a request (roots/list, sampling/createMessage, elicitation/create, …). `signal`
   * aborts when the server cancels it or the link closes.
   */
  serverRequest(
    link: LinkSession,
    request: JsonRpcRequest,
    signal: AbortSignal,
  ): Promise<JsonRpcResponse>;
  /** The link closed, for whatever reason. Called once. */
  closed(link: LinkSession, reason: string): void;
}

/** Options of {@link LinkSession.call}. */
export interface CallOptions {
  /** Deadline in milliseconds; the link's `callTimeoutMs` when omitted. */
  timeoutMs?: number;
  /** Aborting cancels the call: the server gets `notifications/cancelled` and the call resolves undefined. */
  signal?: AbortSignal;
  /** Receives `notifications/progress` for this call, with the caller's progress token restored. */
  onProgress?: (notification: JsonObject) => void;
}

interface Route {
  settle(response: JsonRpcResponse | undefined): void;
  onProgress?: (notification: JsonObject) => void;
}

/** Public facts of a session, for the sessions API. */
export interface LinkInfo {
  session_id: string;
  server_info: { name: string; description: string; protocol: string; requested_name: string };
  connected_at: string;
  last_activity: string;
  message_count: number;
  bytes_transferred: number;
  user: string;
  mcp_url: string;
  calls_in_flight: number;
}

function reasonText(reason: unknown): string {
  if (typeof reason === "string") return reason;
  if (reason instanceof Error) return reason.message;
  return "cancelled";
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** WebSocket close reasons are limited to 123 bytes. */
function closeReason(text: string): string {
  let reason = text;
  while (utf8Length(reason) > 123) reason = reason.slice(0, -1);
  return reason;
}

/**
 * One tunnel link. Construct it with the socket from `Deno.upgradeWebSocket`; it handles every frame from
 * then on, and never throws out of a socket event.
 *
 * @example
 * ```ts ignore
 * const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: 60 });
 * new LinkSession(socket, { identity, limits, host, version: "0.1.0" });
 * return response;
 * ```
 */
export class LinkSession {
  /** Session id minted by the gateway (what `register_ack` carries). */
  readonly id: string = crypto.randomUUID();
  /** The owner of the token that opened the link. */
  readonly owner: string;
  /** When the link was accepted (ms since epoch). */
  readonly connectedAt: number;
  /** Last inbound frame (ms since epoch); the reaper reads it. */
  lastInbound: number;
  /** Frames in both directions. */
  messageCount = 0;
  /** UTF-8 bytes of frames in both directions. */
  bytesTransferred = 0;
  /** Final name once registered. */
  name = "";
  /** Name the client asked for. */
  requestedName = "";
  /** Description the client gave. */
  description = "";
  /** `stdio` (A-style) or `mcp` (B-style), as the client said. */
  protocol = "";
  /** Where MCP clients reach this server. */
  mcpUrl = "";

  #socket: WebSocket;
  #limits: LinkLimits;
  #host: LinkHost;
  #version: string;
  #now: () => number;
  #state: "open" | "registered" | "closed" = "open";
  #calls = new CallTable<Route>();
  #serverRequests = new Map<string, AbortController>();
  #badFrames: number[] = [];
  #init: Promise<JsonRpcResponse> | undefined;
  #metrics: ServeMetrics | undefined;
  #socketClosed = Promise.withResolvers<void>();
  #closeTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    socket: WebSocket,
    options: {
      identity: Identity;
      limits: LinkLimits;
      host: LinkHost;
      version: string;
      now?: () => number;
      /** Counters of frames, bytes and errors. */
      metrics?: ServeMetrics;
    },
  ) {
    const { identity, limits, host, version, now = Date.now, metrics } = options;
    this.#metrics = metrics;
    this.#socket = socket;
    this.owner = identity.owner;
    this.#limits = limits;
    this.#host = host;
    this.#version = version;
    this.#now = now;
    this.connectedAt = now();
    this.lastInbound = this.connectedAt;
    socket.addEventListener("message", (event) => {
      try {
        this.#onMessage(event);
      } catch (error) {
        // A peer must never crash the gateway; a bug here costs this link only.
        log.error("Frame handling failed on session {session}: {error}", {
          session: this.id,
          error: String(error),
        });
        this.close(CloseCode.InternalError, "internal error");
      }
    });
    socket.addEventListener("close", (event) => {
      clearTimeout(this.#closeTimer);
      this.#socketClosed.resolve();
      this.#finish(`socket closed (${event.code}${event.reason ? ` ${event.reason}` : ""})`);
    });
    socket.addEventListener("error", () => {
      // The close event follows; nothing to add.
    });
  }

  /** True once registered and until closed. */
  get registered(): boolean {
    return this.#state === "registered";
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#state === "closed";
  }

  /** Calls in flight. */
  get inflight(): number {
    return this.#calls.size;
  }

  /** Facts for the sessions API. */
  info(): LinkInfo {
    return {
      session_id: this.id,
      server_info: {
        name: this.name,
        description: this.description,
        protocol: this.protocol,
        requested_name: this.requestedName,
      },
      connected_at: new Date(this.connectedAt).toISOString(),
      last_activity: new Date(this.lastInbound).toISOString(),
      message_count: this.messageCount,
      bytes_transferred: this.bytesTransferred,
      user: this.owner,
      mcp_url: this.mcpUrl,
      calls_in_flight: this.#calls.size,
    };
  }

  /**
   * Sends a request through the tunnel with a fresh tunnel id and resolves with the server's answer under the
   * caller's id. Never rejects: a closed link, a full link or a timeout resolve with a JSON-RPC error;
   * cancellation through `signal` resolves undefined.
   */
  call(request: JsonRpcRequest, options: CallOptions = {}): Promise<JsonRpcResponse | undefined> {
    const { timeoutMs = this.#limits.callTimeoutMs, signal, onProgress } = options;
    if (this.#state !== "registered") {
      return Promise.resolve(
        errorResponse(
          request.id,
          ErrorCode.TunnelUnavailable,
          `Server '${this.name}' is not connected`,
        ),
      );
    }
    if (this.#calls.size >= this.#limits.maxInflight) {
      return Promise.resolve(
        errorResponse(
          request.id,
          ErrorCode.InternalError,
          `Too many calls in flight to server '${this.name}' (limit ${this.#limits.maxInflight}); retry later`,
        ),
      );
    }
    if (signal?.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const onAbort = () => {
        if (this.#calls.take(entry.tunnelId) === undefined) return;
        route.settle(undefined);
        this.#sendCancel(entry.tunnelId, reasonText(signal?.reason));
      };
      const route: Route = {
        settle: (response) => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          resolve(response);
        },
      };
      if (onProgress !== undefined) route.onProgress = onProgress;
      const { entry, message } = this.#calls.add(request, route);
      const timer = setTimeout(() => {
        if (this.#calls.take(entry.tunnelId) === undefined) return;
        const seconds = timeoutMs / 1000;
        this.#metrics?.errors.inc("call_timeout");
        route.settle(
          errorResponse(
            request.id,
            ErrorCode.Timeout,
            `Call '${request.method}' to server '${this.name}' timed out after ${seconds} s`,
          ),
        );
        this.#sendCancel(entry.tunnelId, `timed out after ${seconds} s`);
      }, timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      if (!this.#send({ type: "request", sessionId: this.id, payload: message })) {
        this.#calls.take(entry.tunnelId);
        route.settle(
          errorResponse(
            request.id,
            ErrorCode.TunnelUnavailable,
            `Server '${this.name}' is not connected`,
          ),
        );
      }
    });
  }

  /** Sends a notification to the server. False if the link is not up. */
  notify(notification: JsonRpcNotification): boolean {
    if (this.#state !== "registered") return false;
    return this.#send({ type: "request", sessionId: this.id, payload: notification });
  }

  /**
   * The server's `initialize` result, learnt once through the tunnel and held. A failure is not held: the
   * next caller asks again.
   */
  initializeResult(): Promise<JsonRpcResponse> {
    if (this.#init === undefined) {
      const init = this.call({
        jsonrpc: "2.0",
        id: 0,
        method: "initialize",
        params: {
          protocolVersion: GATEWAY_PROTOCOL_VERSION,
          capabilities: {},
          clientInfo: { name: "mcp-rproxy-serve", version: this.#version },
        },
      }).then((response) => {
        const answer = response ??
          errorResponse(0, ErrorCode.TunnelUnavailable, "Initialize was cancelled");
        if (answer.error !== undefined || !isObject(answer.result)) {
          if (this.#init === init) this.#init = undefined;
          log.warning("Server {name} on session {session} did not initialize: {error}", {
            name: this.name,
            session: this.id,
            error: answer.error?.message ?? "no result",
          });
          return answer.error !== undefined
            ? answer
            : errorResponse(0, ErrorCode.InternalError, "Initialize returned no result object");
        }
        this.notify({ jsonrpc: "2.0", method: "notifications/initialized" });
        return answer;
      });
      this.#init = init;
    }
    return this.#init;
  }

  /**
   * Resolves when the socket has closed (close handshake done or connection dropped), or after `ms`,
   * whichever comes first.
   */
  async waitClosed(ms: number): Promise<void> {
    await deadline(this.#socketClosed.promise, ms, "close handshake").catch(() => {});
  }

  /** Closes the link with a code and reason; pending calls fail with JSON-RPC errors at once. */
  close(code: number, reason: string): void {
    if (this.#state === "closed") return;
    const socket = this.#socket;
    clearTimeout(this.#closeTimer);
    // Deno drops the connection without the close frame (the peer sees code 0) when close() runs while
    // received frames are still queued; closing from a fresh task delivers the code reliably.
    this.#closeTimer = setTimeout(() => {
      try {
        socket.close(code, closeReason(reason));
      } catch {
        // Already closing or never opened.
      }
    }, 0);
    this.#finish(reason);
  }

  #finish(reason: string): void {
    if (this.#state === "closed") return;
    const wasRegistered = this.#state === "registered";
    this.#state = "closed";
    for (const entry of this.#calls.drain()) {
      entry.route.settle(
        errorResponse(
          entry.originalId,
          ErrorCode.TunnelUnavailable,
          `Tunnel to server '${this.name}' closed before it answered: ${reason}`,
        ),
      );
    }
    for (const controller of this.#serverRequests.values()) controller.abort("tunnel closed");
    this.#serverRequests.clear();
    if (wasRegistered) {
      log.info("Session {session} of {owner} ({name}) closed: {reason}", {
        session: this.id,
        owner: this.owner,
        name: this.name,
        reason,
      });
    }
    this.#host.closed(this, reason);
  }

  #send(frame: Frame): boolean {
    if (this.#socket.readyState !== WebSocket.OPEN) return false;
    try {
      const text = JSON.stringify(frame);
      this.#socket.send(text);
      const bytes = utf8Length(text);
      this.messageCount++;
      this.bytesTransferred += bytes;
      this.#metrics?.framesOut.inc();
      this.#metrics?.bytesOut.inc(bytes);
      return true;
    } catch (error) {
      log.warning("Sending to session {session} failed: {error}", {
        session: this.id,
        error: String(error),
      });
      return false;
    }
  }

  #sendCancel(tunnelId: JsonRpcId, reason: string): void {
    this.notify({
      jsonrpc: "2.0",
      method: "notifications/cancelled",
      params: { requestId: tunnelId, reason },
    });
  }

  #badFrame(message: string): void {
    const now = this.#now();
    this.#badFrames = this.#badFrames.filter((t) => now - t < BAD_FRAME_WINDOW_MS);
    this.#badFrames.push(now);
    this.#metrics?.errors.inc("protocol");
    log.debug("Malformed frame on session {session}: {message}", { session: this.id, message });
    this.#send({ type: "error", sessionId: this.id, message });
    if (this.#badFrames.length > this.#limits.maxBadFrames) {
      log.warning("Closing session {session} of {owner}: too many malformed frames", {
        session: this.id,
        owner: this.owner,
      });
      this.close(
        CloseCode.Policy,
        `too many malformed frames (more than ${this.#limits.maxBadFrames} a minute)`,
      );
    }
  }

  #onMessage(event: MessageEvent): void {
    if (this.#state === "closed") return;
    this.lastInbound = this.#now();
    this.messageCount++;
    this.#metrics?.framesIn.inc();
    if (typeof event.data !== "string") {
      this.#badFrame("Binary frames are not supported; send JSON text frames");
      return;
    }
    const text = event.data;
    const bytes = text.length * 3 <= this.#limits.maxFrameBytes ? text.length : utf8Length(text);
    this.bytesTransferred += bytes;
    this.#metrics?.bytesIn.inc(bytes);
    if (bytes > this.#limits.maxFrameBytes) {
      log.warning("Closing session {session}: frame of {bytes} bytes over the limit {limit}", {
        session: this.id,
        bytes,
        limit: this.#limits.maxFrameBytes,
      });
      this.close(
        CloseCode.TooBig,
        `frame of ${bytes} bytes exceeds the limit of ${this.#limits.maxFrameBytes}`,
      );
      return;
    }
    const frame = parseFrame(text);
    if (frame instanceof Error) {
      this.#badFrame(frame.message);
      return;
    }
    switch (frame.type) {
      case "register":
        this.#onRegister(frame);
        return;
      case "heartbeat":
        // Exactly one acknowledgement per client heartbeat; the gateway never starts one.
        this.#send({ type: "heartbeat", sessionId: this.id, timestamp: new Date().toISOString() });
        return;
      case "unregister":
        this.close(CloseCode.Normal, "unregistered");
        return;
      case "response":
      case "notification":
      case "request":
        if (this.#state !== "registered") {
          this.#badFrame(`Frame '${frame.type}' before 'register'; register first`);
          return;
        }
        this.#onPayload(frame);
        return;
      default:
        this.#badFrame(`Unknown frame type ${JSON.stringify(frame.type).slice(0, 64)}`);
    }
  }

  #onRegister(frame: Frame): void {
    if (this.#state !== "open") {
      this.close(CloseCode.Policy, "register sent twice on one connection");
      return;
    }
    const refuse = (message: string) => {
      this.#send({ type: "error", sessionId: this.id, message });
      this.close(CloseCode.Policy, message);
    };
    const server = frame.server;
    if (!isObject(server) || typeof server.name !== "string") {
      refuse("Register needs 'server' with a string 'name'");
      return;
    }
    let wanted: string;
    try {
      wanted = normalizeServerName(server.name);
    } catch (error) {
      refuse((error as Error).message);
      return;
    }
    const claimed = this.#host.register(this, wanted);
    if (claimed instanceof Error) {
      refuse(claimed.message);
      return;
    }
    this.requestedName = server.name;
    this.name = claimed.name;
    this.mcpUrl = claimed.mcpUrl;
    this.description = typeof server.description === "string"
      ? server.description.slice(0, MAX_DESCRIPTION_LENGTH)
      : "";
    this.protocol = typeof server.protocol === "string" ? server.protocol.slice(0, 32) : "";
    this.#state = "registered";
    this.#send({
      type: "register_ack",
      sessionId: this.id,
      status: "success",
      name: this.name,
      mcpUrl: this.mcpUrl,
      extensions: GATEWAY_EXTENSIONS,
      maxFrameBytes: this.#limits.maxFrameBytes,
    });
    log.info("Session {session} of {owner} registered {name} at {url}", {
      session: this.id,
      owner: this.owner,
      name: this.name,
      url: this.mcpUrl,
      ...(this.name !== wanted ? { requested: wanted } : {}),
    });
    void this.initializeResult();
  }

  #onPayload(frame: Frame): void {
    const payload = frame.payload;
    const kind = classify(payload);
    const message = payload as JsonObject;
    if (frame.type === "response") {
      if (kind !== "response") {
        this.#badFrame("Frame 'response' needs a JSON-RPC response as 'payload'");
        return;
      }
      const entry = this.#calls.take(message.id);
      if (entry === undefined) {
        log.warning("Dropped a response for unknown id {id} on session {session}", {
          id: JSON.stringify(message.id ?? null).slice(0, 64),
          session: this.id,
        });
        return;
      }
      entry.route.settle(restoreResponse(message as JsonRpcResponse, entry.originalId));
      return;
    }
    if (frame.type === "request" && kind === "request") {
      this.#onServerRequest(message as JsonRpcRequest);
      return;
    }
    // A-style clients label everything loosely: take any notification, whatever the frame type says.
    if (kind === "notification") {
      this.#onServerNotification(message as JsonRpcNotification);
      return;
    }
    if (kind === "response") {
      // A response labelled 'request' (or 'notification'): route it anyway.
      this.#onPayload({ ...frame, type: "response" });
      return;
    }
    this.#badFrame(`Frame '${frame.type}' carries no valid JSON-RPC message in 'payload'`);
  }

  #onServerNotification(message: JsonRpcNotification): void {
    const params = isObject(message.params) ? message.params : {};
    if (message.method === "notifications/progress") {
      const entry = this.#calls.byProgressToken(params.progressToken);
      if (entry !== undefined && entry.progressToken !== undefined) {
        entry.route.onProgress?.(restoreProgress(message, entry.progressToken));
      } else {
        log.debug("Dropped progress for unknown token on session {session}", { session: this.id });
      }
      return;
    }
    if (message.method === "notifications/cancelled") {
      const requestId = params.requestId;
      if (typeof requestId === "string" || typeof requestId === "number") {
        this.#serverRequests.get(idKey(requestId))?.abort(reasonText(params.reason));
      }
      return;
    }
    this.#host.serverNotification(this, message);
  }

  #onServerRequest(request: JsonRpcRequest): void {
    if (request.method === "ping") {
      this.#send({
        type: "response",
        sessionId: this.id,
        payload: { jsonrpc: "2.0", id: request.id, result: {} },
      });
      return;
    }
    const key = idKey(request.id);
    this.#serverRequests.get(key)?.abort("superseded by a request with the same id");
    const controller = new AbortController();
    this.#serverRequests.set(key, controller);
    this.#host.serverRequest(this, request, controller.signal).then(
      (response) => response,
      (error: unknown) =>
        errorResponse(request.id, ErrorCode.InternalError, `Gateway error: ${String(error)}`),
    ).then((response) => {
      if (this.#serverRequests.get(key) === controller) this.#serverRequests.delete(key);
      if (controller.signal.aborted || this.#state !== "registered") return;
      this.#send({
        type: "response",
        sessionId: this.id,
        payload: { ...response, id: request.id },
      });
    });
  }
}
