// The replay guard of envelopes between replicas: a timestamp must lie within ±window of this replica's
// clock, and a nonce is accepted once; nonces are remembered per window-long bucket of their timestamp, at
// most `maxNonces` per bucket, and forgotten once their timestamp is too old to pass anyway.

/** Why the guard refused an envelope. */
export type ReplayRefusal = "stale" | "replay" | "nonce_limit";

/** Options of {@link ReplayGuard}. */
export interface ReplayGuardOptions {
  /** How far a timestamp may be from now, either way, in ms. Default 30000. */
  windowMs?: number;
  /** Nonces remembered per bucket (one window of timestamps); past it envelopes are refused. */
  maxNonces: number;
  /** Wall clock in ms (envelope timestamps are wall-clock times of other machines). */
  now?: () => number;
}

/** Default of {@link ReplayGuardOptions.windowMs}. */
export const REPLAY_WINDOW_MS = 30_000;

/**
 * Accepts each (timestamp, nonce) once while the timestamp is fresh. A replayed envelope carries the
 * timestamp it was signed with, so it falls in the same bucket as the first copy and is found there; once
 * that bucket is older than the window the timestamp alone refuses it.
 *
 * @example
 * ```ts
 * import { ReplayGuard } from "./replay_guard.ts";
 * const guard = new ReplayGuard({ maxNonces: 1000, now: () => 1_000_000 });
 * guard.check(1_000_000, "n1"); // undefined: accepted
 * guard.check(1_000_000, "n1"); // "replay"
 * guard.check(900_000, "n2"); // "stale"
 * ```
 */
export class ReplayGuard {
  readonly #windowMs: number;
  readonly #maxNonces: number;
  readonly #now: () => number;
  readonly #buckets = new Map<number, Set<string>>();

  constructor(options: ReplayGuardOptions) {
    const { windowMs = REPLAY_WINDOW_MS, maxNonces, now = Date.now } = options;
    if (!Number.isInteger(maxNonces) || maxNonces < 1) {
      throw new RangeError(
        `Cannot guard replays as 'maxNonces' must be a positive integer: current value is ${maxNonces}`,
      );
    }
    if (!(windowMs > 0)) {
      throw new RangeError(
        `Cannot guard replays as 'windowMs' must be > 0: current value is ${windowMs}`,
      );
    }
    this.#windowMs = windowMs;
    this.#maxNonces = maxNonces;
    this.#now = now;
  }

  /** Nonces remembered now, over all buckets. */
  get size(): number {
    let size = 0;
    for (const bucket of this.#buckets.values()) size += bucket.size;
    return size;
  }

  /** Undefined when (`ts`, `nonce`) is accepted (and remembered); else why it is refused. */
  check(ts: number, nonce: string): ReplayRefusal | undefined {
    const now = this.#now();
    if (!Number.isFinite(ts) || Math.abs(now - ts) > this.#windowMs) return "stale";
    this.#forget(now);
    const key = Math.floor(ts / this.#windowMs);
    let bucket = this.#buckets.get(key);
    if (bucket?.has(nonce)) return "replay";
    if (bucket === undefined) this.#buckets.set(key, bucket = new Set());
    if (bucket.size >= this.#maxNonces) return "nonce_limit";
    bucket.add(nonce);
    return undefined;
  }

  /** Drops buckets whose every timestamp is now stale. */
  #forget(now: number): void {
    for (const key of this.#buckets.keys()) {
      if ((key + 1) * this.#windowMs < now - this.#windowMs) this.#buckets.delete(key);
    }
  }
}
