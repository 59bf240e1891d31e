// The settings of `connect` and the layers they come from (flags, environment, config file): each value
// remembers where and how the user wrote it, so that every message can name it the same way.

import { invalidSetting } from "../util/errors.ts";
import type { ConfigError } from "../util/errors.ts";

/** Canonical (snake_case) names of the settings; config files also accept the kebab-case spelling. */
export type Key =
  | "servers"
  | "local_stdio"
  | "local_streamable_http"
  | "local_sse"
  | "gateway"
  | "token"
  | "token_file"
  | "server_name"
  | "server_description"
  | "isolation"
  | "max_instances"
  | "instance_idle_timeout"
  | "reconnect_delay"
  | "max_retries"
  | "keepalive"
  | "log_level"
  | "log_format"
  | "verbose"
  | "cert"
  | "health_listen"
  | "min_ready_servers"
  | "max_server_queue_bytes"
  | "max_server_queue_messages"
  | "shutdown_grace"
  | "init_timeout"
  | "max_replay_bytes"
  | "max_replay_frames"
  | "max_message_bytes"
  | "max_repeat_ids"
  | "max_repeat_answer_bytes"
  | "transport"
  | "websocket_retry";

/** Every setting, in the order help and messages list them. */
export const KEYS: readonly Key[] = [
  "servers",
  "local_stdio",
  "local_streamable_http",
  "local_sse",
  "gateway",
  "token",
  "token_file",
  "server_name",
  "server_description",
  "isolation",
  "max_instances",
  "instance_idle_timeout",
  "reconnect_delay",
  "max_retries",
  "keepalive",
  "log_level",
  "log_format",
  "verbose",
  "cert",
  "health_listen",
  "min_ready_servers",
  "max_server_queue_bytes",
  "max_server_queue_messages",
  "shutdown_grace",
  "init_timeout",
  "max_replay_bytes",
  "max_replay_frames",
  "max_message_bytes",
  "max_repeat_ids",
  "max_repeat_answer_bytes",
  "transport",
  "websocket_retry",
];

/** Environment variables, by setting. Settings without one come only from flags or the file. */
export const ENV_NAMES: Partial<Record<Key, string>> = {
  gateway: "REVERSE_PROXY_GATEWAY",
  token: "REVERSE_PROXY_TOKEN",
  token_file: "REVERSE_PROXY_TOKEN_FILE",
  reconnect_delay: "REVERSE_PROXY_RECONNECT_DELAY",
  max_retries: "REVERSE_PROXY_MAX_RETRIES",
  keepalive: "REVERSE_PROXY_KEEPALIVE",
  log_level: "REVERSE_PROXY_LOG_LEVEL",
  log_format: "REVERSE_PROXY_LOG_FORMAT",
  transport: "REVERSE_PROXY_TRANSPORT",
};

/** One value of one setting from one source, with how the user wrote its name. */
export interface Given {
  key: Key;
  layer: "flag" | "env" | "config";
  /** The name as written: `--max-retries`, `REVERSE_PROXY_MAX_RETRIES` or `max_retries`. */
  name: string;
  /** The name with its place, for messages about two settings: the above, plus `in <file>` for keys. */
  where: string;
  value: unknown;
  /** For config values: the file, so relative paths resolve against its directory. */
  file?: string;
  /** For config values: the file's format, so that examples are written in it. */
  format?: "yaml" | "json";
}

/** The values one source gave, by setting. */
export type Layer = Map<Key, Given>;

/**
 * The environment layer: every setting that has a variable and a non-empty value (an empty variable
 * counts as unset, as in most shells' `${VAR:-default}`).
 */
export function envLayer(env: (name: string) => string | undefined): Layer {
  const layer: Layer = new Map();
  for (const key of KEYS) {
    const name = ENV_NAMES[key];
    if (name === undefined) continue;
    const value = env(name)?.trim();
    if (value === undefined || value === "") continue;
    layer.set(key, { key, layer: "env", name, where: name, value });
  }
  return layer;
}

/** How to write the setting correctly where the user wrote it: `--x 5`, `X=5`, `x: 5`, `"x": 5`. */
export function exampleOf(given: Given, sample: string): string {
  const plain = /^[\w.:/@-]+$/.test(sample);
  switch (given.layer) {
    case "flag":
      return `${given.name} ${plain ? sample : `"${sample}"`}`;
    case "env":
      return `${given.name}=${plain ? sample : `"${sample}"`}`;
    case "config":
      return given.format === "json"
        ? `"${given.name}": ${
          /^(\d+(\.\d+)?|true|false)$/.test(sample) ? sample : JSON.stringify(sample)
        }`
        : `${given.name}: ${sample}`;
  }
}

/** What is wrong with a given value, for {@link invalidGiven}. */
export interface GivenProblem {
  problem?: string;
  expected?: string;
  /** A correct value, shown written the way the user wrote this setting. */
  sample?: string;
  /** Leave the value out of the message (it may carry a credential, or the problem shows it). */
  hideValue?: boolean;
}

/**
 * The message for a bad value of a setting, in the one dialect (see `invalidSetting`). Tokens are never
 * shown; config values show their type.
 */
export function invalidGiven(
  given: Given,
  what: GivenProblem,
  options?: ErrorOptions,
): ConfigError {
  const { problem, expected, sample, hideValue = false } = what;
  return invalidSetting({
    setting: given.name,
    ...(hideValue ? {} : { value: given.value }),
    secret: given.key === "token",
    typed: given.layer === "config",
    ...(given.file === undefined ? {} : { source: given.file }),
    ...(problem === undefined ? {} : { problem }),
    ...(expected === undefined ? {} : { expected }),
    ...(sample === undefined ? {} : { example: exampleOf(given, sample) }),
  }, options);
}
