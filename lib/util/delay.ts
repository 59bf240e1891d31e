// An abortable delay, a deadline and a bounded wait, each leaving no timer or listener behind.

/**
 * Resolves after `ms` milliseconds, or rejects with the signal's reason when it aborts first.
 *
 * @example
 * ```ts
 * import { delay } from "./delay.ts";
 * await delay(1);
 * ```
 */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Races a promise against a deadline. Rejects with a `TimeoutError` DOMException naming `what` if it passes.
 * The timer is cleared on every path.
 */
export async function deadline<T>(promise: Promise<T>, ms: number, what = "operation"): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new DOMException(`${what} timed out after ${ms} ms`, "TimeoutError")),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Waits for `promises` to settle (fulfilled or rejected), but no longer than `ms`: for a wait that must
 * not hold an exit (a pipe a stray process keeps open, a peer that never answers a close). The timer is
 * cleared on every path.
 *
 * @example
 * ```ts
 * import { settleWithin } from "./delay.ts";
 * await settleWithin([new Promise(() => {})], 1); // after 1 ms
 * ```
 */
export async function settleWithin(promises: Promise<unknown>[], ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      Promise.allSettled(promises),
      new Promise((resolve) => timer = setTimeout(resolve, ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
