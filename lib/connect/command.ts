// `mcp-rproxy connect`: settings → the servers' processes (the early start) → the rest of connect
// (connect_run.ts), loaded only then. Outcomes other than a clean end are thrown as typed errors for
// main.ts to map.

import type { CommandContext } from "../util/command.ts";
import { VERSION } from "../util/version.ts";
import { resolveConnectConfig } from "./config.ts";
import type { ConnectCommandOptions } from "./connect_run.ts";
import { EarlyServers } from "./early_servers.ts";

export type { ConnectCommandOptions } from "./connect_run.ts";

/**
 * Runs `mcp-rproxy connect` with the arguments after `connect`. Resolves after a clean shutdown (the
 * signal aborted), or after printing help or the version.
 *
 * @throws {ConfigError} Bad flags, environment, config file or a file it names (exit code 2).
 * @throws {AuthRefusedError} The gateway refused the credentials (exit code 3).
 * @throws {EvictedError} The gateway evicted every server (exit code 4).
 * @throws {RetriesExhaustedError} Reconnect attempts ran out (exit code 1).
 * @throws {ServerStartError} No local server could start (exit code 1).
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
  // The servers start first: their own start-up overlaps the loading of the rest of connect (logging,
  // the link, the tunnel), which launch → registered waits for otherwise (docs/performance.md).
  const early = EarlyServers.spawn(settings.servers);
  context.onHardStop(() => early.kill());
  try {
    const { runConnect } = await import("./connect_run.ts");
    await runConnect({ args, settings, warnings, early }, context, options);
  } finally {
    await early.killUntaken();
  }
}
