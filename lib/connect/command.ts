// `mcp-rproxy connect`: settings → logging → health listener → tunnel, until the signal aborts or the
// tunnel ends. Outcomes other than a clean end are thrown as typed errors for main.ts to map.

import type { CommandContext } from "../util/command.ts";
import { type HealthServer, startHealthServer } from "../util/health_server.ts";
import { logger } from "../util/log.ts";
import { VERSION } from "../util/version.ts";
import { resolveConnectConfig } from "./config.ts";
import { createConnectMetrics } from "./metrics.ts";
import { Supervisor } from "./supervisor.ts";

/** Options of {@link connectCommand} beyond the shared context. */
export interface ConnectCommandOptions {
  /** Returns a number in [0, 1) for backoff jitter; injected by tests. */
  random?: () => number;
}

/**
 * Runs `mcp-rproxy connect` with the arguments after `connect`. Resolves after a clean shutdown (the
 * signal aborted), or after printing help or the version.
 *
 * @throws {ConfigError} Bad flags, environment, config file or a file it names (exit code 2).
 * @throws {AuthRefusedError} The gateway refused the credentials (exit code 3).
 * @throws {EvictedError} The gateway evicted the session (exit code 4).
 * @throws {RetriesExhaustedError} Reconnect attempts ran out (exit code 1).
 * @throws {ServerStartError} The local server cannot start (exit code 1).
 * @throws {ListenError} The health address cannot be listened on (exit code 1).
 *
 * @example
 * ```ts ignore
 * await connectCommand(["--gateway", "https://gw.example.com", "--", "my-server"], context);
 * ```
 */
export async function connectCommand(
  args: string[],
  context: CommandContext,
  options: ConnectCommandOptions = {},
): Promise<void> {
  const result = await resolveConnectConfig(args, context);
  if (result.kind === "help") {
    context.stdout(result.text);
    return;
  }
  if (result.kind === "version") {
    context.stdout(`${VERSION}\n`);
    return;
  }
  const { settings, warnings } = result;
  await context.setupLogging({ level: settings.logLevel, format: settings.logFormat });
  const log = logger("main");
  for (const warning of warnings) log.warning("{warning}", { event: "config_warning", warning });
  let tunnel: Supervisor | undefined;
  context.onHardStop(() => tunnel?.kill());
  const metrics = createConnectMetrics({ version: VERSION });
  let health: HealthServer | undefined;
  try {
    if (settings.healthListen !== undefined) {
      health = await startHealthServer({
        listen: settings.healthListen,
        ready: () => tunnel?.ready ?? false,
        metrics,
      });
      log.info("Health and metrics on {url}", { event: "health_listening", url: health.url });
    }
    tunnel = new Supervisor({
      settings,
      signal: context.signal,
      metrics,
      ...(options.random === undefined ? {} : { random: options.random }),
    });
    await tunnel.run();
  } finally {
    await health?.close();
  }
}
