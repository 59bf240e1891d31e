// A warning that a peer can cause at will is logged at most once per interval, with how many were held
// back: a flood of bad messages must not become a flood of log lines.

/**
 * Decides whether to log an event now: the first one in an interval is logged; the others are counted
 * and their count is reported with the next one logged.
 *
 * @example
 * ```ts
 * import { RateLimited } from "./rate_limited.ts";
 * const limit = new RateLimited(10_000);
 * limit.take(); // { log: true, suppressed: 0 }
 * limit.take(); // { log: false, suppressed: 1 }
 * ```
 */
export class RateLimited {
  #intervalMs: number;
  #now: () => number;
  #lastAt = -Infinity;
  #suppressed = 0;

  constructor(intervalMs: number, now: () => number = () => performance.now()) {
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  /** Whether this event is logged, and how many were held back since the last one logged. */
  take(): { log: boolean; suppressed: number } {
    const now = this.#now();
    if (now - this.#lastAt < this.#intervalMs) {
      this.#suppressed++;
      return { log: false, suppressed: this.#suppressed };
    }
    const suppressed = this.#suppressed;
    this.#lastAt = now;
    this.#suppressed = 0;
    return { log: true, suppressed };
  }
}
