// One tunnel session: a WebSocket from `mcp-rproxy connect` (or an A/B-style client), its registration, its
// calls in flight with rewritten ids, its held `initialize` result, its liveness, and (with the `resume`
// extension) the sequence numbers and replay buffer that let it outlive a dropped link (docs/resume.md).

import { isObject } from "../util/json_object.ts";
import { Deadlines } from "../util/deadlines.ts";
import { deadline } from "../util/delay.ts";
import {
  CloseCode,
  Extension,
  type Frame,
  parseFrame,
  PAYLOAD_TEXT,
  utf8Length,
} from "../protocol/frames.ts";
import { isOneLine } from "../protocol/json_scan.ts";
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
  scanMessage,
} from "../protocol/jsonrpc.ts";
import { logger } from "../util/log.ts";
import type { ServeMetrics } from "./metrics.ts";
import {
  ReceiveWindow,
  ReplayBuffer,
  type ReplayLimits,
  sequencedFrame,
} from "../protocol/sequenced_channel.ts";
import {
  CallTable,
  RawResponse,
  restoreProgress,
  restoreResponse,
  restoreResponseText,
} from "./call_table.ts";
import {
  newResumeToken,
  parseResumeRequest,
  type ResumeError,
  type ResumeRequest,
  sameSecret,
} from "./resume_credentials.ts";
import { normalizeServerName } from "./tunnel_registry.ts";
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

/** Data frames received before a standalone `ack` goes back (acks also ride on every frame we send). */
const ACK_EVERY = 32;
/** Bounds of a client's announced `keepaliveMs`; the dead-link deadline is three times it. */
const MIN_KEEPALIVE_MS = 50;
const MAX_KEEPALIVE_MS = 3_600_000;

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
  /** The session ended, for whatever reason. Called once. */
  closed(link: LinkSession, reason: string): void;
  /**
   * A `register` asked to resume the session `request.sessionId`: re-attach it to this link's socket
   * (`"resumed"`: this link is done) or say why not (this link then registers afresh).
   */
  resume(link: LinkSession, request: ResumeRequest): "resumed" | ResumeError;
  /** The session lost its link and waits to be resumed. */
  detached?(link: LinkSession, reason: string): void;
  /** The client announced its keepalive: the session's dead-link deadline changed. */
  livenessChanged?(link: LinkSession): void;
}

/** The `resume` extension's settings; absent = extension off. */
export interface ResumeSettings {
  /** How long a session whose link dropped waits to be resumed, in milliseconds. */
  windowMs: number;
  /** Bounds of the replay buffer of each session. */
  limits: ReplayLimits;
}

/** Options of {@link LinkSession.call}. */
export interface CallOptions {
  /** Deadline in milliseconds; the link's `callTimeoutMs` when omitted. */
  timeoutMs?: number;
  /** Aborting cancels the call: the server gets `notifications/cancelled` and the call resolves undefined. */
  signal?: AbortSignal;
  /** Receives `notifications/progress` for this call, with the caller's progress token restored. */
  onProgress?: (notification: JsonObject) => void;
  /**
   * Resolve with a {@link RawResponse} (the answer's JSON text, caller's id in place) when the answer
   * came in a long frame, instead of parsing it: for callers that only write the answer out.
   */
  raw?: boolean;
}

interface Route {
  settle(response: JsonRpcResponse | RawResponse | undefined): void;
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
  /** Present (true) while the session waits, without a link, to be resumed. */
  detached?: boolean;
}

function reasonText(reason: unknown): string {
  if (typeof reason === "string") return reason;
  if (reason instanceof Error) return reason.message;
  return "cancelled";
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
  /**
   * Silence after which the link counts as dead, in milliseconds: three keepalive intervals once the
   * client announced its `keepaliveMs`, else undefined (the gateway's `heartbeatTimeoutMs` applies).
   */
  deadlineMs: number | undefined;
  /** Why the session can no longer be resumed, once it ended while it still could have been. */
  endedAs: ResumeError | undefined;
  /** Times this session was re-attached to a new link. */
  resumes = 0;

  #socket: WebSocket | undefined;
  /** Removes the listeners of the current socket. */
  #binding: AbortController | undefined;
  #limits: LinkLimits;
  #host: LinkHost;
  #version: string;
  #now: () => number;
  #state: "open" | "registered" | "detached" | "closed" = "open";
  #calls = new CallTable<Route>();
  /** Call timeouts: one timer for all calls in flight, not one per call. */
  #deadlines = new Deadlines<number>();
  #serverRequests = new Map<string, AbortController>();
  #badFrames: number[] = [];
  #init: Promise<JsonRpcResponse> | undefined;
  #metrics: ServeMetrics | undefined;
  #socketClosed = Promise.withResolvers<void>();
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  #resume: ResumeSettings | undefined;
  /** The resume secret issued at registration (never logged). */
  #token: string | undefined;
  /** Data frames sent and not acknowledged; undefined once the client showed it does not resume. */
  #out: ReplayBuffer | undefined;
  #in = new ReceiveWindow();
  /** True once the client used `seq`/`ack`; false once it sent a data frame without `seq`. */
  #resumable: boolean | undefined;
  #windowTimer: ReturnType<typeof setTimeout> | undefined;
  #detachedAt = 0;

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
      /** Turns the `resume` extension on. */
      resume?: ResumeSettings;
    },
  ) {
    const { identity, limits, host, version, now = Date.now, metrics, resume } = options;
    this.#metrics = metrics;
    this.owner = identity.owner;
    this.#limits = limits;
    this.#host = host;
    this.#version = version;
    this.#now = now;
    this.#resume = resume;
    if (resume !== undefined) this.#out = new ReplayBuffer(resume.limits);
    this.connectedAt = now();
    this.lastInbound = this.connectedAt;
    this.#bind(socket);
  }

  /** True once registered and until closed, detached included. */
  get registered(): boolean {
    return this.#state === "registered" || this.#state === "detached";
  }

  /** True while the session waits, without a link, to be resumed. */
  get detached(): boolean {
    return this.#state === "detached";
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#state === "closed";
  }

  /** Calls in flight. */
  get inflight(): number {
    return this.#calls.size;
  }

  /** True if `token` is this session's resume secret (constant time). */
  matchesToken(token: string): boolean {
    return this.#token !== undefined && sameSecret(this.#token, token);
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
      ...(this.#state === "detached" ? { detached: true } : {}),
    };
  }

  /**
   * Sends a request through the tunnel with a fresh tunnel id and resolves with the server's answer under the
   * caller's id. Never rejects: a closed link, a full link or a timeout resolve with a JSON-RPC error;
   * cancellation through `signal` resolves undefined. While the session is detached the request waits in
   * the replay buffer and goes out when the link is resumed.
   */
  call(
    request: JsonRpcRequest,
    options?: CallOptions & { raw?: false },
  ): Promise<JsonRpcResponse | undefined>;
  call(
    request: JsonRpcRequest,
    options: CallOptions & { raw: true },
  ): Promise<JsonRpcResponse | RawResponse | undefined>;
  call(
    request: JsonRpcRequest,
    options: CallOptions = {},
  ): Promise<JsonRpcResponse | RawResponse | undefined> {
    const { timeoutMs = this.#limits.callTimeoutMs, signal, onProgress, raw = false } = options;
    if (!this.registered) {
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
          this.#deadlines.delete(entry.tunnelId);
          signal?.removeEventListener("abort", onAbort);
          resolve(response instanceof RawResponse && !raw ? response.parse() : response);
        },
      };
      if (onProgress !== undefined) route.onProgress = onProgress;
      const { entry, message } = this.#calls.add(request, route);
      this.#deadlines.add(entry.tunnelId, timeoutMs, () => {
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
      });
      signal?.addEventListener("abort", onAbort, { once: true });
      if (!this.#sendData("request", message) && this.#calls.take(entry.tunnelId) !== undefined) {
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

  /** Sends a notification to the server (buffered while detached). False if it cannot go out. */
  notify(notification: JsonRpcNotification): boolean {
    if (!this.registered) return false;
    return this.#sendData("request", notification);
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
   * whichever comes first. At once for a detached session.
   */
  async waitClosed(ms: number): Promise<void> {
    if (this.#socket === undefined) return;
    await deadline(this.#socketClosed.promise, ms, "close handshake").catch(() => {});
  }

  /**
   * Closes the session with a code and reason; pending calls fail with JSON-RPC errors at once. Not
   * resumable afterwards (eviction, shutdown).
   */
  close(code: number, reason: string): void {
    if (this.#state === "closed") return;
    const socket = this.#socket;
    clearTimeout(this.#closeTimer);
    if (socket !== undefined) {
      // Deno drops the connection without the close frame (the peer sees code 0) when close() runs while
      // received frames are still queued; closing from a fresh task delivers the code reliably.
      this.#closeTimer = setTimeout(() => closeSocket(socket, code, reason), 0);
    }
    this.#finish(reason);
  }

  /**
   * The link is dead (silent past its deadline, or the socket closed): with the `resume` extension in use
   * the session detaches and waits for its client, else it closes like {@link close}.
   */
  linkLost(reason: string): void {
    this.#lose(reason, true);
  }

  #lose(reason: string, socketOpen: boolean): void {
    if (this.#state === "closed") return;
    if (this.#state === "registered" && this.#canResume()) {
      this.#detach(reason, socketOpen);
      return;
    }
    if (this.#state === "registered" && this.#resumable === true) this.endedAs = "overflowed";
    if (socketOpen) this.close(CloseCode.GoingAway, reason);
    else this.#finish(reason);
  }

  /**
   * Re-attaches this session to the socket of `from`, a fresh link whose `register` asked to resume it,
   * and replays what the client has not acknowledged. Returns `"resumed"`, or why not: `wrong-owner` and
   * `bad-token` leave this session untouched; `overflowed` and `bad-ack` end it (it can never be resumed
   * without a gap).
   */
  adopt(from: LinkSession, request: ResumeRequest): "resumed" | ResumeError {
    if (this.#state === "closed" || this.#state === "open") return "unknown-session";
    if (from.owner !== this.owner) return "wrong-owner";
    if (!this.matchesToken(request.token)) return "bad-token";
    const out = this.#out;
    if (out === undefined || out.overflowed || request.overflowed) {
      this.endedAs = "overflowed";
      const whose = request.overflowed ? "the client's" : "the gateway's";
      this.#end(`${whose} replay buffer overflowed: resuming would lose messages`);
      return "overflowed";
    }
    const replay = out.replayAfter(request.ack);
    if (replay === undefined) {
      this.endedAs = "bad-ack";
      this.#end(
        `the client acknowledged ${request.ack}, outside what was sent and kept (${out.acked}..${out.lastSeq})`,
      );
      return "bad-ack";
    }
    const socket = from.#handOver();
    const previous = this.#socket;
    if (previous !== undefined) {
      // Half-open on our side: the client gave up on that socket first.
      this.#unbind();
      closeSocket(previous, CloseCode.GoingAway, "superseded by a resumed link");
    }
    clearTimeout(this.#windowTimer);
    this.#windowTimer = undefined;
    const wasDetached = this.#state === "detached";
    this.#bind(socket);
    this.#state = "registered";
    this.#resumable = true;
    this.resumes++;
    this.lastInbound = this.#now();
    this.deadlineMs = undefined;
    this.#sendRegisterAck({ resumed: true, ack: this.#in.last });
    this.#in.acked();
    for (const frame of replay) this.#sendText(frame.text);
    log.info(
      "Session {session} of {owner} ({name}) resumed after {ms} ms: replayed {count} frame(s), {calls} call(s) in flight",
      {
        session: this.id,
        owner: this.owner,
        name: this.name,
        ms: wasDetached ? this.#now() - this.#detachedAt : 0,
        count: replay.length,
        calls: this.#calls.size,
      },
    );
    return "resumed";
  }

  #canResume(): boolean {
    return this.#resume !== undefined && this.#resumable === true && this.#out !== undefined &&
      !this.#out.overflowed;
  }

  /** `register_ack` for this session: where clients reach it, what it supports, its resume credential. */
  #sendRegisterAck(extra: { resumed?: boolean; ack?: number; resumeError?: string }): void {
    this.#send({
      type: "register_ack",
      sessionId: this.id,
      status: "success",
      name: this.name,
      mcpUrl: this.mcpUrl,
      extensions: this.#extensions(),
      maxFrameBytes: this.#limits.maxFrameBytes,
      ...(this.#resume === undefined
        ? {}
        : { resume: { token: this.#token, windowMs: this.#resume.windowMs } }),
      ...extra,
    });
  }

  #extensions(): string[] {
    return this.#resume === undefined
      ? GATEWAY_EXTENSIONS
      : [...GATEWAY_EXTENSIONS, Extension.Resume];
  }

  #bind(socket: WebSocket): void {
    const binding = new AbortController();
    const closed = Promise.withResolvers<void>();
    this.#socket = socket;
    this.#binding = binding;
    this.#socketClosed = closed;
    const { signal } = binding;
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
    }, { signal });
    socket.addEventListener("close", (event) => {
      clearTimeout(this.#closeTimer);
      closed.resolve();
      this.#lose(`socket closed (${event.code}${event.reason ? ` ${event.reason}` : ""})`, false);
    }, { signal });
    socket.addEventListener("error", () => {
      // The close event follows; nothing to add.
    }, { signal });
  }

  /** Stops listening to the current socket (it is being replaced or dropped). */
  #unbind(): WebSocket | undefined {
    const socket = this.#socket;
    this.#binding?.abort();
    this.#binding = undefined;
    this.#socket = undefined;
    this.#socketClosed.resolve();
    return socket;
  }

  /** Gives this link's socket to the session it resumed; this link ends quietly. */
  #handOver(): WebSocket {
    const socket = this.#unbind()!;
    this.#state = "closed";
    this.#host.closed(this, "resumed another session");
    return socket;
  }

  #detach(reason: string, socketOpen: boolean): void {
    const socket = this.#unbind();
    if (socket !== undefined && socketOpen) {
      // The peer may never hear of it (half-open); the session no longer listens to this socket anyway.
      closeSocket(socket, CloseCode.GoingAway, "link lost");
    }
    this.#state = "detached";
    this.#detachedAt = this.#now();
    const windowMs = this.#resume!.windowMs;
    this.#windowTimer = setTimeout(() => {
      this.#windowTimer = undefined;
      this.endedAs = "expired";
      log.warning(
        "Session {session} of {owner} ({name}) was not resumed within {seconds} s: failing its {calls} call(s) in flight",
        {
          session: this.id,
          owner: this.owner,
          name: this.name,
          seconds: windowMs / 1000,
          calls: this.#calls.size,
        },
      );
      this.#end(`not resumed within ${windowMs / 1000} s`);
    }, windowMs);
    log.info(
      "Session {session} of {owner} ({name}) lost its link ({reason}); waiting up to {seconds} s for it to resume, {calls} call(s) in flight",
      {
        session: this.id,
        owner: this.owner,
        name: this.name,
        reason,
        seconds: windowMs / 1000,
        calls: this.#calls.size,
      },
    );
    this.#host.detached?.(this, reason);
  }

  /** Ends the session for good (no socket to tell, or the socket is told by the caller). */
  #end(reason: string): void {
    if (this.#socket !== undefined) this.close(CloseCode.GoingAway, reason);
    else this.#finish(reason);
  }

  #finish(reason: string): void {
    if (this.#state === "closed") return;
    const wasRegistered = this.registered;
    this.#state = "closed";
    this.#deadlines.clear();
    clearTimeout(this.#windowTimer);
    this.#windowTimer = undefined;
    this.#out = undefined;
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

  /** Sends a control frame (never sequenced). */
  #send(frame: Frame): boolean {
    return this.#sendText(JSON.stringify(frame));
  }

  #sendText(text: string): boolean {
    const socket = this.#socket;
    if (socket === undefined || socket.readyState !== WebSocket.OPEN) return false;
    try {
      socket.send(text);
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

  /**
   * Sends a data frame: with `seq` and `ack`, kept for replay, unless the client showed it does not
   * resume. While detached the frame is only kept. False when it cannot reach the client.
   */
  #sendData(type: "request" | "response", payload: JsonObject): boolean {
    const out = this.#out;
    if (out === undefined || this.#resumable === false) {
      return this.#send({ type, sessionId: this.id, payload });
    }
    const seq = out.nextSeq();
    const text = sequencedFrame({
      type,
      sessionId: this.id,
      seq,
      ack: this.#in.last,
      payloadText: JSON.stringify(payload),
    });
    this.#in.acked();
    const wasOverflowed = out.overflowed;
    if (!out.keep({ seq, text, size: text.length }) && !wasOverflowed) {
      log.warning(
        "Session {session} of {owner} ({name}): the replay buffer overflowed; it cannot be resumed after a link drop",
        { session: this.id, owner: this.owner, name: this.name },
      );
      if (this.#state === "detached") {
        this.endedAs = "overflowed";
        this.#end("replay buffer overflowed while the link was down");
        return false;
      }
    }
    if (this.#state === "detached") return true;
    return this.#sendText(text) || this.#canResume();
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
    if (this.#state === "closed" || this.#state === "detached") return;
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
    // A long frame's payload stays text: an answer of many MiB goes to its MCP client without being parsed
    // and serialized again.
    const frame = parseFrame(text, { payloadAsText: true });
    if (frame instanceof Error) {
      this.#badFrame(frame.message);
      return;
    }
    if (typeof frame.ack === "number" && this.#state === "registered" && this.#out !== undefined) {
      this.#resumable ??= true;
      if (this.#resumable) this.#out.ack(frame.ack);
    }
    switch (frame.type) {
      case "register":
        this.#onRegister(frame);
        return;
      case "heartbeat":
        this.#onHeartbeat(frame);
        return;
      case "ack":
        return; // taken above
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
        if (!this.#inOrder(frame)) return;
        this.#onPayload(frame);
        if (this.#resumable === true && this.#in.unacked >= ACK_EVERY) {
          this.#send({ type: "ack", sessionId: this.id, ack: this.#in.last });
          this.#in.acked();
        }
        return;
      default:
        this.#badFrame(`Unknown frame type ${JSON.stringify(frame.type).slice(0, 64)}`);
    }
  }

  /** Checks a data frame's `seq`: false for a replayed duplicate (dropped) or a gap (the link is dropped). */
  #inOrder(frame: Frame): boolean {
    if (this.#out === undefined && this.#resumable !== true) return true;
    if (typeof frame.seq !== "number") {
      if (this.#resumable === undefined) {
        // A client without the extension: stop numbering and keeping frames for it.
        this.#resumable = false;
        this.#out = undefined;
      }
      return true;
    }
    this.#resumable ??= true;
    if (!this.#resumable) return true;
    const acceptance = this.#in.accept(frame.seq);
    if (acceptance === "new") return true;
    if (acceptance === "gap") {
      log.warning(
        "Session {session}: frame {seq} arrived after {last}; a frame is missing, dropping the link so the client resumes",
        { session: this.id, seq: frame.seq, last: this.#in.last },
      );
      this.linkLost("sequence gap");
    }
    return false;
  }

  #onHeartbeat(frame: Frame): void {
    const keepaliveMs = frame.keepaliveMs;
    if (typeof keepaliveMs === "number" && Number.isFinite(keepaliveMs) && keepaliveMs > 0) {
      const clamped = Math.min(Math.max(keepaliveMs, MIN_KEEPALIVE_MS), MAX_KEEPALIVE_MS);
      this.deadlineMs = 3 * clamped;
      this.#host.livenessChanged?.(this);
    }
    // Exactly one acknowledgement per client heartbeat; the gateway never starts one.
    const withAck = this.#resumable === true && this.#state === "registered";
    this.#send({
      type: "heartbeat",
      sessionId: this.id,
      timestamp: new Date().toISOString(),
      ...(withAck ? { ack: this.#in.last } : {}),
    });
    if (withAck) this.#in.acked();
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
    let resumeError: ResumeError | undefined;
    const request = this.#resume === undefined ? undefined : parseResumeRequest(frame.resume);
    if (request !== undefined) {
      const outcome = this.#host.resume(this, request);
      if (outcome === "resumed") return;
      if (outcome === "evicted") {
        // An evicted session's client may not register again under its credential: say so twice (the
        // answer and the close code), so that it exits even if one of them is lost.
        this.#send({
          type: "register_ack",
          sessionId: request.sessionId,
          status: "evicted",
          resumed: false,
          resumeError: outcome,
        });
        this.close(CloseCode.Evicted, "session was evicted");
        return;
      }
      resumeError = outcome;
      log.warning(
        "Could not resume session {resumeSession} for {owner} ({resumeError}); registering afresh",
        { resumeSession: request.sessionId, owner: this.owner, resumeError },
      );
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
    if (this.#resume !== undefined) this.#token = newResumeToken();
    this.#sendRegisterAck(resumeError === undefined ? {} : { resumed: false, resumeError });
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
    const payloadText = frame[PAYLOAD_TEXT];
    if (payloadText !== undefined) {
      if (this.#onLongResponse(payloadText)) return;
      frame = { ...frame, payload: JSON.parse(payloadText) }; // valid JSON: the frame was checked whole
    }
    const payload = frame.payload;
    const kind = classify(payload);
    const message = payload as JsonObject;
    if (frame.type === "response") {
      if (kind !== "response") {
        this.#badFrame("Frame 'response' needs a JSON-RPC response as 'payload'");
        return;
      }
      const entry = this.#calls.take(message.id);
      if (entry === undefined) return this.#unknownResponse(message.id);
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

  /**
   * Settles a call with a response that came as text in a long frame, with the caller's id put in, without
   * parsing it. False when the text is not a single-line response (the caller then parses it).
   */
  #onLongResponse(text: string): boolean {
    if (!isOneLine(text)) return false; // not writable as one SSE data line
    const scanned = scanMessage(text);
    if (typeof scanned !== "object" || scanned.facts.kind !== "response") return false;
    const entry = this.#calls.take(scanned.facts.id);
    if (entry === undefined) this.#unknownResponse(scanned.facts.id);
    else entry.route.settle(restoreResponseText(text, scanned.spans.get("id")!, entry.originalId));
    return true;
  }

  #unknownResponse(id: unknown): void {
    log.warning("Dropped a response for unknown id {id} on session {session}", {
      id: JSON.stringify(id ?? null).slice(0, 64),
      session: this.id,
    });
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
      this.#sendData("response", { jsonrpc: "2.0", id: request.id, result: {} });
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
      if (controller.signal.aborted || !this.registered) return;
      this.#sendData("response", { ...response, id: request.id });
    });
  }
}

function closeSocket(socket: WebSocket, code: number, reason: string): void {
  try {
    socket.close(code, closeReason(reason));
  } catch {
    // Already closing or never opened.
  }
}
