// Routing for one tunneled server: messages from the local server to the link and from the link to the
// server, the frame size the gateway takes, server-initiated requests, and (with our gateway) the
// sequenced channel that lets a session outlive a dropped link.

import { logger, truncate } from "../util/log.ts";
import {
  CloseCode,
  type DataFrameType,
  encodeAck,
  encodeDataFrame,
  encodeUnregister,
  Extension,
  type Frame,
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
import type { LocalSession, ServerMessage } from "./local_session.ts";
import type { ConnectMetrics, ServerMetrics } from "./metrics.ts";
import { Resumption } from "./resumption.ts";
import { drain, HIGH_WATER_BYTES } from "./backpressure.ts";
import { type Oversize, oversize, tooLargeError } from "./frame_limit.ts";
import { localAnswer } from "./local_answer.ts";

const log = logger("connect");

/** Options of {@link Tunnel}. */
export interface TunnelOptions {
  /** Updated on every message; optional so that tests and the demo can leave it out. */
  metrics?: ConnectMetrics | undefined;
  /** This server's own metrics (calls in flight, its errors). */
  server?: ServerMetrics | undefined;
  /** Bounds of the replay buffer kept for resumption (docs/resume.md). */
  replayLimits?: ReplayLimits;
  /** Aborts the backpressure wait. */
  signal: AbortSignal;
}

/** The routing between one local session and the current link. */
export class Tunnel {
  #options: TunnelOptions;
  #session: LocalSession | undefined;
  #link: LinkChannel | undefined;
  /** The channel of the last link, for frames kept for replay while the link is down. */
  #channel: string | undefined;
  /** Counts sessions with the gateway: an answer for a call of an older one cannot be routed. */
  #generation = 0;
  /** Server-initiated requests sent to the gateway and not answered yet (C only). */
  #serverRequests = new Map<string, JsonRpcId>();
  #undeliverable = 0;
  #resumption: Resumption;
  /** Payload logging costs a serialization per message: decide once whether anyone will read it. */
  #debug = log.isEnabledFor("debug");

  constructor(options: TunnelOptions) {
    this.#options = options;
    this.#resumption = new Resumption(options.replayLimits);
  }

  /** The local session messages go to. */
  set session(session: LocalSession | undefined) {
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

  /** The local server died under a live link: fail its calls and unregister until it is back. */
  serverDied(): void {
    this.failInFlight("The local MCP server exited before answering; it is being restarted");
    // The gateway must forget this server: it will register afresh once the new process is initialized.
    const link = this.#link;
    link?.sendText(encodeUnregister({ sessionId: link.sessionId, channel: link.channel }));
  }

  /** Answers every call in flight of the current generation with `message`. */
  failInFlight(message: string): void {
    const session = this.#session;
    if (!session) return;
    for (const request of session.takeInFlight()) {
      if (request.generation === this.#generation) {
        this.#sendPayload(
          "response",
          errorResponse(request.id, ErrorCode.ServerUnavailable, message),
        );
      }
    }
    this.#options.server?.callsInFlight.set(0);
  }

  /**
   * Stopping: answers what is in flight and unregisters the server (its link is the caller's to close).
   * True if its link was open.
   */
  unregister(reason = "mcp-rproxy is shutting down"): boolean {
    const link = this.#link;
    this.#link = undefined;
    let closed = false;
    if (link?.isOpen) {
      // Answer what is still in flight so that no caller waits for a response that will never come.
      for (const request of this.#session?.takeInFlight() ?? []) {
        link.sendText(encodeDataFrame({
          type: "response",
          sessionId: link.sessionId,
          channel: link.channel,
          payloadText: JSON.stringify(
            errorResponse(request.id, ErrorCode.ServerUnavailable, reason),
          ),
        }));
      }
      link.sendText(encodeUnregister({ sessionId: link.sessionId, channel: link.channel }));
      closed = true;
    }
    this.#failServerRequests(reason);
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
    this.#failServerRequests("The link to the gateway dropped before the client answered");
  }

  #failServerRequests(message: string): void {
    const session = this.#session;
    for (const id of this.#serverRequests.values()) {
      void session?.reply(errorResponse(id, ErrorCode.TunnelUnavailable, message));
    }
    this.#serverRequests.clear();
  }

  /** True when a message sent now reaches the gateway, now or by replay after a resumption. */
  #deliverable(): boolean {
    return this.#link?.isOpen === true || this.#resumption.deliverable;
  }

  /** Sends a payload object; returns false if there is no link. */
  #sendPayload(type: DataFrameType, payload: JsonObject): boolean {
    return this.#sendText(type, JSON.stringify(payload), undefined, undefined);
  }

  /** The frame's size and the gateway's limit when a payload would make a frame over that limit. */
  #oversize(payloadText: string, payloadBytes: number | undefined): Oversize | undefined {
    const link = this.#link;
    return oversize(payloadText, {
      payloadBytes,
      // The channel name rides in the envelope too: counted as part of the id.
      sessionId: (this.#resumption.sessionId ?? link?.sessionId ?? "") + (this.#channel ?? ""),
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
    payloadBytes: number | undefined,
    id: JsonRpcId | undefined,
  ): boolean {
    if (!this.#deliverable()) return false;
    const link = this.#link;
    const resumption = this.#resumption;
    const sessionId = resumption.sessionId ?? link!.sessionId;
    const size = this.#oversize(payloadText, payloadBytes);
    if (size !== undefined) return this.#tooLarge(type, size, id);
    const metrics = this.#options.metrics;
    const channel = this.#channel;
    const sequenced = resumption.send({ type, sessionId, channel, payloadText }, payloadBytes);
    if (sequenced !== undefined && !link?.isOpen) return true; // kept for replay
    const text = sequenced ?? encodeDataFrame({ type, sessionId, channel, payloadText });
    metrics?.framesOut.inc();
    metrics?.bytesOut.inc(text.length);
    return link!.sendText(text);
  }

  #tooLarge(type: DataFrameType, size: Oversize, id: JsonRpcId | undefined): boolean {
    this.#options.server?.error("frame_too_large");
    const { bytes, limit } = size;
    if (type === "response" && id !== undefined) {
      log.warning(
        "An answer of {bytes} bytes exceeds the gateway's frame limit of {limit} bytes; sent an error",
        { event: "frame_too_large", bytes, limit },
      );
      return this.#sendPayload("response", tooLargeError(id, "The result", size));
    }
    log.warning(
      "A {type} of {bytes} bytes exceeds the gateway's frame limit of {limit} bytes; not forwarded",
      { event: "frame_too_large", type, bytes, limit },
    );
    return false;
  }

  /** The server wrote an answer over its line limit: its caller gets an error instead of nothing. */
  oversizedAnswer(id: JsonRpcId | undefined): void {
    if (id === undefined) return;
    this.#sendPayload(
      "response",
      errorResponse(id, ErrorCode.MessageTooLarge, "The local server's answer exceeded 64 MiB"),
    );
  }

  /** Everything the local server writes, in order. May return a promise to pause reading. */
  fromServer(message: ServerMessage): void | Promise<void> {
    const link = this.#link;
    if (message.kind === "request") return this.#serverRequest(message);
    if (message.kind === "response") {
      this.#options.server?.callsInFlight.set(this.#session?.inFlightCount ?? 0);
      const request = message.request;
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
      if (this.#debug) {
        log.debug("→ gateway response {payload}", { payload: truncate(message.text) });
      }
      this.#sendText("response", message.text, message.bytes, request.id);
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
      if (this.#debug) {
        log.debug("→ gateway notification {payload}", { payload: truncate(message.text) });
      }
      this.#sendText("notification", message.text, message.bytes, undefined);
    }
    if (link !== undefined && link.bufferedAmount > HIGH_WATER_BYTES) {
      return drain(link, this.#options.signal);
    }
  }

  #serverRequest(message: ServerMessage): void {
    const link = this.#link;
    const session = this.#session;
    const id = message.id as JsonRpcId;
    if (link?.isOpen && link.hasExtension(Extension.ServerRequests)) {
      const size = this.#oversize(message.text, message.bytes);
      if (size !== undefined) {
        // Never sent: the server learns why at once instead of waiting for an answer.
        this.#tooLarge("request", size, undefined);
        const what = `mcp-rproxy cannot deliver '${
          String(message.method)
        }' to a client: the request`;
        return session?.reply(tooLargeError(id, what, size));
      }
      this.#serverRequests.set(JSON.stringify(id), id);
      if (this.#debug) {
        log.debug("→ gateway request {payload}", { payload: truncate(message.text) });
      }
      if (this.#sendText("request", message.text, message.bytes, undefined)) return;
      this.#serverRequests.delete(JSON.stringify(id));
    }
    const why = link?.isOpen
      ? `the gateway (contract ${link.contract ?? "?"}) does not relay server-initiated requests`
      : "the link to the gateway is down";
    log.info("Answered the server's {method} request locally: {why}", {
      event: "server_request_answered",
      method: String(message.method),
      why,
    });
    void session?.reply(localAnswer(message, why));
  }

  #fromGateway(frame: Frame): void {
    const link = this.#link;
    const session = this.#session;
    if (!session || !link) return;
    const resumption = this.#resumption;
    const acceptance = resumption.receive(frame.seq);
    if (acceptance === "duplicate") return; // replayed, and delivered before
    if (acceptance === "gap") {
      // 1000 with a reason: a WebSocket client may not send 1002, and a resumable session outlives
      // the close of its link whatever the code (only an `unregister` ends it).
      link.closeLink(CloseCode.Normal, "sequence gap");
      return;
    }
    const ack = resumption.dueAck();
    if (ack !== undefined) {
      link.sendText(encodeAck({ sessionId: resumption.sessionId!, channel: link.channel, ack }));
    }
    const generation = this.#generation;
    const payload = frame.payload;
    if (frame.type !== "request" && frame.type !== "response") {
      log.warning("Gateway sent an unknown frame type '{type}'; ignored", {
        event: "bad_frame",
        type: frame.type.slice(0, 64),
      });
      return;
    }
    if (payload === undefined) {
      log.warning("Gateway sent a '{type}' frame without a payload; ignored", {
        event: "bad_frame",
        type: frame.type,
      });
      return;
    }
    // A long request passes to the server as the text it came in, unless the proxy must act on it.
    if (frame.type === "request" && payload.isText) {
      const forwarded = session.forwardText(payload.text, payload.facts, generation);
      if (forwarded !== false) {
        if (this.#debug) {
          log.debug("← gateway request {payload}", { payload: truncate(payload.text) });
        }
        // A request the server's input queue had no room for is answered at once.
        if (forwarded !== true) this.#sendPayload("response", forwarded);
        this.#options.server?.callsInFlight.set(session.inFlightCount);
        return;
      }
    }
    const value = payload.value;
    if (typeof value !== "object" || value === null) {
      log.warning("Gateway sent a '{type}' frame without a JSON object payload; ignored", {
        event: "bad_frame",
        type: frame.type,
      });
      return;
    }
    // Never log `authentication` (a frame field): it carries downstream credentials.
    if (frame.type === "request") {
      if (this.#debug) {
        log.debug("← gateway request {payload}", { payload: truncate(payload.text) });
      }
      for (const element of Array.isArray(value) ? value : [value]) {
        const immediate = session.fromTunnel(element as JsonObject, generation);
        if (immediate) this.#sendPayload("response", immediate);
      }
      this.#options.server?.callsInFlight.set(session.inFlightCount);
      return;
    }
    // The answer to a server-initiated request (C's `server-requests` extension).
    const id = (value as JsonObject).id;
    if (typeof id === "string" || typeof id === "number") {
      this.#serverRequests.delete(JSON.stringify(id));
    }
    void session.reply(value as JsonRpcResponse);
  }
}
