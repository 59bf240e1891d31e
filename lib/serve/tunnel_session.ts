// serve's side of one registered server: its name and owner, the link it is attached to (or none, while it
// waits to be resumed), its calls, its held `initialize` result, and (with the `resume` extension) the
// sequenced channel that lets it outlive a dropped link (docs/resume.md). Nothing outside writes its state.

import { logger } from "../util/log.ts";
import {
  type ClientInstanceInfo,
  CloseCode,
  encodeAck,
  encodeClientSessionEnd,
  encodeClose,
  encodeDataFrame,
  type Frame,
  readClientInstances,
} from "../protocol/frames.ts";
import type { JsonObject, JsonRpcResponse } from "../protocol/jsonrpc.ts";
import { encodeRegisterAck, type ResumeRequest } from "../protocol/registration.ts";
import { newResumeToken, type ResumeError, sameSecret } from "./resume_credentials.ts";
import { SessionSequence } from "./session_sequence.ts";
import { logClosed, logDetached, logExpired, logResumed } from "./session_log.ts";
import { TunnelCalls } from "./tunnel_calls.ts";
import type { LinkedSession, LinkLoss } from "./link_contract.ts";
import type { TunnelLink } from "./tunnel_link.ts";
import type { SessionEnd, SessionStats, TunnelSessionOptions } from "./session_contract.ts";

const log = logger("serve", "session");

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
  /** True when each MCP client gets a server instance of its own (`client-sessions` negotiated). */
  readonly perClient: boolean;
  #options: TunnelSessionOptions;
  #now: () => number;
  #link: TunnelLink | undefined;
  #channel: string;
  #state: "registered" | "detached" | "closed" = "registered";
  #calls: TunnelCalls;
  #lastActivity: number;
  #messages = 0;
  #bytes = 0;
  #resumes = 0;
  /** The resume secret issued at registration (never logged). */
  #token: string | undefined;
  /** Numbering and replay for a client that resumes (the `resume` extension). */
  #sequence: SessionSequence | undefined;
  #windowTimer: ReturnType<typeof setTimeout> | undefined;
  #detachedAt = 0;
  #end: SessionEnd | undefined;
  /** The per-client instances connect reported last (`client_instances`). */
  #instances: readonly ClientInstanceInfo[] = [];

  constructor(link: TunnelLink, options: TunnelSessionOptions) {
    this.#options = options;
    this.owner = options.owner;
    this.name = options.name;
    this.requestedName = options.requestedName;
    this.description = options.description;
    this.protocol = options.protocol;
    this.mcpUrl = options.mcpUrl;
    this.perClient = options.isolation === "per-client";
    this.#now = options.now ?? Date.now;
    this.connectedAt = this.#now();
    this.#lastActivity = this.connectedAt;
    this.#channel = options.channel ?? "";
    this.#calls = new TunnelCalls(this, {
      limits: options.limits,
      sink: options.host,
      metrics: options.metrics,
      queueCharge: options.budget?.charge(options.owner, { what: "calls waiting for a slot" }),
    });
    if (options.resume !== undefined) {
      this.#token = newResumeToken();
      this.#sequence = new SessionSequence(
        options.resume.limits,
        options.budget?.charge(options.owner, { what: "replay buffer" }),
      );
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

  /** True if `token` is this session's resume secret (constant time). */
  matchesToken(token: string): boolean {
    return this.#token !== undefined && sameSecret(this.#token, token);
  }

  /** What the session has done so far. */
  stats(): SessionStats {
    return {
      lastActivity: this.#lastActivity,
      messages: this.#messages,
      bytes: this.#bytes,
      callsInFlight: this.#calls.size,
      resumes: this.#resumes,
      detached: this.#state === "detached",
    };
  }

  /**
   * Sends `register_ack` for a fresh registration and asks a shared server for its `initialize` result
   * (a per-client server has none: each instance is initialized by its own client).
   */
  acknowledge(extra: { resumed?: boolean; resumeError?: string } = {}): void {
    this.#sendRegisterAck(extra);
    if (!this.perClient) void this.initializeResult();
  }

  /** The per-client instances connect reported last: client session, PID, start. */
  get instances(): readonly ClientInstanceInfo[] {
    return this.#instances;
  }

  /**
   * An MCP client session of this per-client server ended (DELETE, TTL, eviction): connect stops its
   * instance. Not sent while detached: the `register_ack` of the resume lists the sessions still open.
   */
  endClientSession(clientSession: string, reason: string): void {
    if (!this.perClient || this.#state !== "registered") return;
    const channel = this.#channel === "" ? undefined : this.#channel;
    this.#link?.sendText(
      encodeClientSessionEnd({ sessionId: this.id, channel, clientSession, reason }),
      this,
    );
  }

  /**
   * The session's calls through the tunnel: `call()` (the answer comes back under the caller's id) and
   * `notify()`. While the session is detached they wait in the replay buffer.
   */
  get calls(): TunnelCalls {
    return this.#calls;
  }

  /**
   * The server's `initialize` result, learnt once through the tunnel and held (see
   * {@link TunnelCalls.initializeResult}).
   */
  initializeResult(): Promise<JsonRpcResponse> {
    return this.#calls.initializeResult(this.#options.version);
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
    if (frame.ack !== undefined) this.#sequence?.peerAcked(frame.ack);
    if (frame.type === "ack") return;
    if (frame.type === "client_instances") {
      if (this.perClient) this.#instances = readClientInstances(frame);
      return;
    }
    if (frame.type === "unregister") {
      this.close(CloseCode.Normal, { kind: "unregistered", reason: "unregistered" });
      return;
    }
    if (!this.#inOrder(frame)) return;
    const payload = frame.payload;
    const problem = payload === undefined
      ? `Frame '${frame.type}' has no 'payload'`
      : this.#calls.onPayload(
        frame.type,
        payload,
        this.perClient ? frame.clientSession : undefined,
      );
    if (problem !== undefined) this.#link?.badFrame(problem, this.id);
    const ack = this.#sequence?.dueAck();
    if (ack !== undefined) this.#link?.sendText(encodeAck({ sessionId: this.id, ack }), this);
  }

  /** Counts a frame sent for this session. */
  countOut(bytes: number): void {
    this.#messages++;
    this.#bytes += bytes;
  }

  /** The client acknowledged this session's frames up to `ack`. */
  peerAcked(ack: number): void {
    this.#sequence?.peerAcked(ack);
  }

  /** The ack a heartbeat reply carries. */
  heartbeatAck(): number | undefined {
    return this.#state === "registered" ? this.#sequence?.heartbeatAck() : undefined;
  }

  /**
   * The link is gone: with the `resume` extension in use the session detaches and waits for its client,
   * else it ends.
   */
  linkLost(loss: LinkLoss): void {
    if (this.#state !== "registered") return;
    this.#link = undefined;
    if (this.#canResume()) return this.#detach(loss);
    if (this.#sequence?.resumable === true) {
      return this.#finish({ kind: "overflowed", reason: loss.reason });
    }
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
    const grant = this.#sequence?.grant(request.ack, request.overflowed) ??
      { kind: "overflowed" };
    if (grant.kind === "overflowed") {
      const whose = request.overflowed ? "the client's" : "the gateway's";
      this.close(CloseCode.GoingAway, {
        kind: "overflowed",
        reason: `${whose} replay buffer overflowed: resuming would lose messages`,
      });
      return "overflowed";
    }
    if (grant.kind === "bad-ack") {
      this.close(CloseCode.GoingAway, {
        kind: "bad-ack",
        reason:
          `the client acknowledged ${request.ack}, outside what was sent and kept (${grant.kept})`,
      });
      return "bad-ack";
    }
    const replay = grant.frames;
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
    this.#resumes++;
    this.#lastActivity = this.#now();
    this.#sendRegisterAck({ resumed: true, ack: grant.ack });
    for (const frame of replay) link.sendText(frame.text, this);
    logResumed(this, {
      ms: wasDetached ? this.#now() - this.#detachedAt : 0,
      count: replay.length,
      calls: this.#calls.size,
    });
    return "resumed";
  }

  // -- CallChannel: what the calls use --

  /** Counts a bad frame of this session's client against its link. */
  badFrame(message: string): void {
    this.#link?.badFrame(message, this.id);
  }

  /**
   * Sends a data frame: with `seq` and `ack`, kept for replay, unless the client showed it does not
   * resume. While detached the frame is only kept. False when it cannot reach the client.
   */
  sendData(type: "request" | "response", payload: JsonObject, clientSession?: string): boolean {
    const payloadText = JSON.stringify(payload);
    const channel = this.#channel === "" ? undefined : this.#channel;
    const parts = { type, sessionId: this.id, channel, clientSession, payloadText };
    const stamped = this.#sequence?.send(parts);
    if (stamped === undefined) {
      const link = this.#link;
      return link !== undefined && link.sendText(encodeDataFrame(parts), this);
    }
    if (stamped.overflowedNow) {
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
    return this.#link?.sendText(stamped.text, this) === true || this.#canResume();
  }

  /** Checks a data frame's `seq`: false for a replayed duplicate (dropped) or a gap (the link is dropped). */
  #inOrder(frame: Frame): boolean {
    const acceptance = this.#sequence?.receive(frame.seq) ?? "new";
    if (acceptance === "new") return true;
    if (acceptance === "gap") {
      log.warning(
        "Session {session}: frame {seq} arrived after {last}; a frame is missing, dropping the link so the client resumes",
        {
          event: "sequence_gap",
          session: this.id,
          seq: frame.seq,
          last: this.#sequence?.lastReceived,
        },
      );
      this.#link?.close(CloseCode.GoingAway, "sequence gap");
    }
    return false;
  }

  #canResume(): boolean {
    return this.#sequence?.canResume === true;
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
        ...(this.perClient ? { clientSessions: this.#options.clientSessions?.() ?? [] } : {}),
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
      logExpired(this, { seconds: windowMs / 1000, calls: this.#calls.size });
      this.#finish({ kind: "expired", reason: `not resumed within ${windowMs / 1000} s` });
    }, windowMs);
    logDetached(this, {
      reason: loss.reason,
      seconds: windowMs / 1000,
      calls: this.#calls.size,
    });
    this.#options.host.sessionDetached?.(this, loss);
  }

  #finish(end: SessionEnd): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#end = end;
    clearTimeout(this.#windowTimer);
    this.#windowTimer = undefined;
    this.#sequence?.drop();
    const link = this.#link;
    this.#link = undefined;
    link?.detach(this);
    this.#calls.failAll(end.reason);
    logClosed(this, end);
    this.#options.host.sessionClosed(this, end);
  }
}
