// The tokens file of `serve`: its two formats (one token per line, or a YAML map), parsed into entries and
// written one entry at a time (`mcp-rproxy token new`).

import { load, YAMLException } from "js-yaml";
import { isObject } from "../util/json_object.ts";
import { type Role, ROLES } from "./identity.ts";

/** One entry of a tokens file. */
export interface TokenEntry {
  token: string;
  owner: string;
  roles: Role[];
}

/** Roles of an entry that names none: what `mcp-rproxy connect` and an MCP client need. */
export const DEFAULT_ROLES: readonly Role[] = ["connect", "client"];

/** Owner of tokens listed without one. */
export const DEFAULT_OWNER = "default";

/**
 * The format of a tokens file's text: `yaml` (a map), `lines` (one token per line), or `empty` (no entry
 * yet, only blank lines and comments), which either format may extend.
 */
export type TokensFileFormat = "yaml" | "lines" | "empty";

function loadYaml(text: string): unknown {
  try {
    return load(text);
  } catch {
    return undefined; // not YAML: the lines format
  }
}

/**
 * The refusal of a file whose line `index` starts a YAML map entry (`TOKEN: …`) though the whole is not
 * valid YAML: read as lines, `TOKEN:` would be the token. Names the parser's reason and line, never the
 * text (js-yaml's message quotes it).
 */
function notYaml(text: string, index: number): SyntaxError {
  let why = "";
  try {
    load(text);
  } catch (error) {
    if (error instanceof YAMLException) {
      why = `${error.mark === undefined ? "" : `line ${error.mark.line + 1}: `}${error.reason}; `;
    }
  }
  return new SyntaxError(
    `Line ${
      index + 1
    }: reads as a YAML map entry ('TOKEN: OWNER'), but the file is not valid YAML (${why}fix it)`,
  );
}

/**
 * Tells which format a tokens file is in, the same way {@link parseTokensFile} decides.
 *
 * @example
 * ```ts
 * import { tokensFileFormat } from "./tokens_file.ts";
 * tokensFileFormat("tok-1: alice\n"); // "yaml"
 * tokensFileFormat("tok-1 alice\n"); // "lines"
 * tokensFileFormat("# nothing yet\n"); // "empty"
 * ```
 */
export function tokensFileFormat(text: string): TokensFileFormat {
  if (isObject(loadYaml(text))) return "yaml";
  return text.split(/\r?\n/).some((line) => line.trim() !== "" && !line.trim().startsWith("#"))
    ? "lines"
    : "empty";
}

function parseRoles(value: unknown, where: string): Role[] {
  if (value === undefined) return [...DEFAULT_ROLES];
  if (!Array.isArray(value) || value.length === 0) {
    throw new SyntaxError(`${where}: 'roles' must be a non-empty list of ${ROLES.join(", ")}`);
  }
  return value.map((role) => {
    if (typeof role !== "string" || !(ROLES as readonly string[]).includes(role)) {
      throw new SyntaxError(
        `${where}: unknown role ${JSON.stringify(role)}; expected one of ${ROLES.join(", ")}`,
      );
    }
    return role as Role;
  });
}

/**
 * Parses a tokens file. Two formats:
 *
 * - Lines: one token per line, optionally followed by whitespace and an owner (default owner `default`);
 *   blank lines and lines starting with `#` are skipped. Such tokens have the roles `connect` and `client`.
 * - A YAML map from token to owner (`tok-abc: alice`) or to `{owner, roles}`
 *   (`tok-abc: {owner: alice, roles: [connect]}`).
 *
 * Owners are taken literally: an owner written `jwt:alice` is the JWT identity `alice` (see
 * `createTokenStore`), which is how an operator lets a static token act for a JWT user on purpose.
 *
 * Throws a {@link SyntaxError} naming the problem (never the token).
 *
 * @example
 * ```ts
 * import { parseTokensFile } from "./tokens_file.ts";
 * parseTokensFile("tok-1: alice\ntok-2: {owner: bob, roles: [client]}\n").length; // 2
 * ```
 */
export function parseTokensFile(text: string): TokenEntry[] {
  const document = loadYaml(text);
  const entries: TokenEntry[] = [];
  if (isObject(document)) {
    for (const [token, value] of Object.entries(document)) {
      const where = `Entry ${entries.length + 1}`;
      if (token.trim() === "") throw new SyntaxError(`${where}: the token is empty`);
      if (typeof value === "string" && value.trim() !== "") {
        entries.push({ token, owner: value.trim(), roles: [...DEFAULT_ROLES] });
      } else if (isObject(value) && typeof value.owner === "string" && value.owner.trim() !== "") {
        entries.push({ token, owner: value.owner.trim(), roles: parseRoles(value.roles, where) });
      } else {
        throw new SyntaxError(
          `${where}: the value must be an owner name or {owner, roles}; got ${
            value === null ? "nothing" : typeof value
          }`,
        );
      }
    }
    return entries;
  }
  const lines = text.split(/\r?\n/);
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const [token = "", owner, ...rest] = line.split(/\s+/);
    if (token.endsWith(":")) throw notYaml(text, index);
    if (token === "-") {
      // A YAML list of tokens would make "-" a token, for an owner named after the real one.
      throw new SyntaxError(
        `Line ${
          index + 1
        }: a YAML list item ('- …') is no entry; write one 'TOKEN OWNER' per line, or a YAML map of 'TOKEN: OWNER'`,
      );
    }
    if (rest.length > 0) {
      throw new SyntaxError(
        `Line ${index + 1}: expected 'TOKEN' or 'TOKEN OWNER', found ${rest.length + 2} words`,
      );
    }
    entries.push({ token, owner: owner ?? DEFAULT_OWNER, roles: [...DEFAULT_ROLES] });
  }
  return entries;
}

function sameRoles(a: readonly Role[], b: readonly Role[]): boolean {
  return a.length === b.length && a.every((role) => b.includes(role));
}

/**
 * The text of one entry in `format` (`empty` files get YAML, the format that can hold roles), ending in a
 * newline. Throws a {@link SyntaxError} when the lines format cannot hold the entry (roles other than the
 * default, or an owner with whitespace).
 *
 * @example
 * ```ts
 * import { formatTokenEntry } from "./tokens_file.ts";
 * formatTokenEntry({ token: "tok-1", owner: "alice", roles: ["client"] }, "yaml");
 * // 'tok-1: {owner: "alice", roles: [client]}\n'
 * ```
 */
export function formatTokenEntry(entry: TokenEntry, format: TokensFileFormat): string {
  if (format === "lines") {
    if (!sameRoles(entry.roles, DEFAULT_ROLES)) {
      throw new SyntaxError(
        `the one-token-per-line format gives every token the roles ${
          DEFAULT_ROLES.join(", ")
        } and cannot hold others; convert the file to YAML ('TOKEN: {owner: O, roles: [...]}') or leave out --role`,
      );
    }
    if (/\s/.test(entry.owner)) {
      throw new SyntaxError(
        `the one-token-per-line format cannot hold an owner with spaces (${
          JSON.stringify(entry.owner)
        }); convert the file to YAML or pick another owner`,
      );
    }
    return `${entry.token} ${entry.owner}\n`;
  }
  // JSON strings are valid YAML double-quoted scalars: any owner round-trips, `#` and `: ` included.
  return `${entry.token}: {owner: ${JSON.stringify(entry.owner)}, roles: [${
    entry.roles.join(", ")
  }]}\n`;
}
