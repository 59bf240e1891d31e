// The calls of one tunnel session that wait for a slot: a bounded FIFO, so that a burst past
// `--max-inflight` waits instead of being refused, and its size in UTF-8 bytes for the memory budget.

/**
 * A bounded first-in first-out queue whose entries can leave from anywhere (a call cancelled or timed
 * out while it waits), each counted with its size in bytes.
 *
 * @example
 * ```ts
 * import { CallQueue } from "./call_queue.ts";
 * const queue = new CallQueue<string>(2);
 * queue.push("a", 10);
 * queue.push("b", 20); // true
 * queue.push("c", 30); // false: full
 * queue.shift(); // "a"
 * queue.bytes; // 20
 * ```
 */
export class CallQueue<T> {
  readonly maxEntries: number;
  /** Insertion-ordered, with O(1) removal from the middle. */
  #entries = new Map<T, number>();
  #bytes = 0;

  constructor(maxEntries: number) {
    if (!Number.isInteger(maxEntries) || maxEntries < 0) {
      throw new RangeError(
        `Cannot create CallQueue as 'maxEntries' must be a non-negative integer: current value is ${maxEntries}`,
      );
    }
    this.maxEntries = maxEntries;
  }

  /** Entries waiting. */
  get size(): number {
    return this.#entries.size;
  }

  /** UTF-8 bytes of the entries waiting, as given to {@link push}. */
  get bytes(): number {
    return this.#bytes;
  }

  /** True when {@link push} would refuse. */
  get full(): boolean {
    return this.#entries.size >= this.maxEntries;
  }

  /** Appends `entry` of `bytes`; false (and nothing kept) when the queue is full. */
  push(entry: T, bytes: number): boolean {
    if (this.full || this.#entries.has(entry)) return false;
    this.#entries.set(entry, bytes);
    this.#bytes += bytes;
    return true;
  }

  /** Removes and returns the oldest entry. */
  shift(): T | undefined {
    const first = this.#entries.keys().next();
    if (first.done) return undefined;
    this.delete(first.value);
    return first.value;
  }

  /** Removes `entry` wherever it is; false if it was not waiting. */
  delete(entry: T): boolean {
    const bytes = this.#entries.get(entry);
    if (bytes === undefined) return false;
    this.#entries.delete(entry);
    this.#bytes -= bytes;
    return true;
  }

  /** Removes and returns every entry, oldest first. */
  drain(): T[] {
    const entries = [...this.#entries.keys()];
    this.#entries.clear();
    this.#bytes = 0;
    return entries;
  }
}
