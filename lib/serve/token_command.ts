// `mcp-rproxy token new`: adds a random 256-bit token to serve's tokens file (keeping what is there), prints
// it once, and can put the bare token in a new owner-only file for connect's `--token-file`.

import { parseFlags, wantsHelp } from "../util/cli_flags.ts";
import type { CommandContext } from "../util/command.ts";
import { ConfigError, invalidSetting } from "../util/errors.ts";
import { TokenFileError } from "./errors.ts";
import { type Role, ROLES } from "./identity.ts";
import {
  DEFAULT_ROLES,
  formatTokenEntry,
  parseTokensFile,
  type TokenEntry,
  tokensFileFormat,
} from "./tokens_file.ts";

/** Where `token new` writes when `--file` is not given: the name the README's Quick start uses. */
export const DEFAULT_TOKENS_FILE = "tokens.yaml";

/** Random bytes in a token: 256 bits, beyond guessing. */
const TOKEN_BYTES = 32;

/**
 * Marks our tokens for secret scanners and people, and keeps a token a plain YAML string: base64url alone
 * could read as a number or start with `-`.
 */
const TOKEN_PREFIX = "mrp_";

/** Longest owner name accepted: owners are echoed in logs and the sessions API. */
const MAX_OWNER_LENGTH = 256;

/** Written at the top of a tokens file that `token new` creates. */
const NEW_FILE_HEADER =
  `# mcp-rproxy serve tokens: TOKEN: {owner: OWNER, roles: [connect, client, admin]}
# A running 'mcp-rproxy serve --tokens-file' re-reads this file on SIGHUP.
`;

/**
 * Usage of `mcp-rproxy token`.
 *
 * @example
 * ```ts
 * import { tokenHelpText } from "./token_command.ts";
 * tokenHelpText().includes("token new"); // true
 * ```
 */
export function tokenHelpText(): string {
  return `Usage: mcp-rproxy token new --owner OWNER [options]

Manages the tokens file of 'mcp-rproxy serve'.

Commands:
  new       add a random 256-bit token to the tokens file and print it once

Run 'mcp-rproxy token new --help' for its options.
`;
}

/**
 * Usage of `mcp-rproxy token new`.
 *
 * @example
 * ```ts
 * import { tokenNewHelpText } from "./token_command.ts";
 * tokenNewHelpText().includes("--owner"); // true
 * ```
 */
export function tokenNewHelpText(): string {
  return `Usage: mcp-rproxy token new --owner OWNER [--role ROLES] [--file FILE] [--out FILE]

Adds a random 256-bit token to serve's tokens file and prints the token once on stdout (messages go to
stderr). Existing entries and comments are kept; a missing file is created readable only by you (mode
600). A running 'mcp-rproxy serve' picks the new token up on SIGHUP (kill -HUP <pid>), no restart needed.

Options:
  --owner OWNER     who the token belongs to: its links, servers and sessions (required). A JWT user's
                    owner is jwt:<email or sub>; naming one here lets this token act for that user
  --role ROLES      what the token may do, comma-separated or repeated: ${ROLES.join(", ")}
                    (default ${DEFAULT_ROLES.join(",")})
  --file FILE       the tokens file (default ${DEFAULT_TOKENS_FILE})
  --out FILE        also write the bare token to FILE, a new file readable only by you (mode 600),
                    for 'mcp-rproxy connect --token-file FILE'; an existing FILE is never overwritten
  -h, --help        show this help and exit

Example:
  mcp-rproxy token new --owner alice --role connect --out alice.token
`;
}

/** What `token new` was asked to do, validated. */
interface NewTokenRequest {
  owner: string;
  roles: Role[];
  file: string;
  out?: string;
}

const NEW_FLAGS = {
  help: { type: "boolean", short: "h" },
  owner: { type: "string" },
  role: { type: "string", multiple: true },
  file: { type: "string" },
  out: { type: "string" },
} as const;

function parseNewArgs(args: string[]): NewTokenRequest {
  const { values } = parseFlags(args, { command: "token new", flags: NEW_FLAGS });
  const owner = values.owner?.trim();
  if (owner === undefined || owner === "") {
    throw new ConfigError(
      `Missing --owner: say who the token belongs to, for example --owner alice`,
    );
  }
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(owner) || owner.length > MAX_OWNER_LENGTH) {
    throw invalidSetting({
      setting: "--owner",
      value: owner,
      expected: `at most ${MAX_OWNER_LENGTH} characters without control characters`,
      example: "--owner alice",
    });
  }
  const words = (values.role ?? []).flatMap((text) => text.split(",")).map((r) => r.trim());
  for (const word of words) {
    if (!(ROLES as readonly string[]).includes(word)) {
      throw invalidSetting({
        setting: "--role",
        value: word,
        expected: `${ROLES.join(", ")}, comma-separated`,
        example: "--role connect,client",
      });
    }
  }
  const roles = words.length === 0 ? [...DEFAULT_ROLES] : [...new Set(words as Role[])];
  const file = values.file?.trim() || DEFAULT_TOKENS_FILE;
  const out = values.out?.trim();
  if (out === "") {
    throw invalidSetting({
      setting: "--out",
      value: out,
      expected: "a file name",
      example: "--out alice.token",
    });
  }
  return { owner, roles, file, ...(out === undefined ? {} : { out }) };
}

/**
 * A new token: {@link TOKEN_PREFIX} and 256 random bits in base64url.
 *
 * @example
 * ```ts
 * import { newToken } from "./token_command.ts";
 * /^mrp_[A-Za-z0-9_-]{43}$/.test(newToken()); // true
 * ```
 */
export function newToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(TOKEN_BYTES));
  const base64 = btoa(String.fromCharCode(...bytes));
  return TOKEN_PREFIX + base64.replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** The tokens file's text, or undefined when it does not exist yet. */
async function readTokensFile(file: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** A message for a failed file operation that names the file and, where it helps, the fix. */
function fileProblem(what: string, file: string, error: unknown): string {
  const why = error instanceof Deno.errors.PermissionDenied
    ? "permission denied; check the file's owner and mode"
    : error instanceof Deno.errors.NotFound
    ? "its directory does not exist"
    : error instanceof Deno.errors.IsADirectory
    ? "it is a directory; name a file"
    : (error as Error).message;
  return `Cannot ${what} ${JSON.stringify(file)}: ${why}`;
}

/** Adds the token; returns the messages for stderr. */
async function addToken(request: NewTokenRequest, token: string): Promise<string[]> {
  const { owner, roles, file, out } = request;
  const notes: string[] = [];
  const existing = await readTokensFile(file).catch((error) => {
    throw new TokenFileError(fileProblem("read --file", file, error), { cause: error });
  });
  const entry: TokenEntry = { token, owner, roles };
  let addition: string;
  try {
    if (existing !== undefined) parseTokensFile(existing);
    const format = existing === undefined ? "empty" : tokensFileFormat(existing);
    const separator = existing === undefined || existing === "" || existing.endsWith("\n")
      ? ""
      : "\n";
    addition = (existing === undefined ? NEW_FILE_HEADER : separator) +
      formatTokenEntry(entry, format);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    throw new ConfigError(
      `Cannot add a token to ${JSON.stringify(file)}: ${
        existing !== undefined && /^(Entry|Line) \d+:/.test(error.message)
          ? `it is not a valid tokens file (${error.message}); fix it, or pass another --file`
          : error.message
      }`,
      { cause: error },
    );
  }
  const added = parseTokensFile((existing ?? "") + addition).at(-1);
  if (added?.token !== token || added.owner !== owner || added.roles.join() !== roles.join()) {
    throw new Error(
      `The entry written for ${JSON.stringify(file)} would not read back; not written`,
    );
  }
  if (existing !== undefined) {
    const mode = (await Deno.stat(file)).mode;
    if (mode !== null && (mode & 0o077) !== 0) {
      notes.push(
        `Warning: ${file} can be read by other users (mode ${
          (mode & 0o777).toString(8)
        }); run chmod 600 ${file}`,
      );
    }
  }

  // The --out file first: it must be new, and failing there must leave the tokens file untouched.
  if (out !== undefined) {
    try {
      await Deno.writeTextFile(out, `${token}\n`, { createNew: true, mode: 0o600 });
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) {
        throw new ConfigError(
          `Refusing to overwrite --out ${
            JSON.stringify(out)
          }: it exists; name a new file (nothing was added to ${file})`,
          { cause: error },
        );
      }
      throw new TokenFileError(
        `${fileProblem("create --out", out, error)} (nothing was added to ${file})`,
        { cause: error },
      );
    }
  }
  try {
    // Appending keeps every byte already there (comments included) and the file's owner and mode; a new
    // file is created owner-only, and createNew never clobbers one that appeared meanwhile.
    await Deno.writeTextFile(
      file,
      addition,
      existing === undefined ? { createNew: true, mode: 0o600 } : { append: true },
    );
  } catch (error) {
    if (out !== undefined) await Deno.remove(out).catch(() => {});
    throw new TokenFileError(fileProblem("write --file", file, error), { cause: error });
  }
  notes.unshift(
    `${existing === undefined ? "Created" : "Added a token to"} ${file}${
      existing === undefined ? " (mode 600) with a token" : ""
    } for owner ${owner}, roles ${roles.join(", ")}${
      out === undefined ? "" : `; the bare token is in ${out} (mode 600)`
    }. A running serve picks it up on SIGHUP. It is shown once:`,
  );
  return notes;
}

/**
 * Runs `mcp-rproxy token` with the arguments after `token`: prints the new token on stdout and what was
 * done on stderr, or help.
 *
 * @throws {ConfigError} Bad flags, an unknown subcommand, a tokens file that cannot hold the entry, or
 * an existing --out file (exit code 2).
 * @throws {TokenFileError} A file cannot be read or written (exit code 1).
 *
 * @example
 * ```ts ignore
 * await tokenCommand(["new", "--owner", "alice", "--file", "tokens.yaml"], context);
 * ```
 */
export async function tokenCommand(args: string[], context: CommandContext): Promise<void> {
  const [subcommand, ...rest] = args;
  if (subcommand === undefined) {
    throw new ConfigError("Missing command: expected 'new'; run 'mcp-rproxy token --help'");
  }
  if (["--help", "-h", "help"].includes(subcommand)) {
    context.stdout(tokenHelpText());
    return;
  }
  if (subcommand !== "new") {
    throw new ConfigError(
      `Unknown command 'token ${subcommand}': expected 'new'; run 'mcp-rproxy token --help'`,
    );
  }
  if (wantsHelp(rest)) {
    context.stdout(tokenNewHelpText());
    return;
  }
  const request = parseNewArgs(rest);
  const token = newToken();
  const notes = await addToken(request, token);
  for (const note of notes) context.stderr(`${note}\n`);
  context.stdout(`${token}\n`);
}
