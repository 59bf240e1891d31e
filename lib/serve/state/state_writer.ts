// Write-behind in front of a state store: serve records a change and goes on; the writer gathers the
// changes of a moment into one batch (the latest per record wins), writes it, and on failure counts,
// logs (at most a line per interval) and retries with backoff, holding a bounded number of writes.

import { LogThrottle } from "../../util/log_throttle.ts";
import { logger } from "../../util/log.ts";
import type { StateKey, StateStore, StateWrite } from "./store.ts";

const log = logger("serve", "state");

/** Options of {@link StateWriter}. */
export interface StateWriterOptions {
  /** Milliseconds a change waits for others to join its batch. Default 5. */
  delayMs?: number;
  /** Records with a write pending at most; past it the oldest pending write is dropped. Default 100,000. */
  maxPending?: number;
  /** First and longest wait before a failed batch is tried again, in milliseconds. Default 100 and 10,000. */
  retryMs?: { first: number; max: number };
  /** Counts a failed batch (serve: `mcp_rproxy_errors_total{kind="state_store"}`). */
  onError?: (error: unknown) => void;
  /** Counts writes dropped past `maxPending` (serve: `…{kind="state_dropped"}`). */
  onDropped?: (count: number) => void;
}

function keyText(key: StateKey): string {
  return `${key.space}\u0000${key.id}`;
}

/**
 * Batches writes to a {@link StateStore} so that no caller waits for it.
 *
 * @example
 * ```ts
 * import { MemoryStore } from "./memory_store.ts";
 * import { StateWriter } from "./state_writer.ts";
 * const store = new MemoryStore();
 * const writer = new StateWriter(store);
 * writer.set({ space: "client", id: "a" }, "{}", 60_000);
 * await writer.close(1000);
 * await store.get({ space: "client", id: "a" }); // "{}"
 * await store.close();
 * ```
 */
export class StateWriter {
  readonly store: StateStore;
  #pending = new Map<string, StateWrite>();
  #delayMs: number;
  #maxPending: number;
  #retry: { first: number; max: number };
  #options: StateWriterOptions;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #writing: Promise<void> | undefined;
  #failures = 0;
  #closed = false;
  #warnings = new LogThrottle({ intervalMs: 10_000 });

  constructor(store: StateStore, options: StateWriterOptions = {}) {
    this.store = store;
    this.#options = options;
    this.#delayMs = options.delayMs ?? 5;
    this.#maxPending = options.maxPending ?? 100_000;
    this.#retry = options.retryMs ?? { first: 100, max: 10_000 };
  }

  /** Records with a write not yet stored. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Sets a record (soon): the latest value for a record replaces one still pending. */
  set(key: StateKey, value: string, ttlMs?: number): void {
    this.#add({ op: "set", key, value, ...(ttlMs === undefined ? {} : { ttlMs }) });
  }

  /** Deletes a record (soon). */
  delete(key: StateKey): void {
    this.#add({ op: "delete", key });
  }

  /** Writes what is pending now (after a batch in progress); resolves once tried, stored or not. */
  async flush(): Promise<void> {
    await this.#writing;
    if (this.#pending.size === 0) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#drain();
    await this.#writing;
  }

  /**
   * Flushes within `timeoutMs` and stops: later writes are ignored. What could not be stored in time
   * is logged as lost. The store itself stays open (its owner closes it).
   */
  async close(timeoutMs: number): Promise<void> {
    if (this.#closed) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        this.flush(),
        new Promise<void>((resolve) => timer = setTimeout(resolve, timeoutMs)),
      ]);
    } finally {
      clearTimeout(timer);
      this.#closed = true;
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const lost = this.#pending.size + (this.#writing === undefined ? 0 : 1);
    this.#pending.clear();
    if (lost > 0) {
      log.warning("State writes could not be stored before shutdown: {store}", {
        event: "state_unflushed",
        store: this.store.location,
        pending: lost,
      });
    }
  }

  #add(write: StateWrite): void {
    if (this.#closed) return;
    const id = keyText(write.key);
    this.#pending.delete(id); // re-inserted last: the map's order is the order of the latest writes
    this.#pending.set(id, write);
    this.#bound();
    this.#schedule(this.#failures === 0 ? this.#delayMs : this.#backoff());
  }

  /** Drops the oldest pending writes past the bound (a store down for long must not cost all memory). */
  #bound(): void {
    let dropped = 0;
    for (const id of this.#pending.keys()) {
      if (this.#pending.size <= this.#maxPending) break;
      this.#pending.delete(id);
      dropped++;
    }
    if (dropped > 0) this.#options.onDropped?.(dropped);
  }

  #backoff(): number {
    return Math.min(this.#retry.max, this.#retry.first * 2 ** Math.min(this.#failures - 1, 20));
  }

  #schedule(ms: number): void {
    if (this.#timer !== undefined || this.#writing !== undefined || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#drain();
    }, ms);
  }

  #drain(): void {
    if (this.#writing !== undefined || this.#pending.size === 0) return;
    const batch = [...this.#pending.values()];
    this.#pending.clear();
    this.#writing = this.store.write(batch).then(
      () => {
        if (this.#failures > 0) {
          log.info("State store {store} takes writes again", {
            event: "state_store_recovered",
            store: this.store.location,
          });
        }
        this.#failures = 0;
      },
      (error: unknown) => this.#failed(batch, error),
    ).finally(() => {
      this.#writing = undefined;
      if (this.#pending.size > 0) {
        this.#schedule(this.#failures === 0 ? this.#delayMs : this.#backoff());
      }
    });
  }

  #failed(batch: StateWrite[], error: unknown): void {
    this.#failures++;
    this.#options.onError?.(error);
    // Tried again, unless a newer write of the same record came meanwhile.
    const newer = this.#pending;
    this.#pending = new Map();
    if (!this.#closed) {
      for (const write of batch) this.#pending.set(keyText(write.key), write);
    }
    for (const [id, write] of newer) {
      this.#pending.delete(id);
      this.#pending.set(id, write);
    }
    this.#bound();
    const suppressed = this.#warnings.take();
    if (suppressed === undefined) return;
    log.warning(
      "State store {store} refused {count} write(s): {error}; retrying in {ms} ms{more}",
      {
        event: "state_store_error",
        store: this.store.location,
        count: batch.length,
        error: error instanceof Error ? error.message : String(error),
        ms: this.#backoff(),
        more: suppressed > 0 ? ` (${suppressed} more failures since the last warning)` : "",
      },
    );
  }
}
