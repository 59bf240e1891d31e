// One local server's life in connect: start it (or open its upstream), keep it registered, restart it
// with backoff when it dies, decide from typed outcomes what ends it. Each server runs alone; a per-client
// server starts nothing itself: its instances come with its MCP clients (ClientInstances).

import { backoffDelay } from "../util/backoff.ts";
import { delay } from "../util/delay.ts";
import { logger } from "../util/log.ts";
import { CloseCode, Extension, type Isolation } from "../protocol/frames.ts";
import type { ReplayLimits } from "../protocol/sequenced_channel.ts";
import { AuthRefusedError, EvictedError, ServerStartError } from "./errors.ts";
import { HeldNotifications } from "./held_notifications.ts";
import { DialError, type Registration } from "./link.ts";
import type { ChannelEnd, LinkChannel } from "./link_channel.ts";
import type { ClientInstances } from "./client_instances.ts";
import { perClientInstances } from "./per_client_server.ts";
import type { LocalSession } from "./local_session.ts";
import { logRefused, sharedOnly } from "./isolation_refusal.ts";
import { QueueFullLog } from "./queue_full_log.ts";
import type { LocalTransport } from "./local_transport.ts";
import { startServer, type StartServerOptions } from "./server_start.ts";
import { restartServer } from "./server_restart.ts";
import type { ConnectMetrics, ServerMetrics } from "./metrics.ts";
import { type ConnectSettings, serverKey, serverLabel, type ServerSpec } from "./settings.ts";
import { Tunnel, type TunnelOptions } from "./tunnel.ts";
import { answerOversized } from "./frame_limit.ts";
import { ChannelsRefused, type Uplink, type UplinkMember } from "./uplink.ts";

const log = logger("connect");

/** How a server's run ended. */
export type RunnerEnd =
  /** Stopped: shutdown, or removed by a reload. */
  | { kind: "stopped" }
  /** The gateway removed it on purpose (4001): it does not come back. */
  | { kind: "evicted"; reason: string }
  /** A newer registration of it took over (4002): it does not come back. */
  | { kind: "superseded"; reason: string }
  /** It asked for per-client isolation, which the gateway does not offer: it does not run. */
  | { kind: "refused"; reason: string };

/** Options of {@link ServerRunner}. */
export interface ServerRunnerOptions {
  spec: ServerSpec;
  settings: ConnectSettings;
  /** Shutdown of connect. */
  signal: AbortSignal;
  /** The uplink this server registers on now (it changes when the gateway has no channels). */
  uplink: () => Uplink;
  /** The gateway carries one server per link: this server needs an uplink of its own. */
  onChannelsRefused: () => void;
  /** The first start of the server: succeeded, or failed with this error. */
  onFirstStart?: (error?: ServerStartError) => void;
  onRegistered?: (registration: Registration) => void;
  metrics?: ConnectMetrics | undefined;
  random?: (() => number) | undefined;
  initTimeoutMs?: number | undefined;
  graceMs?: number | undefined;
  replayLimits?: ReplayLimits | undefined;
  repeats?: TunnelOptions["repeats"];
  /** The process the early start spawned for this server, taken by its first start. */
  takeSpawned?: (() => Deno.ChildProcess | undefined) | undefined;
}

type HoldOutcome =
  | { kind: "channel"; end: ChannelEnd }
  | { kind: "server" }
  | { kind: "aborted" };

/** One local server, kept running and registered. */
export class ServerRunner implements UplinkMember {
  readonly key: string;
  readonly spec: ServerSpec;
  readonly tunnel: Tunnel;
  #options: ServerRunnerOptions;
  #label: string;
  #metrics: ServerMetrics | undefined;
  #session: LocalSession | undefined;
  #spawning: LocalTransport | undefined;
  #stop = new AbortController();
  #signal: AbortSignal;
  #state = "starting";
  #registration: Registration | undefined;
  #queueFull: QueueFullLog;
  /** Holds what the current server process says before its first registration. */
  #held: HeldNotifications | undefined;
  /** Notifications lost before a registration (bounds, or a server that died unregistered). */
  #heldLost = 0;
  /** A per-client server's instances, one per MCP client session. */
  #instances: ClientInstances | undefined;

  constructor(options: ServerRunnerOptions) {
    this.#options = options;
    this.spec = options.spec;
    this.key = serverKey(options.spec);
    this.#label = serverLabel(options.spec);
    this.#metrics = options.metrics?.server(options.spec.name ?? "default");
    this.#queueFull = new QueueFullLog(this.#label, this.#metrics);
    this.#signal = AbortSignal.any([options.signal, this.#stop.signal]);
    const { replayLimits, repeats } = options;
    const tunnel = { signal: this.#signal, metrics: options.metrics, server: this.#metrics };
    this.tunnel = new Tunnel({ ...tunnel, replayLimits, repeats });
    if (this.spec.isolation === "per-client") {
      this.tunnel.session = this.#instances = perClientInstances(this.spec, {
        settings: options.settings,
        label: this.#label,
        tunnel: this.tunnel,
        metrics: this.#metrics,
        start: (instance) => this.#start(instance),
      });
    }
  }

  /** Process id of a stdio server, when one runs. */
  get pid(): number | undefined {
    return this.#session?.transport.pid;
  }

  /** The MCP session id of an HTTP upstream. */
  get mcpSessionId(): string | undefined {
    return this.#session?.transport.mcpSessionId;
  }

  /** True when the server runs (per-client: can start instances) and is registered with a link up. */
  get ready(): boolean {
    return this.tunnel.link?.isOpen === true &&
      (this.#instances !== undefined || this.#session?.alive === true);
  }

  /** A few words on where the server stands, for `/readyz`. */
  get state(): string {
    return this.ready ? `ready at ${this.#registration?.mcpUrl ?? "the gateway"}` : this.#state;
  }

  /** What to register: the configured name, else the server's own; per-client isolation if asked. */
  describe(): { name: string; description: string; isolation?: Isolation } {
    const info = this.#session?.serverInfo ?? {};
    const name = (this.spec.name ?? info.name ?? "mcp-server").slice(0, 128) || "mcp-server";
    const description = this.spec.description ??
      `${info.title ?? info.name ?? "MCP server"}${
        info.version ? ` ${info.version}` : ""
      } via mcp-rproxy`;
    return {
      name,
      description: description.slice(0, 1024),
      ...(this.#instances === undefined ? {} : { isolation: "per-client" as const }),
    };
  }

  /** Stops this server alone (a reload removed or changed it); resolves when it is stopped. */
  stop(): void {
    this.#stop.abort(new Error("server removed"));
  }

  /** Kills the server at once (a second signal). */
  kill(): void {
    (this.#session?.transport ?? this.#spawning)?.kill();
    this.#instances?.killAll();
  }

  /**
   * Runs until stopped (resolves `stopped`), evicted or superseded (resolves so), or a condition that
   * ends connect (rejects with {@link AuthRefusedError} or `RetriesExhaustedError`). The server is
   * stopped on every path.
   */
  async run(): Promise<RunnerEnd> {
    const signal = this.#signal;
    const perClient = this.#instances !== undefined;
    try {
      try {
        // A per-client server's instances start with their clients.
        if (!perClient) this.#setSession(await this.#start());
        this.#options.onFirstStart?.();
      } catch (error) {
        if (signal.aborted) return { kind: "stopped" };
        if (!(error instanceof ServerStartError)) throw error;
        this.#metrics?.error("server_start");
        log.error("{error}", {
          event: "server_start_failed",
          server: this.#label,
          error: error.message,
        });
        this.#state = `not started (${error.message})`;
        this.#options.onFirstStart?.(error);
      }
      let refusals = 0;
      while (!signal.aborted) {
        if (!perClient && this.#session?.alive !== true) await this.#restart();
        if (!perClient && this.#session?.alive !== true) continue;
        const session = this.#session;
        let channel: LinkChannel;
        try {
          this.#state = "registering";
          channel = await this.#options.uplink().attach(this, signal);
        } catch (error) {
          if (signal.aborted) break;
          if (error instanceof ChannelsRefused) {
            this.#options.onChannelsRefused();
            continue;
          }
          if (error instanceof EvictedError) return this.#final("evicted", error.message);
          if (!(error instanceof DialError)) throw error;
          if (error.kind === "shared-only") return this.#refused(error.message);
          // This server's own registration on a shared link failed: it waits alone.
          refusals++;
          this.#metrics?.error(
            error.kind === "too-many-sessions" ? "too_many_sessions" : "registration",
          );
          log.warning("{error}", {
            event: "register_failed",
            server: this.#label,
            error: error.message,
          });
          await delay(this.#backoff(refusals), signal).catch(() => {});
          continue;
        }
        if (perClient && !channel.hasExtension(Extension.ClientSessions)) {
          return this.#refused(sharedOnly(channel.contract));
        }
        this.#registered(channel);
        const outcome = await this.#hold(channel, session, signal);
        this.#metrics?.up.set(0);
        if (outcome.kind === "aborted") break;
        if (outcome.kind === "server") {
          // The server died under a live registration: restart it and register afresh right away.
          this.#options.uplink().release(this, "local server restarting");
          this.tunnel.linkDropped(true);
          refusals = 0;
          continue;
        }
        const ended = this.#channelEnded(outcome.end);
        if (ended !== undefined) return ended;
        if (outcome.end.kind === "channel-closed") {
          refusals++;
          await delay(this.#backoff(refusals), signal).catch(() => {});
        } else refusals = 0;
      }
      return { kind: "stopped" };
    } finally {
      await this.#shutdown();
    }
  }

  /** What the end of its place on the link means: undefined to register again, else the final end. */
  #channelEnded(end: ChannelEnd): RunnerEnd | undefined {
    if (end.kind === "closed" || end.kind === "channel-closed") {
      const { code, reason } = end;
      const detail = reason ? `: ${reason}` : "";
      if (code === CloseCode.Evicted) {
        return this.#final("evicted", `The gateway evicted this session${detail}`);
      }
      if (code === CloseCode.Superseded) {
        return this.#final("superseded", `A newer registration of this server took over${detail}`);
      }
      if (code === CloseCode.Policy) {
        throw new AuthRefusedError(
          `The gateway closed the link for a policy violation (1008${detail})`,
        );
      }
    }
    if (end.kind === "channel-closed") {
      log.warning(
        "The gateway ended the session of {server} (code {code}{detail}); registering again",
        {
          event: "server_session_closed",
          server: this.#label,
          code: end.code,
          detail: end.reason ? `: ${end.reason}` : "",
        },
      );
    }
    // A session the gateway ended is gone; a lost link may still be resumed.
    this.tunnel.linkDropped(end.kind === "channel-closed");
    this.#state = "reconnecting to the gateway";
    return undefined;
  }

  /** Per-client isolation is not offered by the gateway: this server does not run (others go on). */
  #refused(reason: string): RunnerEnd {
    this.#state = "refused: per-client isolation needs mcp-rproxy serve";
    logRefused(this.#label, reason);
    return { kind: "refused", reason };
  }

  #final(kind: "evicted" | "superseded", reason: string): RunnerEnd {
    this.tunnel.linkDropped(true);
    this.#state = kind;
    log.error("{reason}; stopping {server} (the other servers go on)", {
      event: kind,
      server: this.#label,
      reason,
    });
    return { kind, reason };
  }

  #registered(channel: LinkChannel): void {
    const registration = channel.registration;
    this.#registration = registration;
    this.#metrics?.up.set(1);
    this.#state = "registered";
    log.info("Registered with the gateway (contract {contract}, {transport}) as {name}{at}", {
      event: "registered",
      server: this.#label,
      session: registration.sessionId,
      contract: registration.contract,
      transport: channel.link.transport,
      name: registration.name ?? this.describe().name,
      at: registration.mcpUrl ? `: ${registration.mcpUrl}` : "",
      ...(registration.mcpUrl ? { mcpUrl: registration.mcpUrl } : {}),
      ...(channel.channel === undefined ? {} : { channel: channel.channel }),
    });
    this.#options.onRegistered?.(registration);
    const undeliverable = this.tunnel.takeUndeliverable() + this.#heldLost +
      (this.#held?.registered() ?? 0);
    this.#heldLost = 0;
    if (undeliverable > 0) {
      log.info(
        "{count} message(s) from {server} could not be delivered while the link was down",
        { event: "undelivered", server: this.#label, count: undeliverable },
      );
    }
  }

  /** Waits until its place on the link ends, the server dies, or it is stopped. */
  async #hold(
    channel: LinkChannel,
    session: LocalSession | undefined,
    signal: AbortSignal,
  ): Promise<HoldOutcome> {
    let onAbort: (() => void) | undefined;
    let holding = true;
    const aborted = new Promise<HoldOutcome>((resolve) => {
      onAbort = () => resolve({ kind: "aborted" });
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    });
    try {
      return await Promise.race<HoldOutcome>([
        channel.ended.then((end) => ({ kind: "channel", end })),
        // A per-client server has no one process whose end matters here.
        (session?.transport.ended ?? new Promise<string>(() => {})).then((why) => {
          if (holding) {
            this.#metrics?.error("server_exit");
            log.error(
              "Local server {server} {went} ({exit}); answering its calls in flight with errors",
              {
                event: "server_exited",
                server: this.#label,
                went: session!.transport.kind === "stdio" ? "exited unexpectedly" : "went away",
                exit: why,
              },
            );
            this.#state = `restarting (${why})`;
            this.tunnel.serverDied();
          }
          return { kind: "server" };
        }),
        aborted,
      ]);
    } finally {
      holding = false;
      if (onAbort) signal.removeEventListener("abort", onAbort);
    }
  }

  #backoff(attempt: number): number {
    return backoffDelay(attempt, {
      baseMs: this.#options.settings.reconnectDelay * 1000,
      ...(this.#options.random ? { random: this.#options.random } : {}),
    });
  }

  #setSession(session: LocalSession): void {
    this.#session = session;
    this.#spawning = undefined;
    this.tunnel.session = session;
  }

  #start(
    instance?: Pick<StartServerOptions, "instance" | "onMessage" | "onOversized">,
  ): Promise<LocalSession> {
    const { settings, initTimeoutMs, graceMs, replayLimits } = this.#options;
    // A shared server's first words wait for its registration; an instance's go to its client's session.
    let held: HeldNotifications | undefined;
    if (instance === undefined) {
      this.#heldLost += this.#held?.discard() ?? 0;
      held = this.#held = new HeldNotifications({
        forward: (message) => this.tunnel.fromServer(message),
        deliverable: () => this.tunnel.deliverable,
        superseded: this.#metrics?.notificationsSuperseded,
        label: this.#label,
        ...(replayLimits === undefined ? {} : { replayLimits }),
      });
    }
    return startServer(this.spec, {
      settings,
      signal: this.#signal,
      label: this.#label,
      onQueueFull: (refused) => this.#queueFull.refused(refused),
      onSpawn: (spawned) => {
        if (instance === undefined) this.#spawning = spawned;
      },
      onMessage: (message) => held!.fromServer(message),
      onOversized: (id) => answerOversized(this.tunnel, { settings, id, metrics: this.#metrics }),
      spawned: instance === undefined ? this.#options.takeSpawned?.() : undefined,
      ...instance,
      ...(initTimeoutMs === undefined ? {} : { initTimeoutMs }),
      ...(graceMs === undefined ? {} : { graceMs }),
    });
  }

  /** Starts the server again (reconnects to an upstream), with backoff, until it is up or stopped. */
  async #restart(): Promise<void> {
    const session = await restartServer({
      label: this.#label,
      stdio: this.spec.transport.kind === "stdio",
      backoff: (attempt) => this.#backoff(attempt),
      start: () => this.#start(),
      onFailed: (error) => this.#state = `restarting (${error.message})`,
      signal: this.#signal,
      metrics: this.#metrics,
    });
    if (session !== undefined) this.#setSession(session);
  }

  async #shutdown(): Promise<void> {
    const session = this.#session;
    const link = this.tunnel.link;
    this.#metrics?.up.set(0);
    if (this.tunnel.unregister()) {
      log.info("Unregistered {server} from the gateway", {
        event: "unregistered",
        server: this.#label,
        session: link!.sessionId,
      });
    }
    this.#options.uplink().release(this, "shutting down");
    if (!/^(evicted|superseded|refused)/.test(this.#state)) this.#state = "stopped";
    await this.#instances?.stopAll();
    if (session) {
      await session.stop();
      log.info("Local server {server} stopped ({exit})", {
        event: "server_stopped",
        server: this.#label,
        exit: await session.transport.ended,
      });
    } else await this.#spawning?.stop();
  }
}
