// One timer for every request body in flight: each is checked against its deadline on a shared tick,
// instead of a timer armed and cleared per request (which showed in the cost of every call). The timer
// stops at the first tick that finds nothing to check, not when the last body ends: sequential requests
// then cost no timer each.

/** A body whose deadline is checked on each tick. */
export interface Watched {
  /** True once it is settled (done, cancelled or timed out) and needs no more checks. */
  checkDeadline(now: number): boolean;
}

/**
 * Checks the bodies in flight every `tickMs`; the timer runs only while there are (or just were) some.
 *
 * @example
 * ```ts
 * import { BodyDeadlines } from "./body_deadlines.ts";
 * const deadlines = new BodyDeadlines(250);
 * const body = { checkDeadline: (now: number) => now > 0 };
 * deadlines.watch(body);
 * deadlines.unwatch(body);
 * deadlines.close();
 * ```
 */
export class BodyDeadlines {
  #tickMs: number;
  #watched = new Set<Watched>();
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(tickMs: number) {
    this.#tickMs = tickMs;
  }

  /** Checks `watched` on every tick until its check returns true or it is unwatched. */
  watch(watched: Watched): void {
    this.#watched.add(watched);
    this.#timer ??= setInterval(() => this.#tick(), this.#tickMs);
  }

  unwatch(watched: Watched): void {
    this.#watched.delete(watched);
  }

  /** Stops the timer (the listener is closing). */
  close(): void {
    this.#watched.clear();
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    if (this.#watched.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    const now = performance.now();
    for (const watched of this.#watched) {
      if (watched.checkDeadline(now)) this.#watched.delete(watched);
    }
  }
}
