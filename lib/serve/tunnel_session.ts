// serve's side of one registered server: its name and owner, the link it is attached to (or none, while it
// waits to be resumed), its calls, its held `initialize` result, and (with the `resume` extension) the
// sequenced channel that lets it outlive a dropped link (docs/resume.md). Nothing outside writes its state.

import { logger } from "../util/log.ts";
import { isObject } from "../util/json_object.ts";
import {
  CloseCode,
  encodeAck,
  encodeClose,
  encodeDataFrame,
  type Frame,
} from "../protocol/frames.ts";
import {
  ErrorCode,
  errorResponse,
  type JsonObject,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from "../protocol/jsonrpc.ts";
import { LATEST_PROTOCOL_VERSION } from "../protocol/mcp_versions.ts";
import { encodeRegisterAck, type ResumeRequest } from "../protocol/registration.ts";
import { type ReplayLimits, SequencedChannel } from "../protocol/sequenced_channel.ts";
import type { RawResponse } from "./call_table.ts";
import type { ServeMetrics } from "./metrics.ts";
import { newResumeToken, type ResumeError, sameSecret } from "./resume_credentials.ts";
import {
  type CallLimits,
  type CallOptions,
  type ServerMessageSink,
  TunnelCalls,
} from "./tunnel_calls.ts";
import type { LinkedSession, LinkLoss, TunnelLink } from "./tunnel_link.ts";

const log = logger("serve", "session");

/** The `resume` extension's settings; absent = extension off. */
export interface ResumeSettings {
  /** How long a session whose link dropped waits to be resumed, in milliseconds. */
  windowMs: number;
  /** Bounds of the replay buffer of each session. */
  limits: ReplayLimits;
}

/** How a session ended, as a kind to switch on and a reason for people. */
export interface SessionEnd {
  kind:
    /** The client said goodbye (`unregister`, or a normal close of its link). */
    | "unregistered"
    /** An owner or operator removed it. */
    | "evicted"
    /** A newer registration of the same server took over. */
    | "superseded"
    /** The gateway is shutting down. */
    | "shutdown"
    /** Its link closed or died and the session could not wait to be resumed. */
    | "link-lost"
    /** Its link went silent past its deadline and the session could not wait to be resumed. */
    | "dead-link"
    /** It waited to be resumed for the whole window. */
    | "expired"
    /** A replay buffer overflowed: it can never be resumed without a gap. */
    | "overflowed"
    /** A resume acknowledged frames that were never sent or are no longer kept. */
    | "bad-ack";
  reason: string;
}

/** What a session tells the gateway that holds it. */
export interface SessionHost extends ServerMessageSink {
  /** The session ended, for whatever reason. Called once. */
  sessionClosed(session: TunnelSession, end: SessionEnd): void;
  /** The session lost its link and waits to be resumed. */
  sessionDetached?(session: TunnelSession, loss: LinkLoss): void;
}

/** Public facts of a session, for the sessions API. */
export interface SessionInfo {
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

/** Options of {@link TunnelSession}. */
export interface TunnelSessionOptions {
  owner: string;
  /** The final name, after collisions were resolved. */
  name: string;
  requestedName: string;
  description: string;
  protocol: string;
  mcpUrl: string;
  /** The link's channel for this session ("" without channels). */
  channel?: string;
  limits: CallLimits & { maxFrameBytes: number };
  host: SessionHost;
  /** Extensions announced in `register_ack`. */
  extensions: readonly string[];
  /** Turns the `resume` extension on. */
  resume?: ResumeSettings;
  /** Version of this gateway, for the `clientInfo` of its `initialize`. */
  version: string;
  now?: () => number;
  metrics?: ServeMetrics;
}

/**
 * One registered server. Created when a `register` is accepted, attached to the link it came on; it may
 * move to another link when resumed, and it ends once.
 */
export class TunnelSession implements LinkedSession {
  /** Session id minted by the gateway (what `register_ack` carries). */
  readonly id: string = crypto.randomUUID();
  readonly owner: string;
  readonly name: string;
  readonly requestedName: string;
  readonly description: string;
  readonly protocol: string;
  readonly mcpUrl: string;
  /** When the session registered (ms since epoch). */
  readonly connectedAt: number;
  #options: TunnelSessionOptions;
  #now: () => number;
  #link: TunnelLink | undefined;
  #channel: string;
  #state: "registered" | "detached" | "closed" = "registered";
  #calls: TunnelCalls;
  #init: Promise<JsonRpcResponse> | undefined;
  #lastActivity: number;
  #messages = 0;
  #bytes = 0;
  #resumes = 0;
  /** The resume secret issued at registration (never logged). */
  #token: string | undefined;
  /** Data frames numbered and kept; undefined once the client showed it does not resume. */
  #sequence: SequencedChannel | undefined;
  /** True once the client used `seq`/`ack`; false once it sent a data frame without `seq`. */
  #resumable: boolean | undefined;
  #windowTimer: ReturnType<typeof setTimeout> | undefined;
  #detachedAt = 0;
  #end: SessionEnd | undefined;

  constructor(link: TunnelLink, options: TunnelSessionOptions) {
    this.#options = options;
    this.owner = options.owner;
    this.name = options.name;
    this.requestedName = options.requestedName;
    this.description = options.description;
    this.protocol = options.protocol;
    this.mcpUrl = options.mcpUrl;
    this.#now = options.now ?? Date.now;
    this.connectedAt = this.#now();
    this.#lastActivity = this.connectedAt;
    this.#channel = options.channel ?? "";
    this.#calls = new TunnelCalls(this, {
      limits: options.limits,
      sink: options.host,
      metrics: options.metrics,
    });
    if (options.resume !== undefined) {
      this.#token = newResumeToken();
      this.#sequence = new SequencedChannel(options.resume.limits);
    }
    this.#link = link;
    link.attach(this, this.#channel);
  }

  /** True once registered and until closed, detached included. */
  get registered(): boolean {
    return this.#state !== "closed";
  }

  /** True while the session waits, without a link, to be resumed. */
  get detached(): boolean {
    return this.#state === "detached";
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#state === "closed";
  }

  /** How the session ended, once it has. */
  get end(): SessionEnd | undefined {
    return this.#end;
  }

  /** The link the session is attached to; undefined while detached or closed. */
  get link(): TunnelLink | undefined {
    return this.#link;
  }

  /** Calls in flight. */
  get inflight(): number {
    return this.#calls.size;
  }

  /** Times this session was re-attached to a new link. */
  get resumes(): number {
    return this.#resumes;
  }

  /** True if `token` is this session's resume secret (constant time). */
  matchesToken(token: string): boolean {
    return this.#token !== undefined && sameSecret(this.#token, token);
  }

  /** Facts for the sessions API. */
  info(): SessionInfo {
    return {
      session_id: this.id,
      server_info: {
        name: this.name,
        description: this.description,
        protocol: this.protocol,
        requested_name: this.requestedName,
      },
      connected_at: new Date(this.connectedAt).toISOString(),
      last_activity: new Date(this.#lastActivity).toISOString(),
      message_count: this.#messages,
      bytes_transferred: this.#bytes,
      user: this.owner,
      mcp_url: this.mcpUrl,
      calls_in_flight: this.#calls.size,
      ...(this.#state === "detached" ? { detached: true } : {}),
    };
  }

  /** Sends `register_ack` for a fresh registration and asks the server for its `initialize` result. */
  acknowledge(extra: { resumed?: boolean; resumeError?: string } = {}): void {
    this.#sendRegisterAck(extra);
    void this.initializeResult();
  }

  /**
   * Sends a request through the tunnel and resolves with the server's answer under the caller's id; see
   * {@link TunnelCalls.call}. While the session is detached the request waits in the replay buffer.
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
    return this.#calls.call(request, options);
  }

  /** Sends a notification to the server (buffered while detached). False if it cannot go out. */
  notify(notification: JsonRpcNotification): boolean {
    return this.#calls.notify(notification);
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
          protocolVersion: LATEST_PROTOCOL_VERSION,
          capabilities: {},
          clientInfo: { name: "mcp-rproxy-serve", version: this.#options.version },
        },
      }).then((response) => {
        const answer = response ??
          errorResponse(0, ErrorCode.TunnelUnavailable, "Initialize was cancelled");
        if (answer.error !== undefined || !isObject(answer.result)) {
          if (this.#init === init) this.#init = undefined;
          log.warning("Server {name} on session {session} did not initialize: {error}", {
            event: "initialize_failed",
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

  /** Removes the session on an owner's or operator's request: close 4001, remembered as evicted. */
  evict(by: string): void {
    this.close(CloseCode.Evicted, { kind: "evicted", reason: `evicted by ${by}` });
  }

  /**
   * Ends the session with a close code: its calls fail with JSON-RPC errors at once, and it cannot be
   * resumed. Its link is closed with `code` when it carries nothing else, else told with a `close` frame.
   */
  close(code: number, end: SessionEnd): void {
    if (this.#state === "closed") return;
    const link = this.#link;
    if (link !== undefined) {
      this.#link = undefined;
      if (link.detach(this)) link.close(code, end.reason);
      else {
        link.sendText(
          encodeClose({ sessionId: this.id, channel: this.#channel, code, reason: end.reason }),
        );
      }
    }
    this.#finish(end);
  }

  // -- LinkedSession: what the link calls --

  /** A frame for this session arrived on its link. */
  onFrame(frame: Frame, bytes: number): void {
    if (this.#state !== "registered") return;
    this.#lastActivity = this.#now();
    this.#messages++;
    this.#bytes += bytes;
    if (frame.ack !== undefined && this.#sequence !== undefined) {
      this.#resumable ??= true;
      if (this.#resumable) this.#sequence.peerAcked(frame.ack);
    }
    if (frame.type === "ack") return;
    if (frame.type === "unregister") {
      this.close(CloseCode.Normal, { kind: "unregistered", reason: "unregistered" });
      return;
    }
    if (!this.#inOrder(frame)) return;
    const payload = frame.payload;
    const problem = payload === undefined
      ? `Frame '${frame.type}' has no 'payload'`
      : this.#calls.onPayload(frame.type, payload);
    if (problem !== undefined) this.#link?.badFrame(problem, this.id);
    const sequence = this.#sequence;
    if (this.#resumable === true && sequence !== undefined && sequence.ackDue) {
      this.#link?.sendText(encodeAck({ sessionId: this.id, ack: sequence.takeAck() }), this);
    }
  }

  /** Counts a frame sent for this session. */
  countOut(bytes: number): void {
    this.#messages++;
    this.#bytes += bytes;
  }

  /** The ack a heartbeat reply carries. */
  heartbeatAck(): number | undefined {
    if (this.#resumable !== true || this.#state !== "registered") return undefined;
    return this.#sequence?.takeAck();
  }

  /**
   * The link is gone: with the `resume` extension in use the session detaches and waits for its client,
   * else it ends.
   */
  linkLost(loss: LinkLoss): void {
    if (this.#state !== "registered") return;
    this.#link = undefined;
    if (this.#canResume()) return this.#detach(loss);
    if (this.#resumable === true) return this.#finish({ kind: "overflowed", reason: loss.reason });
    const kind = loss.dead
      ? "dead-link"
      : loss.code === CloseCode.Normal
      ? "unregistered"
      : "link-lost";
    this.#finish({ kind, reason: loss.reason });
  }

  /**
   * Re-attaches this session to `link`, a fresh link whose `register` asked to resume it, and replays what
   * the client has not acknowledged. Returns `"resumed"`, or why not: `wrong-owner` and `bad-token` leave
   * this session untouched; `overflowed` and `bad-ack` end it (it can never be resumed without a gap).
   */
  adopt(link: TunnelLink, request: ResumeRequest, channel = ""): "resumed" | ResumeError {
    if (this.#state === "closed") return "unknown-session";
    if (link.owner !== this.owner) return "wrong-owner";
    if (!this.matchesToken(request.token)) return "bad-token";
    const sequence = this.#sequence;
    if (sequence === undefined || sequence.overflowed || request.overflowed) {
      const whose = request.overflowed ? "the client's" : "the gateway's";
      this.close(CloseCode.GoingAway, {
        kind: "overflowed",
        reason: `${whose} replay buffer overflowed: resuming would lose messages`,
      });
      return "overflowed";
    }
    const replay = sequence.replayAfter(request.ack);
    if (replay === undefined) {
      this.close(CloseCode.GoingAway, {
        kind: "bad-ack",
        reason:
          `the client acknowledged ${request.ack}, outside what was sent and kept (${sequence.out.acked}..${sequence.out.lastSeq})`,
      });
      return "bad-ack";
    }
    const previous = this.#link;
    if (previous !== undefined && previous.detach(this)) {
      // Half-open on our side: the client gave up on that link first.
      previous.close(CloseCode.GoingAway, "superseded by a resumed link");
    }
    clearTimeout(this.#windowTimer);
    this.#windowTimer = undefined;
    const wasDetached = this.#state === "detached";
    this.#link = link;
    this.#channel = channel;
    link.attach(this, channel);
    this.#state = "registered";
    this.#resumable = true;
    this.#resumes++;
    this.#lastActivity = this.#now();
    this.#sendRegisterAck({ resumed: true, ack: sequence.in.last });
    sequence.in.acked();
    for (const frame of replay) link.sendText(frame.text, this);
    log.info(
      "Session {session} of {owner} ({name}) resumed after {ms} ms: replayed {count} frame(s), {calls} call(s) in flight",
      {
        event: "session_resumed",
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

  // -- CallChannel: what the calls use --

  /**
   * Sends a data frame: with `seq` and `ack`, kept for replay, unless the client showed it does not
   * resume. While detached the frame is only kept. False when it cannot reach the client.
   */
  sendData(type: "request" | "response", payload: JsonObject): boolean {
    const sequence = this.#sequence;
    const payloadText = JSON.stringify(payload);
    const channel = this.#channel === "" ? undefined : this.#channel;
    if (sequence === undefined || this.#resumable === false) {
      const link = this.#link;
      return link !== undefined &&
        link.sendText(encodeDataFrame({ type, sessionId: this.id, channel, payloadText }), this);
    }
    const { text, overflowedNow } = sequence.send({
      type,
      sessionId: this.id,
      channel,
      payloadText,
    });
    if (overflowedNow) {
      log.warning(
        "Session {session} of {owner} ({name}): the replay buffer overflowed; it cannot be resumed after a link drop",
        { event: "replay_overflow", session: this.id, owner: this.owner, name: this.name },
      );
      if (this.#state === "detached") {
        this.#finish({
          kind: "overflowed",
          reason: "replay buffer overflowed while the link was down",
        });
        return false;
      }
    }
    if (this.#state === "detached") return true;
    return this.#link?.sendText(text, this) === true || this.#canResume();
  }

  /** Checks a data frame's `seq`: false for a replayed duplicate (dropped) or a gap (the link is dropped). */
  #inOrder(frame: Frame): boolean {
    if (this.#sequence === undefined && this.#resumable !== true) return true;
    if (frame.seq === undefined) {
      if (this.#resumable === undefined) {
        // A client without the extension: stop numbering and keeping frames for it.
        this.#resumable = false;
        this.#sequence = undefined;
      }
      return true;
    }
    this.#resumable ??= true;
    if (!this.#resumable || this.#sequence === undefined) return true;
    const acceptance = this.#sequence.receive(frame.seq);
    if (acceptance === "new") return true;
    if (acceptance === "gap") {
      log.warning(
        "Session {session}: frame {seq} arrived after {last}; a frame is missing, dropping the link so the client resumes",
        { event: "sequence_gap", session: this.id, seq: frame.seq, last: this.#sequence.in.last },
      );
      this.#link?.close(CloseCode.GoingAway, "sequence gap");
    }
    return false;
  }

  #canResume(): boolean {
    return this.#options.resume !== undefined && this.#resumable === true &&
      this.#sequence !== undefined && !this.#sequence.overflowed;
  }

  /** `register_ack` for this session: where clients reach it, what it supports, its resume credential. */
  #sendRegisterAck(extra: { resumed?: boolean; ack?: number; resumeError?: string }): void {
    const resume = this.#options.resume;
    this.#link?.sendText(
      encodeRegisterAck({
        sessionId: this.id,
        ...(this.#channel === "" ? {} : { channel: this.#channel }),
        status: "success",
        name: this.name,
        mcpUrl: this.mcpUrl,
        extensions: new Set(this.#options.extensions),
        maxFrameBytes: this.#options.limits.maxFrameBytes,
        ...(resume === undefined || this.#token === undefined
          ? {}
          : { resume: { token: this.#token, windowMs: resume.windowMs } }),
        ...extra,
      }),
      this,
    );
  }

  #detach(loss: LinkLoss): void {
    this.#state = "detached";
    this.#detachedAt = this.#now();
    const windowMs = this.#options.resume!.windowMs;
    this.#windowTimer = setTimeout(() => {
      this.#windowTimer = undefined;
      log.warning(
        "Session {session} of {owner} ({name}) was not resumed within {seconds} s: failing its {calls} call(s) in flight",
        {
          event: "session_expired",
          session: this.id,
          owner: this.owner,
          name: this.name,
          seconds: windowMs / 1000,
          calls: this.#calls.size,
        },
      );
      this.#finish({ kind: "expired", reason: `not resumed within ${windowMs / 1000} s` });
    }, windowMs);
    log.info(
      "Session {session} of {owner} ({name}) lost its link ({reason}); waiting up to {seconds} s for it to resume, {calls} call(s) in flight",
      {
        event: "session_detached",
        session: this.id,
        owner: this.owner,
        name: this.name,
        reason: loss.reason,
        seconds: windowMs / 1000,
        calls: this.#calls.size,
      },
    );
    this.#options.host.sessionDetached?.(this, loss);
  }

  #finish(end: SessionEnd): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#end = end;
    clearTimeout(this.#windowTimer);
    this.#windowTimer = undefined;
    this.#sequence = undefined;
    const link = this.#link;
    this.#link = undefined;
    link?.detach(this);
    this.#calls.failAll(end.reason);
    log.info("Session {session} of {owner} ({name}) closed: {reason}", {
      event: "session_closed",
      session: this.id,
      owner: this.owner,
      name: this.name,
      kind: end.kind,
      reason: end.reason,
    });
    this.#options.host.sessionClosed(this, end);
  }
}
