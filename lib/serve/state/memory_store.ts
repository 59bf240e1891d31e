// The state store that lives in this process only (`--state-dir none`, and tests): serve behaves as it
// always did, forgetting everything when it stops.

import {
  checkKey,
  checkTtl,
  type StateEntry,
  type StateKey,
  type StateStore,
  StateStoreClosedError,
  type StateWrite,
} from "./store.ts";

interface Held {
  value: string;
  /** Milliseconds since the epoch (by the store's clock) after which the record is gone. */
  expiresAt: number | undefined;
}

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** The clock, in milliseconds. Default `Date.now`. */
  now?: () => number;
}

/**
 * A {@link StateStore} in a Map: not durable. Records past their TTL are dropped when next touched.
 *
 * @example
 * ```ts
 * import { MemoryStore } from "./memory_store.ts";
 * const store = new MemoryStore();
 * await store.write([{ op: "set", key: { space: "client", id: "a" }, value: "{}" }]);
 * await store.get({ space: "client", id: "a" }); // "{}"
 * await store.close();
 * ```
 */
export class MemoryStore implements StateStore {
  readonly kind = "memory";
  readonly location = "memory";
  readonly durable = false;
  #spaces = new Map<string, Map<string, Held>>();
  #now: () => number;
  #closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.#now = options.now ?? Date.now;
  }

  get(key: StateKey): Promise<string | undefined> {
    return this.#run(() => {
      checkKey(key);
      return this.#live(key)?.value;
    });
  }

  list(space: string): Promise<StateEntry[]> {
    return this.#run(() => {
      checkKey({ space, id: "-" });
      const entries: StateEntry[] = [];
      const records = this.#spaces.get(space);
      if (records === undefined) return entries;
      const now = this.#now();
      for (const [id, held] of records) {
        if (held.expiresAt !== undefined && held.expiresAt <= now) records.delete(id);
        else entries.push({ key: { space, id }, value: held.value });
      }
      return entries;
    });
  }

  write(batch: readonly StateWrite[]): Promise<void> {
    return this.#run(() => {
      // Checked whole before any is applied: a bad write leaves the batch unapplied, as SQLite's would.
      for (const write of batch) {
        checkKey(write.key);
        if (write.op === "set") checkTtl(write.ttlMs);
      }
      for (const write of batch) {
        if (write.op === "delete") this.#delete(write.key);
        else this.#set(write.key, write.value, write.ttlMs);
      }
    });
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#spaces.clear();
    return Promise.resolve();
  }

  /** Runs `body` as the async method's result: a throw becomes a rejection, a closed store rejects. */
  #run<T>(body: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new StateStoreClosedError(this.kind));
    try {
      return Promise.resolve(body());
    } catch (error: unknown) {
      return Promise.reject(error);
    }
  }

  #records(space: string): Map<string, Held> {
    let records = this.#spaces.get(space);
    if (records === undefined) this.#spaces.set(space, records = new Map());
    return records;
  }

  #live(key: StateKey): Held | undefined {
    const records = this.#spaces.get(key.space);
    const held = records?.get(key.id);
    if (held === undefined) return undefined;
    if (held.expiresAt !== undefined && held.expiresAt <= this.#now()) {
      records!.delete(key.id);
      return undefined;
    }
    return held;
  }

  #set(key: StateKey, value: string, ttlMs: number | undefined): void {
    const expiresAt = ttlMs === undefined ? undefined : this.#now() + ttlMs;
    this.#records(key.space).set(key.id, { value, expiresAt });
  }

  #delete(key: StateKey): void {
    this.#spaces.get(key.space)?.delete(key.id);
  }
}
