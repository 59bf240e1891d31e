// One replica's place in the cluster: its Redis connections, envelope seal, inbox, liveness and the tunnel
// sessions it holds (renewed each beat; one lost to a newer generation is handed back to be closed). Its
// readiness is Redis's: while Redis is down, /readyz says so and cross-replica work is refused.

import { logger } from "../../util/log.ts";
import type { ClusterMetrics } from "./cluster_metrics.ts";
import { redactRedisUrl } from "./cluster_config.ts";
import type { ClusterSettings } from "./cluster_config.ts";
import { type Envelope, type EnvelopeKind, EnvelopeSeal } from "./envelope.ts";
import { Inbox } from "./inbox.ts";
import { Liveness, LIVENESS_DEFAULTS } from "./liveness.ts";
import { type Owner, Ownership } from "./ownership.ts";
import { RedisClient } from "./redis_client.ts";
import { ReplayGuard } from "./replay_guard.ts";

const log = logger("serve", "cluster");

/** Options of {@link Cluster.start}. */
export interface ClusterStartOptions {
  settings: ClusterSettings;
  /** The cluster secret (from `--cluster-secret-file`). */
  secret: string;
  /** This program's version, in the replica's liveness record. */
  version: string;
  metrics?: ClusterMetrics;
  /** Liveness and ownership key lifetime, and the beat; tests shorten them. Defaults 10000 and 3000 ms. */
  ttlMs?: number;
  beatMs?: number;
  /** Reconnect backoff of the Redis connections; default 100 ms doubling to 5 s. */
  backoff?: { baseMs: number; maxMs: number };
}

/** A tunnel session this replica holds: its generation, and what to do once a newer one took it. */
interface Held {
  gen: number;
  superseded: (by: Owner | undefined) => void;
}

/** Whether this replica can do cross-replica work, and if not why. */
export interface ClusterReadiness {
  ready: boolean;
  /** One line for /readyz: `redis: up (3 replicas)` or `redis: down (connect ECONNREFUSED …)`. */
  detail: string;
}

/**
 * A running replica.
 *
 * @example
 * ```ts ignore
 * const cluster = await Cluster.start({ settings, secret, version: "1.0.0" });
 * cluster.on("call", (envelope) => handleCall(envelope));
 * const gen = await cluster.hold("sess-1", () => closeLink(4002));
 * await cluster.close();
 * ```
 */
export class Cluster {
  readonly replicaId: string;
  readonly commands: RedisClient;
  readonly inbox: Inbox;
  readonly ownership: Ownership;
  readonly liveness: Liveness;
  readonly #reader: RedisClient;
  readonly #handlers = new Map<EnvelopeKind, (envelope: Envelope) => void>();
  readonly #held = new Map<string, Held>();
  readonly #metrics: ClusterMetrics | undefined;
  #closed = false;

  private constructor(options: ClusterStartOptions, seal: EnvelopeSeal) {
    const { settings, metrics } = options;
    this.replicaId = settings.replicaId;
    this.#metrics = metrics;
    const backoff = options.backoff ?? { baseMs: 100, maxMs: 5_000 };
    const ttlMs = options.ttlMs ?? LIVENESS_DEFAULTS.ttlMs;
    const onState = () => {
      // Back: renew at once what this replica holds, rather than at the next beat.
      if (this.commands?.state.up) this.liveness?.kick();
    };
    const onError = () => metrics?.redisErrors.inc();
    this.commands = new RedisClient({
      url: settings.redisUrl,
      name: "commands",
      backoff,
      onState,
      onError,
    });
    const blockMs = 1_000;
    this.#reader = new RedisClient({
      url: settings.redisUrl,
      name: "inbox",
      backoff,
      commandTimeoutMs: blockMs + 5_000,
      onState,
      onError,
    });
    this.inbox = new Inbox({
      commands: this.commands,
      reader: this.#reader,
      seal,
      maxEntries: settings.inboxMaxEntries,
      ttlMs,
      blockMs,
      onEnvelope: (envelope) => this.#dispatch(envelope),
      onRefused: (refusal) => metrics?.envelopesRefused.inc(refusal),
    });
    this.ownership = new Ownership({ commands: this.commands, replicaId: this.replicaId, ttlMs });
    this.liveness = new Liveness({
      commands: this.commands,
      replicaId: this.replicaId,
      info: { version: options.version, started: Date.now() },
      ttlMs,
      beatMs: options.beatMs ?? LIVENESS_DEFAULTS.beatMs,
      upkeep: () => this.#upkeep(),
      onSeen: (replicas) => metrics?.replicasSeen.set(replicas.size),
    });
    metrics?.tunnelsOwned.track(() => this.#held.size);
    metrics?.redisUp.track(() => this.commands.state.up && this.#reader.state.up ? 1 : 0);
  }

  /** Connects (in the background: a Redis that is not up yet makes the replica unready, not fail). */
  static async start(options: ClusterStartOptions): Promise<Cluster> {
    const { settings } = options;
    const seal = await EnvelopeSeal.create({
      secret: options.secret,
      replicaId: settings.replicaId,
      guard: new ReplayGuard({ maxNonces: settings.maxNonces }),
    });
    const cluster = new Cluster(options, seal);
    cluster.inbox.start();
    cluster.liveness.start();
    log.info("Replica {replica} joins the cluster at {redis}", {
      event: "cluster_joining",
      replica: settings.replicaId,
      redis: redactRedisUrl(settings.redisUrl),
    });
    return cluster;
  }

  /** Ready while both Redis connections are up. */
  get readiness(): ClusterReadiness {
    for (const client of [this.commands, this.#reader]) {
      const state = client?.state;
      if (state !== undefined && !state.up) {
        return { ready: false, detail: `redis: down (${state.reason})` };
      }
    }
    const replicas = this.liveness?.replicas.size ?? 0;
    // Until the first beat this replica has no inbox: others could not answer it.
    if (replicas === 0) {
      return { ready: false, detail: "redis: joining (first liveness beat pending)" };
    }
    return {
      ready: true,
      detail: `redis: up (${replicas} replica${replicas === 1 ? "" : "s"} seen)`,
    };
  }

  /** Routes envelopes of `kind` to `handler` (one per kind). */
  on(kind: EnvelopeKind, handler: (envelope: Envelope) => void): void {
    this.#handlers.set(kind, handler);
  }

  /** Tunnel sessions held here, with their generations. */
  held(): ReadonlyMap<string, number> {
    return new Map([...this.#held].map(([sid, held]) => [sid, held.gen]));
  }

  /**
   * Claims tunnel session `sid` with a new generation and renews it each beat until {@link drop};
   * `superseded` runs once if a newer generation takes it.
   */
  async hold(sid: string, superseded: (by: Owner | undefined) => void): Promise<number> {
    const gen = await this.ownership.claim(sid);
    this.#held.set(sid, { gen, superseded });
    return gen;
  }

  /** Stops holding `sid` (its tunnel ended here) and releases it if still ours. */
  async drop(sid: string): Promise<void> {
    const held = this.#held.get(sid);
    if (held === undefined) return;
    this.#held.delete(sid);
    await this.ownership.release(sid, held.gen).catch(() => {});
  }

  /** Stops beating, reading and renewing; closes the Redis connections. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.liveness.close();
    await this.inbox.close();
    await this.commands.close();
  }

  #dispatch(envelope: Envelope): void {
    const handler = this.#handlers.get(envelope.kind);
    if (handler === undefined) {
      log.debug("No handler for envelope kind {kind} from {origin}", {
        event: "envelope_unhandled",
        kind: envelope.kind,
        origin: envelope.origin,
      });
      return;
    }
    handler(envelope);
  }

  /** With each beat: this replica's inbox, then every tunnel session it holds. */
  async #upkeep(): Promise<void> {
    await this.inbox.upkeep();
    const renewals = [...this.#held].map(async ([sid, held]) => {
      const renewal = await this.ownership.renew(sid, held.gen);
      if (renewal.kind !== "superseded" || this.#held.get(sid) !== held) return;
      this.#held.delete(sid);
      this.#metrics?.takeovers.inc("lost");
      log.info("Tunnel session {session} was taken over by {by}: closing it here", {
        event: "tunnel_superseded",
        session: sid,
        by: renewal.by === undefined ? "a newer generation" : `replica ${renewal.by.rid}`,
      });
      held.superseded(renewal.by);
    });
    await Promise.all(renewals);
  }
}
