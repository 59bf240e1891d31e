// The command line of `connect`: its flags, the flag layer of its settings, and the server command
// after `--`.

import { parseFlags } from "../util/cli_flags.ts";
import { ConfigError, invalidSetting } from "../util/errors.ts";
import { KEYS, type Layer } from "./config_layers.ts";

/** The flags of `connect`, for parseArgs. */
export const CONNECT_FLAGS = {
  server: { type: "string", multiple: true },
  "local-stdio": { type: "string" },
  "local-streamable-http": { type: "string" },
  "local-sse": { type: "string" },
  gateway: { type: "string" },
  token: { type: "string" },
  "token-file": { type: "string" },
  "server-name": { type: "string" },
  "server-description": { type: "string" },
  isolation: { type: "string" },
  "max-instances": { type: "string" },
  "instance-idle-timeout": { type: "string" },
  "reconnect-delay": { type: "string" },
  "max-retries": { type: "string" },
  keepalive: { type: "string" },
  config: { type: "string" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  verbose: { type: "boolean" },
  cert: { type: "string" },
  "health-listen": { type: "string" },
  "min-ready-servers": { type: "string" },
  "max-server-queue-bytes": { type: "string" },
  "max-server-queue-messages": { type: "string" },
  "shutdown-grace": { type: "string" },
  "init-timeout": { type: "string" },
  "max-replay-bytes": { type: "string" },
  "max-replay-frames": { type: "string" },
  "max-message-bytes": { type: "string" },
  "max-repeat-ids": { type: "string" },
  "max-repeat-answer-bytes": { type: "string" },
  transport: { type: "string" },
  "websocket-retry": { type: "string" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
} as const;

/** What the command line of `connect` says. */
export interface ParsedFlags {
  help: boolean;
  version: boolean;
  /** The settings given as flags. */
  layer: Layer;
  /** `--config FILE`. */
  configPath?: string;
  /** Words after `--`, or undefined when there was no `--`. */
  commandArgs?: string[];
}

/**
 * Parses the arguments of `connect` (those after the command name).
 *
 * @throws {ConfigError} For an unknown flag, a missing value, or a word before `--` that is no flag.
 *
 * @example
 * ```ts
 * import { parseConnectFlags } from "./flags.ts";
 * const parsed = parseConnectFlags(["--max-retries", "3", "--", "my-server", "--port", "1"]);
 * parsed.layer.get("max_retries")?.value; // "3"
 * parsed.commandArgs; // ["my-server", "--port", "1"]
 * ```
 */
export function parseConnectFlags(args: string[]): ParsedFlags {
  const { values, tokens } = parseFlags(args, {
    command: "connect",
    flags: CONNECT_FLAGS,
    positionals: true,
  });
  const terminator = tokens.findIndex((token) => token.kind === "option-terminator");
  for (const [i, token] of tokens.entries()) {
    if (token.kind === "positional" && (terminator === -1 || i < terminator)) {
      throw new ConfigError(
        `Unexpected argument '${token.value}': put the server command after -- (connect --gateway URL -- CMD ARGS) or pass it quoted as --local-stdio "CMD ARGS"`,
      );
    }
  }
  const layer: Layer = new Map();
  for (const key of KEYS) {
    // `--server` is repeatable: each one a server of the `servers` list.
    const flag = key === "servers" ? "--server" : `--${key.replaceAll("_", "-")}`;
    const value: unknown = values[flag.slice(2) as keyof typeof values];
    if (value === undefined) continue;
    if (key === "verbose" && value !== true) continue;
    layer.set(key, { key, layer: "flag", name: flag, where: flag, value });
  }
  const result: ParsedFlags = {
    help: values.help === true,
    version: values.version === true,
    layer,
  };
  if (values.config !== undefined) {
    if (values.config.trim() === "") {
      throw invalidSetting({
        setting: "--config",
        value: values.config,
        problem: "it is empty",
        expected: "the path of a YAML or JSON config file",
      });
    }
    result.configPath = values.config;
  }
  if (terminator !== -1) {
    result.commandArgs = tokens.slice(terminator + 1).flatMap((token) =>
      token.kind === "positional" ? [token.value] : []
    );
  }
  return result;
}
