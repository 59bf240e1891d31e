// The one interface to serve's state store: what outlives a serve process (MCP client sessions, hashed
// resume credentials, tunnel session metadata, ended-session marks) and, with Redis, what replicas share.
// Implementations: memory_store.ts (`--state-dir none`), sqlite_store.ts (the default), a Redis store.

/**
 * Where a record lives: its space (what kind of record, such as `tunnel`, `client`, `ended`) and its id
 * within that space. A store keeps each space apart; `list(space)` reads one space.
 */
export interface StateKey {
  /** What kind of record: 1 to 32 of `a-z`, `0-9`, `_` and `-` (see {@link checkKey}). */
  readonly space: string;
  /** The record's id within its space: 1 to {@link MAX_ID_LENGTH} characters. */
  readonly id: string;
}

/** One write of a batch: set a record (replacing it, with a new TTL or none) or delete it. */
export type StateWrite =
  | { op: "set"; key: StateKey; value: string; ttlMs?: number }
  | { op: "delete"; key: StateKey };

/** A record read back by {@link StateStore.list}. */
export interface StateEntry {
  readonly key: StateKey;
  /** The value as written (serve writes JSON text). */
  readonly value: string;
}

/**
 * serve's state store. Every method is asynchronous, so that a networked store (Redis) fits as well as
 * an embedded one (SQLite). serve never waits on it on a hot path: the objects in memory are the cache,
 * and writes go through a {@link StateWriter} (state_writer.ts) that batches them and counts failures.
 *
 * Semantics every implementation keeps (tests/serve/state/store_contract.ts checks them, for each):
 * - Values are opaque strings, compared byte for byte.
 * - A record past its TTL is gone for `get` and `list` alike, whether or not the store has reclaimed
 *   its space yet.
 * - `write` applies its batch in order; an embedded store applies it atomically.
 * - After `close`, every method rejects.
 */
export interface StateStore {
  /** `memory`, `sqlite` or `redis`: for logs and metrics. */
  readonly kind: string;
  /** Where the state lives, for logs: a file path, a URL without credentials, or `memory`. */
  readonly location: string;
  /** True when what is written outlives this process (false for the memory store). */
  readonly durable: boolean;

  /** The value of a live record, or undefined. */
  get(key: StateKey): Promise<string | undefined>;

  /** Every live record of one space, in no particular order. For start-up, not for hot paths. */
  list(space: string): Promise<StateEntry[]>;

  /** Applies writes in order. Setting replaces the value and the TTL; deleting a missing record is fine. */
  write(batch: readonly StateWrite[]): Promise<void>;

  /** Releases the store (file lock, connection). Writes already resolved are kept. Idempotent. */
  close(): Promise<void>;
}

/** Longest record id (tunnel and MCP session ids are UUIDs; the bound keeps keys small everywhere). */
export const MAX_ID_LENGTH = 512;

const SPACE = /^[a-z0-9_-]{1,32}$/;

/**
 * Checks a key: throws a {@link RangeError} naming the bad part. Every implementation calls it, so that a
 * key that works on one store works on all.
 *
 * @example
 * ```ts
 * import { checkKey } from "./store.ts";
 * checkKey({ space: "tunnel", id: "6f1c…" }); // fine
 * ```
 */
export function checkKey(key: StateKey): void {
  if (!SPACE.test(key.space)) {
    throw new RangeError(
      `Cannot use state space '${
        String(key.space).slice(0, 40)
      }' as it must be 1 to 32 of a-z, 0-9, _ and -`,
    );
  }
  if (typeof key.id !== "string" || key.id.length === 0 || key.id.length > MAX_ID_LENGTH) {
    throw new RangeError(
      `Cannot use state id of length ${
        String(key.id).length
      } in space '${key.space}' as it must be 1 to ${MAX_ID_LENGTH} characters`,
    );
  }
}

/**
 * Checks a TTL: undefined, or a whole number of milliseconds ≥ 1. Throws a {@link RangeError} otherwise.
 *
 * @example
 * ```ts
 * import { checkTtl } from "./store.ts";
 * checkTtl(60_000); // fine
 * ```
 */
export function checkTtl(ttlMs: number | undefined): void {
  if (ttlMs !== undefined && (!Number.isSafeInteger(ttlMs) || ttlMs < 1)) {
    throw new RangeError(
      `Cannot write a state record as 'ttlMs' must be a whole number of milliseconds, 1 or more: current value is ${ttlMs}`,
    );
  }
}

/** A store was used after {@link StateStore.close}. */
export class StateStoreClosedError extends Error {
  constructor(kind: string) {
    super(`The ${kind} state store is closed`);
    this.name = "StateStoreClosedError";
  }
}
