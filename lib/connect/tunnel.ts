// Routing for one tunneled server: messages from the local server to the link and from the link to the
// server, the frame size the gateway takes, server-initiated requests, and (with our gateway) the
// sequenced channel that lets a session outlive a dropped link. A per-client server's frames each name the
// MCP client session whose instance they belong to.

import { logger, truncate } from "../util/log.ts";
import {
  type DataFrameType,
  encodeClientInstances,
  encodeDataFrame,
  encodeUnregister,
  Extension,
  type Frame,
  readClientSessionEnd,
  WEBSOCKET_MAX_MESSAGE_BYTES,
} from "../protocol/frames.ts";
import {
  ErrorCode,
  errorResponse,
  type JsonObject,
  type JsonRpcId,
  type JsonRpcResponse,
} from "../protocol/jsonrpc.ts";
import type { ResumeRequest } from "../protocol/registration.ts";
import type { ReplayLimits } from "../protocol/sequenced_channel.ts";
import type { LinkChannel } from "./link_channel.ts";
import type { InFlight, ServerMessage } from "./local_session.ts";
import type { LocalSide } from "./local_side.ts";
import { RelayedRequests } from "./relayed_requests.ts";
import { RepeatedRequests, type RepeatedRequestsOptions } from "./repeated_requests.ts";
import type { ConnectMetrics, ServerMetrics } from "./metrics.ts";
import { Resumption } from "./resumption.ts";
import { drain, HIGH_WATER_BYTES } from "./backpressure.ts";
import { logTooLarge, type Oversize, oversize, tooLargeError } from "./frame_limit.ts";
import { localAnswer, unrelayedBecause } from "./local_answer.ts";
import { isDataFrame, isObjectPayload } from "./gateway_frames.ts";

const log = logger("connect");

/** The link's send queue is looked at after this many characters of the server's output, at most. */
const CHECK_BYTES = 256 * 1024;

/** Options of {@link Tunnel}. */
export interface TunnelOptions {
  /** Updated on every message; optional so that tests and the demo can leave it out. */
  metrics?: ConnectMetrics | undefined;
  /** This server's own metrics (calls in flight, its errors). */
  server?: ServerMetrics | undefined;
  /** Bounds of the replay buffer kept for resumption (docs/resume.md). */
  replayLimits?: ReplayLimits | undefined;
  /** `--max-repeat-ids` (as `limit`), and the answers kept for repeats (one store per connect). */
  repeats?: Pick<RepeatedRequestsOptions, "limit" | "answers"> | undefined;
  /** Aborts the backpressure wait. */
  signal: AbortSignal;
}

/** The routing between one local session and the current link. */
export class Tunnel {
  #options: TunnelOptions;
  #session: LocalSide | undefined;
  #link: LinkChannel | undefined;
  /** The channel of the last link, for frames kept for replay while the link is down. */
  #channel: string | undefined;
  /** Counts sessions with the gateway: an answer for a call of an older one cannot be routed. */
  #generation = 0;
  /** Server-initiated requests sent to the gateway and not answered yet (C only). */
  #serverRequests = new RelayedRequests();
  #undeliverable = 0;
  /** Characters sent to the link since its queue was last looked at (see fromServer). */
  #unchecked = 0;
  #resumption: Resumption;
  /** Cross-replica calls in flight or answered lately: one sent again after a failover runs once. */
  #repeats: RepeatedRequests;
  /** Payload logging costs a serialization per message: decide once whether anyone will read it. */
  #debug = log.isEnabledFor("debug");

  constructor(options: TunnelOptions) {
    this.#options = options;
    this.#resumption = new Resumption(options.replayLimits);
    this.#repeats = new RepeatedRequests({
      ...options.repeats,
      answerAgain: (text, about) => this.#sendText("response", text, about),
      onRepeat: () => options.server?.error("repeated_request"),
    });
    // Read when scraped: a per-client server's count walks its clients, too dear for every message.
    options.server?.callsInFlight.track(() => this.#session?.inFlightCount ?? 0);
  }

  /** The local side messages go to: one shared local session, or a per-client server's instances. */
  set session(session: LocalSide | undefined) {
    this.#session = session;
  }

  /** The current link, once registered (or registering: B's discovery arrives before registration completes). */
  get link(): LinkChannel | undefined {
    return this.#link;
  }

  /** True when a message sent now reaches the gateway, now or by replay after a resumption. */
  get deliverable(): boolean {
    return this.#deliverable();
  }

  /** Messages from the server that could not be delivered since the last call; resets the count. */
  takeUndeliverable(): number {
    const count = this.#undeliverable;
    this.#undeliverable = 0;
    return count;
  }

  /**
   * What the next dial should ask of the gateway: resume the session, or present an overflowed
   * credential so that the gateway ends the old session at once. Undefined without a previous session.
   * Starts a new generation when the session will be fresh.
   */
  prepareDial(): ResumeRequest | undefined {
    const { request, fresh } = this.#resumption.prepareDial();
    if (fresh) this.#freshSession();
    return request;
  }

  /** The cumulative ack heartbeats carry, when resuming is in use. */
  heartbeatAck(): number | undefined {
    return this.#resumption.heartbeatAck;
  }

  /** The gateway acknowledged our data frames up to `ack`. */
  peerAcked(ack: number): void {
    this.#resumption.peerAcked(ack);
  }

  /** A frame arrived on `link` (also during registration). */
  onFrame(frame: Frame, link: LinkChannel): void {
    this.#link ??= link;
    if (this.#link === link) this.#fromGateway(frame);
  }

  /** The link was given up during dialing. */
  dialFailed(): void {
    this.#link = undefined;
  }

  /**
   * Registration completed on `link`: replays what the gateway has not seen after a resumption, or sets
   * up resumption for a fresh session. `attempted` is what {@link prepareDial} asked for.
   */
  registered(link: LinkChannel, attempted: ResumeRequest | undefined): void {
    this.#link = link;
    this.#channel = link.channel;
    const outcome = this.#resumption.registered(link.registration, attempted);
    // A per-client server's instances of the client sessions that ended while away stop now.
    const open = link.registration.clientSessions;
    if (open !== undefined) this.#session?.retain?.(open);
    this.reportInstances();
    if (outcome.kind === "resumed") {
      for (const text of outcome.replay) link.sendText(text);
      return;
    }
    // The calls of a session that could not be resumed can never be answered now.
    if (outcome.refused) this.#newGeneration();
  }

  /**
   * The server's place on the link is gone (not by shutdown). `serverRestarting`: a new server process
   * means a new session at the gateway. Without resumption, answers to calls of this link can never
   * reach their callers.
   */
  linkDropped(serverRestarting: boolean): void {
    this.#link = undefined;
    if (serverRestarting || !this.#resumption.active) this.#freshSession();
  }

  /** Tells the gateway a per-client server's live instances (for its sessions API); a no-op otherwise. */
  reportInstances(): void {
    const instances = this.#session?.instances?.();
    const link = this.#link;
    if (instances === undefined || !link?.isOpen) return;
    link.sendText(
      encodeClientInstances({ sessionId: link.sessionId, channel: link.channel, instances }),
    );
  }

  /** The local server died under a live link: fail its calls and unregister until it is back. */
  serverDied(): void {
    this.failInFlight("The local MCP server exited before answering; it is being restarted");
    // The gateway must forget this server: it will register afresh once the new process is initialized.
    const link = this.#link;
    link?.sendText(encodeUnregister({ sessionId: link.sessionId, channel: link.channel }));
  }

  /** Answers every call in flight of the current generation with `message`. */
  failInFlight(message: string): void {
    if (this.#session) this.failCalls(this.#session.takeInFlight(), message);
  }

  /** Answers `calls` (taken from the local side) of the current generation with `message`. */
  failCalls(calls: readonly InFlight[], message: string): void {
    for (const request of calls) {
      if (request.generation === this.#generation) {
        this.#sendPayload(
          "response",
          errorResponse(request.id, ErrorCode.ServerUnavailable, message),
          request.clientSession,
        );
      }
    }
  }

  /**
   * Stopping: answers what is in flight and unregisters the server (its link is the caller's to close).
   * True if its link was open.
   */
  unregister(reason = "mcp-rproxy is shutting down"): boolean {
    const link = this.#link;
    const closed = link?.isOpen === true;
    if (closed) {
      // Answer what is still in flight so that no caller waits for a response that will never come.
      this.failCalls(this.#session?.takeInFlight() ?? [], reason);
      link.sendText(encodeUnregister({ sessionId: link.sessionId, channel: link.channel }));
    }
    this.#link = undefined;
    this.#serverRequests.failAll(this.#session, reason);
    return closed;
  }

  /** Forgets the gateway session: its calls in flight can no longer be answered through the gateway. */
  #freshSession(): void {
    this.#newGeneration();
    this.#resumption.clear();
  }

  /** Starts a new generation: calls in flight of the previous one can no longer be answered. */
  #newGeneration(): void {
    this.#generation++;
    const lost = this.#session?.takeInFlight() ?? [];
    if (lost.length > 0) {
      log.warning("{count} call(s) of the previous session cannot be answered on a new session", {
        event: "calls_lost",
        count: lost.length,
      });
    }
    this.#serverRequests.failAll(
      this.#session,
      "The link to the gateway dropped before the client answered",
    );
  }

  /** True when a message sent now reaches the gateway, now or by replay after a resumption. */
  #deliverable(): boolean {
    return this.#link?.isOpen === true || this.#resumption.deliverable;
  }

  /**
   * Sends a payload object (for `clientSession`'s instance); returns false if there is no link. An answer
   * connect makes itself (an error) ends its call as the server's answer does.
   */
  #sendPayload(type: DataFrameType, payload: JsonObject, clientSession?: string): boolean {
    const text = JSON.stringify(payload);
    if (type === "response") this.#repeats.answered(payload.id as JsonRpcId | undefined, text);
    return this.#sendText(type, text, { clientSession });
  }

  /** The frame's size and the gateway's limit when a payload would make a frame over that limit. */
  #oversize(
    payloadText: string,
    payloadBytes: number | undefined,
    clientSession = "",
  ): Oversize | undefined {
    const link = this.#link;
    return oversize(payloadText, {
      payloadBytes,
      // The channel and client session ride in the envelope too: counted as part of the id.
      sessionId: (this.#resumption.sessionId ?? link?.sessionId ?? "") + (this.#channel ?? "") +
        clientSession,
      limit: link?.maxFrameBytes ?? WEBSOCKET_MAX_MESSAGE_BYTES,
    });
  }

  /**
   * Sends a payload already in JSON text (the server's own line: never re-serialized). A response too
   * large for the gateway becomes an error response with the same id.
   */
  #sendText(
    type: DataFrameType,
    payloadText: string,
    about: {
      bytes?: number | undefined;
      id?: JsonRpcId | undefined;
      clientSession?: string | undefined;
    },
  ): boolean {
    if (!this.#deliverable()) return false;
    const { bytes: payloadBytes, id, clientSession } = about;
    const link = this.#link;
    const resumption = this.#resumption;
    const sessionId = resumption.sessionId ?? link!.sessionId;
    const size = this.#oversize(payloadText, payloadBytes, clientSession);
    if (size !== undefined) return this.#tooLarge(type, size, id, clientSession);
    const metrics = this.#options.metrics;
    const parts = { type, sessionId, channel: this.#channel, clientSession, payloadText };
    const sequenced = resumption.send(parts, payloadBytes);
    if (sequenced !== undefined && !link?.isOpen) return true; // kept for replay
    const text = sequenced ?? encodeDataFrame(parts);
    metrics?.framesOut.inc();
    metrics?.bytesOut.inc(text.length);
    return link!.sendText(text);
  }

  #tooLarge(
    type: DataFrameType,
    size: Oversize,
    id: JsonRpcId | undefined,
    clientSession?: string,
  ): boolean {
    this.#options.server?.error("frame_too_large");
    const answered = type === "response" && id !== undefined;
    logTooLarge(type, size, answered);
    return answered &&
      this.#sendPayload("response", tooLargeError(id, "The result", size), clientSession);
  }

  /** The server wrote an answer over its size bound: its caller gets `error` (frame_limit.ts) instead. */
  oversizedAnswer(error: JsonRpcResponse, clientSession?: string): void {
    this.#sendPayload("response", error, clientSession);
  }

  /** Everything the local server writes, in order. May return a promise to pause reading. */
  fromServer(message: ServerMessage): void | Promise<void> {
    const link = this.#link;
    if (message.kind === "request") return this.#serverRequest(message);
    if (message.kind === "response") {
      const request = message.request;
      this.#repeats.answered(message.id, message.text, message.bytes);
      // While a resumable link is down, answers are kept for replay; otherwise they cannot be routed.
      if (
        request === undefined || request.generation !== this.#generation || !this.#deliverable()
      ) {
        this.#undeliverable++;
        this.#options.server?.error("response_dropped");
        log.warning("Dropped an answer the gateway can no longer route (id {id}: {why})", {
          event: "response_dropped",
          id: JSON.stringify(message.id),
          why: request === undefined ? "no such call in flight" : "its link is gone",
        });
        return;
      }
      this.#trace("→ gateway response", message.text);
      this.#sendText("response", message.text, {
        bytes: message.bytes,
        id: request.id,
        clientSession: request.clientSession,
      });
    } else {
      if (!this.#deliverable()) {
        // Nobody is listening; the gateway learns the server's state again when it registers.
        this.#undeliverable++;
        log.debug("No link: a {method} notification from the server was not delivered", {
          event: "notification_dropped",
          method: String(message.method),
        });
        return;
      }
      this.#trace("→ gateway notification", message.text);
      this.#sendText("notification", message.text, {
        bytes: message.bytes,
        clientSession: message.clientSession,
      });
    }
    // Asking the socket costs an op per message: it is asked once per CHECK_BYTES sent (the queue can
    // then pass the high-water mark by at most that much and one message).
    this.#unchecked += message.text.length;
    if (link === undefined || this.#unchecked < CHECK_BYTES) return;
    this.#unchecked = 0;
    if (link.bufferedAmount > HIGH_WATER_BYTES) return drain(link, this.#options.signal);
  }

  /** Logs a payload at debug, when anyone reads debug (a payload is never logged above it). */
  #trace(what: string, payload: string): void {
    if (this.#debug) log.debug(`${what} {payload}`, { payload: truncate(payload) });
  }

  #serverRequest(message: ServerMessage): void {
    const link = this.#link;
    const session = this.#session;
    const id = message.id as JsonRpcId;
    const { clientSession } = message;
    if (link?.isOpen && link.hasExtension(Extension.ServerRequests)) {
      const size = this.#oversize(message.text, message.bytes, clientSession);
      if (size !== undefined) {
        // Never sent: the server learns why at once instead of waiting for an answer.
        this.#tooLarge("request", size, undefined);
        const what = `mcp-rproxy cannot deliver '${
          String(message.method)
        }' to a client: the request`;
        return session?.reply(tooLargeError(id, what, size), clientSession);
      }
      this.#serverRequests.add(id, clientSession);
      this.#trace("→ gateway request", message.text);
      if (this.#sendText("request", message.text, { bytes: message.bytes, clientSession })) return;
      this.#serverRequests.delete(id, clientSession);
    }
    void session?.reply(localAnswer(message, unrelayedBecause(link)), clientSession);
  }

  #fromGateway(frame: Frame): void {
    const link = this.#link;
    const session = this.#session;
    if (!session || !link) return;
    if (frame.type === "client_session_end") {
      // Not sequenced: a control frame, like `close`; a lost one is caught up at the next registration.
      const end = readClientSessionEnd(frame);
      if (end !== undefined) session.endClient?.(end.clientSession, end.reason);
      return;
    }
    const { clientSession } = frame;
    if (!this.#resumption.accept(frame.seq, link)) return;
    const generation = this.#generation;
    if (!isDataFrame(frame)) return;
    const payload = frame.payload;
    if (frame.type === "request" && this.#repeats.repeats(payload.facts, clientSession)) return;
    // A long request passes to the server as the text it came in, unless the proxy must act on it.
    if (frame.type === "request" && payload.isText) {
      const forwarded = session.forwardText(payload.text, payload.facts, generation, clientSession);
      if (forwarded !== false) {
        this.#trace("← gateway request", payload.text);
        // A request the server's input queue had no room for is answered at once.
        if (forwarded !== true) this.#sendPayload("response", forwarded, clientSession);
        return;
      }
    }
    const value = payload.value;
    if (!isObjectPayload(frame, value)) return;
    // Never log `authentication` (a frame field): it carries downstream credentials.
    if (frame.type === "request") {
      this.#trace("← gateway request", payload.text);
      for (const element of Array.isArray(value) ? value : [value]) {
        const immediate = session.fromTunnel(element as JsonObject, generation, clientSession);
        if (immediate) this.#sendPayload("response", immediate, clientSession);
      }
      return;
    }
    // The answer to a server-initiated request (C's `server-requests` extension).
    this.#serverRequests.delete((value as JsonObject).id, clientSession);
    void session.reply(value as JsonRpcResponse, clientSession);
  }
}
