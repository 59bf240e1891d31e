// serve's side of one accepted link: its socket, the frames that arrive on it (size, shape, heartbeats,
// malformed ones), and the tunnel sessions it carries. Registration and the sessions themselves are not
// decided here: the link hands `register` to its host and data frames to the session they belong to.

import { logger } from "../util/log.ts";
import { utf8Length } from "../util/utf8.ts";
import {
  CloseCode,
  encodeError,
  encodeHeartbeat,
  Extension,
  type Frame,
  parseFrame,
  readAcks,
  readKeepaliveMs,
} from "../protocol/frames.ts";
import { readRegister } from "../protocol/registration.ts";
import type {
  LinkedSession,
  LinkLimits,
  LinkLoss,
  TunnelLinkHost,
  TunnelLinkOptions,
} from "./link_contract.ts";
import type { Charge } from "./memory_budget.ts";
import { LinkSendBuffer } from "./link_send_buffer.ts";
import type { ServeMetrics } from "./metrics.ts";
import type { FrameRefusal, PeerSocket } from "./peer_socket.ts";
import type { Identity } from "./token_store.ts";

const log = logger("serve", "link");

/** Bounds of a client's announced `keepaliveMs`; the dead-link deadline is three times it. */
const MIN_KEEPALIVE_MS = 50;
const MAX_KEEPALIVE_MS = 3_600_000;
/** Window over which malformed frames are counted. */
const BAD_FRAME_WINDOW_MS = 60_000;

/**
 * One accepted link. It handles every frame from its socket and never throws out of a socket event.
 *
 * @example
 * ```ts ignore
 * const link = new TunnelLink(peerSocket, { identity, baseUrl, limits, host });
 * ```
 */
export class TunnelLink {
  /** For logs. */
  readonly id: string = crypto.randomUUID();
  /** The identity of the token that opened the link. */
  readonly identity: Identity;
  /** When the link was accepted (ms since epoch). */
  readonly connectedAt: number;
  /** Where MCP clients reach this gateway, as the link's client addressed it. */
  readonly baseUrl: string;
  #lastInbound: number;
  #deadlineMs: number | undefined;
  #socket: PeerSocket;
  /** The frame being received, charged from its header on until it has been handled. */
  #receiving: Charge | undefined;
  /** What was sent and the peer has not taken yet, charged to the owner. */
  #unsent: LinkSendBuffer;
  #limits: LinkLimits;
  #host: TunnelLinkHost;
  #now: () => number;
  #metrics: ServeMetrics | undefined;
  #badFrames: number[] = [];
  /** The sessions the link carries, by channel ("" for a link without channels). */
  #sessions = new Map<string, LinkedSession>();
  #closed = false;
  /** Once a session was attached: a link without channels takes no second `register`. */
  #registeredOnce = false;
  /** True once the client asked for the `channels` extension in its first `register`. */
  #channels = false;
  #registerTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(socket: PeerSocket, options: TunnelLinkOptions) {
    const { identity, baseUrl, limits, host, now = Date.now, metrics, budget } = options;
    this.#receiving = budget?.charge(identity.owner, { what: "frame being received" });
    const full = () => this.#notReading();
    this.#unsent = new LinkSendBuffer({
      socket,
      charge: budget?.charge(identity.owner, { what: "link send buffer", evict: full }),
      full,
    });
    this.identity = identity;
    this.baseUrl = baseUrl;
    this.#socket = socket;
    this.#limits = limits;
    this.#host = host;
    this.#now = now;
    this.#metrics = metrics;
    this.connectedAt = now();
    this.#lastInbound = this.connectedAt;
    this.#registerTimer = setTimeout(() => {
      this.#registerTimer = undefined;
      log.debug("Link {link} of {owner} did not register within {seconds} s", {
        event: "register_timeout",
        link: this.id,
        owner: this.owner,
        seconds: limits.registerTimeoutMs / 1000,
      });
      this.#metrics?.errors.inc("register_timeout");
      this.close(CloseCode.RegisterTimeout, "register timeout");
    }, limits.registerTimeoutMs);
    socket.listen({
      onFrameStart: (bytes) => this.#receiving?.resize(bytes) ?? true,
      onMessage: (data) => {
        try {
          this.#onMessage(data);
        } catch (error) {
          // A peer must never crash the gateway; a bug here costs this link only.
          log.error("Frame handling failed on link {link}: {error}", {
            event: "internal_error",
            link: this.id,
            error: String(error),
          });
          this.close(CloseCode.InternalError, "internal error");
        } finally {
          this.#receiving?.resize(0);
        }
      },
      onRefused: (refusal) => this.#onRefused(refusal),
      onClose: (code, reason) => this.#onSocketClosed(code, reason),
    });
  }

  /** How the link travels: `websocket` or `sse`. */
  get transport(): PeerSocket["transport"] {
    return this.#socket.transport;
  }

  /** The owner of the token that opened the link. */
  get owner(): string {
    return this.identity.owner;
  }

  /** Last inbound frame (ms since epoch); the reaper reads it. */
  get lastInbound(): number {
    return this.#lastInbound;
  }

  /**
   * Silence after which the link counts as dead, in milliseconds: three keepalive intervals once the
   * client announced its `keepaliveMs`, else undefined (the gateway's heartbeat timeout applies).
   */
  get deadlineMs(): number | undefined {
    return this.#deadlineMs;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** True once the link carried a session (it registered, or resumed one). */
  get registered(): boolean {
    return this.#registeredOnce;
  }

  /** Resolves when the socket has closed, or after `ms`. */
  async waitClosed(ms: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#socket.closed,
      new Promise((resolve) => timer = setTimeout(resolve, ms)),
    ]).finally(() => clearTimeout(timer));
  }

  /** True when the link carries many servers, each frame naming its server in `channel`. */
  get channels(): boolean {
    return this.#channels;
  }

  /** Carries `session` on `channel` ("" without channels) from now on. */
  attach(session: LinkedSession, channel = ""): void {
    this.#sessions.set(channel, session);
    if (this.#registeredOnce) return;
    this.#registeredOnce = true;
    clearTimeout(this.#registerTimer);
    this.#registerTimer = undefined;
    this.#host.registered?.(this);
  }

  /** Stops carrying `session`; true when the link carries nothing more. */
  detach(session: LinkedSession): boolean {
    for (const [channel, carried] of this.#sessions) {
      if (carried === session) this.#sessions.delete(channel);
    }
    return this.#sessions.size === 0;
  }

  /** Sends a frame's text; false when it cannot go out. Counts it for `session` when given. */
  sendText(text: string, session?: LinkedSession): boolean {
    if (this.#closed || !this.#socket.send(text) || !this.#unsent.measure()) return false;
    const bytes = text.length < 4096 ? utf8Length(text) : text.length;
    session?.countOut(bytes);
    this.#metrics?.framesOut.inc();
    this.#metrics?.bytesOut.inc(bytes);
    return true;
  }

  /**
   * Refuses what the client asked with an `error` frame holding `message` and closes the link with `code`
   * (default 1008) and `reason` (default the message).
   */
  refuse(message: string, close: { code?: number; reason?: string } = {}): void {
    this.sendText(encodeError({ sessionId: "", message }));
    this.close(close.code ?? CloseCode.Policy, close.reason ?? message);
  }

  /**
   * Closes the link with a code and reason. The sessions it carries are told the link is lost (they
   * detach or end, as their resume state allows).
   */
  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.#socket.close(code, reason);
    this.#end({ dead: false, code, reason });
  }

  /** The link sent nothing past its deadline: close it, and let its sessions detach or end. */
  declareDead(reason: string): void {
    if (this.#closed) return;
    this.#socket.close(CloseCode.GoingAway, reason);
    this.#end({ dead: true, code: CloseCode.GoingAway, reason });
  }

  /** The peer does not take what is sent, and its owner's share cannot hold more: close the link (1013). */
  #notReading(): void {
    if (this.#closed) return;
    log.warning(
      "Closing link {link} of {owner}: {mib} MiB sent and not read fill its owner's memory share",
      {
        event: "link_not_reading",
        link: this.id,
        owner: this.owner,
        mib: (this.#socket.bufferedAmount / 1048576).toFixed(1),
      },
    );
    this.#metrics?.errors.inc("memory");
    this.close(CloseCode.TryAgainLater, "link not reading");
  }

  #onSocketClosed(code: number, reason: string): void {
    this.#end({
      dead: false,
      code,
      reason: `socket closed (${code}${reason ? ` ${reason}` : ""})`,
    });
  }

  #end(loss: LinkLoss): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#receiving?.release();
    this.#unsent.release();
    clearTimeout(this.#registerTimer);
    this.#registerTimer = undefined;
    const sessions = [...this.#sessions.values()];
    this.#sessions.clear();
    for (const session of sessions) session.linkLost(loss);
    this.#host.closed(this);
  }

  /**
   * Answers a malformed frame with an `error` frame; a link that keeps sending them is closed (1008).
   * `session` is the session id to put in the answer.
   */
  badFrame(message: string, session?: string): void {
    const now = this.#now();
    this.#badFrames = this.#badFrames.filter((t) => now - t < BAD_FRAME_WINDOW_MS);
    this.#badFrames.push(now);
    this.#metrics?.errors.inc("protocol");
    log.debug("Malformed frame on link {link}: {message}", {
      event: "bad_frame",
      link: this.id,
      message,
    });
    this.sendText(encodeError({ sessionId: session ?? "", message }));
    if (this.#badFrames.length > this.#limits.maxBadFrames) {
      log.warning("Closing link {link} of {owner}: too many malformed frames", {
        event: "bad_frames",
        link: this.id,
        owner: this.owner,
      });
      this.close(
        CloseCode.Policy,
        `too many malformed frames (more than ${this.#limits.maxBadFrames} a minute)`,
      );
    }
  }

  /** The socket refused a frame at its header (binary, or over the limit) and is closing already. */
  #onRefused(refusal: FrameRefusal): void {
    if (this.#closed) return;
    this.#metrics?.framesIn.inc();
    const { kind, bytes, limit } = refusal;
    if (kind === "memory") {
      this.#metrics?.errors.inc("memory");
      log.warning(
        "Closing link {link} of {owner}: a frame of {bytes} bytes does not fit in the owner's memory share now (--memory-per-owner)",
        { event: "memory_share_exceeded", link: this.id, owner: this.owner, bytes },
      );
      this.#end({ dead: false, code: CloseCode.TryAgainLater, reason: "memory share used up" });
      return;
    }
    this.#metrics?.errors.inc("protocol");
    const binary = kind === "binary";
    log.warning(
      binary
        ? "Closing link {link} of {owner}: binary frame of {bytes} bytes (the protocol is JSON text)"
        : "Closing link {link} of {owner}: frame of {bytes} bytes over the limit {limit}",
      {
        event: binary ? "binary_frame" : "frame_too_large",
        link: this.id,
        owner: this.owner,
        bytes,
        limit,
      },
    );
    this.#end({
      dead: false,
      code: binary ? CloseCode.UnsupportedData : CloseCode.TooBig,
      reason: binary
        ? "binary frame"
        : `frame of ${bytes} bytes exceeds the limit of ${limit} (serve --max-frame-bytes)`,
    });
  }

  #onMessage(data: string): void {
    if (this.#closed) return;
    this.#lastInbound = this.#now();
    this.#metrics?.framesIn.inc();
    const limit = this.#limits.maxFrameBytes;
    const bytes = data.length * 3 <= limit ? data.length : utf8Length(data);
    this.#metrics?.bytesIn.inc(bytes);
    if (bytes > limit) {
      log.warning("Closing link {link}: frame of {bytes} bytes over the limit {limit}", {
        event: "frame_too_large",
        link: this.id,
        bytes,
        limit,
      });
      this.close(
        CloseCode.TooBig,
        `frame of ${bytes} bytes exceeds the limit of ${limit} (serve --max-frame-bytes)`,
      );
      return;
    }
    const frame = parseFrame(data);
    if (frame instanceof Error) {
      this.badFrame(frame.message);
      return;
    }
    switch (frame.type) {
      case "register":
        return this.#onRegister(frame);
      case "heartbeat":
        return this.#onHeartbeat(frame);
      case "ack":
      case "unregister":
      case "client_instances":
      case "response":
      case "notification":
      case "request": {
        const session = this.#sessions.get(frame.channel ?? "");
        if (session === undefined) {
          if (frame.type === "ack" || frame.type === "client_instances") return;
          if (frame.type === "unregister") return this.close(CloseCode.Normal, "unregistered");
          this.badFrame(`Frame '${frame.type}' before 'register'; register first`);
          return;
        }
        session.onFrame(frame, bytes);
        return;
      }
      default:
        this.badFrame(`Unknown frame type ${JSON.stringify(frame.type).slice(0, 64)}`);
    }
  }

  #onRegister(frame: Frame): void {
    const register = readRegister(frame);
    if (!this.#registeredOnce && !(register instanceof Error)) {
      // The first register decides: many servers on this link only if the client asked for it, with a
      // channel named.
      this.#channels = register.extensions.has(Extension.Channels) &&
        register.channel !== undefined;
    }
    if (this.#registeredOnce && !this.#channels) {
      this.close(CloseCode.Policy, "register sent twice on one connection");
      return;
    }
    if (register instanceof Error) {
      this.refuse(register.message);
      return;
    }
    if (
      this.#channels && (register.channel === undefined || this.#sessions.has(register.channel))
    ) {
      this.badFrame(
        register.channel === undefined
          ? "Register on a link with channels needs a 'channel'"
          : `Channel ${JSON.stringify(register.channel).slice(0, 64)} is already registered`,
      );
      return;
    }
    this.#host.register(this, register);
  }

  #onHeartbeat(frame: Frame): void {
    const keepaliveMs = readKeepaliveMs(frame);
    if (keepaliveMs !== undefined) {
      const clamped = Math.min(Math.max(keepaliveMs, MIN_KEEPALIVE_MS), MAX_KEEPALIVE_MS);
      this.#deadlineMs = 3 * clamped;
      this.#host.livenessChanged?.(this);
    }
    // Exactly one acknowledgement per client heartbeat; the gateway never starts one.
    if (this.#channels) {
      // Each channel's session has its own sequence: acks go both ways per channel.
      for (const [channel, ack] of readAcks(frame)) this.#sessions.get(channel)?.peerAcked(ack);
      const acks: Record<string, number> = {};
      for (const [channel, session] of this.#sessions) {
        const ack = session.heartbeatAck();
        if (ack !== undefined) acks[channel] = ack;
      }
      this.sendText(encodeHeartbeat({
        sessionId: frame.sessionId ?? "",
        timestamp: new Date().toISOString(),
        acks,
      }));
      return;
    }
    const session = this.#sessions.get("");
    if (frame.ack !== undefined) session?.peerAcked(frame.ack);
    const ack = session?.heartbeatAck();
    this.sendText(encodeHeartbeat({
      sessionId: session?.id ?? frame.sessionId ?? "",
      timestamp: new Date().toISOString(),
      ...(ack === undefined ? {} : { ack }),
    }));
  }
}
