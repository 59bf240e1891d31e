// `connect`'s run loop: keeps the local server running and one registered link to the gateway, dialing
// again with backoff, restarting the server if it dies, and deciding from typed outcomes what is fatal.

import { backoffDelay } from "../util/backoff.ts";
import { delay } from "../util/delay.ts";
import { logger } from "../util/log.ts";
import { LogThrottle } from "../util/log_throttle.ts";
import { CloseCode } from "../protocol/frames.ts";
import type { ReplayLimits } from "../protocol/sequenced_channel.ts";
import {
  AuthRefusedError,
  EvictedError,
  RetriesExhaustedError,
  ServerStartError,
} from "./errors.ts";
import { Link } from "./link.ts";
import { DialError, type LinkEnd, type Registration } from "./link_outcome.ts";
import { describeExit, LocalSession, type RefusedMessage } from "./local_session.ts";
import type { ConnectMetrics } from "./metrics.ts";
import { CONNECT_DEFAULTS, type ConnectSettings } from "./settings.ts";
import type { StdioServer } from "./stdio_server.ts";
import { Tunnel } from "./tunnel.ts";

const log = logger("connect");
const serverLog = logger("server", "stderr");

/** Options of {@link Supervisor}. */
export interface SupervisorOptions {
  settings: ConnectSettings;
  /** Aborting it starts a clean shutdown: unregister, close 1000, stop the server. */
  signal: AbortSignal;
  /** Returns a number in [0, 1) for backoff jitter; injected by tests. */
  random?: () => number;
  /** A link that stayed up this long resets the reconnect counter, in milliseconds. */
  healthyAfterMs?: number;
  /** Deadline for the server's `initialize` reply, in milliseconds. */
  initTimeoutMs?: number;
  /** How long stopping the server may take before SIGKILL of its group, in milliseconds; overrides
   * `settings.shutdownGrace`. */
  graceMs?: number;
  /** Updated on every state change and message; optional so that tests and the demo can leave it out. */
  metrics?: ConnectMetrics;
  /** Bounds of the replay buffer kept for resumption (docs/resume.md). */
  replayLimits?: ReplayLimits;
  /** Called after every successful registration. */
  onRegistered?: (registration: Registration) => void;
}

/** How holding a registered link ended. */
type HoldOutcome = LinkEnd | { kind: "server" } | { kind: "aborted" };

/** Runs the local server and its link until shutdown or a fatal condition. */
export class Supervisor {
  #options: SupervisorOptions;
  #settings: ConnectSettings;
  #tunnel: Tunnel;
  #session: LocalSession | undefined;
  /** The server being started, before its session exists: a second signal must reach it too. */
  #spawning: StdioServer | undefined;
  #clientSessionId = crypto.randomUUID().replaceAll("-", "");
  /** A server that stopped reading makes every message a refusal: one warning a second says so. */
  #queueFullLog = new LogThrottle({ intervalMs: 1000 });

  constructor(options: SupervisorOptions) {
    this.#options = options;
    this.#settings = options.settings;
    this.#tunnel = new Tunnel({
      signal: options.signal,
      ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
      ...(options.replayLimits === undefined ? {} : { replayLimits: options.replayLimits }),
    });
  }

  /** Process id of the local server, if one is running. */
  get serverPid(): number | undefined {
    return this.#session?.server.pid;
  }

  /** True when registered with a link up and the server alive. */
  get ready(): boolean {
    return this.#tunnel.link?.isOpen === true && this.#session?.alive === true;
  }

  /** Kills the server's process group at once (a second signal). */
  kill(): void {
    (this.#session?.server ?? this.#spawning)?.kill();
  }

  /**
   * Runs until the signal aborts (resolves) or a condition that reconnecting cannot fix (rejects with
   * {@link AuthRefusedError}, {@link EvictedError}, {@link RetriesExhaustedError} or
   * {@link ServerStartError}). The local server is stopped on every path.
   */
  async run(): Promise<void> {
    const { settings, signal, metrics } = this.#options;
    const healthyAfterMs = this.#options.healthyAfterMs ?? 30_000;
    try {
      this.#setSession(await this.#startServer());
    } catch (error) {
      if (signal.aborted) return; // shut down during start-up: the server was stopped
      throw error;
    }
    let attempt = 0;
    let lastError = "";
    try {
      while (!signal.aborted) {
        if (!this.#session!.alive) {
          await this.#restartServer();
          if (signal.aborted) break;
        }
        const session = this.#session!;
        const dialStart = performance.now();
        const link = await this.#dial(session).catch((error: unknown) => {
          if (signal.aborted) return undefined; // shutdown during the dial: not an error
          if (!(error instanceof DialError)) throw error;
          if (error.kind === "auth") throw new AuthRefusedError(error.message, { cause: error });
          if (error.kind === "evicted") throw new EvictedError(error.message, { cause: error });
          lastError = error.message;
          metrics?.errors.inc(dialErrorKind(error));
          // The message is a whole sentence naming the cause and the fix (lib/connect/dial_failure.ts).
          log.warning("{error}", {
            event: "connect_failed",
            kind: error.kind,
            error: lastError,
          });
          return undefined;
        });
        if (link) {
          const registration = link.registration;
          metrics?.linkConnects.inc();
          metrics?.registrationDuration.observe((performance.now() - dialStart) / 1000);
          metrics?.linkUp.set(1);
          log.info("Registered with the gateway (contract {contract}) as {name}", {
            event: "registered",
            session: registration.sessionId,
            contract: registration.contract,
            name: registration.name ?? this.#serverName(session),
            ...(registration.mcpUrl ? { mcpUrl: registration.mcpUrl } : {}),
          });
          this.#options.onRegistered?.(registration);
          // A resumed session proves the gateway is up and has our calls waiting: the next drop should
          // be retried quickly again, not after a backoff grown by earlier drops.
          if (registration.resumed === true) attempt = 0;
          const undeliverable = this.#tunnel.takeUndeliverable();
          if (undeliverable > 0) {
            log.info(
              "{count} message(s) from the server could not be delivered while the link was down",
              { event: "undelivered", count: undeliverable },
            );
          }
          const outcome = await this.#hold(link, session);
          metrics?.linkUp.set(0);
          if (outcome.kind === "aborted") break;
          this.#tunnel.linkDropped(
            link,
            outcome.kind === "server",
            outcome.kind === "server" ? "local server restarting" : "",
          );
          if (outcome.kind === "server") {
            // The server died under a live link: restart it and register afresh right away.
            attempt = 0;
            continue;
          }
          lastError = this.#linkLost(outcome);
          if (performance.now() - dialStart >= healthyAfterMs) attempt = 0;
        }
        attempt++;
        const { maxRetries } = settings;
        if (maxRetries > 0 && attempt > maxRetries) {
          throw new RetriesExhaustedError(
            `Giving up after ${maxRetries} reconnect attempt${
              maxRetries === 1 ? "" : "s"
            }; last error: ${lastError}`,
          );
        }
        const waitMs = this.#backoff(attempt);
        log.info("Reconnecting in {seconds} s (attempt {attempt}{of})", {
          event: "reconnect_scheduled",
          seconds: (waitMs / 1000).toFixed(2),
          attempt,
          of: maxRetries > 0 ? ` of ${maxRetries}` : "",
        });
        await delay(waitMs, signal).catch(() => {});
        if (!signal.aborted) metrics?.linkReconnects.inc();
      }
    } finally {
      await this.#shutdown();
    }
  }

  /** Classifies a lost link: throws for the fatal ends, else counts and logs it and returns the reason. */
  #linkLost(outcome: LinkEnd): string {
    if (outcome.kind === "closed" && outcome.code === CloseCode.Evicted) {
      throw new EvictedError(
        `The gateway evicted this session${outcome.reason ? `: ${outcome.reason}` : ""}`,
      );
    }
    if (outcome.kind === "closed" && outcome.code === CloseCode.Policy) {
      throw new AuthRefusedError(
        `The gateway closed the link for a policy violation (1008${
          outcome.reason ? `: ${outcome.reason}` : ""
        })`,
      );
    }
    const reason = outcome.kind === "heartbeat"
      ? "no heartbeat reply in time"
      : `closed with code ${outcome.code}${outcome.reason ? ` (${outcome.reason})` : ""}`;
    this.#options.metrics?.errors.inc(
      outcome.kind === "heartbeat" ? "heartbeat_timeout" : "link_lost",
    );
    log.warning("Lost the link to the gateway: {error}", { event: "link_lost", error: reason });
    return reason;
  }

  #backoff(attempt: number): number {
    return backoffDelay(attempt, {
      baseMs: this.#settings.reconnectDelay * 1000,
      ...(this.#options.random ? { random: this.#options.random } : {}),
    });
  }

  #setSession(session: LocalSession): void {
    this.#session = session;
    this.#tunnel.session = session;
  }

  async #startServer(): Promise<LocalSession> {
    const { settings, initTimeoutMs, graceMs } = this.#options;
    log.info("Starting local server: {command}", {
      event: "server_starting",
      command: settings.commandText,
    });
    const session = await LocalSession.start({
      command: settings.command,
      signal: this.#options.signal,
      queueLimits: {
        maxBytes: settings.maxServerQueueBytes ?? CONNECT_DEFAULTS.maxServerQueueBytes,
        maxMessages: settings.maxServerQueueMessages ?? CONNECT_DEFAULTS.maxServerQueueMessages,
      },
      onQueueFull: (refused) => this.#queueFull(refused),
      onSpawn: (server) => this.#spawning = server,
      // In JSON mode every stderr line must be JSON: the server's lines become records of their own.
      ...(settings.logFormat === "json"
        ? {
          onStderr: (line: string) =>
            serverLog.info("{line}", { event: "server_stderr", line: line.slice(0, 4096) }),
        }
        : {}),
      ...(initTimeoutMs === undefined ? {} : { initTimeoutMs }),
      graceMs: graceMs ?? (settings.shutdownGrace ?? CONNECT_DEFAULTS.shutdownGrace) * 1000,
      onMessage: (message) => this.#tunnel.fromServer(message),
      onOversized: (_line, id) => this.#tunnel.oversizedAnswer(id),
    });
    const info = session.serverInfo;
    log.info("Local server {name} {version} is up (pid {pid})", {
      event: "server_started",
      name: info.name ?? "?",
      version: info.version ?? "?",
      pid: session.server.pid,
    });
    return session;
  }

  /** Counts a message the server's input queue had no room for, and says so (at most once a second). */
  #queueFull(refused: RefusedMessage): void {
    this.#options.metrics?.errors.inc("server_queue_full");
    const held = this.#queueFullLog.take();
    if (held === undefined) return;
    log.warning("Refused a {kind}{method} for the local server: {reason}{more}", {
      event: "server_queue_full",
      kind: refused.kind,
      method: refused.method === undefined ? "" : ` (${refused.method})`,
      reason: refused.reason,
      more: held > 0 ? ` (and ${held} more since the last such line)` : "",
      queuedBytes: refused.full.bytes,
      queuedMessages: refused.full.messages,
    });
  }

  async #restartServer(): Promise<void> {
    const { signal, metrics } = this.#options;
    for (let attempt = 1; !signal.aborted; attempt++) {
      const waitMs = this.#backoff(attempt);
      log.info("Restarting the local server in {seconds} s", {
        event: "server_restart_scheduled",
        seconds: (waitMs / 1000).toFixed(2),
      });
      await delay(waitMs, signal).catch(() => {});
      if (signal.aborted) return;
      try {
        this.#setSession(await this.#startServer());
        metrics?.serverRestarts.inc();
        return;
      } catch (error) {
        if (signal.aborted) return;
        if (!(error instanceof ServerStartError)) throw error;
        metrics?.errors.inc("server_start");
        log.error("{error}", { event: "server_start_failed", error: error.message });
      }
    }
  }

  #serverName(session: LocalSession): string {
    const name = this.#settings.serverName ?? session.serverInfo.name ?? "mcp-server";
    return name.slice(0, 128) || "mcp-server";
  }

  #serverDescription(session: LocalSession): string {
    const info = session.serverInfo;
    const description = this.#settings.serverDescription ??
      `${info.title ?? info.name ?? "MCP server"}${
        info.version ? ` ${info.version}` : ""
      } via mcp-rproxy`;
    return description.slice(0, 1024);
  }

  async #dial(session: LocalSession): Promise<Link> {
    const { settings, signal, metrics } = this.#options;
    const tunnel = this.#tunnel;
    const resume = tunnel.prepareDial();
    log.info("Connecting to {url}", { event: "connecting", url: settings.gatewayUrl.href });
    return await Link.open({
      url: settings.gatewayUrl,
      ...(settings.token === undefined ? {} : { token: settings.token }),
      ...(settings.caCert === undefined ? {} : { caCert: settings.caCert }),
      ...(settings.caCertPath === undefined ? {} : { caCertPath: settings.caCertPath }),
      clientSessionId: this.#clientSessionId,
      server: { name: this.#serverName(session), description: this.#serverDescription(session) },
      keepaliveMs: settings.keepalive * 1000,
      signal,
      onFrame: (frame, link) => tunnel.onFrame(frame, link),
      onRegistered: (link) => tunnel.registered(link, resume),
      onAck: (ack) => tunnel.peerAcked(ack),
      heartbeatAck: () => tunnel.heartbeatAck(),
      ...(resume === undefined ? {} : { resume }),
      ...(metrics
        ? {
          onHeartbeatRtt: (ms: number) => metrics.heartbeatRtt.observe(ms / 1000),
          onFrameIn: (bytes: number) => {
            metrics.framesIn.inc();
            metrics.bytesIn.inc(bytes);
          },
        }
        : {}),
    }).catch((error) => {
      tunnel.dialFailed();
      throw error;
    });
  }

  /** Waits until the link ends, the server exits, or shutdown is requested. */
  async #hold(link: Link, session: LocalSession): Promise<HoldOutcome> {
    const { signal } = this.#options;
    let onAbort: (() => void) | undefined;
    let holding = true;
    const aborted = new Promise<HoldOutcome>((resolve) => {
      onAbort = () => resolve({ kind: "aborted" });
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    });
    try {
      return await Promise.race<HoldOutcome>([
        link.ended,
        session.server.exited.then((exit) => {
          if (holding) {
            this.#options.metrics?.errors.inc("server_exit");
            log.error(
              "Local server exited unexpectedly ({exit}); answering its calls in flight with errors",
              { event: "server_exited", exit: describeExit(exit) },
            );
            this.#tunnel.serverDied();
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

  async #shutdown(): Promise<void> {
    const session = this.#session;
    const link = this.#tunnel.link;
    if (this.#tunnel.unregister()) {
      this.#options.metrics?.linkUp.set(0);
      log.info("Unregistered and closed the link", {
        event: "unregistered",
        session: link!.sessionId,
      });
    }
    if (session) {
      const exit = await session.stop();
      log.info("Local server stopped ({exit})", {
        event: "server_stopped",
        exit: describeExit(exit),
      });
    }
  }
}

/** The error kind a failed dial counts as. */
function dialErrorKind(error: DialError): "dial" | "registration" | "too_many_sessions" {
  switch (error.kind) {
    case "register-timeout":
    case "registration-failed":
      return "registration";
    case "too-many-sessions":
      return "too_many_sessions";
    default:
      return "dial";
  }
}
