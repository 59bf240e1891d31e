// `connect` once its settings are read and its servers spawned: logging → health listener → supervisor,
// until the signal aborts or the supervisor ends; a reload request (SIGHUP, wired in main.ts) re-reads the
// config file and applies its servers. command.ts loads this module after the early start.

import type { CommandContext } from "../util/command.ts";
import { ConfigError } from "../util/errors.ts";
import { type HealthServer, startHealthServer } from "../util/health_server.ts";
import { logger } from "../util/log.ts";
import { VERSION } from "../util/version.ts";
import { resolveConnectConfig } from "./config.ts";
import type { EarlyServers } from "./early_servers.ts";
import { createConnectMetrics } from "./metrics.ts";
import { CONNECT_DEFAULTS, type ConnectSettings } from "./settings.ts";
import { Supervisor } from "./supervisor.ts";

/** Options of `connectCommand` beyond the shared context. */
export interface ConnectCommandOptions {
  /** Returns a number in [0, 1) for backoff jitter; injected by tests. */
  random?: () => number;
}

/** Settings a reload does not apply: they take effect at the next start of connect. */
const NOT_RELOADED: readonly (keyof ConnectSettings)[] = [
  "gateway",
  "token",
  "caCert",
  "reconnectDelay",
  "maxRetries",
  "keepalive",
  "logLevel",
  "logFormat",
  "healthListen",
  "minReadyServers",
  "maxServerQueueBytes",
  "maxServerQueueMessages",
  "shutdownGrace",
  "initTimeout",
  "maxReplayBytes",
  "maxReplayFrames",
  "maxMessageBytes",
  "maxRepeatIds",
  "maxRepeatAnswerBytes",
  "transport",
  "websocketRetry",
];

/** What {@link runConnect} runs: the resolved settings, and the processes of the early start. */
export interface ConnectRun {
  args: string[];
  settings: ConnectSettings;
  warnings: string[];
  early: EarlyServers;
}

/**
 * Runs connect with resolved settings until a clean shutdown; throws as `connectCommand` documents.
 */
export async function runConnect(
  run: ConnectRun,
  context: CommandContext,
  options: ConnectCommandOptions = {},
): Promise<void> {
  const { args, settings, warnings, early } = run;
  await context.setupLogging({ level: settings.logLevel, format: settings.logFormat });
  const log = logger("main");
  for (const warning of warnings) log.warning("{warning}", { event: "config_warning", warning });
  let supervisor: Supervisor | undefined;
  context.onHardStop(() => {
    early.kill();
    supervisor?.kill();
  });
  const metrics = createConnectMetrics({ version: VERSION });
  let health: HealthServer | undefined;
  let unsubscribe = () => {};
  try {
    if (settings.healthListen !== undefined) {
      health = await startHealthServer({
        listen: settings.healthListen,
        ready: () => supervisor?.ready ?? false,
        readyDetail: () => supervisor?.readiness() ?? "",
        metrics,
      });
      log.info("Health and metrics on {url}", { event: "health_listening", url: health.url });
    }
    supervisor = new Supervisor({
      settings,
      signal: context.signal,
      metrics,
      early,
      replayLimits: {
        maxBytes: settings.maxReplayBytes ?? CONNECT_DEFAULTS.maxReplayBytes,
        maxFrames: settings.maxReplayFrames ?? CONNECT_DEFAULTS.maxReplayFrames,
      },
      repeatLimits: {
        maxIds: settings.maxRepeatIds ?? CONNECT_DEFAULTS.maxRepeatIds,
        maxAnswerBytes: settings.maxRepeatAnswerBytes ?? CONNECT_DEFAULTS.maxRepeatAnswerBytes,
      },
      ...(options.random === undefined ? {} : { random: options.random }),
    });
    const running = supervisor;
    // One reload at a time, each reading the file when its turn comes: one that reads slowly is never
    // applied after a later one. SIGHUPs while one waits make no more: it reads the file as it is then.
    let reloads = Promise.resolve();
    let waiting = false;
    if (context.subscribeReload !== undefined) {
      unsubscribe = context.subscribeReload(() => {
        if (waiting) return;
        waiting = true;
        reloads = reloads.then(() => {
          waiting = false;
          return reload(args, context, { running, settings });
        }).catch((error: unknown) =>
          log.error("Reload failed: {error}", { event: "reload_failed", error: String(error) })
        );
      });
    }
    await supervisor.run();
  } finally {
    unsubscribe();
    await health?.close();
  }
}

/** Re-reads the configuration and applies its servers; a bad one is refused and changes nothing. */
async function reload(
  args: string[],
  context: CommandContext,
  current: { running: Supervisor; settings: ConnectSettings },
): Promise<void> {
  const log = logger("main");
  const file = configPathOf(args);
  if (file === undefined) {
    log.info("Nothing to reload: connect was started without --config", {
      event: "reload_skipped",
    });
    return;
  }
  let next: ConnectSettings;
  try {
    const result = await resolveConnectConfig(args, context);
    if (result.kind !== "run") return;
    next = result.settings;
    for (const warning of result.warnings) {
      log.warning("{warning}", { event: "config_warning", warning });
    }
  } catch (error: unknown) {
    if (!(error instanceof ConfigError)) throw error;
    log.error(
      "Kept the running servers: the configuration in {file} is not valid: {error}; fix it and send SIGHUP again",
      { event: "reload_refused", file, error: error.message },
    );
    return;
  }
  const ignored = NOT_RELOADED.filter((key) =>
    JSON.stringify(next[key] ?? null) !== JSON.stringify(current.settings[key] ?? null)
  );
  if (ignored.length > 0) {
    log.warning(
      "Reloaded only the servers of {file}; {settings} changed too and take effect when connect restarts",
      { event: "reload_partial", file, settings: ignored.join(", ") },
    );
  }
  const summary = await current.running.reload(next);
  log.info(
    "Reloaded {file}: {added} added, {removed} removed, {changed} changed (restarted), {unchanged} untouched",
    {
      event: "reloaded",
      file,
      added: summary.added.length,
      removed: summary.removed.length,
      changed: summary.changed.length,
      unchanged: summary.unchanged.length,
      names: summary,
    },
  );
}

/** The `--config` path among the arguments, if any. */
function configPathOf(args: string[]): string | undefined {
  for (const [i, arg] of args.entries()) {
    if (arg === "--") return undefined;
    if (arg === "--config") return args[i + 1];
    if (arg.startsWith("--config=")) return arg.slice("--config=".length);
  }
  return undefined;
}
