// One timer for every request body in flight: each is checked against its deadline on a shared tick,
// instead of a timer armed and cleared per request (which showed in the cost of every call).

/** A body's check: true once it is settled (done, cancelled or timed out) and needs no more checks. */
export type DeadlineCheck = (now: number) => boolean;

/**
 * Runs the checks of the bodies in flight every `tickMs`; the timer runs only while there are some.
 *
 * @example
 * ```ts
 * import { BodyDeadlines } from "./body_deadlines.ts";
 * const deadlines = new BodyDeadlines(250);
 * const stop = deadlines.watch((now) => now > 0);
 * stop();
 * ```
 */
export class BodyDeadlines {
  #tickMs: number;
  #checks = new Set<DeadlineCheck>();
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(tickMs: number) {
    this.#tickMs = tickMs;
  }

  /** Checks `check` on every tick until it returns true or the returned function is called. */
  watch(check: DeadlineCheck): () => void {
    this.#checks.add(check);
    this.#timer ??= setInterval(() => this.#tick(), this.#tickMs);
    return () => this.#forget(check);
  }

  #tick(): void {
    const now = performance.now();
    for (const check of this.#checks) if (check(now)) this.#forget(check);
  }

  #forget(check: DeadlineCheck): void {
    this.#checks.delete(check);
    if (this.#checks.size > 0 || this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
