// The grammar of one `--server` spec: comma-separated key=value pairs, a value in double quotes when it
// holds a comma or a quote. Read here into the same shape as a `servers:` entry of the config file, so
// that one set of rules (server_entries.ts) checks both.
//
// Why this grammar: one shell word per server keeps the flag repeatable and each server in one place;
// named keys say what each part is and may come in any order (a positional `name:command` is ambiguous
// with URLs, which hold colons); it is the grammar of `docker run --mount type=bind,source=…`, which many
// users know; and JSON would need quoting that no one types correctly in a shell.

import { closest } from "../util/did_you_mean.ts";
import { ConfigError } from "../util/errors.ts";

/** Keys of a `--server` spec, in the order help lists them. */
export const SERVER_SPEC_KEYS = [
  "name",
  "description",
  "stdio",
  "cwd",
  "env",
  "http",
  "sse",
  "header",
  "header-env",
  "header-file",
  "bearer-env",
  "bearer-file",
  "cert",
  "timeout",
  "isolation",
  "max-instances",
  "instance-idle-timeout",
] as const;

type SpecKey = typeof SERVER_SPEC_KEYS[number];

/** Keys that may be given more than once. */
const REPEATABLE: ReadonlySet<SpecKey> = new Set(["env", "header", "header-env", "header-file"]);

/** One key=value pair of a spec, its value unquoted. */
interface Pair {
  key: string;
  value: string;
}

/** The error for a spec; never quotes the spec (a header value in it may be a secret). */
function specError(where: string, problem: string): ConfigError {
  return new ConfigError(
    `Invalid ${where}: ${problem}; write it as --server name=NAME,stdio="CMD ARGS" (or http=URL, sse=URL), quoting a value that holds a comma, and the whole spec in single quotes when the value's double quotes must survive the shell`,
  );
}

/** Splits a spec into its pairs, unquoting double-quoted values (`\"` and `\\` inside). */
function pairsOf(text: string, where: string): Pair[] {
  const pairs: Pair[] = [];
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf("=", i);
    const comma = text.indexOf(",", i);
    if (eq === -1 || (comma !== -1 && comma < eq)) {
      const item = text.slice(i, comma === -1 ? undefined : comma).trim();
      throw specError(
        where,
        item === ""
          ? "it has an empty item (two commas in a row?)"
          : `'${item.slice(0, 40)}' is not key=value`,
      );
    }
    const key = text.slice(i, eq).trim();
    i = eq + 1;
    let value = "";
    if (text[i] === '"') {
      i++;
      let closed = false;
      while (i < text.length) {
        const c = text[i]!;
        if (c === "\\" && (text[i + 1] === '"' || text[i + 1] === "\\")) {
          value += text[i + 1];
          i += 2;
        } else if (c === '"') {
          closed = true;
          i++;
          break;
        } else {
          value += c;
          i++;
        }
      }
      if (!closed) throw specError(where, `the quoted value of '${key}' has no closing quote`);
      if (i < text.length && text[i] !== ",") {
        throw specError(where, `a comma must follow the quoted value of '${key}'`);
      }
    } else {
      const end = text.indexOf(",", i);
      value = text.slice(i, end === -1 ? undefined : end);
      i = end === -1 ? text.length : end;
    }
    i++; // the comma
    pairs.push({ key, value });
  }
  return pairs;
}

/** `NAME: VALUE` (a header) or `NAME=VALUE` (an env entry) split at its first separator. */
function splitAt(
  value: string,
  separator: ":" | "=",
  what: { key: string; where: string; sample: string },
): [string, string] {
  const at = value.indexOf(separator);
  if (at <= 0) {
    throw specError(
      what.where,
      `${what.key} needs ${what.sample} (got ${
        value === "" ? "nothing" : at < 0 ? `no '${separator}'` : `no name before a '${separator}'`
      })`,
    );
  }
  return [value.slice(0, at).trim(), value.slice(at + 1).trim()];
}

/**
 * Reads one `--server` spec (the `index`-th, from 1) into a `servers:` entry: `stdio` becomes `command`
 * (a string, split like a POSIX shell later), `env=K=V` pairs an `env` mapping, the `header*` keys a
 * `headers` mapping, `bearer-*` the `bearer_*` keys.
 *
 * @throws {ConfigError} For a pair that is not key=value, an unknown or repeated key, or an unclosed
 * quote. Messages name keys, never values.
 *
 * @example
 * ```ts
 * import { parseServerSpec } from "./server_flag.ts";
 * parseServerSpec('name=git,stdio="uvx mcp-server-git",env=GIT_DIR=/srv/repo', 1);
 * // { name: "git", command: "uvx mcp-server-git", env: { GIT_DIR: "/srv/repo" } }
 * ```
 */
export function parseServerSpec(text: string, index: number): Record<string, unknown> {
  const where = `--server #${index}`;
  if (text.trim() === "") throw specError(where, "it is empty");
  const entry: Record<string, unknown> = {};
  const seen = new Set<string>();
  const headers: Record<string, unknown> = {};
  const env: Record<string, string> = {};
  for (const { key, value } of pairsOf(text, where)) {
    if (!(SERVER_SPEC_KEYS as readonly string[]).includes(key)) {
      const near = closest(key, SERVER_SPEC_KEYS);
      throw specError(
        where,
        `unknown key '${key.slice(0, 40)}'${
          near === undefined ? "" : ` (did you mean '${near}'?)`
        }; keys are ${SERVER_SPEC_KEYS.join(", ")}`,
      );
    }
    const specKey = key as SpecKey;
    if (seen.has(specKey) && !REPEATABLE.has(specKey)) {
      throw specError(where, `key '${key}' is given twice`);
    }
    seen.add(specKey);
    switch (specKey) {
      case "stdio":
        entry.command = value;
        break;
      case "env": {
        const [name, envValue] = splitAt(value, "=", { key, where, sample: "NAME=VALUE" });
        if (name in env) throw specError(where, `env ${name} is given twice`);
        env[name] = envValue;
        break;
      }
      case "header":
      case "header-env":
      case "header-file": {
        const [name, headerValue] = splitAt(value, ":", {
          key,
          where,
          sample: key === "header"
            ? "'Name: value'"
            : `'Name: ${key === "header-env" ? "VARIABLE" : "PATH"}'`,
        });
        if (Object.keys(headers).some((h) => h.toLowerCase() === name.toLowerCase())) {
          throw specError(where, `header ${name} is given twice`);
        }
        headers[name] = key === "header"
          ? headerValue
          : key === "header-env"
          ? { env: headerValue }
          : { file: headerValue };
        break;
      }
      default:
        entry[specKey.replaceAll("-", "_")] = value;
    }
  }
  if (Object.keys(env).length > 0) entry.env = env;
  if (Object.keys(headers).length > 0) entry.headers = headers;
  return entry;
}
