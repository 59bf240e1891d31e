// serve's side of one registered server: its name and owner, the link it is attached to (or none, while it
// waits to be resumed), its calls, its held `initialize` result, and (with the `resume` extension) the
// sequenced channel that lets it outlive a dropped link (docs/resume.md). Nothing outside writes its state.

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
import type { ResumeError } from "./resume_credentials.ts";
import { SessionResume } from "./session_resume.ts";
import type { SessionSequence } from "./session_sequence.ts";
import * as sessionLog from "./session_log.ts";
import { TunnelCalls } from "./tunnel_calls.ts";
import type { LinkedSession, LinkLoss } from "./link_contract.ts";
import type { TunnelLink } from "./tunnel_link.ts";
import type { SessionEnd, SessionStats, TunnelSessionOptions } from "./session_contract.ts";

/**
 * One registered server. Created when a `register` is accepted, attached to the link it came on; it may
 * move to another link when resumed, and it ends once.
 */
export class TunnelSession implements LinkedSession {
  /** Session id minted by the gateway (what `register_ack` carries). */
  readonly id: string;
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
  /** Credential, numbering, replay and window for a client that resumes (the `resume` extension). */
  #resume: SessionResume | undefined;
  #end: SessionEnd | undefined;
  /** The per-client instances connect reported last (`client_instances`). */
  #instances: readonly ClientInstanceInfo[] = [];

  /**
   * A session registered on `link` now, or, without a link, one restored from the state store
   * (`options.restored`): detached, its resume window starting now.
   */
  constructor(link: TunnelLink | undefined, options: TunnelSessionOptions) {
    this.#options = options;
    const restored = options.restored;
    this.id = restored?.id ?? crypto.randomUUID();
    this.owner = options.owner;
    this.name = options.name;
    this.requestedName = options.requestedName;
    this.description = options.description;
    this.protocol = options.protocol;
    this.mcpUrl = options.mcpUrl;
    this.perClient = options.isolation === "per-client";
    this.#now = options.now ?? Date.now;
    this.connectedAt = restored?.connectedAt ?? this.#now();
    this.#lastActivity = this.#now();
    this.#channel = options.channel ?? "";
    this.#calls = new TunnelCalls(this, {
      limits: options.limits,
      sink: options.host,
      metrics: options.metrics,
      queueCharge: options.budget?.charge(options.owner, { what: "calls waiting for a slot" }),
      requestsCharge: options.budget?.charge(options.owner, { what: "server requests waiting" }),
      initializeCharge: options.budget?.charge(options.owner, { what: "held initialize result" }),
      restored,
    });
    if (options.resume !== undefined) {
      this.#resume = new SessionResume(options.resume, {
        charge: options.budget?.charge(options.owner, { what: "replay buffer" }),
        restored,
        now: this.#now,
      });
    }
    if (link === undefined) {
      this.#state = "detached";
      this.#startWindow();
      return;
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

  /** True if `token` is this session's resume secret (constant time, on its hash). */
  matchesToken(token: string): boolean {
    return this.#resume?.matches(token) === true;
  }

  get #sequence(): SessionSequence | undefined {
    return this.#resume?.sequence;
  }

  /** The session's channel on its link ("" without channels). */
  get channel(): string {
    return this.#channel;
  }

  /** What the state store keeps of its resumability (see {@link SessionResume.saved}). */
  resumeState(): ReturnType<SessionResume["saved"]> | undefined {
    return this.#resume?.saved(this.#calls.nextTunnelId);
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

  /** Sends `register_ack` for a fresh registration and asks the server for its `initialize` result. */
  acknowledge(extra: { resumed?: boolean; resumeError?: string } = {}): void {
    this.#sendRegisterAck(extra);
    if (!this.perClient) void this.initializeResult().then(() => this.#changed());
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

  /**
   * Ends the session in this process only (a gateway stopping with its state kept): its calls fail, its
   * link is not told (it is closed with 1001 next), so that its client resumes it on the next gateway.
   */
  release(reason: string): void {
    if (this.#state === "closed") return;
    this.#link?.detach(this);
    this.#link = undefined;
    this.#finish({ kind: "shutdown", reason });
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
    if (ack === undefined) return;
    this.#link?.sendText(encodeAck({ sessionId: this.id, ack }), this);
    this.#changed();
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

  /** The ack a heartbeat reply carries (and a moment to save what it acknowledges). */
  heartbeatAck(): number | undefined {
    if (this.#state !== "registered") return undefined;
    const ack = this.#sequence?.heartbeatAck();
    if (ack !== undefined) this.#changed();
    return ack;
  }

  /**
   * The link is gone: with the `resume` extension in use the session detaches and waits for its client,
   * else it ends.
   */
  linkLost(loss: LinkLoss): void {
    if (this.#state !== "registered") return;
    this.#link = undefined;
    if (this.#sequence?.canResume === true) return this.#detach(loss);
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
    // Its own link (channels) resumes it on another channel: it moves, and that link must stay open.
    if (this.#link === link && link.detach(this)) this.#link = undefined;
    const grant = this.#resume?.grant(request) ??
      { kind: "ended", error: "overflowed", end: { kind: "overflowed", reason: "not resumable" } };
    if (grant.kind === "ended") {
      this.close(CloseCode.GoingAway, grant.end);
      return grant.error;
    }
    const replay = grant.frames;
    const previous = this.#link;
    if (previous !== undefined && previous.detach(this)) {
      // Half-open on our side: the client gave up on that link first.
      previous.close(CloseCode.GoingAway, "superseded by a resumed link");
    }
    const waited = this.#resume!.stopWaiting();
    this.#link = link;
    this.#channel = channel;
    link.attach(this, channel);
    this.#state = "registered";
    this.#resumes++;
    this.#lastActivity = this.#now();
    this.#sendRegisterAck({ resumed: true, ack: grant.ack });
    for (const frame of replay) link.sendText(frame.text, this);
    this.#changed();
    sessionLog.logResumed(this, { ms: waited, count: replay.length, calls: this.#calls.size });
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
    if (this.#resume?.idsRunningOut(this.#calls.nextTunnelId)) this.#changed();
    const payloadText = JSON.stringify(payload);
    const channel = this.#channel === "" ? undefined : this.#channel;
    const parts = { type, sessionId: this.id, channel, clientSession, payloadText };
    const stamped = this.#sequence?.send(parts);
    if (stamped === undefined) {
      const link = this.#link;
      return link !== undefined && link.sendText(encodeDataFrame(parts), this);
    }
    if (stamped.overflowedNow) {
      sessionLog.logReplayOverflow(this);
      if (this.#state === "detached") {
        this.#finish({
          kind: "overflowed",
          reason: "replay buffer overflowed while the link was down",
        });
        return false;
      }
    }
    if (this.#state === "detached") return true;
    return this.#link?.sendText(stamped.text, this) === true || this.#sequence?.canResume === true;
  }

  /** Checks a data frame's `seq`: false for a replayed duplicate (dropped) or a gap (the link is dropped). */
  #inOrder(frame: Frame): boolean {
    const acceptance = this.#sequence?.receive(frame.seq) ?? "new";
    if (acceptance === "new") return true;
    if (acceptance === "gap") {
      sessionLog.logSequenceGap(this, { seq: frame.seq, last: this.#sequence?.lastReceived });
      this.#link?.close(CloseCode.GoingAway, "sequence gap");
    }
    return false;
  }

  /** `register_ack` for this session: where clients reach it, what it supports, its resume credential. */
  #sendRegisterAck(extra: { resumed?: boolean; ack?: number; resumeError?: string }): void {
    const token = this.#resume?.token;
    this.#link?.sendText(
      encodeRegisterAck({
        sessionId: this.id,
        ...(this.#channel === "" ? {} : { channel: this.#channel }),
        status: "success",
        name: this.name,
        mcpUrl: this.mcpUrl,
        extensions: new Set(this.#options.extensions),
        maxFrameBytes: this.#options.limits.maxFrameBytes,
        ...(this.perClient ? { clientSessions: this.#options.clientSessions?.() } : {}),
        // A session restored from the store knows only the secret's hash: its client keeps the secret.
        ...(token === undefined ? {} : { resume: { token, windowMs: this.#resume!.windowMs } }),
        ...extra,
      }),
      this,
    );
  }

  #detach(loss: LinkLoss): void {
    this.#state = "detached";
    this.#startWindow();
    const seconds = this.#resume!.windowMs / 1000;
    sessionLog.logDetached(this, { reason: loss.reason, seconds, calls: this.#calls.size });
    this.#options.host.sessionDetached?.(this, loss);
  }

  /** The resume window starts now: past it, the session expires. */
  #startWindow(): void {
    const seconds = this.#resume!.windowMs / 1000;
    this.#resume!.wait(() => {
      sessionLog.logExpired(this, { seconds, calls: this.#calls.size });
      this.#finish({ kind: "expired", reason: `not resumed within ${seconds} s` });
    });
  }

  /** Something worth saving changed (acknowledged frames, the held `initialize`, a resume). */
  #changed(): void {
    if (this.#state !== "closed") this.#options.host.sessionChanged?.(this);
  }

  #finish(end: SessionEnd): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#end = end;
    this.#resume?.end();
    const link = this.#link;
    this.#link = undefined;
    link?.detach(this);
    this.#calls.failAll(end.reason);
    sessionLog.logClosed(this, end);
    this.#options.host.sessionClosed(this, end);
  }
}
