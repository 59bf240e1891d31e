// Deadlines for many keys (calls in flight) with one timer between them, not one per key: arming and
// clearing a timer per message costs more than the rest of a small call's bookkeeping.

/** The clock and timer functions {@link Deadlines} uses; injected by tests. Timer handles are opaque. */
export interface DeadlineClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

type TimerHandle = ReturnType<typeof setTimeout>;

const SYSTEM_CLOCK: DeadlineClock = {
  now: () => performance.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as TimerHandle | undefined),
};

interface Entry {
  at: number;
  onExpire: () => void;
}

/**
 * Calls a key's `onExpire` once its deadline passes, unless the key was deleted first. One timer is armed
 * for the earliest deadline; a key added with a later deadline (the usual case: equal timeouts, added in
 * order) arms nothing, and deleting a key clears nothing. When the timer fires it expires what is due and
 * re-arms for the earliest remaining deadline, so a steady stream of calls that finish in time costs
 * one timer per timeout period. Call {@link Deadlines.clear} when the owner closes.
 *
 * @example
 * ```ts
 * import { Deadlines } from "./deadlines.ts";
 * const deadlines = new Deadlines<string>();
 * deadlines.add("call-1", 30_000, () => console.log("call-1 timed out"));
 * deadlines.delete("call-1"); // answered in time
 * deadlines.clear();
 * ```
 */
export class Deadlines<K> {
  #entries = new Map<K, Entry>();
  #clock: DeadlineClock;
  #timer: unknown;
  #armedAt = Infinity;

  constructor(clock: DeadlineClock = SYSTEM_CLOCK) {
    this.#clock = clock;
  }

  /** Keys waiting for their deadline. */
  get size(): number {
    return this.#entries.size;
  }

  /** Sets (or replaces) the deadline of `key`, `ms` from now. */
  add(key: K, ms: number, onExpire: () => void): void {
    const at = this.#clock.now() + ms;
    this.#entries.set(key, { at, onExpire });
    if (at < this.#armedAt) this.#arm(at);
  }

  /** Forgets `key`; its `onExpire` will not be called. True if it was waiting. */
  delete(key: K): boolean {
    return this.#entries.delete(key);
  }

  /** Forgets every key and stops the timer. */
  clear(): void {
    this.#entries.clear();
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedAt = Infinity;
  }

  #arm(at: number): void {
    this.#clock.clearTimeout(this.#timer);
    this.#armedAt = at;
    this.#timer = this.#clock.setTimeout(() => this.#fire(), Math.max(0, at - this.#clock.now()));
  }

  #fire(): void {
    this.#timer = undefined;
    this.#armedAt = Infinity;
    const now = this.#clock.now();
    const due: Entry[] = [];
    let next = Infinity;
    for (const [key, entry] of this.#entries) {
      if (entry.at <= now) {
        this.#entries.delete(key);
        due.push(entry);
      } else if (entry.at < next) next = entry.at;
    }
    // Re-arm before the callbacks run: one of them may add a key (and arm for it, if earlier).
    if (next < this.#armedAt) this.#arm(next);
    for (const entry of due) entry.onExpire();
  }
}
