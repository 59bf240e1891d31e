// One server definition, from a `--server` spec (server_flag.ts) or a `servers:` entry of the config
// file, checked and resolved into a ServerSpec: exactly one of a command, `http` or `sse`; headers whose
// secrets come from the environment or a file (never shown in a message); a CA file and a timeout.

import { dirname, isAbsolute, join } from "node:path";
import { closest } from "../util/did_you_mean.ts";
import { ConfigError, describeKind, describeValue, unreadableFile } from "../util/errors.ts";
import { isObject } from "../util/json_object.ts";
import { joinCommand, splitCommand } from "../util/shell_words.ts";
import { CONNECT_DEFAULTS, type HeaderSpec, type ServerSpec } from "./settings.ts";
import { isolationOf } from "./isolation_settings.ts";

/** What resolving may read; the same sources as config resolution. */
export interface EntrySources {
  env: (name: string) => string | undefined;
  readTextFile: (path: string) => Promise<string>;
}

/** Where an entry was written. */
export interface EntryOrigin {
  /** `--server #2` or `servers[1] in /etc/mcp-rproxy.yaml`. */
  where: string;
  /** Flags give text; a config file gives typed values. */
  layer: "flag" | "config";
  /** The config file, so that relative paths resolve against its directory. */
  file?: string;
}

/** Keys of a `servers:` entry (a kebab-case spelling is accepted too). */
export const ENTRY_KEYS = [
  "name",
  "description",
  "isolation",
  "max_instances",
  "instance_idle_timeout",
  "command",
  "args",
  "env",
  "cwd",
  "http",
  "sse",
  "headers",
  "bearer_env",
  "bearer_file",
  "cert",
  "timeout",
] as const;

const NAME = /^[A-Za-z0-9._~-]{1,128}$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Headers connect sets itself on every request to an upstream. */
const RESERVED_HEADERS = new Set([
  "accept",
  "content-type",
  "content-length",
  "host",
  "mcp-session-id",
  "mcp-protocol-version",
  "last-event-id",
]);
/** Header names whose literal value on a command line is a secret in the process list. */
const SENSITIVE_HEADER = /authorization|cookie|token|secret|key|password|credential/i;
const MAX_SECONDS = 86_400;

function fail(origin: EntryOrigin, problem: string): ConfigError {
  return new ConfigError(`Invalid ${origin.where}: ${problem}`);
}

function pathOf(origin: EntryOrigin, path: string): string {
  return origin.file === undefined || isAbsolute(path) ? path : join(dirname(origin.file), path);
}

function text(origin: EntryOrigin, key: string, value: unknown, sample: string): string {
  if (typeof value !== "string" || value.trim() === "") {
    throw fail(
      origin,
      `${key} is ${
        typeof value === "string" ? "empty" : describeKind(value)
      }; expected text, for example ${key}: ${sample}`,
    );
  }
  return value.trim();
}

/**
 * Checks and resolves one server definition, reading header secrets and the CA file.
 *
 * @throws {ConfigError} Naming the entry, the key and what is expected; secret values are never shown.
 */
export async function resolveEntry(
  raw: unknown,
  origin: EntryOrigin,
  sources: EntrySources,
): Promise<{ spec: ServerSpec; warnings: string[] }> {
  if (!isObject(raw)) {
    throw fail(
      origin,
      `it is ${
        describeKind(raw)
      }; expected a mapping such as {name: git, command: "uvx mcp-server-git"}`,
    );
  }
  const entry: Record<string, unknown> = {};
  for (const [written, value] of Object.entries(raw)) {
    const key = written.replaceAll("-", "_");
    if (!(ENTRY_KEYS as readonly string[]).includes(key)) {
      const near = closest(key, ENTRY_KEYS);
      throw fail(
        origin,
        `unknown key '${written.slice(0, 40)}'${
          near === undefined ? "" : ` (did you mean '${near}'?)`
        }; keys are ${ENTRY_KEYS.join(", ")}`,
      );
    }
    entry[key] = value;
  }
  if (entry.name === undefined) {
    throw fail(origin, "it has no name; every server needs one, for example name: git");
  }
  const name = text(origin, "name", entry.name, "git");
  if (!NAME.test(name)) {
    throw fail(
      origin,
      `name ${
        describeValue(name)
      } must be 1-128 letters, digits, '.', '_', '~' or '-' (it is the last part of the server's MCP URL)`,
    );
  }
  const named = { ...origin, where: `${origin.where} (${name})` };
  const forms = ["command", "http", "sse"].filter((key) => entry[key] !== undefined);
  if (forms.length !== 1) {
    throw fail(
      named,
      forms.length === 0
        ? `it says neither how to start the server nor where it listens: give exactly one of ${
          origin.layer === "flag" ? "stdio=, http= or sse=" : "command, http or sse"
        }`
        : `it gives ${forms.join(" and ")}: give exactly one`,
    );
  }
  const spec: ServerSpec = {
    name,
    ...isolationOf(named, entry),
    origin: named.where,
    transport: { kind: "stdio", command: [], commandText: "" },
  };
  if (entry.description !== undefined) {
    const description = text(named, "description", entry.description, "Git tools");
    if (description.length > 1024) throw fail(named, "description is over 1024 characters");
    spec.description = description;
  }
  const warnings: string[] = [];
  if (entry.command !== undefined) {
    for (const key of ["headers", "bearer_env", "bearer_file", "cert", "timeout"]) {
      if (entry[key] !== undefined) throw fail(named, `${key} applies to http and sse servers`);
    }
    spec.transport = stdioOf(named, entry);
  } else {
    for (const key of ["args", "env", "cwd"]) {
      if (entry[key] !== undefined) {
        throw fail(named, `${key} applies to servers started by a command`);
      }
    }
    const kind = entry.http !== undefined ? "http" : "sse";
    const url = upstreamUrl(named, kind, entry[kind]);
    const headers = await headersOf(named, entry, sources, warnings);
    const transport: ServerSpec["transport"] = {
      kind,
      url,
      headers,
      timeoutMs: secondsOf(named, entry.timeout) * 1000,
    };
    if (entry.cert !== undefined) {
      const path = pathOf(origin, text(named, "cert", entry.cert, "/etc/ssl/my-ca.pem"));
      const pem = await readSecretFile(named, { path, what: "CA certificate file", sources });
      if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
        throw fail(named, `CA certificate file ${path} holds no PEM certificate`);
      }
      transport.caCert = pem;
      transport.caCertPath = path;
    }
    spec.transport = transport;
  }
  return { spec, warnings };
}

function stdioOf(origin: EntryOrigin, entry: Record<string, unknown>): ServerSpec["transport"] {
  const { command, args } = entry;
  let words: string[];
  if (Array.isArray(command)) {
    if (args !== undefined) throw fail(origin, "args goes with a command given as one program");
    words = command.map((word) => {
      if (typeof word !== "string") throw fail(origin, "command must be a list of strings");
      return word;
    });
  } else {
    const line = text(origin, "command", command, "uvx mcp-server-git");
    if (args === undefined) {
      try {
        words = splitCommand(line);
      } catch (error: unknown) {
        if (!(error instanceof SyntaxError)) throw error;
        throw fail(origin, `command: ${error.message}`);
      }
    } else {
      if (!Array.isArray(args) || !args.every((word) => typeof word === "string")) {
        throw fail(origin, `args is ${describeKind(args)}; expected a list of strings`);
      }
      words = [line, ...args as string[]];
    }
  }
  if (words.length === 0 || words[0] === "") throw fail(origin, "command is empty");
  const transport: ServerSpec["transport"] = {
    kind: "stdio",
    command: words,
    commandText: Array.isArray(command) || args !== undefined
      ? joinCommand(words)
      : (command as string).trim(),
  };
  if (entry.env !== undefined) {
    if (!isObject(entry.env)) {
      throw fail(origin, `env is ${describeKind(entry.env)}; expected a mapping of NAME: value`);
    }
    const env: Record<string, string> = {};
    for (const [name, value] of Object.entries(entry.env)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        throw fail(origin, `env name ${describeValue(name)} is not a variable name`);
      }
      if (!["string", "number", "boolean"].includes(typeof value)) {
        throw fail(origin, `env ${name} is ${describeKind(value)}; expected text`);
      }
      env[name] = String(value);
    }
    transport.env = env;
  }
  if (entry.cwd !== undefined) {
    transport.cwd = pathOf(origin, text(origin, "cwd", entry.cwd, "/srv"));
  }
  return transport;
}

/**
 * The URL of an HTTP upstream: http or https, without credentials in it.
 *
 * @throws {ConfigError} Naming `key` and what is wrong.
 */
export function upstreamUrl(origin: EntryOrigin, key: string, value: unknown): URL {
  const given = text(origin, key, value, "http://127.0.0.1:9000/mcp");
  let url: URL;
  try {
    url = new URL(given);
  } catch {
    throw fail(origin, `${key} is not a URL; expected for example http://127.0.0.1:9000/mcp`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw fail(origin, `${key} must be an http:// or https:// URL (got ${url.protocol}//)`);
  }
  if (url.username !== "" || url.password !== "") {
    throw fail(origin, `${key} carries a user or password: give credentials as headers instead`);
  }
  return url;
}

function secondsOf(origin: EntryOrigin, value: unknown): number {
  if (value === undefined) return CONNECT_DEFAULTS.upstreamTimeout;
  const number = typeof value === "number"
    ? value
    : typeof value === "string" && origin.layer === "flag" && /^\d+(\.\d*)?$/.test(value.trim())
    ? Number(value)
    : NaN;
  if (!(number > 0 && number <= MAX_SECONDS)) {
    throw fail(
      origin,
      `timeout ${
        describeValue(value, { typed: origin.layer === "config" })
      } must be a number of seconds greater than 0 and at most ${MAX_SECONDS}`,
    );
  }
  return number;
}

async function readSecretFile(
  origin: EntryOrigin,
  options: { path: string; what: string; sources: EntrySources },
): Promise<string> {
  try {
    return await options.sources.readTextFile(options.path);
  } catch (error: unknown) {
    throw unreadableFile({
      what: options.what,
      path: options.path,
      setting: origin.where,
      cause: error,
    });
  }
}

/** A header value from the environment or a file; the value itself is never shown. */
async function secretValue(
  origin: EntryOrigin,
  from: { env?: unknown; file?: unknown },
  context: { header: string; sources: EntrySources },
): Promise<{ value: string; source: string }> {
  const { header, sources } = context;
  if (from.env !== undefined) {
    const variable = text(origin, `${header} env`, from.env, "DOCS_TOKEN");
    const value = sources.env(variable)?.trim() ?? "";
    if (value === "") {
      throw fail(
        origin,
        `header ${header} takes its value from the environment variable ${variable}, which is not set or empty`,
      );
    }
    return { value, source: `environment variable ${variable}` };
  }
  const path = pathOf(origin, text(origin, `${header} file`, from.file, "/run/secrets/docs"));
  const value = (await readSecretFile(origin, { path, what: `file of header ${header}`, sources }))
    .trim();
  if (value === "") throw fail(origin, `the file ${path} of header ${header} is empty`);
  return { value, source: `file ${path}` };
}

async function headersOf(
  origin: EntryOrigin,
  entry: Record<string, unknown>,
  sources: EntrySources,
  warnings: string[],
): Promise<HeaderSpec[]> {
  const headers: HeaderSpec[] = [];
  const raw = entry.headers ?? {};
  if (!isObject(raw)) {
    throw fail(origin, `headers is ${describeKind(raw)}; expected a mapping of Name: value`);
  }
  const add = (header: HeaderSpec) => {
    const lower = header.name.toLowerCase();
    if (!HEADER_NAME.test(header.name)) {
      throw fail(
        origin,
        `header name ${describeValue(header.name)} is not a valid HTTP header name`,
      );
    }
    if (RESERVED_HEADERS.has(lower)) {
      throw fail(origin, `header ${header.name} is set by mcp-rproxy itself; leave it out`);
    }
    if (headers.some((h) => h.name.toLowerCase() === lower)) {
      throw fail(origin, `header ${header.name} is given twice`);
    }
    // deno-lint-ignore no-control-regex
    if (/[\r\n\x00]/.test(header.value)) {
      throw fail(origin, `header ${header.name} (from ${header.source}) holds a line break`);
    }
    headers.push(header);
  };
  for (const [name, value] of Object.entries(raw)) {
    if (typeof value === "string" || typeof value === "number") {
      if (origin.layer === "flag" && SENSITIVE_HEADER.test(name)) {
        warnings.push(
          `${origin.where} gives header ${name} on the command line, where other local users can read it in the process list: use header-env= or header-file= (or bearer-env=, bearer-file=) instead`,
        );
      }
      add({ name, value: String(value).trim(), source: `${origin.where}` });
      continue;
    }
    if (!isObject(value) || (value.env === undefined) === (value.file === undefined)) {
      throw fail(
        origin,
        `header ${name} must be text, {env: VARIABLE} or {file: PATH} (one of the two)`,
      );
    }
    add({ name, ...await secretValue(origin, value, { header: name, sources }) });
  }
  for (const key of ["bearer_env", "bearer_file"] as const) {
    if (entry[key] === undefined) continue;
    if (entry.bearer_env !== undefined && entry.bearer_file !== undefined) {
      throw fail(origin, "bearer_env and bearer_file are both given: keep one");
    }
    const from = key === "bearer_env" ? { env: entry[key] } : { file: entry[key] };
    const secret = await secretValue(origin, from, { header: "Authorization", sources });
    if (/^bearer\s/i.test(secret.value)) {
      throw fail(
        origin,
        `the ${secret.source} starts with 'Bearer ': it must hold the token alone (the prefix is added)`,
      );
    }
    add({ name: "Authorization", value: `Bearer ${secret.value}`, source: secret.source });
  }
  return headers;
}
