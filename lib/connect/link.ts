// One link to a gateway: dial, register (contract A, B or C, told apart by what the gateway sends),
// heartbeat with a reply deadline, send frames, and report how the link ended, as a typed outcome.

import { logger } from "../util/log.ts";
import {
  CloseCode,
  CONTRACT_B_MAX_FRAME_BYTES,
  encodeHeartbeat,
  type Frame,
  parseFrame,
  readErrorMessage,
  WEBSOCKET_MAX_MESSAGE_BYTES,
} from "../protocol/frames.ts";
import {
  encodeRegister,
  readRegisterAck,
  readRegisterComplete,
  type ResumeRequest,
} from "../protocol/registration.ts";
import { describeFailure } from "./dial_failure.ts";
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

export {
  type Contract,
  DialError,
  type DialFailure,
  type LinkEnd,
  type Registration,
} from "./link_outcome.ts";

const log = logger("link");

/** Options of {@link Link.open}. */
export interface LinkOptions {
  /** The `/reverse-proxy/ws` endpoint. */
  url: URL;
  token?: string;
  /** Our `X-Session-ID` and the `sessionId` of the `register` frame. */
  clientSessionId: string;
  server: { name: string; description: string };
  /** Heartbeat interval in milliseconds. */
  keepaliveMs: number;
  /** How long a heartbeat may go without any frame from the gateway; default 2 × keepalive. */
  heartbeatDeadlineMs?: number;
  /** Extra trusted CA (PEM) for wss. */
  caCert?: string;
  /** The file `caCert` came from, for messages. */
  caCertPath?: string;
  /** Deadline for the handshake, in milliseconds. */
  openTimeoutMs?: number;
  /** Deadline from handshake to completed registration (B runs discovery in between), in milliseconds. */
  registerTimeoutMs?: number;
  /**
   * Called once registration completes, synchronously: before any later frame is handled and before the
   * first heartbeat. Deno may deliver the frames that follow `register_ack` before `open` resolves, so
   * state they depend on (the `resume` sequence numbers) must be set up here.
   */
  onRegistered?: (link: Link) => void;
  /** Gateway frames other than registration and heartbeats; called in order, also during registration. */
  onFrame: (frame: Frame, link: Link) => void;
  /** Called when a heartbeat reply arrives, with the round trip in milliseconds. */
  onHeartbeatRtt?: (ms: number) => void;
  /** Called with the size of every frame received. */
  onFrameIn?: (bytes: number) => void;
  /**
   * Ask the gateway to re-attach this session (only after it announced `resume`). `overflowed` says our
   * replay buffer overflowed: the gateway then ends that session (failing its calls) instead.
   */
  resume?: ResumeRequest;
  /** Called with the `ack` of every gateway frame that carries one. */
  onAck?: (ack: number) => void;
  /** The cumulative `ack` to put on heartbeats, when resuming is in use. */
  heartbeatAck?: () => number | undefined;
  signal?: AbortSignal;
}

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
  #timer: ReturnType<typeof setInterval> | undefined;
  #lastInboundAt = performance.now();
  #heartbeatSentAt: number | undefined;
  #lastHeartbeatAt = 0;
  /** Settles `open`: set while registering. */
  #registering:
    | { succeed: (r: Registration) => void; fail: (error: unknown) => void }
    | undefined;

  private constructor(options: LinkOptions) {
    this.#options = options;
    this.ended = new Promise((resolve) => this.#resolveEnded = resolve);
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

  /** Closes the link (without waiting for the peer: a silent peer never answers a close). */
  close(code: number = CloseCode.Normal, reason = ""): void {
    this.#finish({ kind: "local", code, reason });
  }

  #finish(end: LinkEnd): void {
    if (this.#end !== undefined) return;
    this.#end = end;
    clearInterval(this.#timer);
    this.#timer = undefined;
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
    const headers: Record<string, string> = { "X-Session-ID": options.clientSessionId };
    if (options.token !== undefined) headers.Authorization = `Bearer ${options.token}`;
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
        this.#startHeartbeat();
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
    return openWebSocket({
      url: options.url,
      headers,
      ...(options.caCert === undefined ? {} : { caCert: options.caCert }),
    }, {
      onOpen: () => {
        opened();
        this.#lastInboundAt = performance.now();
        this.sendText(encodeRegister({
          sessionId: options.clientSessionId,
          server: { ...options.server, protocol: "mcp" },
          ...(options.resume ? { resume: options.resume } : {}),
          extensions: new Set(),
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
    this.#lastInboundAt = performance.now();
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
    if (frame.ack !== undefined) this.#options.onAck?.(frame.ack);
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
        return this.#onHeartbeat();
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

  #onRegisterAck(frame: Frame): void {
    const registering = this.#registering;
    if (registering === undefined) return; // a late or repeated answer: registration is settled
    const ack = readRegisterAck(frame, this.#options.clientSessionId);
    if (ack.status === "evicted" || ack.resumeError === "evicted") {
      // Our gateway: the session we asked to resume was removed on purpose (its 4001 close may not have
      // reached us). Coming back under a new session would undo the operator's decision.
      return registering.fail(
        new DialError("evicted", "The gateway evicted this session; not registering again"),
      );
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

  #onHeartbeat(): void {
    // A gateway heartbeat is a reply (A and B never send one unsolicited): never answer it.
    if (this.#heartbeatSentAt !== undefined) {
      this.#options.onHeartbeatRtt?.(performance.now() - this.#heartbeatSentAt);
      this.#heartbeatSentAt = undefined;
    }
  }

  #sendHeartbeat(keepaliveMs?: number): void {
    const ack = this.#options.heartbeatAck?.();
    this.sendText(encodeHeartbeat({
      sessionId: this.sessionId,
      ...(keepaliveMs === undefined ? {} : { keepaliveMs }),
      ...(ack === undefined ? {} : { ack }),
    }));
  }

  #startHeartbeat(): void {
    const keepaliveMs = this.#options.keepaliveMs;
    const deadlineMs = this.#options.heartbeatDeadlineMs ?? 2 * keepaliveMs;
    // Check often enough that a dead link is noticed soon after its deadline, without a timer per message.
    const tickMs = Math.max(10, Math.min(keepaliveMs, deadlineMs) / 4);
    this.#lastHeartbeatAt = performance.now();
    // Tell our gateway the interval, so that it can detect a half-open link as fast as we do.
    if (this.#registration?.contract === "C") this.#sendHeartbeat(keepaliveMs);
    this.#timer = setInterval(() => {
      const now = performance.now();
      // Any frame from the gateway since the heartbeat counts as liveness.
      if (this.#heartbeatSentAt !== undefined && this.#lastInboundAt >= this.#heartbeatSentAt) {
        this.#heartbeatSentAt = undefined;
      }
      if (this.#heartbeatSentAt !== undefined && now - this.#heartbeatSentAt >= deadlineMs) {
        log.warning(
          "No frame from the gateway within {deadlineMs} ms of a heartbeat; the link is dead",
          { event: "heartbeat_timeout", deadlineMs: Math.round(deadlineMs) },
        );
        this.#finish({ kind: "heartbeat" });
        return;
      }
      if (now - this.#lastHeartbeatAt >= keepaliveMs) {
        this.#lastHeartbeatAt = now;
        this.#heartbeatSentAt ??= now;
        this.#sendHeartbeat();
      }
    }, tickMs);
  }
}
