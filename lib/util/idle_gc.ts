// Gives memory back after large transient messages. V8 collects a large object only at its next major
// collection, and an idle process allocates nothing that would trigger one: a 20 MiB frame handled and
// dropped kept serve's RSS up for 30-60 s. Once large messages stop for a moment, ask for a collection.

import v8 from "node:v8";
import vm from "node:vm";

/** Options of {@link IdleCollector}. */
export interface IdleCollectorOptions {
  /** Released sizes below this do not count, in bytes. Default 4 MiB. */
  thresholdBytes?: number;
  /** Quiet time after the last large release before collecting, in milliseconds. Default 1000. */
  quietMs?: number;
  /** Least time between two collections, in milliseconds. Default 10,000. */
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
 * Collects once large releases have stopped for `quietMs`, at most once per `minIntervalMs`.
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
  #quietMs: number;
  #minIntervalMs: number;
  #collect: (() => void) | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastAt = -Infinity;
  #unref: boolean;

  constructor(options: IdleCollectorOptions = {}) {
    const { thresholdBytes = 4 * 1024 * 1024, quietMs = 1_000, minIntervalMs = 10_000 } = options;
    this.#threshold = thresholdBytes;
    this.#quietMs = quietMs;
    this.#minIntervalMs = minIntervalMs;
    this.#collect = options.collect ?? fullCollection();
    this.#unref = options.unref ?? true;
  }

  /** `bytes` of a transient message were let go. */
  released(bytes: number): void {
    if (bytes < this.#threshold || this.#collect === undefined) return;
    clearTimeout(this.#timer);
    const wait = Math.max(this.#quietMs, this.#lastAt + this.#minIntervalMs - performance.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#lastAt = performance.now();
      this.#collect?.();
    }, wait);
    // Never the reason a process stays up.
    if (this.#unref) Deno.unrefTimer(this.#timer);
  }

  /** Drops a collection still waiting. */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
