// The `register` frames a link with the `channels` extension has sent after its first, waiting for their
// `register_ack`: each settles once, by its answer, a `close` frame for its channel, a deadline, or the
// end of the link.

import type { RegisterAck } from "../protocol/registration.ts";
import {
  closedDuringRegistration,
  DialError,
  type Registration,
  registrationOf,
} from "./link_outcome.ts";

interface Pending {
  resolve: (registration: Registration) => void;
  reject: (error: unknown) => void;
  timer: ReturnType<typeof setTimeout>;
  onRegistered: ((registration: Registration) => void) | undefined;
}

/** Channel registrations in flight on one link. */
export class ChannelRegistrations {
  #pending = new Map<string, Pending>();
  #url: URL;

  constructor(url: URL) {
    this.#url = url;
  }

  /** True while `channel` waits for its answer. */
  has(channel: string): boolean {
    return this.#pending.has(channel);
  }

  /**
   * Waits for the answer to the `register` of `channel`. `onRegistered` is called synchronously with it,
   * before any later frame of the link is handled (the gateway's `initialize` follows at once).
   */
  wait(
    channel: string,
    options: { timeoutMs: number; onRegistered?: (registration: Registration) => void },
  ): Promise<Registration> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#settle(channel)?.reject(
          new DialError(
            "register-timeout",
            `Gateway did not answer the registration of channel ${channel} within ${options.timeoutMs} ms`,
          ),
        );
      }, options.timeoutMs);
      this.#pending.set(channel, { resolve, reject, timer, onRegistered: options.onRegistered });
    });
  }

  /** A `register_ack` for a channel; false when none waits for it. */
  answer(ack: RegisterAck): boolean {
    const pending = ack.channel === undefined ? undefined : this.#settle(ack.channel);
    if (pending === undefined) return false;
    if (ack.status === "evicted" || ack.resumeError === "evicted") {
      pending.reject(
        new DialError("evicted", "The gateway evicted this server; not registering again"),
      );
    } else if (ack.status !== "success") {
      pending.reject(
        new DialError(
          "registration-failed",
          `Gateway answered the registration with status '${ack.status.slice(0, 64)}'`,
        ),
      );
    } else {
      const registration = registrationOf(ack);
      pending.onRegistered?.(registration);
      pending.resolve(registration);
    }
    return true;
  }

  /** A `close` frame for a channel: its registration was refused (too many sessions, …). */
  closed(channel: string, code: number, reason: string): boolean {
    const pending = this.#settle(channel);
    pending?.reject(closedDuringRegistration(code, reason, this.#url));
    return pending !== undefined;
  }

  /** The link ended: every registration in flight fails as a lost link. */
  failAll(reason: string): void {
    for (const channel of [...this.#pending.keys()]) {
      this.#settle(channel)?.reject(
        new DialError("registration-failed", `The link closed during registration (${reason})`),
      );
    }
  }

  #settle(channel: string): Pending | undefined {
    const pending = this.#pending.get(channel);
    if (pending === undefined) return undefined;
    this.#pending.delete(channel);
    clearTimeout(pending.timer);
    return pending;
  }
}
