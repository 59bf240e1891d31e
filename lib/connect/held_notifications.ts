// The gate between a freshly started local server and the tunnel: notifications the server sends before
// its first registration are held until then and delivered, except the `list_changed` ones that the
// registration's own discovery made moot (counted and logged at debug, not delivered).

import { DEFAULT_REPLAY_LIMITS, type ReplayLimits } from "../protocol/sequenced_channel.ts";
import { logger } from "../util/log.ts";
import { utf8Length } from "../util/utf8.ts";
import type { Counter } from "../util/prometheus.ts";
import type { ServerMessage } from "./local_session.ts";

const log = logger("connect");

/**
 * Notifications that only say "list again". A registration makes the gateway (and every client that
 * connects after it) list the server's tools, resources and prompts afresh, so one sent before it
 * carries nothing the gateway will not see anyway.
 */
const MOOT_AT_REGISTRATION: ReadonlySet<string> = new Set([
  "notifications/tools/list_changed",
  "notifications/resources/list_changed",
  "notifications/prompts/list_changed",
]);

/** Options of {@link HeldNotifications}. */
export interface HeldNotificationsOptions {
  /** Where messages go: the tunnel. */
  forward: (message: ServerMessage) => void | Promise<void>;
  /** True once a message forwarded now reaches the gateway (contract B: before registration completes). */
  deliverable: () => boolean;
  /** Bounds of what is held: the replay buffer's (frames and UTF-8 bytes). */
  replayLimits?: ReplayLimits;
  /** Counts the moot `list_changed` notifications (the server's `notificationsSuperseded`). */
  superseded?: Counter | undefined;
  /** The server's name in log lines. */
  label?: string;
}

/**
 * Holds one server process's notifications until its first registration, bounded like the replay buffer:
 * beyond its limits a notification is lost, and counted as such.
 *
 * @example
 * ```ts
 * import { HeldNotifications } from "./held_notifications.ts";
 * const sent: string[] = [];
 * const held = new HeldNotifications({
 *   forward: (message) => void sent.push(String(message.method)),
 *   deliverable: () => false,
 * });
 * held.fromServer({ kind: "notification", method: "notifications/tools/list_changed", text: "{}" });
 * held.fromServer({ kind: "notification", method: "notifications/message", text: "{}" });
 * held.registered(); // 0 lost
 * sent; // ["notifications/message"]
 * ```
 */
export class HeldNotifications {
  #options: HeldNotificationsOptions;
  #limits: ReplayLimits;
  /** Until the first registration; undefined after it, when every message passes straight through. */
  #held: ServerMessage[] | undefined = [];
  #bytes = 0;
  #moot = new Map<string, number>();
  #overflow = 0;

  constructor(options: HeldNotificationsOptions) {
    this.#options = options;
    this.#limits = options.replayLimits ?? DEFAULT_REPLAY_LIMITS;
  }

  /** Every message of the server passes here on its way to the tunnel. */
  fromServer(message: ServerMessage): void | Promise<void> {
    const held = this.#held;
    if (held !== undefined && message.kind === "notification") {
      if (!this.#options.deliverable()) return this.#hold(held, message);
      // A link that takes messages before its registration completes: what was held goes first.
      this.#overflow += this.registered();
    }
    return this.#options.forward(message);
  }

  #hold(held: ServerMessage[], message: ServerMessage): void {
    const method = message.method ?? "";
    log.debug("Holding a {method} notification of {server} until the registration", {
      event: "notification_held",
      server: this.#options.label ?? "",
      method,
    });
    if (MOOT_AT_REGISTRATION.has(method)) {
      this.#moot.set(method, (this.#moot.get(method) ?? 0) + 1);
      return;
    }
    const bytes = message.bytes ?? utf8Length(message.text);
    if (held.length >= this.#limits.maxFrames || this.#bytes + bytes > this.#limits.maxBytes) {
      this.#overflow++;
      return;
    }
    held.push(message);
    this.#bytes += bytes;
  }

  /**
   * The first registration is done: forwards what was held, in order, counts what it made moot, and
   * lets everything after pass. Returns how many notifications were lost to the bounds since last asked.
   */
  registered(): number {
    const held = this.#held ?? [];
    this.#held = undefined;
    this.#bytes = 0;
    for (const [method, count] of this.#moot) {
      this.#options.superseded?.inc(count);
      log.debug(
        "Not forwarded: {count} {method} of {server} from before the registration, whose discovery lists afresh",
        { event: "notification_superseded", server: this.#options.label ?? "", method, count },
      );
    }
    this.#moot.clear();
    // Sent synchronously: nothing the server writes later can overtake them.
    for (const message of held) void this.#options.forward(message);
    const lost = this.#overflow;
    this.#overflow = 0;
    return lost;
  }

  /** The server process ended before its first registration: returns how many notifications are lost. */
  discard(): number {
    const lost = (this.#held?.length ?? 0) + this.#overflow;
    this.#held = undefined;
    this.#moot.clear();
    this.#overflow = 0;
    return lost;
  }
}
