// One link to a gateway: dial, register (contract A, B or C, told apart by what the gateway sends),
// heartbeat with a reply deadline, send frames, and report how the link ended, as a typed outcome.

import { logger } from "../util/log.ts";
import {
  CloseCode,
  CONTRACT_B_MAX_FRAME_BYTES,
  encodeHeartbeat,
  Extension,
  type Frame,
  type LinkTransport,
  parseFrame,
  readAcks,
  readClose,
  readErrorMessage,
  WEBSOCKET_MAX_MESSAGE_BYTES,
} from "../protocol/frames.ts";
import {
  encodeRegister,
  readRegisterAck,
  readRegisterComplete,
  type ResumeRequest,
} from "../protocol/registration.ts";
import { ChannelRegistrations } from "./channel_registrations.ts";
import { dialHeaders } from "./link_url.ts";
import { describeFailure } from "./dial_failure.ts";
import { sharedOnly } from "./isolation_refusal.ts";
import { LinkHeartbeat } from "./link_heartbeat.ts";
import type { LinkOptions, ServerDescription } from "./link_options.ts";
import { type LinkSocket, openWebSocket, type SocketEnd } from "./link_socket.ts";
import {
  closedDuringRegistration,
  type Contract,
  DialError,
  type LinkEnd,
  refusal,
  type Registration,
  registrationOf,
} from "./link_outcome.ts";

export type { LinkOptions } from "./link_options.ts";
export {
  type Contract,
  DialError,
  type DialFailure,
  type LinkEnd,
  type Registration,
} from "./link_outcome.ts";

const log = logger("link");

/** A registered link. Open with {@link Link.open}; it ends on its own or with {@link Link.close}. */
export class Link {
  /** Resolves once, when the link is gone for whatever reason. Never rejects. */
  readonly ended: Promise<LinkEnd>;
  #socket!: LinkSocket;
  #options: LinkOptions;
  #registration: Registration | undefined;
  #pendingB: Registration | undefined;
  #resolveEnded!: (end: LinkEnd) => void;
  #end: LinkEnd | undefined;
  #heartbeat: LinkHeartbeat;
  #channels: ChannelRegistrations;
  /** Settles `open`: set while registering. */
  #registering:
    | { succeed: (r: Registration) => void; fail: (error: unknown) => void }
    | undefined;

  private constructor(options: LinkOptions) {
    this.#options = options;
    this.ended = new Promise((resolve) => this.#resolveEnded = resolve);
    this.#channels = new ChannelRegistrations(options.url);
    this.#heartbeat = new LinkHeartbeat({
      keepaliveMs: options.keepaliveMs,
      deadlineMs: options.heartbeatDeadlineMs ?? 2 * options.keepaliveMs,
      send: (keepaliveMs) => this.#sendHeartbeat(keepaliveMs),
      dead: () => this.#finish({ kind: "heartbeat" }),
      onRtt: options.onHeartbeatRtt,
    });
  }

  /**
   * Dials the gateway and registers. Resolves when registration is complete (A and C: `register_ack`
   * success; B: `register_complete` success).
   *
   * @throws {DialError} with a kind saying why the link did not end registered
   * @throws the signal's reason when it aborts first
   * @throws the runtime's permission error when `--allow-net` does not cover the gateway
   */
  static async open(options: LinkOptions): Promise<Link> {
    const link = new Link(options);
    await link.#register();
    return link;
  }

  /** Registration details. */
  get registration(): Registration {
    if (this.#registration === undefined) throw new Error("Link is not registered yet");
    return this.#registration;
  }

  /** Largest frame the gateway takes; known from the first registration answer on. */
  get maxFrameBytes(): number {
    return (this.#registration ?? this.#pendingB)?.maxFrameBytes ?? WEBSOCKET_MAX_MESSAGE_BYTES;
  }

  /** True if the gateway announced this extension. */
  hasExtension(name: string): boolean {
    return this.#registration?.extensions.has(name) ?? false;
  }

  /** True when the link carries many servers, each frame naming its server's channel. */
  get channels(): boolean {
    return this.#options.channel !== undefined && this.hasExtension(Extension.Channels);
  }

  /**
   * Registers one more server on a link with channels. `onRegistered` is called synchronously with its
   * registration, before any later frame is handled.
   *
   * @throws {DialError} `evicted` for a resume of an evicted session, `too-many-sessions`, or
   * `registration-failed` / `register-timeout`
   */
  registerChannel(
    request: {
      channel: string;
      server: ServerDescription;
      resume?: ResumeRequest | undefined;
    },
    onRegistered?: (registration: Registration) => void,
  ): Promise<Registration> {
    const { channel, server, resume } = request;
    if (!this.channels || this.#end !== undefined) {
      return Promise.reject(new DialError("registration-failed", "The link carries no channels"));
    }
    const answered = this.#channels.wait(channel, {
      timeoutMs: this.#options.registerTimeoutMs ?? 60_000,
      ...(onRegistered === undefined ? {} : { onRegistered }),
    });
    this.sendText(encodeRegister({
      sessionId: this.#options.clientSessionId,
      channel,
      server: { ...server, protocol: "mcp" },
      ...(resume === undefined ? {} : { resume }),
      extensions: new Set([Extension.Channels]),
    }));
    return answered;
  }

  /** How the link travels: `websocket` or `sse`. */
  get transport(): LinkTransport {
    return this.#options.transport ?? "websocket";
  }

  /** The contract, once known. */
  get contract(): Contract | undefined {
    return (this.#registration ?? this.#pendingB)?.contract;
  }

  /** The session id to put in frames: the gateway's once it has given one. */
  get sessionId(): string {
    return (this.#registration ?? this.#pendingB)?.sessionId ?? this.#options.clientSessionId;
  }

  /** Bytes queued in the socket, for backpressure. */
  get bufferedAmount(): number {
    return this.#socket.bufferedAmount;
  }

  /** True while frames can be sent. */
  get isOpen(): boolean {
    return this.#end === undefined && this.#socket.isOpen;
  }

  /** Sends one frame's text. Returns false if the link is not open (the caller answers for the message). */
  sendText(text: string): boolean {
    if (this.#end !== undefined) return false;
    return this.#socket.send(text);
  }

  /** Resolves once the socket is done with the network after the link ended; see LinkSocket.settled. */
  get settled(): Promise<void> {
    return this.#socket?.settled ?? Promise.resolve();
  }

  /** Closes the link (without waiting for the peer: a silent peer never answers a close). */
  close(code: number = CloseCode.Normal, reason = ""): void {
    this.#finish({ kind: "local", code, reason });
  }

  #finish(end: LinkEnd): void {
    if (this.#end !== undefined) return;
    this.#end = end;
    this.#heartbeat.stop();
    this.#channels.failAll(end.kind === "heartbeat" ? "no heartbeat reply" : end.reason);
    this.#socket.close(
      end.kind === "local" ? end.code : CloseCode.Normal,
      end.kind === "heartbeat" ? "heartbeat deadline passed" : end.reason.slice(0, 120),
    );
    this.#resolveEnded(end);
  }

  #register(): Promise<void> {
    const options = this.#options;
    const openTimeoutMs = options.openTimeoutMs ?? 10_000;
    const registerTimeoutMs = options.registerTimeoutMs ?? 60_000;
    const headers = dialHeaders(options.clientSessionId, options.token);
    return new Promise<void>((resolve, reject) => {
      let timer = setTimeout(
        () =>
          fail(
            new DialError(
              "handshake-timeout",
              `Gateway at ${options.url.href} did not complete the handshake within ${openTimeoutMs} ms`,
            ),
          ),
        openTimeoutMs,
      );
      const onAbort = () => fail(options.signal?.reason);
      const settle = () => {
        this.#registering = undefined;
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
      };
      const fail = (error: unknown) => {
        if (this.#registering === undefined) return;
        settle();
        this.#finish({ kind: "local", code: CloseCode.Normal, reason: "registration failed" });
        reject(error);
      };
      const succeed = (registration: Registration) => {
        if (this.#registering === undefined) return;
        settle();
        this.#registration = registration;
        this.#options.onRegistered?.(this);
        // Tell our gateway the interval, so that it can detect a half-open link as fast as we do.
        this.#heartbeat.start(registration.contract === "C");
        resolve();
      };
      this.#registering = { succeed, fail };
      try {
        this.#socket = this.#dial(headers, () => {
          clearTimeout(timer);
          timer = setTimeout(
            () =>
              fail(
                new DialError(
                  "register-timeout",
                  `Gateway did not complete registration within ${registerTimeoutMs} ms`,
                ),
              ),
            registerTimeoutMs,
          );
        });
      } catch (error) {
        // A missing --allow-net is the user's to fix, not a network failure to retry.
        this.#registering = undefined;
        clearTimeout(timer);
        this.#end = { kind: "local", code: CloseCode.Normal, reason: "dial failed" };
        this.#resolveEnded(this.#end);
        return reject(error);
      }
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Opens the socket; `opened` re-arms the deadline for the registration answer. */
  #dial(headers: Record<string, string>, opened: () => void): LinkSocket {
    const options = this.#options;
    return (options.openSocket ?? openWebSocket)({
      url: options.url,
      headers,
      ...(options.caCert === undefined ? {} : { caCert: options.caCert }),
    }, {
      onOpen: () => {
        opened();
        this.#heartbeat.inbound();
        const { channel } = options;
        this.sendText(encodeRegister({
          sessionId: options.clientSessionId,
          ...(channel === undefined ? {} : { channel }),
          server: { ...options.server, protocol: "mcp" },
          ...(options.resume ? { resume: options.resume } : {}),
          extensions: new Set(channel === undefined ? [] : [Extension.Channels]),
        }));
      },
      onMessage: (data) => this.#onMessage(data),
      onEnd: (end) => this.#onSocketEnd(end),
    });
  }

  #onSocketEnd(end: SocketEnd): void {
    const registering = this.#registering;
    if (registering === undefined) {
      // Registered: the link is over. (Before it, a failed registration already finished it.)
      if (end.kind === "closed") {
        this.#finish({ kind: "closed", code: end.code, reason: end.reason });
      } else this.#finish({ kind: "closed", code: 0, reason: "connection failed" });
      return;
    }
    const url = this.#options.url;
    if (end.kind === "http-status") return registering.fail(refusal(end.status, url));
    if (end.kind === "closed") {
      return registering.fail(closedDuringRegistration(end.code, end.reason, url));
    }
    const { caCertPath } = this.#options;
    registering.fail(
      new DialError(
        "unreachable",
        describeFailure(end.cause, {
          url,
          runtimeText: end.message,
          ...(caCertPath === undefined ? {} : { caCertPath }),
        }),
        { failure: end.cause },
      ),
    );
  }

  #onMessage(data: string | { binary: number }): void {
    // A socket we gave up on (heartbeat deadline) may still deliver what it had queued: those frames
    // belong to no link any more (with `resume` the gateway replays them on the next one).
    if (this.#end !== undefined) return;
    this.#heartbeat.inbound();
    if (typeof data !== "string") {
      log.warning("Gateway sent a binary frame; ignored (the protocol uses text frames)", {
        event: "bad_frame",
      });
      return;
    }
    this.#options.onFrameIn?.(data.length);
    const frame = parseFrame(data);
    if (frame instanceof Error) {
      log.warning("Gateway sent a malformed frame; ignored: {error}", {
        event: "bad_frame",
        error: frame.message,
      });
      return;
    }
    if (frame.ack !== undefined) this.#options.onAck?.(frame.ack, frame.channel);
    switch (frame.type) {
      case "ack":
        return;
      case "register_ack":
        return this.#onRegisterAck(frame);
      case "register_complete": {
        const complete = readRegisterComplete(frame);
        if (complete.ok) {
          if (this.#registration === undefined && this.#pendingB !== undefined) {
            this.#registering?.succeed(this.#pendingB);
          }
        } else {
          this.#registering?.fail(
            new DialError("auth", `Gateway rejected the registration: ${complete.message}`),
          );
        }
        return;
      }
      case "heartbeat":
        // A gateway heartbeat is a reply (A and B never send one unsolicited): never answer it.
        for (const [channel, ack] of readAcks(frame)) this.#options.onAck?.(ack, channel);
        return this.#heartbeat.reply();
      case "close":
        return this.#onClose(frame);
      case "error":
        log.warning("Gateway reported an error: {message}", {
          event: "gateway_error",
          message: readErrorMessage(frame),
        });
        return;
      default:
        this.#options.onFrame(frame, this);
    }
  }

  /** With channels: one server's session ended (or its registration was refused); the link goes on. */
  #onClose(frame: Frame): void {
    const close = readClose(frame);
    const channel = frame.channel;
    if (close === undefined || channel === undefined || !this.channels) {
      log.warning("Gateway sent a close frame without a channel or code; ignored", {
        event: "bad_frame",
      });
      return;
    }
    if (this.#channels.closed(channel, close.code, close.reason)) return;
    this.#options.onChannelClosed?.(channel, close.code, close.reason);
  }

  #onRegisterAck(frame: Frame): void {
    const ack = readRegisterAck(frame, this.#options.clientSessionId);
    const registering = this.#registering;
    if (registering === undefined) {
      // Registered: the answer to a further channel's register (a late or repeated one is ignored).
      if (this.channels) this.#channels.answer(ack);
      return;
    }
    if (ack.status === "evicted" || ack.resumeError === "evicted") {
      // Our gateway: the session we asked to resume was removed on purpose (its 4001 close may not have
      // reached us). Coming back under a new session would undo the operator's decision.
      return registering.fail(
        new DialError("evicted", "The gateway evicted this session; not registering again"),
      );
    }
    if (ack.status === "processing" && this.#options.server.isolation === "per-client") {
      // Contract B offers shared isolation only; its discovery would initialize no client's instance.
      return registering.fail(new DialError("shared-only", sharedOnly("B")));
    }
    if (ack.status === "processing") {
      // Contract B: discovery runs through the tunnel now; registration completes with register_complete.
      this.#pendingB = {
        sessionId: ack.sessionId,
        contract: "B",
        extensions: new Set(),
        maxFrameBytes: CONTRACT_B_MAX_FRAME_BYTES,
      };
      return;
    }
    if (ack.status !== "success") {
      return registering.fail(
        new DialError(
          "registration-failed",
          `Gateway answered the registration with status '${ack.status.slice(0, 64)}'`,
        ),
      );
    }
    registering.succeed(registrationOf(ack));
  }

  #sendHeartbeat(keepaliveMs?: number): void {
    const acks = this.channels ? this.#options.heartbeatAcks?.() : undefined;
    const ack = acks === undefined ? this.#options.heartbeatAck?.() : undefined;
    this.sendText(encodeHeartbeat({
      sessionId: this.sessionId,
      ...(keepaliveMs === undefined ? {} : { keepaliveMs }),
      ...(ack === undefined ? {} : { ack }),
      ...(acks === undefined ? {} : { acks }),
    }));
  }
}
