// `mcp-rproxy healthcheck [URL]`: probes a health listener for container HEALTHCHECKs on images
// without curl. Resolves when the URL answers 2xx in time; throws UnhealthyError otherwise.

import { parseFlags, wantsHelp } from "../util/cli_flags.ts";
import type { CommandContext } from "../util/command.ts";
import { invalidSetting } from "../util/errors.ts";
import { checkHealth } from "../util/health_server.ts";

/** The URL probed when none is given: readiness on the port the container examples use. */
export const DEFAULT_HEALTH_URL = "http://127.0.0.1:9090/readyz";
/** Seconds to wait for the answer when `--timeout` is not given. */
const DEFAULT_TIMEOUT_SECONDS = 3;

const HELP = `Usage: mcp-rproxy healthcheck [URL] [--timeout SECONDS]

Requests URL and exits 0 when it answers 2xx in time, else 1: a container HEALTHCHECK for images
without curl. Point it at the --health-listen address of connect or serve: /readyz for readiness,
/healthz for liveness.

  URL                 the URL to probe (default ${DEFAULT_HEALTH_URL})
  --timeout SECONDS   give up after this long (default ${DEFAULT_TIMEOUT_SECONDS})
  -h, --help          show this help and exit
`;

const FLAGS = {
  timeout: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** The probed URL did not answer 2xx in time (exit code 1). */
export class UnhealthyError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UnhealthyError";
  }
}

/**
 * Runs `mcp-rproxy healthcheck` with the arguments after `healthcheck`.
 *
 * @throws {UnhealthyError} The URL answered non-2xx, not in time, or not at all (exit code 1).
 * @throws {ConfigError} A malformed URL or timeout, or an extra argument (exit code 2).
 *
 * @example
 * ```ts ignore
 * await healthcheckCommand(["http://127.0.0.1:9090/healthz"], context);
 * ```
 */
export async function healthcheckCommand(args: string[], context: CommandContext): Promise<void> {
  if (wantsHelp(args)) {
    context.stdout(HELP);
    return;
  }
  const { values, positionals } = parseFlags(args, {
    command: "healthcheck",
    flags: FLAGS,
    positionals: true,
  });
  if (positionals.length > 1) {
    throw invalidSetting({
      setting: "arguments",
      value: positionals.join(" "),
      expected: "at most one URL",
      example: `mcp-rproxy healthcheck ${DEFAULT_HEALTH_URL}`,
    });
  }
  const url = positionals[0] ?? DEFAULT_HEALTH_URL;
  if (!URL.canParse(url) || !["http:", "https:"].includes(new URL(url).protocol)) {
    throw invalidSetting({
      setting: "URL",
      value: url,
      expected: "an http:// or https:// URL",
      example: `mcp-rproxy healthcheck ${DEFAULT_HEALTH_URL}`,
    });
  }
  const seconds = values.timeout === undefined ? DEFAULT_TIMEOUT_SECONDS : Number(values.timeout);
  if (!(seconds > 0 && seconds <= 3600)) {
    throw invalidSetting({
      setting: "--timeout",
      value: values.timeout,
      expected: "a number of seconds greater than 0 and at most 3600",
      example: "--timeout 5",
    });
  }
  const probe = await checkHealth(url, { timeoutMs: seconds * 1000 });
  if (!probe.ok) throw new UnhealthyError(`${url} is not healthy: ${probe.detail}`);
}
