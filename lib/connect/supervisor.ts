// `connect`'s run loop over its servers: a ServerRunner each, on one shared uplink (our gateway's
// `channels`) or an uplink each (contracts A and B, older gateways, the one-server forms); a reload that
// starts, stops and restarts only what changed; and the decision, from how servers end, of when connect
// itself ends.

import { settleWithin } from "../util/delay.ts";
import { logger } from "../util/log.ts";
import { ConfigError } from "../util/errors.ts";
import type { ReplayLimits } from "../protocol/sequenced_channel.ts";
import type { EarlyServers } from "./early_servers.ts";
import { EvictedError, ServerStartError } from "./errors.ts";
import type { Registration } from "./link_outcome.ts";
import type { ConnectMetrics } from "./metrics.ts";
import { KeptAnswers } from "./kept_answers.ts";
import { type ConnectSettings, serverKey, serverLabel, type ServerSpec } from "./settings.ts";
import { type RunnerEnd, ServerRunner } from "./server_runner.ts";
import { fingerprint } from "./server_fingerprint.ts";
import { type TransportChoice, transportChoiceFor } from "./transport_choice.ts";
import { Uplink } from "./uplink.ts";

const log = logger("connect");

/**
 * How long a stop waits for the links' last frames (`unregister`) and closes to go out before the process
 * may exit; a gateway that never answers the close costs this much at most.
 */
const CLOSE_SETTLE_MS = 1_000;

/** Options of {@link Supervisor}. */
export interface SupervisorOptions {
  settings: ConnectSettings;
  /** Aborting it starts a clean shutdown: unregister, close 1000, stop the servers. */
  signal: AbortSignal;
  /** Returns a number in [0, 1) for backoff jitter; injected by tests. */
  random?: () => number;
  /** A link that stayed up this long was healthy (its drop is retried at once), in milliseconds. */
  healthyAfterMs?: number;
  /** Deadline for a server's `initialize` reply, in milliseconds. */
  initTimeoutMs?: number;
  /** How long stopping a server may take before SIGKILL of its group, in milliseconds; overrides
   * `settings.shutdownGrace`. */
  graceMs?: number;
  /** Updated on every state change and message; optional so that tests and the demo can leave it out. */
  metrics?: ConnectMetrics;
  /** Bounds of the replay buffer kept for resumption (docs/resume.md). */
  replayLimits?: ReplayLimits;
  /**
   * Cross-replica request ids remembered per server (`--max-repeat-ids`), and the bytes of answers kept
   * to answer a repeat again, for all servers together (`--max-repeat-answer-bytes`).
   */
  repeatLimits?: { maxIds: number; maxAnswerBytes: number };
  /** Called after every successful registration of any server. */
  onRegistered?: (registration: Registration) => void;
  /** The servers' processes, spawned before the rest of connect was loaded (early_servers.ts). */
  early?: EarlyServers;
}

/** What a reload did, by server name. */
export interface ReloadSummary {
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
}

interface Running {
  runner: ServerRunner;
  spec: ServerSpec;
  print: string;
  done: Promise<void>;
  /** The gateway carries one server per link: this one has an uplink of its own. */
  split: boolean;
  /** Asked our gateway for one shared link (the many-server forms). */
  shared: boolean;
}

/** Runs every local server and their links until shutdown or a fatal condition. */
export class Supervisor {
  #options: SupervisorOptions;
  #settings: ConnectSettings;
  #clientSessionId = crypto.randomUUID().replaceAll("-", "");
  #running = new Map<string, Running>();
  #shared: Uplink | undefined;
  #dedicated = new Map<string, Uplink>();
  /** `--transport`: which transport every link dials, shared (it is about the path to the gateway). */
  #transport: TransportChoice;
  #ends: RunnerEnd[] = [];
  #fatal: unknown;
  #finished!: (outcome: { error?: unknown }) => void;
  #finish = new Promise<{ error?: unknown }>((resolve) => this.#finished = resolve);
  /** Stops every runner at once on a fatal condition (connect's own signal covers shutdown). */
  #abort = new AbortController();
  #firstStarts = { pending: 0, failed: [] as ServerStartError[] };
  #reloading: Promise<unknown> = Promise.resolve();
  /** The answers kept for repeated cross-replica requests: one store, so one bound, for every server. */
  #repeats: { limit?: number; answers: KeptAnswers };

  constructor(options: SupervisorOptions) {
    this.#options = options;
    this.#settings = options.settings;
    const { maxIds, maxAnswerBytes } = options.repeatLimits ?? {};
    this.#repeats = {
      ...(maxIds === undefined ? {} : { limit: maxIds }),
      answers: new KeptAnswers(maxAnswerBytes === undefined ? {} : { maxBytes: maxAnswerBytes }),
    };
    this.#transport = transportChoiceFor(options.settings, {
      sessionId: this.#clientSessionId,
      ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
    });
  }

  /** Process id of the first stdio server, if one is running (the demo prints it). */
  get serverPid(): number | undefined {
    for (const { runner } of this.#running.values()) {
      if (runner.pid !== undefined) return runner.pid;
    }
    return undefined;
  }

  /** The runners, by server key, for tests and status. */
  get servers(): ReadonlyMap<string, ServerRunner> {
    return new Map([...this.#running].map(([key, running]) => [key, running.runner]));
  }

  /** True when enough servers are ready: all, or `--min-ready-servers`. */
  get ready(): boolean {
    const runners = [...this.#running.values()];
    const readyCount = runners.filter(({ runner }) => runner.ready).length;
    const needed = this.#settings.minReadyServers ?? runners.length;
    return runners.length > 0 && readyCount >= Math.min(needed, runners.length);
  }

  /** One line per server: its name and where it stands, for `/readyz`. */
  readiness(): string {
    return [...this.#running.values()].map(({ runner, spec }) =>
      `${serverLabel(spec)}: ${runner.state}`
    ).join("\n");
  }

  /** Kills every server's process group at once (a second signal). */
  kill(): void {
    for (const { runner } of this.#running.values()) runner.kill();
  }

  /**
   * Runs until the signal aborts (resolves), every server was evicted (rejects with
   * {@link EvictedError}), or a condition that reconnecting cannot fix (rejects with
   * `AuthRefusedError`, `RetriesExhaustedError`, or {@link ServerStartError} when no server could
   * start at all). Every server is stopped on every path.
   */
  async run(): Promise<void> {
    const { signal } = this.#options;
    const specs = this.#settings.servers;
    this.#firstStarts.pending = specs.length;
    for (const spec of specs) this.#start(spec, { first: true });
    // Once the servers are on their way: the link's connection and upgrade overlap their start-up, and
    // `register` waits for their names.
    if (specs.length > 0) this.#transport.preopen();
    const onAbort = () => this.#finished({});
    signal.addEventListener("abort", onAbort, { once: true });
    if (signal.aborted) onAbort();
    try {
      const outcome = await this.#finish;
      if (outcome.error !== undefined) throw outcome.error;
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.#abort.abort(new Error("connect is stopping"));
      await this.#reloading.catch(() => {});
      await Promise.all([...this.#running.values()].map(({ done }) => done));
      this.#shared?.close();
      for (const uplink of this.#dedicated.values()) uplink.close();
      this.#transport.close();
      await settleWithin(
        [this.#shared, ...this.#dedicated.values()].flatMap((u) => u ? [u.settled] : []),
        CLOSE_SETTLE_MS,
      );
    }
  }

  /**
   * Applies a new set of servers: added ones start and register, removed ones unregister and stop,
   * changed ones restart; unchanged ones are not touched. Other settings are not reloaded.
   */
  reload(next: ConnectSettings): Promise<ReloadSummary> {
    const run = this.#reloading.then(() => this.#apply(next));
    this.#reloading = run.catch(() => {});
    return run;
  }

  async #apply(next: ConnectSettings): Promise<ReloadSummary> {
    const summary: ReloadSummary = { added: [], removed: [], changed: [], unchanged: [] };
    const wanted = new Map(next.servers.map((spec) => [serverKey(spec), spec]));
    const stopping: Promise<void>[] = [];
    const restart: ServerSpec[] = [];
    for (const [key, running] of this.#running) {
      const spec = wanted.get(key);
      const name = serverLabel(running.spec);
      if (spec === undefined) {
        summary.removed.push(name);
      } else if (fingerprint(spec) !== running.print) {
        summary.changed.push(name);
        restart.push(spec);
      } else {
        summary.unchanged.push(name);
        continue;
      }
      running.runner.stop();
      stopping.push(running.done);
    }
    // A changed server's name must be free at the gateway before its new run registers it.
    await Promise.all(stopping);
    for (const spec of restart) this.#start(spec, { first: false, shared: next.manyServers });
    for (const [key, spec] of wanted) {
      if (this.#running.has(key)) continue;
      summary.added.push(serverLabel(spec));
      this.#start(spec, { first: false, shared: next.manyServers });
    }
    return summary;
  }

  #uplinkFor(key: string): Uplink {
    const running = this.#running.get(key);
    const { settings, random, healthyAfterMs, metrics } = this.#options;
    const make = (askChannels: boolean) =>
      new Uplink({
        settings,
        signal: AbortSignal.any([this.#options.signal, this.#abort.signal]),
        askChannels,
        clientSessionId: this.#clientSessionId,
        transport: this.#transport,
        random,
        healthyAfterMs,
        metrics,
      });
    if (running?.shared === true && !running.split) return this.#shared ??= make(true);
    let uplink = this.#dedicated.get(key);
    if (uplink === undefined) this.#dedicated.set(key, uplink = make(false));
    return uplink;
  }

  #start(spec: ServerSpec, how: { first: boolean; shared?: boolean }): void {
    const key = serverKey(spec);
    const { settings, metrics, random, initTimeoutMs, graceMs, replayLimits, onRegistered } =
      this.#options;
    const runner: ServerRunner = new ServerRunner({
      spec,
      settings,
      signal: AbortSignal.any([this.#options.signal, this.#abort.signal]),
      uplink: () => this.#uplinkFor(key),
      onChannelsRefused: () => {
        const running = this.#running.get(key);
        if (running !== undefined) running.split = true;
      },
      ...(how.first
        ? {
          onFirstStart: (error) => this.#firstStart(error),
          takeSpawned: () => this.#options.early?.take(spec),
        }
        : {}),
      ...(onRegistered === undefined ? {} : { onRegistered }),
      metrics,
      random,
      initTimeoutMs,
      graceMs,
      replayLimits,
      repeats: this.#repeats,
    });
    const running: Running = {
      runner,
      spec,
      print: fingerprint(spec),
      split: false,
      shared: how.shared ?? settings.manyServers,
      done: Promise.resolve(),
    };
    this.#running.set(key, running);
    running.done = runner.run().then(
      (end) => this.#ended(key, running, end),
      (error: unknown) => {
        this.#forget(key, running);
        this.#fail(error);
      },
    );
  }

  #forget(key: string, running: Running): void {
    if (this.#running.get(key) !== running) return;
    this.#running.delete(key);
    const uplink = this.#dedicated.get(key);
    if (uplink !== undefined) {
      this.#dedicated.delete(key);
      uplink.close();
    }
  }

  #ended(key: string, running: Running, end: RunnerEnd): void {
    this.#forget(key, running);
    if (end.kind === "stopped") return;
    this.#ends.push(end);
    if (this.#running.size > 0) return;
    // Nothing left to carry: every server was evicted, taken over, or refused its isolation.
    const refused = this.#ends.find((e) => e.kind === "refused");
    if (refused !== undefined) {
      // A setting this gateway cannot honour: the user's to change (exit 2), as a bad flag would be.
      this.#fail(new ConfigError(refused.reason));
    } else if (this.#ends.every((e) => e.kind === "evicted")) {
      const only = this.#ends.length === 1 ? this.#ends[0]!.reason : "every server was evicted";
      this.#fail(new EvictedError(only));
    } else {
      log.warning("Every server was evicted or taken over by a newer registration; stopping", {
        event: "nothing_left",
      });
      this.#finished({});
    }
  }

  #firstStart(error?: ServerStartError): void {
    const starts = this.#firstStarts;
    starts.pending--;
    if (error !== undefined) starts.failed.push(error);
    // connect cannot carry anything when no server could start at all: as with one server, exit 1.
    if (starts.pending === 0 && starts.failed.length === this.#settings.servers.length) {
      const [only] = starts.failed;
      this.#fail(
        starts.failed.length === 1 ? only : new ServerStartError(
          `No local server could start: ${starts.failed.map((e) => e.message).join("; ")}`,
        ),
      );
    }
  }

  #fail(error: unknown): void {
    if (this.#fatal !== undefined) return;
    this.#fatal = error;
    this.#abort.abort(error);
    this.#finished({ error });
  }
}
