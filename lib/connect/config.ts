// Resolves the settings of `connect` from flags, environment and a config file, in that order of
// precedence, into validated ConnectSettings; every bad input becomes one ConfigError naming it.

import { dirname, isAbsolute, join } from "node:path";
import type { LogLevel } from "@logtape/logtape";
import { wantsHelp } from "../util/cli_flags.ts";
import { ConfigError, invalidSetting, unreadableFile } from "../util/errors.ts";
import { type LogFormat, parseLevel } from "../util/log_level.ts";
import { byteSizeOf, checkTokenText, checkValue, parseGateway } from "./config_check.ts";
import { configLayer } from "./config_file.ts";
import { envLayer, type Given, type Key, type Layer } from "./config_layers.ts";
import { parseConnectFlags } from "./flags.ts";
import { connectHelpText } from "./help.ts";
import { isLoopbackHost } from "./link_url.ts";
import { resolveServerSet } from "./server_set.ts";
import { CONNECT_DEFAULTS, type ConnectSettings } from "./settings.ts";
import type { TransportSetting } from "./settings.ts";

/** What `connect` should do: print help, print the version, or run with these settings. */
export type ConfigResult =
  | { kind: "help"; text: string }
  | { kind: "version" }
  | { kind: "run"; settings: ConnectSettings; warnings: string[] };

/** What {@link resolveConnectConfig} may read from the outside world; injected so tests control it. */
export interface ConfigSources {
  /** An environment variable, or undefined when it is not set. */
  env: (name: string) => string | undefined;
  /** Reads a whole file as UTF-8 text (config, token and CA files); `Deno.readTextFile` in production. */
  readTextFile: (path: string) => Promise<string>;
}

/**
 * Resolves the settings of `connect` from its arguments (those after `connect`), the environment and
 * an optional config file. Precedence: flags, then environment, then config file, then defaults.
 *
 * @throws {ConfigError} On any bad input, with one message naming the setting as the user wrote it,
 * the value seen (never a token) and what is expected.
 *
 * @example
 * ```ts
 * import { resolveConnectConfig } from "./config.ts";
 * const result = await resolveConnectConfig(
 *   ["--gateway", "https://gw.example.com", "--", "npx", "-y", "my-server"],
 *   { env: () => undefined, readTextFile: (path) => Deno.readTextFile(path) },
 * );
 * if (result.kind === "run") result.settings.gatewayUrl.href; // "wss://gw.example.com/reverse-proxy/ws"
 * ```
 */
export async function resolveConnectConfig(
  args: string[],
  options: ConfigSources,
): Promise<ConfigResult> {
  const { env, readTextFile } = options;
  // Asking for help works even next to a mistake
  if (wantsHelp(args)) return { kind: "help", text: connectHelpText() };
  const parsed = parseConnectFlags(args);
  if (parsed.version) return { kind: "version" };

  const flags = parsed.layer;
  const environment = envLayer(env);
  const file = parsed.configPath === undefined
    ? new Map<Key, Given>()
    : await configLayer(parsed.configPath, readTextFile);
  const layers = [flags, environment, file];

  // Check every value given anywhere, not only the winners: a typo overridden today bites tomorrow
  for (const layer of layers) for (const given of layer.values()) checkValue(given);

  const warnings: string[] = [];
  const first = (key: Key): Given | undefined => {
    for (const layer of layers) {
      const given = layer.get(key);
      if (given !== undefined) return given;
    }
    return undefined;
  };

  const serverSet = await resolveServerSet(
    { flags, file, commandArgs: parsed.commandArgs },
    { env, readTextFile },
  );
  const gatewayGiven = first("gateway");
  if (gatewayGiven === undefined) {
    throw new ConfigError(
      "No gateway given: pass --gateway URL, set REVERSE_PROXY_GATEWAY, or add gateway to the config file",
    );
  }
  const gateway = String(gatewayGiven.value).trim();
  const gatewayUrl = parseGateway(gatewayGiven);

  const settings: ConnectSettings = {
    servers: serverSet.servers,
    manyServers: serverSet.manyServers,
    gateway,
    gatewayUrl,
    reconnectDelay: numberOf(first("reconnect_delay")) ?? CONNECT_DEFAULTS.reconnectDelay,
    maxRetries: numberOf(first("max_retries")) ?? CONNECT_DEFAULTS.maxRetries,
    keepalive: numberOf(first("keepalive")) ?? CONNECT_DEFAULTS.keepalive,
    logLevel: resolveLevel(layers),
    logFormat: resolveFormat(first("log_format")),
  };

  const token = await resolveToken(layers, readTextFile);
  if (token !== undefined) {
    settings.token = token.value;
    settings.tokenSource = token.source;
    if (token.source === "flag") {
      warnings.push(
        "--token puts the token in the process list, where other local users can read it: use --token-file FILE or the REVERSE_PROXY_TOKEN environment variable instead",
      );
    }
    if (gatewayUrl.protocol === "ws:" && !isLoopbackHost(gatewayUrl)) {
      warnings.push(
        `The token travels in clear text to ${gatewayUrl.host} because the gateway URL uses ws:// (or http://): use wss:// (or https://) for any gateway that is not on this machine`,
      );
    }
  }

  warnings.push(...serverSet.warnings);
  const cert = first("cert");
  if (cert !== undefined) {
    const { text, path } = await readCert(cert, readTextFile);
    settings.caCert = text;
    settings.caCertPath = path;
  }
  const healthListen = first("health_listen");
  if (healthListen !== undefined) settings.healthListen = String(healthListen.value).trim();
  const queueBytes = first("max_server_queue_bytes");
  if (queueBytes !== undefined) settings.maxServerQueueBytes = byteSizeOf(queueBytes.value)!;
  const queueMessages = numberOf(first("max_server_queue_messages"));
  if (queueMessages !== undefined) settings.maxServerQueueMessages = queueMessages;
  const replayBytes = first("max_replay_bytes");
  if (replayBytes !== undefined) settings.maxReplayBytes = byteSizeOf(replayBytes.value)!;
  const messageBytes = first("max_message_bytes");
  if (messageBytes !== undefined) settings.maxMessageBytes = byteSizeOf(messageBytes.value)!;
  const replayFrames = numberOf(first("max_replay_frames"));
  if (replayFrames !== undefined) settings.maxReplayFrames = replayFrames;
  const repeatIds = numberOf(first("max_repeat_ids"));
  if (repeatIds !== undefined) settings.maxRepeatIds = repeatIds;
  const repeatBytes = first("max_repeat_answer_bytes");
  if (repeatBytes !== undefined) settings.maxRepeatAnswerBytes = byteSizeOf(repeatBytes.value)!;
  const minReady = numberOf(first("min_ready_servers"));
  if (minReady !== undefined) {
    if (minReady > settings.servers.length) {
      throw new ConfigError(
        `${
          first("min_ready_servers")!.where
        } is ${minReady}, but connect carries ${settings.servers.length} server(s): give at most ${settings.servers.length}, or leave it out to need them all`,
      );
    }
    settings.minReadyServers = minReady;
  }
  const grace = numberOf(first("shutdown_grace"));
  if (grace !== undefined) settings.shutdownGrace = grace;
  const initTimeout = numberOf(first("init_timeout"));
  if (initTimeout !== undefined) settings.initTimeout = initTimeout;
  const transport = first("transport");
  if (transport !== undefined) {
    settings.transport = String(transport.value).trim().toLowerCase() as TransportSetting;
  }
  const websocketRetry = numberOf(first("websocket_retry"));
  if (websocketRetry !== undefined) settings.websocketRetry = websocketRetry;

  return { kind: "run", settings, warnings };
}

/** A checked number setting as a number; flags and environment give strings. */
function numberOf(given: Given | undefined): number | undefined {
  if (given === undefined) return undefined;
  return typeof given.value === "number" ? given.value : Number(String(given.value).trim());
}

async function resolveToken(
  layers: Layer[],
  readTextFile: (path: string) => Promise<string>,
): Promise<{ value: string; source: NonNullable<ConnectSettings["tokenSource"]> } | undefined> {
  for (const layer of layers) {
    const token = layer.get("token");
    const file = layer.get("token_file");
    if (token !== undefined && file !== undefined) {
      throw new ConfigError(
        `Both ${token.where} and ${file.where} are set: give the token one way only (preferably the file)`,
      );
    }
    if (token !== undefined) {
      const source = token.layer === "config" ? "config" : token.layer;
      return { value: String(token.value).trim(), source };
    }
    if (file !== undefined) {
      const path = pathOf(file);
      const value = (await readNamedFile(path, { what: "token file", file, readTextFile })).trim();
      // The file's content is the secret: name the file, never show what is in it
      const setting = `token file ${path} (from ${file.where})`;
      if (value === "") {
        throw invalidSetting({
          setting,
          problem: "the file is empty",
          expected: "the bearer token in it",
        });
      }
      checkTokenText(value, { setting, secret: false });
      return { value, source: "file" };
    }
  }
  return undefined;
}

async function readNamedFile(
  path: string,
  options: { what: string; file: Given; readTextFile: (path: string) => Promise<string> },
): Promise<string> {
  try {
    return await options.readTextFile(path);
  } catch (error: unknown) {
    throw unreadableFile({ what: options.what, path, setting: options.file.where, cause: error });
  }
}

/** A path setting; in a config file, relative paths are relative to the file's directory. */
function pathOf(given: Given): string {
  const path = String(given.value).trim();
  if (given.file === undefined || isAbsolute(path)) return path;
  return join(dirname(given.file), path);
}

async function readCert(
  given: Given,
  readTextFile: (path: string) => Promise<string>,
): Promise<{ text: string; path: string }> {
  const path = pathOf(given);
  const text = await readNamedFile(path, {
    what: "CA certificate file",
    file: given,
    readTextFile,
  });
  if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    throw invalidSetting({
      setting: `CA certificate file ${path} (from ${given.where})`,
      problem: "it holds no PEM certificate",
      expected: "a block starting with -----BEGIN CERTIFICATE-----",
    });
  }
  return { text, path };
}

function resolveLevel(layers: Layer[]): LogLevel {
  for (const layer of layers) {
    // --verbose (or verbose: true) wins over a log level given the same way, as in the old client
    if (layer.get("verbose")?.value === true) return "debug";
    const level = layer.get("log_level");
    if (level !== undefined) return parseLevel(level.value as string)!;
  }
  return CONNECT_DEFAULTS.logLevel;
}

function resolveFormat(given: Given | undefined): LogFormat {
  if (given === undefined) return CONNECT_DEFAULTS.logFormat;
  return (given.value as string).trim().toLowerCase() as LogFormat;
}
