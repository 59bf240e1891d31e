// Resolves the settings of `connect` from flags, environment and a config file, in that order of
// precedence, into validated ConnectSettings; every bad input becomes one ConfigError naming it.

import { parseArgs } from "node:util";
import { dirname, isAbsolute, join } from "node:path";
import type { LogLevel } from "@logtape/logtape";
import { ConfigError } from "../util/errors.ts";
import { isLoopbackHost, normalizeGatewayUrl } from "./link_url.ts";
import { LEVEL_CHOICES, type LogFormat, parseLevel } from "../util/log.ts";
import { CONNECT_DEFAULTS, type ConnectSettings } from "./settings.ts";
import { joinCommand, splitCommand } from "../util/shell_words.ts";

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

/** Canonical (snake_case) names of the settings; config files also accept the kebab-case spelling. */
type Key =
  | "local_stdio"
  | "gateway"
  | "token"
  | "token_file"
  | "server_name"
  | "server_description"
  | "reconnect_delay"
  | "max_retries"
  | "keepalive"
  | "log_level"
  | "log_format"
  | "verbose"
  | "cert"
  | "health_listen";

/** Environment variables, by setting. Settings without one come only from flags or the file. */
const ENV_NAMES: Partial<Record<Key, string>> = {
  gateway: "REVERSE_PROXY_GATEWAY",
  token: "REVERSE_PROXY_TOKEN",
  token_file: "REVERSE_PROXY_TOKEN_FILE",
  reconnect_delay: "REVERSE_PROXY_RECONNECT_DELAY",
  max_retries: "REVERSE_PROXY_MAX_RETRIES",
  keepalive: "REVERSE_PROXY_KEEPALIVE",
  log_level: "REVERSE_PROXY_LOG_LEVEL",
  log_format: "REVERSE_PROXY_LOG_FORMAT",
};

const KEYS: readonly Key[] = [
  "local_stdio",
  "gateway",
  "token",
  "token_file",
  "server_name",
  "server_description",
  "reconnect_delay",
  "max_retries",
  "keepalive",
  "log_level",
  "log_format",
  "verbose",
  "cert",
  "health_listen",
];

const OPTIONS = {
  "local-stdio": { type: "string" },
  gateway: { type: "string" },
  token: { type: "string" },
  "token-file": { type: "string" },
  "server-name": { type: "string" },
  "server-description": { type: "string" },
  "reconnect-delay": { type: "string" },
  "max-retries": { type: "string" },
  keepalive: { type: "string" },
  config: { type: "string" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  verbose: { type: "boolean" },
  cert: { type: "string" },
  "health-listen": { type: "string" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
} as const;

/** Longest delay or interval accepted, in seconds: beyond about 24.8 days timers overflow. */
const MAX_SECONDS = 86_400;
const MAX_NAME = 128;
const MAX_DESCRIPTION = 1024;
const DECIMAL = /^\+?(\d+\.?\d*|\.\d+)$/;
const INTEGER = /^\+?\d+$/;

/** One value of one setting from one source, with how the user wrote its name. */
interface Given {
  key: Key;
  layer: "flag" | "env" | "config";
  /** The name as written: `--max-retries`, `REVERSE_PROXY_MAX_RETRIES` or `max_retries`. */
  name: string;
  /** The name for messages: the above, plus `in <file>` for config keys. */
  where: string;
  value: unknown;
  /** For config values: the file, so relative paths resolve against its directory. */
  file?: string;
}

type Layer = Map<Key, Given>;

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
  const parsed = parseFlags(args);
  if (parsed.help) return { kind: "help", text: connectHelpText() };
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

  const command = resolveCommand(parsed.commandArgs, flags, file);
  const gatewayGiven = first("gateway");
  if (gatewayGiven === undefined) {
    throw new ConfigError(
      "No gateway given: pass --gateway URL, set REVERSE_PROXY_GATEWAY, or add gateway to the config file",
    );
  }
  const gateway = String(gatewayGiven.value).trim();
  const gatewayUrl = parseGateway(gatewayGiven);

  const settings: ConnectSettings = {
    command: command.words,
    commandText: command.text,
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

  const serverName = first("server_name");
  if (serverName !== undefined) settings.serverName = String(serverName.value);
  const serverDescription = first("server_description");
  if (serverDescription !== undefined) {
    settings.serverDescription = String(serverDescription.value);
  }
  const cert = first("cert");
  if (cert !== undefined) {
    const { text, path } = await readCert(cert, readTextFile);
    settings.caCert = text;
    settings.caCertPath = path;
  }
  const healthListen = first("health_listen");
  if (healthListen !== undefined) settings.healthListen = String(healthListen.value).trim();

  return { kind: "run", settings, warnings };
}

interface ParsedFlags {
  help: boolean;
  version: boolean;
  layer: Layer;
  configPath?: string;
  /** Words after `--`, or undefined when there was no `--`. */
  commandArgs?: string[];
}

/** Value-taking long flags, for {@link joinNegativeNumbers}. */
const VALUE_FLAGS = new Set(
  Object.entries(OPTIONS).flatMap(([name, option]) =>
    option.type === "string" ? [`--${name}`] : []
  ),
);

/**
 * Rewrites `--max-retries -1` as `--max-retries=-1`: parseArgs would take `-1` for an option and
 * report the flag as missing its value, while the user plainly gave a (negative) number.
 */
function joinNegativeNumbers(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") return [...out, ...args.slice(i)];
    const next = args[i + 1];
    if (VALUE_FLAGS.has(arg) && next !== undefined && /^-\.?\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

function parseFlags(args: string[]): ParsedFlags {
  let parsed;
  try {
    parsed = parseArgs({
      args: joinNegativeNumbers(args),
      options: OPTIONS,
      strict: true,
      allowPositionals: true,
      tokens: true,
    });
  } catch (error: unknown) {
    // Asking for help should work even next to a mistake
    const end = args.indexOf("--");
    const before = end === -1 ? args : args.slice(0, end);
    if (before.includes("--help") || before.includes("-h")) {
      return { help: true, version: false, layer: new Map() };
    }
    throw flagError(error);
  }
  const { values, tokens } = parsed;
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
    const flag = `--${key.replaceAll("_", "-")}`;
    const value = values[flag.slice(2) as keyof typeof values];
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
      throw new ConfigError("--config is empty: give the path of a YAML or JSON config file");
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

const LONG_FLAGS = Object.keys(OPTIONS).map((name) => `--${name}`);

/** Turns a `node:util` parseArgs error into our message; the option value is never repeated. */
function flagError(error: unknown): ConfigError {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  const flag = /'(-[^' =]*)/.exec(message)?.[1] ?? "";
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    if (!flag.startsWith("--")) {
      return new ConfigError(
        `Unknown option '${flag}': the only short options are -h (--help) and -V (--version); run connect --help for the list`,
        { cause: error },
      );
    }
    const close = closest(flag, LONG_FLAGS);
    return new ConfigError(
      `Unknown option '${flag}'${
        close === undefined ? "" : `: did you mean ${close}?`
      } Run connect --help for the list of options`,
      { cause: error },
    );
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    if (message.includes("does not take an argument")) {
      return new ConfigError(`${flag} takes no value: write just ${flag}`, { cause: error });
    }
    if (message.includes("ambiguous")) {
      return new ConfigError(
        `${flag} needs a value but is followed by another option: give the value right after it, or write ${flag}=VALUE if the value starts with '-'`,
        { cause: error },
      );
    }
    return new ConfigError(`${flag} needs a value: write ${flag} VALUE or ${flag}=VALUE`, {
      cause: error,
    });
  }
  return new ConfigError(`Cannot parse the arguments of connect: ${message}`, { cause: error });
}

function envLayer(env: (name: string) => string | undefined): Layer {
  const layer: Layer = new Map();
  for (const key of KEYS) {
    const name = ENV_NAMES[key];
    if (name === undefined) continue;
    const value = env(name)?.trim();
    // An empty variable counts as unset, as in most shells' `${VAR:-default}`
    if (value === undefined || value === "") continue;
    layer.set(key, { key, layer: "env", name, where: name, value });
  }
  return layer;
}

type FileFormat = "yaml" | "json";

async function configLayer(
  path: string,
  readTextFile: (path: string) => Promise<string>,
): Promise<Layer> {
  const text = await readFile(path, { what: "config file", from: "--config", readTextFile });
  const format = formatOf(path, text);
  const data = format === "json" ? parseJson(text, path) : await parseYaml(text, path);
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new ConfigError(
      `Config file ${path} must hold a mapping of settings at the top level, but holds ${
        describeType(data)
      }: write for example "gateway: https://gw.example.com" (YAML) or {"gateway": "https://gw.example.com"} (JSON)`,
    );
  }
  const layer: Layer = new Map();
  for (const [name, value] of Object.entries(data)) {
    const key = keyOf(name);
    if (key === undefined) {
      const hint = name.toLowerCase() === "config"
        ? "a config file cannot name another config file"
        : suggestKey(name);
      throw new ConfigError(`Unknown key '${name}' in ${path}: ${hint}`);
    }
    const earlier = layer.get(key);
    if (earlier !== undefined) {
      throw new ConfigError(
        `Both '${earlier.name}' and '${name}' are set in ${path}: they are the same setting, keep one`,
      );
    }
    layer.set(key, {
      key,
      layer: "config",
      name,
      where: `${name} in ${path}`,
      value,
      file: path,
    });
  }
  return layer;
}

/** `.yaml`/`.yml` is YAML and `.json` is JSON; any other name is JSON if it starts with `{`, else YAML. */
function formatOf(path: string, text: string): FileFormat {
  const lower = path.toLowerCase();
  if (lower.endsWith(".json")) return "json";
  if (lower.endsWith(".yaml") || lower.endsWith(".yml")) return "yaml";
  return text.trimStart().startsWith("{") ? "json" : "yaml";
}

async function parseYaml(text: string, path: string): Promise<unknown> {
  // Loaded only for a YAML config file: js-yaml costs connect 3 MiB of resident memory.
  const { load, YAMLException } = await import("js-yaml");
  try {
    return load(text);
  } catch (error: unknown) {
    if (!(error instanceof YAMLException)) throw error;
    // Only the reason and the position: js-yaml's message quotes the file, which may hold a token
    const at = error.mark === undefined
      ? ""
      : ` at line ${error.mark.line + 1}, column ${error.mark.column + 1}`;
    throw new ConfigError(
      `Invalid YAML in config file ${path}${at}: ${error.reason}; fix the file or check it with a YAML linter`,
      { cause: error },
    );
  }
}

function parseJson(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error: unknown) {
    if (!(error instanceof SyntaxError)) throw error;
    const lineColumn = /\(line (\d+) column (\d+)\)/.exec(error.message);
    const at = lineColumn ? ` at line ${lineColumn[1]}, column ${lineColumn[2]}` : "";
    // V8 quotes part of the text after `, "` or `, ..."`; the file may hold a token, so cut it off
    const reason = error.message
      .replace(/ in JSON at position .*$/s, "")
      .replace(/, (\.\.\.)?".*$/s, "");
    throw new ConfigError(
      `Invalid JSON in config file ${path}${at}: ${reason}; fix the file (JSON allows no comments or trailing commas) or use YAML`,
      { cause: error },
    );
  }
}

function keyOf(name: string): Key | undefined {
  if (!/^[a-z]+([_-][a-z]+)*$/.test(name)) return undefined;
  const snake = name.replaceAll("-", "_");
  // One spelling per key: all underscores or all hyphens
  if (name.includes("_") && name.includes("-")) return undefined;
  return (KEYS as readonly string[]).includes(snake) ? snake as Key : undefined;
}

function suggestKey(name: string): string {
  const kebab = name.includes("-");
  const spelled = KEYS.map((key) => kebab ? key.replaceAll("_", "-") : key);
  const close = closest(name, spelled);
  const known = KEYS.join(", ");
  return close === undefined
    ? `known keys are ${known} (or the same with - instead of _)`
    : `did you mean '${close}'? Known keys are ${known} (or the same with - instead of _)`;
}

/** The candidate nearest to `name` ignoring case and `-`/`_`, if it is near enough to be a typo. */
function closest(name: string, candidates: readonly string[]): string | undefined {
  const flat = (text: string) => text.toLowerCase().replaceAll(/[-_]/g, "");
  const target = flat(name);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(target, flat(candidate));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= Math.max(2, Math.ceil(target.length * 0.4)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** Reads a file, or throws a ConfigError naming what it is, where its path came from, and why. */
async function readFile(
  path: string,
  options: { what: string; from: string; readTextFile: (path: string) => Promise<string> },
): Promise<string> {
  const { what, from, readTextFile } = options;
  try {
    return await readTextFile(path);
  } catch (error: unknown) {
    // Deno adds `: readfile '<path>'`, which the message already says
    const reason = (error instanceof Error ? error.message : String(error))
      .replace(/: [a-z]+ '.*'$/s, "");
    throw new ConfigError(
      `Cannot read ${what} ${path} (from ${from}): ${reason}; check the path and its permissions`,
      { cause: error },
    );
  }
}

/** The user's text, for messages: quoted, shortened, and with its type when it came from a file. */
function describe(given: Given): string {
  if (given.key === "token") return "(value hidden)";
  const { value } = given;
  if (typeof value === "string") {
    const text = value.length > 80 ? `${value.slice(0, 80)}…` : value;
    return given.layer === "config" ? `${JSON.stringify(text)} (a string)` : `'${text}'`;
  }
  if (typeof value === "number" || typeof value === "boolean") {
    return `${String(value)} (a ${typeof value})`;
  }
  return describeType(value);
}

function describeType(value: unknown): string {
  if (value === null || value === undefined) return "nothing (null)";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return `a ${typeof value}`;
}

/** How to write the setting correctly where the user wrote it. */
function example(given: Given, sample: string): string {
  const plain = /^[\w.:/@-]+$/.test(sample);
  switch (given.layer) {
    case "flag":
      return `${given.name} ${plain ? sample : `"${sample}"`}`;
    case "env":
      return `${given.name}=${plain ? sample : `"${sample}"`}`;
    case "config":
      return given.file !== undefined && formatOf(given.file, "") === "json"
        ? `"${given.name}": ${
          /^(\d+(\.\d+)?|true|false)$/.test(sample) ? sample : JSON.stringify(sample)
        }`
        : `${given.name}: ${sample}`;
  }
}

function invalid(
  given: Given,
  { expected, sample }: { expected: string; sample: string },
): ConfigError {
  return new ConfigError(
    `${given.where} is ${describe(given)}: expected ${expected}, for example ${
      example(given, sample)
    }`,
  );
}

/** Validates one value in isolation; cross-setting rules are checked while resolving. */
function checkValue(given: Given): void {
  const { key, value } = given;
  switch (key) {
    case "local_stdio":
      if (Array.isArray(value)) {
        if (value.length === 0 || !value.every((word) => typeof word === "string")) {
          throw invalid(given, {
            expected: "a non-empty list of strings or a command string",
            sample: "npx -y my-server",
          });
        }
        if (value[0] === "") {
          throw invalid(given, {
            expected: "a program name as the first word",
            sample: "my-server",
          });
        }
      } else if (typeof value === "string") {
        commandFromString(given);
      } else {
        throw invalid(given, {
          expected: "a command string or a list of strings",
          sample: "npx -y my-server",
        });
      }
      return;
    case "gateway":
      requireText(given, { expected: "a gateway URL", sample: "https://gw.example.com" });
      parseGateway(given);
      return;
    case "token":
      checkToken(given);
      return;
    case "token_file":
      requireText(given, {
        expected: "the path of a file holding the token",
        sample: "/run/secrets/gateway-token",
      });
      return;
    case "cert":
      requireText(given, {
        expected: "the path of a PEM file with a CA certificate",
        sample: "/etc/ssl/my-ca.pem",
      });
      return;
    case "server_name":
      boundedText(given, { noun: "name", max: MAX_NAME, sample: "my-server" });
      return;
    case "server_description":
      boundedText(given, { noun: "description", max: MAX_DESCRIPTION, sample: "Git tools" });
      return;
    case "reconnect_delay":
      seconds(given, "2.5");
      return;
    case "keepalive":
      seconds(given, "30");
      return;
    case "max_retries":
      retries(given);
      return;
    case "log_level":
      if (typeof value !== "string" || parseLevel(value) === undefined) {
        throw invalid(given, {
          expected: `a log level (${LEVEL_CHOICES}; any case)`,
          sample: "debug",
        });
      }
      return;
    case "log_format":
      if (typeof value !== "string" || !["text", "json"].includes(value.trim().toLowerCase())) {
        throw invalid(given, { expected: "text or json", sample: "json" });
      }
      return;
    case "verbose":
      if (typeof value !== "boolean") {
        throw invalid(given, { expected: "true or false", sample: "true" });
      }
      return;
    case "health_listen":
      requireText(given, { expected: "HOST:PORT", sample: "127.0.0.1:9464" });
      try {
        parseHostPort(value as string);
      } catch (error: unknown) {
        throw new ConfigError(
          `${given.where} is ${describe(given)}: ${(error as Error).message}, for example ${
            example(given, "127.0.0.1:9464")
          }`,
          { cause: error },
        );
      }
      return;
  }
}

function requireText(given: Given, expectation: { expected: string; sample: string }): void {
  if (typeof given.value !== "string" || given.value.trim() === "") {
    throw invalid(given, expectation);
  }
}

/** A non-empty text of at most `max` characters (B's limits on names and descriptions). */
function boundedText(given: Given, rule: { noun: string; max: number; sample: string }): void {
  const { noun, max, sample } = rule;
  requireText(given, { expected: `a ${noun} of 1 to ${max} characters`, sample });
  if ((given.value as string).length > max) {
    throw invalid(given, { expected: `a ${noun} of at most ${max} characters`, sample });
  }
}

function seconds(given: Given, sample: string): void {
  const { value } = given;
  const number = typeof value === "number"
    ? value
    : typeof value === "string" && given.layer !== "config" && DECIMAL.test(value.trim())
    ? Number(value.trim())
    : NaN;
  if (!(number > 0 && number <= MAX_SECONDS)) {
    throw invalid(given, {
      expected: `a number of seconds greater than 0 and at most ${MAX_SECONDS}`,
      sample: sample,
    });
  }
}

function retries(given: Given): void {
  const { value } = given;
  const number = typeof value === "number"
    ? value
    : typeof value === "string" && given.layer !== "config" && INTEGER.test(value.trim())
    ? Number(value.trim())
    : NaN;
  if (!Number.isSafeInteger(number) || number < 0) {
    throw invalid(given, {
      expected: "a whole number of 0 or more (0 = retry forever)",
      sample: "5",
    });
  }
}

/** A checked number setting as a number; flags and environment give strings. */
function numberOf(given: Given | undefined): number | undefined {
  if (given === undefined) return undefined;
  return typeof given.value === "number" ? given.value : Number(String(given.value).trim());
}

function checkToken(given: Given): void {
  const { value } = given;
  if (typeof value !== "string" || value.trim() === "") {
    throw new ConfigError(
      `${given.where} is ${
        typeof value === "string" ? "empty" : describeType(value)
      }: expected the bearer token as a string`,
    );
  }
  checkTokenText(value.trim(), given.where);
}

/** Rules for any token, wherever it came from; the token itself is never repeated. */
function checkTokenText(token: string, where: string): void {
  if (/^bearer\s/i.test(token)) {
    throw new ConfigError(
      `${where} starts with 'Bearer ': give the token alone, the proxy adds the 'Bearer ' prefix itself`,
    );
  }
  // deno-lint-ignore no-control-regex
  if (/[\s\x00-\x1f\x7f]/.test(token)) {
    throw new ConfigError(
      `${where} contains whitespace or control characters inside the token (value hidden): a bearer token is a single word; check for a pasted line break or extra text`,
    );
  }
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
      const text = await readFile(path, { what: "token file", from: file.where, readTextFile });
      const value = text.trim();
      if (value === "") {
        throw new ConfigError(
          `Token file ${path} (from ${file.where}) is empty: write the bearer token into it`,
        );
      }
      checkTokenText(value, `Token file ${path} (from ${file.where})`);
      return { value, source: "file" };
    }
  }
  return undefined;
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
  const text = await readFile(path, {
    what: "CA certificate file",
    from: given.where,
    readTextFile,
  });
  if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    throw new ConfigError(
      `CA certificate file ${path} (from ${given.where}) holds no PEM certificate: expected a block starting with -----BEGIN CERTIFICATE-----`,
    );
  }
  return { text, path };
}

function parseGateway(given: Given): URL {
  try {
    return normalizeGatewayUrl(String(given.value));
  } catch (error: unknown) {
    if (!(error instanceof TypeError)) throw error;
    throw new ConfigError(`${given.where}: ${error.message}`, { cause: error });
  }
}

function commandFromString(given: Given): string[] {
  try {
    return splitCommand(given.value as string);
  } catch (error: unknown) {
    if (!(error instanceof SyntaxError)) throw error;
    throw new ConfigError(
      `${given.where} is ${describe(given)}: ${error.message}`,
      { cause: error },
    );
  }
}

function resolveCommand(
  commandArgs: string[] | undefined,
  flags: Layer,
  file: Layer,
): { words: string[]; text: string } {
  const flag = flags.get("local_stdio");
  if (commandArgs !== undefined) {
    if (flag !== undefined) {
      throw new ConfigError(
        "Both --local-stdio and a command after -- are given: use one of them",
      );
    }
    if (commandArgs.length === 0 || commandArgs[0] === "") {
      throw new ConfigError(
        "Nothing follows --: put the server command and its arguments after it, as in -- npx -y my-server",
      );
    }
    return { words: commandArgs, text: joinCommand(commandArgs) };
  }
  const given = flag ?? file.get("local_stdio");
  if (given === undefined) {
    throw new ConfigError(
      'No local server command given: pass --local-stdio "CMD ARGS", or put the command after -- (connect --gateway URL -- CMD ARGS), or set local_stdio in the config file',
    );
  }
  if (Array.isArray(given.value)) {
    const words = given.value as string[];
    return { words, text: joinCommand(words) };
  }
  return { words: commandFromString(given), text: given.value as string };
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

/**
 * Splits a `HOST:PORT` listen address; IPv6 hosts go in brackets (`[::1]:9464`). Port 0 picks a free port.
 *
 * @throws {TypeError} When the text is not of that form or the port is out of range.
 *
 * @example
 * ```ts
 * import { parseHostPort } from "./config.ts";
 * parseHostPort("[::1]:9464"); // { hostname: "::1", port: 9464 }
 * ```
 */
export function parseHostPort(text: string): { hostname: string; port: number } {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]/]+)):(\d{1,5})$/.exec(text.trim());
  if (match === null) {
    throw new TypeError("expected HOST:PORT (IPv6 in brackets, as in [::1]:9464)");
  }
  const port = Number(match[3]);
  if (port > 65535) throw new TypeError(`port ${port} is out of range: expected 0 to 65535`);
  return { hostname: match[1] ?? match[2]!, port };
}

/**
 * The complete usage text of `connect`: every flag, environment variable and config key, and the exit codes.
 *
 * @example
 * ```ts
 * import { connectHelpText } from "./config.ts";
 * connectHelpText().includes("--local-stdio"); // true
 * ```
 */
export function connectHelpText(): string {
  return `Usage: mcp-rproxy connect [OPTIONS] --local-stdio "CMD ARGS"
       mcp-rproxy connect [OPTIONS] -- CMD ARGS...

Start a local stdio MCP server, dial out to a gateway over WebSocket, register the server, and
tunnel JSON-RPC both ways. Reconnects after a drop; the local server keeps running.

Local server:
  --local-stdio CMD          Command of the local MCP server, split like a POSIX shell splits
                             words (quotes and backslashes; no shell runs, nothing is expanded)
  -- CMD ARGS...             The same command given as separate arguments (nothing is split)
  --server-name NAME         Name to register, 1-128 characters (default: the server's own name)
  --server-description TEXT  Description to register, up to 1024 characters
                             (default: derived from the command)

Gateway:
  --gateway URL              Gateway address: https://host[:port][/prefix], wss://.../reverse-proxy/ws,
                             or host[:port] (no scheme means wss://); http->ws, https->wss
                             [env REVERSE_PROXY_GATEWAY]
  --token-file FILE          File holding the bearer token (surrounding whitespace is ignored)
                             [env REVERSE_PROXY_TOKEN_FILE]
  --token TOKEN              Bearer token. Other local users can see it in the process list:
                             prefer --token-file or REVERSE_PROXY_TOKEN [env REVERSE_PROXY_TOKEN]
  --cert CA.pem              Extra CA certificate (PEM) to trust for wss:// connections
  --reconnect-delay SECONDS  Base delay before reconnecting, > 0 (default ${CONNECT_DEFAULTS.reconnectDelay})
                             [env REVERSE_PROXY_RECONNECT_DELAY]
  --max-retries N            Reconnect attempts allowed after a drop, 0 = forever (default ${CONNECT_DEFAULTS.maxRetries})
                             [env REVERSE_PROXY_MAX_RETRIES]
  --keepalive SECONDS        Heartbeat interval, > 0 (default ${CONNECT_DEFAULTS.keepalive}) [env REVERSE_PROXY_KEEPALIVE]

Operations:
  --health-listen HOST:PORT  Serve health and metrics on this address, e.g. 127.0.0.1:9464
                             (default: off)
  --log-level LEVEL          ${LEVEL_CHOICES}; any case (default ${CONNECT_DEFAULTS.logLevel})
                             [env REVERSE_PROXY_LOG_LEVEL]
  --log-format FORMAT        text or json, written to stderr (default ${CONNECT_DEFAULTS.logFormat})
                             [env REVERSE_PROXY_LOG_FORMAT]
  --verbose                  Same as --log-level debug, and wins over it
  --config FILE              Config file: YAML (.yaml, .yml) or JSON (.json); another name is read
                             as JSON if it starts with '{', else as YAML
  -h, --help                 Show this help and exit
  -V, --version              Show the version and exit

Every --flag and =value form works: --gateway URL or --gateway=URL.
Precedence: flags, then environment variables, then the config file, then defaults. An empty
environment variable counts as unset.

Config file keys are the flag names in snake_case or kebab-case: local_stdio (a string, or a list
of words taken as they are), gateway, token, token_file, server_name, server_description,
reconnect_delay, max_retries, keepalive, log_level, log_format, verbose (true/false), cert,
health_listen; or local-stdio, token-file, server-name, ... Relative paths in the file (token_file,
cert) are relative to the file's directory. See docs/configuration.md.

Exit codes: 0 clean shutdown; 1 runtime failure (local server cannot start, retries exhausted);
2 bad flags, environment or config file; 3 the gateway refused the credentials;
4 the gateway evicted this session; 130 a second signal during shutdown.
`;
}
