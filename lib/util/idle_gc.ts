// Gives memory back after large transient messages. V8 collects a large object only at its next major
// collection, and an idle process allocates nothing that would trigger one: a 20 MiB frame handled and
// dropped kept serve's RSS up for 30-60 s. Once releases add up and then stop for a moment, ask for a
// collection; during a flood that never stops, ask every so often anyway.

import v8 from "node:v8";
import vm from "node:vm";

/** Options of {@link IdleCollector}. */
export interface IdleCollectorOptions {
  /**
   * Bytes released since the last collection that arm one, in bytes. Default 4 MiB. Releases add up: a
   * flood of 64 KiB frames arms it as one 20 MiB frame does.
   */
  thresholdBytes?: number;
  /**
   * Bytes released since the last collection past which the process collects without waiting for quiet
   * (a flood that never pauses), at most once per `minIntervalMs`. Default 32 MiB.
   */
  floodBytes?: number;
  /** Quiet time after the last release before collecting, in milliseconds. Default 1000. */
  quietMs?: number;
  /**
   * Least time between two collections, in milliseconds. Default 250: a full collection of serve's heap
   * takes some 10-30 ms, and in a flood of 64 KiB notifications collecting every second kept serve's peak
   * RSS ~50 MiB lower than every 10 s. Large messages on a busy machine need more: with 64 MiB and 1 s,
   * eight unread 40 MiB answers took serve 380 MiB over its baseline while three other processes kept
   * both CPUs busy (V8 put off its own collections); with 32 MiB and 250 ms, every attack of tests/attack/
   * stayed within its bound under five.
   */
  minIntervalMs?: number;
  /** The collection; injected by tests. Default V8's full collection. */
  collect?: () => void;
  /** Whether a waiting collection may let the process exit (default true; tests wait for it). */
  unref?: boolean;
}

let v8Collect: (() => void) | null | undefined;

/**
 * V8's full garbage collection, or undefined where it cannot be had. `node:v8` turns the flag on at run
 * time and a new context hands the function out; no command-line flag or permission is needed.
 */
export function fullCollection(): (() => void) | undefined {
  if (v8Collect === undefined) {
    try {
      v8.setFlagsFromString("--expose-gc");
      const gc = vm.runInNewContext("gc");
      v8Collect = typeof gc === "function" ? gc as () => void : null;
    } catch {
      v8Collect = null;
    }
  }
  return v8Collect ?? undefined;
}

/**
 * Collects once `thresholdBytes` were released and releases then stopped for `quietMs`, or at once when
 * `floodBytes` were released; at most once per `minIntervalMs`.
 *
 * @example
 * ```ts
 * import { IdleCollector } from "./idle_gc.ts";
 * let collected = 0;
 * const idle = new IdleCollector({ quietMs: 10, collect: () => collected++ });
 * idle.released(64 * 1024 * 1024);
 * idle.close();
 * ```
 */
export class IdleCollector {
  #threshold: number;
  #floodBytes: number;
  /** Bytes released since the last collection. */
  #pending = 0;
  /** True while the armed collection is one for a flood (it does not wait for quiet). */
  #floodArmed = false;
  #quietMs: number;
  #minIntervalMs: number;
  #collect: (() => void) | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastAt = -Infinity;
  #unref: boolean;
  #closed = false;

  constructor(options: IdleCollectorOptions = {}) {
    const {
      thresholdBytes = 4 * 1024 * 1024,
      floodBytes = 32 * 1024 * 1024,
      quietMs = 1_000,
      minIntervalMs = 250,
    } = options;
    this.#threshold = thresholdBytes;
    this.#floodBytes = floodBytes;
    this.#quietMs = quietMs;
    this.#minIntervalMs = minIntervalMs;
    this.#collect = options.collect ?? fullCollection();
    this.#unref = options.unref ?? true;
  }

  /** `bytes` of a transient message were let go. */
  released(bytes: number): void {
    if (this.#collect === undefined || this.#closed) return;
    this.#pending += bytes;
    if (this.#pending < this.#threshold) return;
    const flood = this.#pending >= this.#floodBytes;
    // A collection armed for a flood stands; one waiting for quiet is pushed back by each release.
    if (flood && this.#floodArmed) return;
    clearTimeout(this.#timer);
    this.#floodArmed = flood;
    const wait = Math.max(
      flood ? 0 : this.#quietMs,
      this.#lastAt + this.#minIntervalMs - performance.now(),
    );
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#floodArmed = false;
      this.#lastAt = performance.now();
      this.#pending = 0;
      this.#collect?.();
    }, wait);
    // Never the reason a process stays up.
    if (this.#unref) Deno.unrefTimer(this.#timer);
  }

  /** True while a collection is waiting to run. */
  get armed(): boolean {
    return this.#timer !== undefined;
  }

  /**
   * Drops a collection still waiting, and arms none after: what its owner releases while it shuts down
   * must not leave a timer behind.
   */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#floodArmed = false;
  }
}
