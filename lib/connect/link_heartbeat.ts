// A link's liveness from the client side: a heartbeat every keepalive interval, and a deadline for any
// frame from the gateway after one (Deno's WebSocket client cannot send pings or see pongs).

import { logger } from "../util/log.ts";

const log = logger("link");

/** Options of {@link LinkHeartbeat}. */
export interface LinkHeartbeatOptions {
  /** Heartbeat interval, in milliseconds. */
  keepaliveMs: number;
  /** How long a heartbeat may go without any frame from the gateway, in milliseconds. */
  deadlineMs: number;
  /** Sends one heartbeat frame; `keepaliveMs` when the interval should be announced. */
  send: (keepaliveMs?: number) => void;
  /** The deadline passed: the link is dead. */
  dead: () => void;
  /** A heartbeat reply came, after this many milliseconds. */
  onRtt?: ((ms: number) => void) | undefined;
}

/** The heartbeat of one registered link. Stop it when the link ends. */
export class LinkHeartbeat {
  #options: LinkHeartbeatOptions;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** Frames from the gateway so far: counted, not timed (a clock read per frame showed in profiles). */
  #inbound = 0;
  /** {@link #inbound} when the unanswered heartbeat went out. */
  #inboundAtSent = 0;
  #sentAt: number | undefined;
  #lastSentAt = 0;

  constructor(options: LinkHeartbeatOptions) {
    this.#options = options;
  }

  /** Any frame came from the gateway: it counts as liveness. */
  inbound(): void {
    this.#inbound++;
  }

  /** A heartbeat reply came (a gateway heartbeat is only ever a reply: never answer it). */
  reply(): void {
    if (this.#sentAt !== undefined) {
      this.#options.onRtt?.(performance.now() - this.#sentAt);
      this.#sentAt = undefined;
    }
  }

  /** Starts beating; `announce` sends one at once with the interval (our gateway reads it). */
  start(announce: boolean): void {
    const { keepaliveMs, deadlineMs } = this.#options;
    // Check often enough that a dead link is noticed soon after its deadline, without a timer per message.
    const tickMs = Math.max(10, Math.min(keepaliveMs, deadlineMs) / 4);
    this.#lastSentAt = performance.now();
    if (announce) this.#options.send(keepaliveMs);
    this.#timer = setInterval(() => {
      const now = performance.now();
      if (this.#sentAt !== undefined && this.#inbound > this.#inboundAtSent) {
        this.#sentAt = undefined;
      }
      if (this.#sentAt !== undefined && now - this.#sentAt >= deadlineMs) {
        log.warning(
          "No frame from the gateway within {deadlineMs} ms of a heartbeat; the link is dead",
          { event: "heartbeat_timeout", deadlineMs: Math.round(deadlineMs) },
        );
        this.stop();
        this.#options.dead();
        return;
      }
      if (now - this.#lastSentAt >= keepaliveMs) {
        this.#lastSentAt = now;
        if (this.#sentAt === undefined) {
          this.#sentAt = now;
          this.#inboundAtSent = this.#inbound;
        }
        this.#options.send();
      }
    }, tickMs);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
