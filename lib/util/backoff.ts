// Reconnect delays: capped exponential backoff with full jitter, and the quick schedule that follows the
// drop of a link that was healthy.

/** Options of {@link backoffDelay}. */
export interface BackoffOptions {
  /** Base delay in milliseconds (the user's `--reconnect-delay`). */
  baseMs: number;
  /** Upper bound of any delay in milliseconds. */
  maxMs?: number;
  /** Returns a number in [0, 1); injected by tests. */
  random?: () => number;
}

function check(attempt: number, baseMs: number, maxMs: number): void {
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
  check(attempt, baseMs, maxMs);
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 52));
  return Math.floor(random() * ceiling);
}

/**
 * The schedule after a healthy link dropped: the first attempt within `firstJitterMs`, then full jitter
 * over ceilings that start at `baseMs` and double up to the normal base, for `attempts` attempts in all;
 * after those, the normal backoff from its first step.
 */
export const QUICK_RECONNECT = {
  /** The first attempt goes out within this (jitter only, so that a fleet does not dial in one instant). */
  firstJitterMs: 50,
  /** Ceiling of the second attempt; it doubles each attempt, never past the normal base. */
  baseMs: 100,
  /**
   * Attempts on the quick schedule, the first included. With a 1 s base their ceilings are 50, 100, 200,
   * 400, 800, 1000, 1000, 1000, 1000, 1000 ms: a gateway back after a 2 s restart is dialed again within
   * a second of listening (see `deno task bench --reconnect-distribution`).
   */
  attempts: 10,
} as const;

/** Options of {@link reconnectDelay}. */
export interface ReconnectDelayOptions extends BackoffOptions {
  /**
   * The link that dropped was healthy (registered and up for a while, or carrying calls): the gateway was
   * fine a moment ago, so the early attempts follow {@link QUICK_RECONNECT}.
   */
  afterHealthy: boolean;
}

/**
 * The delay before reconnect attempt `attempt` after a link dropped (1 for the first attempt). After a
 * healthy link the first attempt waits less than {@link QUICK_RECONNECT}.firstJitterMs and the next ones
 * less than a small, doubling ceiling; after a link that was never healthy (a gateway that refuses, or
 * drops every link at once) it is {@link backoffDelay}. Full jitter throughout, and never longer than the
 * normal backoff's ceiling for the same attempt.
 *
 * @example
 * ```ts
 * import { reconnectDelay } from "./backoff.ts";
 * reconnectDelay(1, { baseMs: 1000, afterHealthy: true, random: () => 0.5 }); // 25
 * reconnectDelay(1, { baseMs: 1000, afterHealthy: false, random: () => 0.5 }); // 500
 * ```
 */
export function reconnectDelay(attempt: number, options: ReconnectDelayOptions): number {
  const { baseMs, maxMs = 60_000, random = Math.random, afterHealthy } = options;
  check(attempt, baseMs, maxMs);
  if (!afterHealthy) return backoffDelay(attempt, options);
  const { firstJitterMs, baseMs: quickBaseMs, attempts } = QUICK_RECONNECT;
  if (attempt > attempts) return backoffDelay(attempt - attempts, options);
  const normal = Math.min(maxMs, baseMs);
  const ceiling = attempt === 1 ? firstJitterMs : quickBaseMs * 2 ** (attempt - 2);
  return Math.floor(random() * Math.min(normal, ceiling));
}
