// One replica's place in the cluster: its Redis connections, envelope seal, inbox, liveness and the tunnel
// sessions it holds (renewed each beat; one lost to a newer generation is handed back to be closed). Its
// readiness is Redis's: while Redis is down, /readyz says so and cross-replica work is refused.

import { logger } from "../../util/log.ts";
import type { ClusterMetrics } from "./cluster_metrics.ts";
import { CLUSTER_DEFAULTS, redactRedisUrl } from "./cluster_config.ts";
import type { ClusterSettings } from "./cluster_config.ts";
import { type Envelope, type EnvelopeKind, EnvelopeSeal } from "./envelope.ts";
import { Inbox } from "./inbox.ts";
import { Liveness, LIVENESS_DEFAULTS } from "./liveness.ts";
import { type Owner, Ownership, type Server } from "./ownership.ts";
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

/**
 * A tunnel session this replica holds: its server, its generation (undefined until a claim succeeded: the
 * next beat claims again), and what to do once a newer generation took it.
 */
interface Held {
  server: Server;
  gen: number | undefined;
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
 * const cluster = Cluster.start({ settings, secret, version: "1.0.0" });
 * cluster.on("call", (envelope) => handleCall(envelope));
 * await cluster.hold("sess-1", { owner: "alice", name: "everything" }, () => closeLink(4002));
 * await cluster.close();
 * ```
 */
export class Cluster {
  readonly replicaId: string;
  readonly commands: RedisClient;
  readonly inbox: Inbox;
  readonly ownership: Ownership;
  readonly liveness: Liveness;
  /** The replica's settings, the `--cluster-*` bounds not given filled in with their defaults. */
  readonly settings: Required<ClusterSettings>;
  /**
   * `readiness` fires when a Redis connection goes up or down, and after each liveness beat; `lost` when
   * Redis lost this replica's records (publish them again); `beat` after each liveness beat.
   */
  readonly events = new EventTarget();
  readonly #reader: RedisClient;
  readonly #handlers = new Map<EnvelopeKind, (envelope: Envelope) => void>();
  readonly #held = new Map<string, Held>();
  readonly #metrics: ClusterMetrics | undefined;

  /** The replica metrics, when kept. */
  get metrics(): ClusterMetrics | undefined {
    return this.#metrics;
  }
  #closed = false;

  private constructor(options: ClusterStartOptions, seal: EnvelopeSeal) {
    const { settings, metrics } = options;
    this.replicaId = settings.replicaId;
    const { forwardTimeoutMs, commandTimeoutMs, maxInitialized } = CLUSTER_DEFAULTS;
    this.settings = { forwardTimeoutMs, commandTimeoutMs, maxInitialized, ...settings };
    this.#metrics = metrics;
    const backoff = options.backoff ?? { baseMs: 100, maxMs: 5_000 };
    const ttlMs = options.ttlMs ?? LIVENESS_DEFAULTS.ttlMs;
    const onState = () => {
      this.events.dispatchEvent(new Event("readiness"));
      // Back: renew at once what this replica holds, rather than at the next beat.
      if (this.commands?.state.up) this.liveness?.kick();
    };
    const onError = () => metrics?.redisErrors.inc();
    this.commands = new RedisClient({
      url: settings.redisUrl,
      name: "commands",
      backoff,
      // An XADD of a 48 MiB envelope on a busy machine takes seconds; a hung Redis still shows in 10.
      commandTimeoutMs: this.settings.commandTimeoutMs,
      onState,
      onError,
    });
    const blockMs = 1_000;
    this.#reader = new RedisClient({
      url: settings.redisUrl,
      name: "inbox",
      backoff,
      // The read returns up to a batch of large envelopes, which takes long to receive on a busy host.
      commandTimeoutMs: blockMs + 30_000,
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
      onSeen: (replicas) => {
        metrics?.replicasSeen.set(replicas.size);
        this.events.dispatchEvent(new Event("readiness"));
        this.events.dispatchEvent(new Event("beat"));
      },
      onLost: () => this.events.dispatchEvent(new Event("lost")),
    });
    metrics?.tunnelsOwned.track(() => this.#held.size);
    metrics?.redisUp.track(() => this.commands.state.up && this.#reader.state.up ? 1 : 0);
  }

  /** Connects (in the background: a Redis that is not up yet makes the replica unready, not fail). */
  static start(options: ClusterStartOptions): Cluster {
    const { settings } = options;
    const seal = EnvelopeSeal.create({
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

  /** The generation this replica holds `sid` under; undefined when it does not (or not yet). */
  generation(sid: string): number | undefined {
    return this.#held.get(sid)?.gen;
  }

  /**
   * Claims tunnel session `sid` of `server` with a new generation and renews it each beat until
   * {@link drop}; `superseded` runs once if a newer generation takes it. The previous holder, if another
   * replica, is told at once. A claim that fails (Redis down) is made again at the next beat.
   */
  async hold(
    sid: string,
    server: Server,
    superseded: (by: Owner | undefined) => void,
  ): Promise<void> {
    const held: Held = { server, gen: undefined, superseded };
    this.#held.set(sid, held);
    await this.#claim(sid, held).catch(() => {});
  }

  /** Stops holding `sid` (its tunnel ended here) and releases it if still ours. */
  async drop(sid: string): Promise<void> {
    const held = this.#held.get(sid);
    if (held === undefined) return;
    this.#held.delete(sid);
    if (held.gen === undefined) return;
    await this.ownership.release(sid, held.gen, held.server).catch(() => {});
  }

  async #claim(sid: string, held: Held): Promise<void> {
    const { gen, previous } = await this.ownership.claim(sid, held.server);
    if (this.#held.get(sid) !== held) {
      // Dropped while the claim was on its way: give it back.
      await this.ownership.release(sid, gen, held.server);
      return;
    }
    held.gen = gen;
    if (previous === undefined || previous.rid === this.replicaId) return;
    this.#metrics?.takeovers.inc("taken");
    log.info("Tunnel session {session} taken over from replica {from} (generation {gen})", {
      event: "tunnel_taken_over",
      session: sid,
      from: previous.rid,
      gen,
    });
    // The old holder learns at its next renewal anyway; the envelope makes it close its link now.
    await this.inbox.send({
      kind: "supersede",
      target: previous.rid,
      deadline: 0,
      generation: gen,
      sid,
      id: "",
      payload: "",
    }).catch(() => {});
  }

  /** A `supersede` envelope: a newer generation of `sid` exists elsewhere; close it here. */
  superseded(sid: string, generation: number, by: string): void {
    const held = this.#held.get(sid);
    if (held === undefined || held.gen === undefined || held.gen >= generation) return;
    this.#lose(sid, held, { rid: by, gen: generation });
  }

  #lose(sid: string, held: Held, by: Owner | undefined): void {
    this.#held.delete(sid);
    this.#metrics?.takeovers.inc("lost");
    log.info("Tunnel session {session} was taken over by {by}: closing it here", {
      event: "tunnel_superseded",
      session: sid,
      by: by === undefined ? "a newer generation" : `replica ${by.rid}`,
    });
    held.superseded(by);
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
      if (held.gen === undefined) return await this.#claim(sid, held);
      const renewal = await this.ownership.renew(sid, held.gen, held.server);
      if (renewal.kind !== "superseded" || this.#held.get(sid) !== held) return;
      this.#lose(sid, held, renewal.by);
    });
    await Promise.all(renewals);
  }
}
