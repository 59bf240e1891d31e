// The Redis state store: what the replicas share (`--redis`), on one connection of the replica's
// (lib/serve/cluster/redis_client.ts). A record is one key `st:<space>:<id>` with Redis's own TTL; a batch
// is one MULTI.

import type { RedisClient } from "../cluster/redis_client.ts";
import {
  checkKey,
  checkTtl,
  type StateEntry,
  type StateKey,
  type StateStore,
  StateStoreClosedError,
  type StateWrite,
} from "./store.ts";

/** Keys `list` reads per SCAN step and per MGET. */
const SCAN_COUNT = 500;

/** Options of {@link RedisStore}. */
export interface RedisStoreOptions {
  /** The connection (commands fail at once while Redis is down: writes are retried by the writer). */
  client: RedisClient;
  /** Where the state lives, for logs: the Redis URL without its password. */
  location: string;
  /** Closes `client` with the store; false when the client is shared (the replica's). Default false. */
  ownsClient?: boolean;
  /** Key prefix; default `st:`. */
  prefix?: string;
}

/**
 * serve's state in Redis.
 *
 * @example
 * ```ts ignore
 * const store = new RedisStore({ client, location: "redis://redis:6379/0" });
 * await store.write([{ op: "set", key: { space: "client", id: "abc" }, value: "{}", ttlMs: 60_000 }]);
 * ```
 */
export class RedisStore implements StateStore {
  readonly kind = "redis";
  readonly location: string;
  readonly durable = true;
  readonly #client: RedisClient;
  readonly #ownsClient: boolean;
  readonly #prefix: string;
  #closed = false;

  constructor(options: RedisStoreOptions) {
    this.#client = options.client;
    this.location = options.location;
    this.#ownsClient = options.ownsClient ?? false;
    this.#prefix = options.prefix ?? "st:";
  }

  get(key: StateKey): Promise<string | undefined> {
    return this.#run(async () => {
      checkKey(key);
      return (await this.#client.redis.get(this.#key(key))) ?? undefined;
    });
  }

  list(space: string): Promise<StateEntry[]> {
    return this.#run(async () => {
      checkKey({ space, id: "-" });
      const prefix = `${this.#prefix}${space}:`;
      const keys: string[] = [];
      let cursor = "0";
      do {
        const [next, found] = await this.#client.redis.scan(
          cursor,
          "MATCH",
          `${prefix}*`,
          "COUNT",
          SCAN_COUNT,
        );
        cursor = next;
        keys.push(...found);
      } while (cursor !== "0");
      const entries: StateEntry[] = [];
      for (let i = 0; i < keys.length; i += SCAN_COUNT) {
        const chunk = [...new Set(keys.slice(i, i + SCAN_COUNT))];
        const values = await this.#client.redis.mget(...chunk);
        chunk.forEach((name, at) => {
          const value = values[at];
          // Gone between SCAN and MGET (expired or deleted): not live.
          if (value !== null && value !== undefined) {
            entries.push({ key: { space, id: name.slice(prefix.length) }, value });
          }
        });
      }
      return entries;
    });
  }

  write(batch: readonly StateWrite[]): Promise<void> {
    return this.#run(async () => {
      for (const write of batch) {
        checkKey(write.key);
        if (write.op === "set") checkTtl(write.ttlMs);
      }
      if (batch.length === 0) return;
      const multi = this.#client.redis.multi();
      for (const write of batch) {
        const name = this.#key(write.key);
        if (write.op === "delete") multi.del(name);
        else if (write.ttlMs === undefined) multi.set(name, write.value);
        else multi.set(name, write.value, "PX", write.ttlMs);
      }
      const replies = await multi.exec();
      const failed = replies?.find(([error]) => error !== null)?.[0];
      if (replies === null || failed) throw failed ?? new Error("Redis aborted the state batch");
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ownsClient) await this.#client.close();
  }

  #key(key: StateKey): string {
    return `${this.#prefix}${key.space}:${key.id}`;
  }

  /** Runs `body` unless the store is closed; a bad key or TTL rejects before anything is sent. */
  async #run<T>(body: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new StateStoreClosedError(this.kind);
    return await body();
  }
}
