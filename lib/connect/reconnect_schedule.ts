// When the uplink dials again: the count of attempts since the link was last good, the quick schedule
// after a healthy link drops, the normal backoff otherwise, and the end once `--max-retries` is spent.

import { reconnectDelay } from "../util/backoff.ts";
import { RetriesExhaustedError } from "./errors.ts";

/**
 * A registered link that stayed up this long was healthy: when it drops, the gateway was fine a moment
 * ago, so the reconnect count starts over on the quick schedule (lib/util/backoff.ts `QUICK_RECONNECT`).
 */
export const HEALTHY_AFTER_MS = 5_000;

/**
 * A link that carried a call (a frame the gateway routed to a server) is healthy sooner, but not at once:
 * a gateway that cuts every link at its first call is then dialed at most about once a second.
 */
export const HEALTHY_WITH_CALLS_AFTER_MS = 1_000;

/** Options of {@link ReconnectSchedule}. */
export interface ReconnectScheduleOptions {
  /** `--reconnect-delay`, in milliseconds: the base of the normal backoff. */
  baseMs: number;
  /** `--max-retries`; 0 = retry forever. */
  maxRetries: number;
  random?: (() => number) | undefined;
  /** A link that stayed up this long was healthy, in milliseconds (default {@link HEALTHY_AFTER_MS}). */
  healthyAfterMs?: number | undefined;
  /** The same for a link that carried a call (default {@link HEALTHY_WITH_CALLS_AFTER_MS}). */
  healthyWithCallsAfterMs?: number | undefined;
}

/**
 * The reconnect schedule of one uplink.
 *
 * @example
 * ```ts
 * import { ReconnectSchedule } from "./reconnect_schedule.ts";
 * const schedule = new ReconnectSchedule({ baseMs: 1000, maxRetries: 0 });
 * schedule.nextWaitMs(); // undefined: the first dial goes out at once
 * schedule.failed("connection refused");
 * schedule.nextWaitMs(); // a jittered wait on the normal backoff
 * ```
 */
export class ReconnectSchedule {
  #options: ReconnectScheduleOptions;
  #attempt = 0;
  /** The last link that dropped was healthy: the attempts since follow the quick schedule. */
  #afterHealthy = false;
  #openedAt = 0;
  /** The current link carried a call. */
  #carried = false;
  #lastError = "";

  constructor(options: ReconnectScheduleOptions) {
    this.#options = options;
  }

  /** Attempts since the link was last good (0 before the first failure). */
  get attempt(): number {
    return this.#attempt;
  }

  /**
   * How long to wait before the next dial: undefined for a first dial (at once).
   *
   * @throws {RetriesExhaustedError} once `--max-retries` attempts failed
   */
  nextWaitMs(): number | undefined {
    if (this.#attempt === 0) return undefined;
    const { maxRetries, baseMs, random } = this.#options;
    if (maxRetries > 0 && this.#attempt > maxRetries) {
      throw new RetriesExhaustedError(
        `Giving up after ${maxRetries} reconnect attempt${
          maxRetries === 1 ? "" : "s"
        }; last error: ${this.#lastError}`,
      );
    }
    return reconnectDelay(this.#attempt, {
      baseMs,
      afterHealthy: this.#afterHealthy,
      ...(random ? { random } : {}),
    });
  }

  /** A dial failed with `message`. */
  failed(message: string): void {
    this.#attempt++;
    this.#lastError = message;
  }

  /**
   * A link registered. A resumed session proves the gateway is up and has our calls waiting: the next
   * drop is retried quickly again, not after a backoff grown by earlier drops.
   */
  opened(resumed: boolean): void {
    this.#openedAt = performance.now();
    this.#carried = false;
    if (resumed) this.#attempt = 0;
  }

  /** The link carried a call. */
  carried(): void {
    this.#carried = true;
  }

  /**
   * The link dropped for `reason`. A healthy link starts the count over on the quick schedule: the first
   * attempt goes out within 50 ms. Any other drop counts on, on the normal schedule, so that a gateway
   * that takes links and drops them at once is not dialed in a loop.
   */
  dropped(reason: string): void {
    const {
      healthyAfterMs = HEALTHY_AFTER_MS,
      healthyWithCallsAfterMs = HEALTHY_WITH_CALLS_AFTER_MS,
    } = this.#options;
    this.#lastError = reason;
    const upMs = performance.now() - this.#openedAt;
    this.#afterHealthy = upMs >= healthyAfterMs ||
      (this.#carried && upMs >= healthyWithCallsAfterMs);
    this.#attempt = this.#afterHealthy ? 1 : this.#attempt + 1;
  }
}
