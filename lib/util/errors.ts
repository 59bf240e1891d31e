// Errors every command shares: bad user input (ConfigError, exit code 2) with the one dialect of its
// messages (the setting as the user wrote it, the value seen but never a secret, and the fix), and an
// address that cannot be listened on (ListenError, exit code 1).

/** Bad user input: a flag, an environment variable, a config file or a file it names. */
export class ConfigError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConfigError";
  }
}

/** An address given by a flag cannot be listened on: in use, or a privileged port. */
export class ListenError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ListenError";
  }
}

/**
 * The one message for an address that cannot be listened on, or undefined when `error` is not such a
 * failure (a missing `--allow-net` stays a permission error).
 *
 * @example
 * ```ts
 * import { listenError } from "./errors.ts";
 * listenError(new Deno.errors.AddrInUse("in use"), { address: "127.0.0.1:80", setting: "--listen" })
 *   ?.message; // "Cannot listen on 127.0.0.1:80 (--listen): the address is in use; choose another port"
 * ```
 */
export function listenError(
  error: unknown,
  where: { address: string; setting: string },
): ListenError | undefined {
  const why = error instanceof Deno.errors.AddrInUse
    ? "the address is in use; choose another port"
    : error instanceof Deno.errors.PermissionDenied
    ? "permission denied; ports below 1024 need privileges, choose a port from 1024 up"
    : error instanceof Deno.errors.AddrNotAvailable
    ? "this machine has no such address; use 127.0.0.1, 0.0.0.0 or one of its own addresses"
    : undefined;
  if (why === undefined) return undefined;
  return new ListenError(`Cannot listen on ${where.address} (${where.setting}): ${why}`, {
    cause: error,
  });
}

/** What is wrong with one setting, for {@link invalidSetting}. */
export interface InvalidSetting {
  /** The setting as the user wrote it: `--max-retries`, `REVERSE_PROXY_MAX_RETRIES`, `max_retries`. */
  setting: string;
  /** The value seen. Leave it out when there is none to show (the problem then says enough). */
  value?: unknown;
  /** The value is a secret (a token): the message says `(value hidden)` instead. */
  secret?: boolean;
  /** The value came from a typed source (a config file): its type is shown, as in `'5' (a string)`. */
  typed?: boolean;
  /** Where the setting was written when its name does not say it: a config file's path. */
  source?: string;
  /** What is wrong, when more than "not what was expected": `port 70000 is out of range`. */
  problem?: string;
  /** What would be right: `a whole number, 0 or more (0 = retry forever)`. */
  expected?: string;
  /** A correct setting, written where the user wrote this one: `--max-retries 5`. */
  example?: string;
}

const MAX_SHOWN = 80;

/**
 * The user's value for a message: strings in single quotes with control characters escaped and cut at
 * 80 characters; other values by kind (`a list`, `nothing (null)`), numbers and booleans as written.
 * With `typed`, the type follows, so that `'5' (a string)` explains why a number was refused.
 *
 * @example
 * ```ts
 * import { describeValue } from "./errors.ts";
 * describeValue("x"); // "'x'"
 * describeValue("5", { typed: true }); // "'5' (a string)"
 * describeValue([1]); // "a list"
 * ```
 */
export function describeValue(value: unknown, options: { typed?: boolean } = {}): string {
  if (typeof value === "string") {
    const cut = value.length > MAX_SHOWN ? `${value.slice(0, MAX_SHOWN)}…` : value;
    // deno-lint-ignore no-control-regex
    const shown = cut.replace(/[\x00-\x1f\x7f]/g, (c) => {
      const escapes: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };
      return escapes[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
    });
    return options.typed ? `'${shown}' (a string)` : `'${shown}'`;
  }
  if (typeof value === "number" || typeof value === "boolean") {
    return options.typed ? `${String(value)} (a ${typeof value})` : String(value);
  }
  return describeKind(value);
}

/**
 * The kind of a value without its content, for values that may be secret: `a string`, `a number`,
 * `a list`, `a mapping`, `nothing (null)`.
 *
 * @example
 * ```ts
 * import { describeKind } from "./errors.ts";
 * describeKind("s3cret"); // "a string"
 * ```
 */
export function describeKind(value: unknown): string {
  if (value === null || value === undefined) return "nothing (null)";
  if (Array.isArray(value)) return "a list";
  return typeof value === "object" ? "a mapping" : `a ${typeof value}`;
}

/**
 * The one message for a bad setting: `Invalid <setting> <value>[ in <file>]: [<problem>; ]expected
 * <what>[, for example <example>]`.
 *
 * @example
 * ```ts
 * import { invalidSetting } from "./errors.ts";
 * invalidSetting({
 *   setting: "--max-retries",
 *   value: "x",
 *   expected: "a whole number, 0 or more (0 = retry forever)",
 *   example: "--max-retries 5",
 * }).message;
 * // "Invalid --max-retries 'x': expected a whole number, 0 or more (0 = retry forever), for example --max-retries 5"
 * ```
 */
export function invalidSetting(what: InvalidSetting, options?: ErrorOptions): ConfigError {
  const { setting, secret = false, typed = false, source, problem, expected, example } = what;
  let head = `Invalid ${setting}`;
  if (secret) head += " (value hidden)";
  else if (Object.hasOwn(what, "value")) {
    const { value } = what;
    const scalar = ["string", "number", "boolean"].includes(typeof value);
    // A list or mapping is named by its kind, in parentheses: "Invalid gateway (a list) in …"
    head += scalar
      ? ` ${describeValue(value, { typed })}`
      : ` (${value === null || value === undefined ? "empty" : describeValue(value)})`;
  }
  if (source !== undefined) head += ` in ${source}`;
  const parts: string[] = [];
  if (problem !== undefined) parts.push(problem);
  if (expected !== undefined) {
    parts.push(`expected ${expected}${example === undefined ? "" : `, for example ${example}`}`);
  } else if (example !== undefined) {
    parts.push(`for example ${example}`);
  }
  return new ConfigError(`${head}: ${parts.join("; ")}`, options);
}

/** What could not be read, for {@link unreadableFile}. */
export interface UnreadableFile {
  /** What the file is: `token file`, `config file`, `TLS certificate`. */
  what: string;
  path: string;
  /** The setting that named it: `--token-file`, or `token_file in /etc/x.yaml`. */
  setting: string;
  /** The error of the read. */
  cause: unknown;
}

/**
 * The one message for a file named by a setting that cannot be read:
 * `Cannot read <what> <path> (from <setting>): <reason>; check the path and its permissions`.
 *
 * @example
 * ```ts
 * import { unreadableFile } from "./errors.ts";
 * unreadableFile({
 *   what: "tokens file",
 *   path: "/x",
 *   setting: "--tokens-file",
 *   cause: new Deno.errors.NotFound("No such file or directory (os error 2): readfile '/x'"),
 * }).message;
 * // "Cannot read tokens file /x (from --tokens-file): No such file or directory (os error 2); check the path and its permissions"
 * ```
 */
export function unreadableFile(file: UnreadableFile): ConfigError {
  const { what, path, setting, cause } = file;
  // Deno adds `: readfile '<path>'`, which the message already says
  const reason = (cause instanceof Error ? cause.message : String(cause))
    .replace(/: [a-z]+ '.*'$/s, "");
  return new ConfigError(
    `Cannot read ${what} ${path} (from ${setting}): ${reason}; check the path and its permissions`,
    { cause },
  );
}
