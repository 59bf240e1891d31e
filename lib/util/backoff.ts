// Reconnect delays: capped exponential backoff with full jitter.

/** Options of {@link backoffDelay}. */
export interface BackoffOptions {
  /** Base delay in milliseconds (the user's `--reconnect-delay`). */
  baseMs: number;
  /** Upper bound of any delay in milliseconds. */
  maxMs?: number;
  /** Returns a number in [0, 1); injected by tests. */
  random?: () => number;
}

/**
 * The delay before reconnect attempt `attempt` (1 for the first retry): a random value in
 * [0, min(maxMs, baseMs × 2^(attempt-1))) ("full jitter"). The first retry is therefore quick on average, and
 * a fleet of clients that lost the same gateway does not come back in lockstep.
 *
 * @example
 * ```ts
 * import { backoffDelay } from "./backoff.ts";
 * backoffDelay(3, { baseMs: 1000, random: () => 0.5 }); // 2000
 * ```
 */
export function backoffDelay(attempt: number, options: BackoffOptions): number {
  const { baseMs, maxMs = 60_000, random = Math.random } = options;
  if (!Number.isInteger(attempt) || attempt < 1) {
    throw new RangeError(
      `Cannot compute backoff as 'attempt' must be a positive integer: current value is ${attempt}`,
    );
  }
  if (!(baseMs >= 0)) {
    throw new RangeError(
      `Cannot compute backoff as 'baseMs' must be >= 0: current value is ${baseMs}`,
    );
  }
  if (!(maxMs >= 0)) {
    throw new RangeError(
      `Cannot compute backoff as 'maxMs' must be >= 0: current value is ${maxMs}`,
    );
  }
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 52));
  return Math.floor(random() * ceiling);
}
