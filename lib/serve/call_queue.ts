// The calls of one tunnel session that wait for a slot: a bounded FIFO, so that a burst past
// `--max-inflight` waits instead of being refused, each call up to its own deadline, and the queue's size in
// UTF-8 bytes for the memory budget.

import type { JsonRpcRequest, JsonRpcResponse } from "../protocol/jsonrpc.ts";
import { Deadlines } from "../util/deadlines.ts";
import { utf8Length } from "../util/utf8.ts";
import type { RawResponse } from "./call_table.ts";
import type { ServeMetrics } from "./metrics.ts";
import type { CallOptions } from "./call_contract.ts";
import type { Charge } from "./memory_budget.ts";

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
  #charge: Charge | undefined;

  /** `charge`: where the queue's bytes are charged against the owner's memory share. */
  constructor(maxEntries: number, charge?: Charge) {
    this.#charge = charge;
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

  /**
   * Appends `entry` of `bytes`; false (and nothing kept) when the queue is full or the owner's memory
   * share cannot hold it.
   */
  push(entry: T, bytes: number): boolean {
    if (this.full || this.#entries.has(entry)) return false;
    if (this.#charge !== undefined && !this.#charge.resize(this.#bytes + bytes)) return false;
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
    this.#charge?.resize(this.#bytes);
    return true;
  }

  /** Gives the queue's share of memory back for good (its session ended). */
  release(): void {
    this.#charge?.release();
  }

  /** Removes and returns every entry, oldest first. */
  drain(): T[] {
    const entries = [...this.#entries.keys()];
    this.#entries.clear();
    this.#bytes = 0;
    this.#charge?.resize(0);
    return entries;
  }
}

/** A call waiting for a slot. */
export interface WaitingCall {
  request: JsonRpcRequest;
  options: CallOptions;
  /** How long it waited, in milliseconds, once it left the queue. */
  waitedMs: number;
  resolve(answer: JsonRpcResponse | RawResponse | undefined): void;
}

/**
 * The calls of one tunnel session waiting for a slot, each until {@link WaitingCalls.shift} takes it, its
 * own deadline passes, or its caller cancels it (it was never sent: the server has nothing to cancel).
 */
export class WaitingCalls {
  #queue: CallQueue<WaitingCall>;
  #deadlines = new Deadlines<WaitingCall>();
  #since = new Map<WaitingCall, { at: number; leave: () => void }>();
  #metrics: ServeMetrics | undefined;

  constructor(maxEntries: number, metrics?: ServeMetrics, charge?: Charge) {
    this.#queue = new CallQueue(maxEntries, charge);
    this.#metrics = metrics;
  }

  /** Calls waiting. */
  get size(): number {
    return this.#queue.size;
  }

  /** UTF-8 bytes of the requests waiting. */
  get bytes(): number {
    return this.#queue.bytes;
  }

  /** Calls that may wait at most. */
  get maxEntries(): number {
    return this.#queue.maxEntries;
  }

  /** True when no more may wait. */
  get full(): boolean {
    return this.#queue.full;
  }

  /**
   * Waits for a slot, at most `timeoutMs`; then resolves with `timedOut()`. Cancelled through
   * `options.signal`, it resolves undefined. The caller checks {@link full} first.
   */
  wait(
    request: JsonRpcRequest,
    options: CallOptions & { timeoutMs: number },
    answers: { timedOut: () => JsonRpcResponse; noRoom: () => JsonRpcResponse },
  ): Promise<JsonRpcResponse | RawResponse | undefined> {
    const { timeoutMs, signal } = options;
    const { timedOut, noRoom } = answers;
    return new Promise((resolve) => {
      const waiting: WaitingCall = { request, options, waitedMs: 0, resolve };
      if (!this.#queue.push(waiting, utf8Length(JSON.stringify(request)))) {
        this.#metrics?.errors.inc("memory");
        resolve(noRoom());
        return;
      }
      const onAbort = () => {
        if (this.#take(waiting)) resolve(undefined);
      };
      const leave = () => signal?.removeEventListener("abort", onAbort);
      this.#since.set(waiting, { at: performance.now(), leave });
      this.#deadlines.add(waiting, timeoutMs, () => {
        if (!this.#take(waiting)) return;
        this.#metrics?.errors.inc("call_timeout");
        resolve(timedOut());
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** The oldest call waiting, taken out of the queue (with `waitedMs` set). */
  shift(): WaitingCall | undefined {
    const waiting = this.#queue.shift();
    if (waiting !== undefined) this.#left(waiting);
    return waiting;
  }

  /** Answers every call waiting with `answer(call)`; the queue takes no more (its session ended). */
  failAll(answer: (call: WaitingCall) => JsonRpcResponse): void {
    for (const waiting of this.#queue.drain()) {
      this.#left(waiting);
      waiting.resolve(answer(waiting));
    }
    this.#deadlines.clear();
    this.#queue.release();
  }

  #take(waiting: WaitingCall): boolean {
    if (!this.#queue.delete(waiting)) return false;
    this.#left(waiting);
    return true;
  }

  /** Stops its deadline and abort listener and records the time it waited. */
  #left(waiting: WaitingCall): void {
    this.#deadlines.delete(waiting);
    const since = this.#since.get(waiting);
    this.#since.delete(waiting);
    if (since === undefined) return;
    since.leave();
    waiting.waitedMs = performance.now() - since.at;
    this.#metrics?.callQueueSeconds.observe(waiting.waitedMs / 1000);
  }
}
