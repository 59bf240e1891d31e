// Rate limit for a warning a peer can trigger at will: one line per interval, with a count of the ones
// held back, so that a flood costs a log line a second rather than a line a message.

/** Options of {@link LogThrottle}. */
export interface LogThrottleOptions {
  /** At most one line per this many milliseconds (default 1000). */
  intervalMs?: number;
  /** Clock in milliseconds; injected by tests. */
  now?: () => number;
}

/**
 * Decides which occurrences of an event get a log line.
 *
 * @example
 * ```ts
 * import { LogThrottle } from "./log_throttle.ts";
 * let t = 0;
 * const throttle = new LogThrottle({ intervalMs: 1000, now: () => t });
 * throttle.take(); // 0: log it
 * throttle.take(); // undefined: held back
 * t = 1000;
 * throttle.take(); // 1: log it, and say one more happened since the last line
 * ```
 */
export class LogThrottle {
  #intervalMs: number;
  #now: () => number;
  #lastAt = -Infinity;
  #held = 0;

  constructor(options: LogThrottleOptions = {}) {
    this.#intervalMs = options.intervalMs ?? 1000;
    this.#now = options.now ?? (() => performance.now());
  }

  /**
   * Counts one occurrence. Returns undefined when it must not be logged; otherwise how many were held
   * back since the last one logged (0 or more), for the line to mention.
   */
  take(): number | undefined {
    const now = this.#now();
    if (now - this.#lastAt < this.#intervalMs) {
      this.#held++;
      return undefined;
    }
    this.#lastAt = now;
    const held = this.#held;
    this.#held = 0;
    return held;
  }
}

/**
 * What a line that {@link LogThrottle.take} let through says of the ones held back: nothing when none
 * were, else ` (and N more since <since>)`.
 *
 * @example
 * ```ts
 * import { heldBackText } from "./log_throttle.ts";
 * heldBackText(0); // ""
 * heldBackText(3); // " (and 3 more since the last warning)"
 * ```
 */
export function heldBackText(held: number, since = "the last warning"): string {
  return held > 0 ? ` (and ${held} more since ${since})` : "";
}
