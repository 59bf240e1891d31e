// One ioredis connection of a replica and whether Redis is reachable through it: commands fail at once
// while it is down (no offline queue: the cluster fails closed rather than wait), it reconnects with
// capped exponential backoff, and each change of state is one log line and one callback.

import { Redis } from "ioredis";
import { backoffDelay } from "../../util/backoff.ts";
import { delay } from "../../util/delay.ts";
import { logger } from "../../util/log.ts";
import { redactRedisUrl } from "./cluster_config.ts";

const log = logger("serve", "cluster");

/** ioredis's wait before it destroys a socket that did not close after QUIT/end. */
const DISCONNECT_TIMEOUT_MS = 50;

/** Commands a watchdog pass saw waiting (a WeakMap: ioredis's own objects are not ours to extend). */
type Seen = WeakMap<object, number>;

/** Reachable, or not and why. */
export type RedisState = { up: true } | { up: false; reason: string };

/** Options of {@link RedisClient}. */
export interface RedisClientOptions {
  /** `redis://` or `rediss://` URL (its password is never logged). */
  url: string;
  /** What the connection is for, in log lines: `commands`, `inbox`. */
  name: string;
  /** Reconnect backoff: first delay and cap, in ms. Defaults 100 and 5000. */
  backoff?: { baseMs: number; maxMs: number };
  /** A command without an answer this long fails (Redis hung); default 5000. */
  commandTimeoutMs?: number;
  /** Called on each change of state (after the log line). */
  onState?: (state: RedisState) => void;
  /** Called for every connection error (for a counter). */
  onError?: () => void;
}

/** Short reason of a connection error, for /readyz and logs (ioredis errors carry no password). */
function reasonOf(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

/**
 * A Redis connection that knows whether it is up.
 *
 * @example
 * ```ts ignore
 * import { RedisClient } from "./redis_client.ts";
 * const client = new RedisClient({ url: "redis://127.0.0.1:6379", name: "commands" });
 * await client.ready(AbortSignal.timeout(5000));
 * await client.redis.set("k", "v");
 * await client.close();
 * ```
 */
export class RedisClient {
  /** The ioredis connection; commands reject while {@link state} is down. */
  readonly redis: Redis;
  readonly #name: string;
  readonly #where: string;
  readonly #onState: ((state: RedisState) => void) | undefined;
  #state: RedisState = { up: false, reason: "connecting" };
  #downSince = performance.now();
  #upSince = -Infinity;
  #waiters = new Set<() => void>();
  #closed = false;
  readonly #watchdog: ReturnType<typeof setInterval>;
  #seen: Seen = new WeakMap();

  constructor(options: RedisClientOptions) {
    const { baseMs = 100, maxMs = 5_000 } = options.backoff ?? {};
    this.#name = options.name;
    this.#where = redactRedisUrl(options.url);
    this.#onState = options.onState;
    this.redis = new Redis(options.url, {
      lazyConnect: true,
      // Off: autopipelining holds each command until a setImmediate to batch it with others; that turn
      // cost more CPU and latency per envelope than the batching saved (docs/performance.md, round five).
      enableAutoPipelining: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // No `commandTimeout`: it arms and clears a timer per command, the watchdog below does the same
      // job with one timer per connection.
      connectTimeout: 5_000,
      disconnectTimeout: DISCONNECT_TIMEOUT_MS,
      connectionName: `mcp-rproxy-${options.name}`,
      retryStrategy: (times: number) =>
        this.#closed ? null : backoffDelay(times, { baseMs, maxMs }),
    });
    this.redis.on("ready", () => this.#set({ up: true }));
    this.redis.on("error", (error: unknown) => {
      options.onError?.();
      this.#set({ up: false, reason: reasonOf(error) });
    });
    this.redis.on("close", () => {
      if (this.#closed) return;
      // A lost connection counts as an error even when ioredis reports none (a peer that went away).
      if (this.#state.up) options.onError?.();
      this.#set({ up: false, reason: "connection closed" });
    });
    this.redis.connect().catch(() => {
      // The error event said it; the retry strategy dials again.
    });
    const timeoutMs = options.commandTimeoutMs ?? 5_000;
    this.#watchdog = setInterval(() => this.#expire(), Math.max(1, timeoutMs / 2));
  }

  /**
   * Fails each command seen waiting for its reply at three passes in a row, half the command timeout
   * apart: it waited at least the timeout (at most 1.5 ×). Its reply, if it comes, is ignored.
   */
  #expire(): void {
    const seen = this.#seen;
    const next: Seen = new WeakMap();
    for (const { command } of this.redis.commandQueue.toArray()) {
      const passes = (seen.get(command) ?? 0) + 1;
      if (passes >= 3) command.reject(new Error("Command timed out"));
      else next.set(command, passes);
    }
    this.#seen = next;
  }

  /** Whether Redis answers on this connection, and why not. */
  get state(): RedisState {
    return this.#state;
  }

  /** When the connection last came up (performance.now()); -Infinity before the first time. */
  get upSince(): number {
    return this.#upSince;
  }

  /** Resolves once the connection is up; rejects with the signal's reason. */
  ready(signal: AbortSignal): Promise<void> {
    if (this.#state.up) return Promise.resolve();
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const done = () => {
        signal.removeEventListener("abort", onAbort);
        this.#waiters.delete(done);
        resolve();
      };
      const onAbort = () => {
        this.#waiters.delete(done);
        reject(signal.reason);
      };
      this.#waiters.add(done);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Closes the connection and stops reconnecting; resolves when the socket is gone (at most 2 s). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#watchdog);
    if (this.redis.status === "end") return;
    const ended = new Promise<void>((resolve) => this.redis.once("end", () => resolve()));
    this.redis.disconnect(false);
    // Between two dials there is no socket: disconnect() cancels the next dial and no "end" comes, but
    // it arms a timer to destroy the old (closed) socket; let that run out so nothing outlives close().
    if (this.redis.status === "reconnecting") return await delay(DISCONNECT_TIMEOUT_MS + 10);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([ended, new Promise((r) => timer = setTimeout(r, 2_000))]);
    clearTimeout(timer);
  }

  #set(state: RedisState): void {
    const was = this.#state;
    if (was.up === state.up && (state.up || was.up || was.reason === state.reason)) return;
    if (!state.up && !was.up && was.reason !== "connecting") {
      // Still down, another reason (refused, then timed out): keep the first line, update the reason.
      this.#state = state;
      return;
    }
    this.#state = state;
    if (state.up) {
      this.#upSince = performance.now();
      const seconds = Math.round((performance.now() - this.#downSince) / 100) / 10;
      log.info("Redis reachable at {redis} ({connection}) after {seconds} s", {
        event: "redis_up",
        redis: this.#where,
        connection: this.#name,
        seconds,
      });
      for (const waiter of [...this.#waiters]) waiter();
    } else {
      this.#downSince = performance.now();
      log.warning(
        "Redis unreachable at {redis} ({connection}): {reason}; cross-replica work is refused until it is back",
        { event: "redis_down", redis: this.#where, connection: this.#name, reason: state.reason },
      );
    }
    this.#onState?.(state);
  }
}
