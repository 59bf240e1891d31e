// Replica liveness: `replica:<rid>` with a TTL (10 s) renewed every beat (3 s), and a sorted set of the
// replicas by expiry from which each replica reads who is alive. Each beat also runs the upkeep of what
// this replica holds in Redis (its inbox, its tunnels), so an empty Redis is refilled within one beat.

import { logger } from "../../util/log.ts";
import type { RedisClient } from "./redis_client.ts";

const log = logger("serve", "cluster");

/** The sorted set of replicas, scored by the wall-clock ms their liveness expires at. */
export const REPLICAS_KEY = "replicas";

/** The liveness key of replica `rid`. */
export function replicaKey(rid: string): string {
  return `replica:${rid}`;
}

/** Defaults of {@link LivenessOptions}. */
export const LIVENESS_DEFAULTS = { ttlMs: 10_000, beatMs: 3_000 } as const;

/** Options of {@link Liveness}. */
export interface LivenessOptions {
  commands: RedisClient;
  replicaId: string;
  /** What others may read about this replica (its version, start time); JSON. */
  info?: Record<string, unknown>;
  /** Lifetime of the liveness key; default 10000 ms. */
  ttlMs?: number;
  /** Time between beats; default 3000 ms. */
  beatMs?: number;
  /** Upkeep run after each successful beat (inbox, ownership); its failure is logged, not fatal. */
  upkeep?: () => Promise<void>;
  /** Called with the replicas seen after each beat. */
  onSeen?: (replicas: ReadonlySet<string>) => void;
  /**
   * Called when a beat finds this replica's key gone although an earlier beat set it within its TTL: Redis
   * lost its data (a restart without persistence). Everything this replica published must be put back.
   */
  onLost?: () => void;
  /** Wall clock in ms. */
  now?: () => number;
}

/**
 * Keeps this replica alive in Redis and knows the others.
 *
 * @example
 * ```ts ignore
 * const liveness = new Liveness({ commands, replicaId: "gw-1", upkeep: () => inbox.upkeep() });
 * liveness.start();
 * liveness.alive("gw-2"); // true once gw-2 was seen at the last beat
 * await liveness.close();
 * ```
 */
export class Liveness {
  readonly #options: LivenessOptions;
  readonly #now: () => number;
  #seen: ReadonlySet<string> = new Set();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #beating: Promise<void> | undefined;
  #closed = false;
  /** Wall-clock time of the last successful beat; 0 before the first. */
  #lastBeat = 0;

  constructor(options: LivenessOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** Replicas alive at the last beat, this one included once it beat. */
  get replicas(): ReadonlySet<string> {
    return this.#seen;
  }

  /** How long a record renewed with each beat lives without one, in ms. */
  get ttlMs(): number {
    return this.#options.ttlMs ?? LIVENESS_DEFAULTS.ttlMs;
  }

  /**
   * After Redis came back empty, how long until every live replica has beaten again and published what
   * it holds once more: two beats and a second, in ms.
   */
  get recoveringMs(): number {
    return 2 * (this.#options.beatMs ?? LIVENESS_DEFAULTS.beatMs) + 1_000;
  }

  /** Whether `rid` was alive at the last beat. */
  alive(rid: string): boolean {
    return this.#seen.has(rid);
  }

  /** Beats now and then every `beatMs` until {@link close}. */
  start(): void {
    if (this.#timer !== undefined || this.#beating !== undefined || this.#closed) return;
    this.#schedule(0);
  }

  /** Beats at once (Redis just came back) unless a beat runs now; the rhythm goes on from there. */
  kick(): void {
    if (this.#closed || this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#schedule(0);
  }

  /** One beat: renew the key, read the others, run the upkeep. Rejects when Redis refused. */
  async beat(): Promise<void> {
    const { commands, replicaId, ttlMs = LIVENESS_DEFAULTS.ttlMs } = this.#options;
    const now = this.#now();
    const info = JSON.stringify({ ...this.#options.info, beat: now });
    const replies = await commands.redis.multi()
      .exists(replicaKey(replicaId))
      .set(replicaKey(replicaId), info, "PX", ttlMs)
      .zadd(REPLICAS_KEY, now + ttlMs, replicaId)
      .zremrangebyscore(REPLICAS_KEY, "-inf", now)
      .zrange(REPLICAS_KEY, "0", "-1")
      .pexpire(REPLICAS_KEY, ttlMs * 6)
      .exec();
    const failed = replies?.find(([error]) => error !== null)?.[0];
    if (replies === null || failed) throw failed ?? new Error("Redis aborted the liveness beat");
    this.#seen = new Set(replies[4]![1] as string[]);
    const lost = replies[0]![1] === 0 && this.#lastBeat > 0 && now - this.#lastBeat < ttlMs;
    this.#lastBeat = now;
    if (lost) {
      log.warning("Redis lost this replica's records (restarted empty?): publishing them again", {
        event: "redis_data_lost",
        replica: replicaId,
      });
      this.#options.onLost?.();
    }
    this.#options.onSeen?.(this.#seen);
    await this.#options.upkeep?.();
  }

  /**
   * Stops beating and removes this replica from the set, so that others stop routing to it at once.
   * `leave: false` only stops beating: the others find out when its entry runs out, as after a crash.
   */
  async close(options: { leave?: boolean } = {}): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#beating;
    const { commands, replicaId } = this.#options;
    if (!commands.state.up || options.leave === false) return;
    await commands.redis.multi().del(replicaKey(replicaId)).zrem(REPLICAS_KEY, replicaId).exec()
      .catch(() => {});
  }

  #schedule(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#beating = this.beat().catch((error: unknown) => {
        // Redis down is reported by the client; anything else (a refused upkeep) is said here.
        if (this.#options.commands.state.up) {
          log.warning("Liveness beat of replica {replica} failed: {error}", {
            event: "liveness_failed",
            replica: this.#options.replicaId,
            error: error instanceof Error ? error.message : String(error),
          });
        }
      }).finally(() => {
        this.#beating = undefined;
        if (!this.#closed) this.#schedule(this.#options.beatMs ?? LIVENESS_DEFAULTS.beatMs);
      });
    }, ms);
  }
}
