// Flag parsing shared by every command: `node:util` parseArgs in strict mode, with its errors turned
// into messages that name the flag, say what is wrong and how to fix it (and suggest a near flag).

import { parseArgs, type ParseArgsConfig } from "node:util";
import { closest } from "./did_you_mean.ts";
import { ConfigError } from "./errors.ts";

/** The flag table of a command, as `node:util` parseArgs takes it. */
export type FlagTable = NonNullable<ParseArgsConfig["options"]>;

/** Options of {@link parseFlags}. */
export interface ParseFlagsOptions<T extends FlagTable> {
  /** The command, for "run 'mcp-rproxy <command> --help'". */
  command: string;
  /** The flags. */
  flags: T;
  /** Whether words that are not flags are allowed (they are checked by the caller). Default false. */
  positionals?: boolean;
}

/**
 * True when `-h` or `--help` appears before any `--`: help is shown even next to a mistake.
 *
 * @example
 * ```ts
 * import { wantsHelp } from "./cli_flags.ts";
 * wantsHelp(["--bogus", "--help"]); // true
 * wantsHelp(["--", "server", "--help"]); // false
 * ```
 */
export function wantsHelp(args: readonly string[]): boolean {
  for (const arg of args) {
    if (arg === "--") return false;
    if (arg === "--help" || arg === "-h") return true;
  }
  return false;
}

/**
 * Parses `args` against `flags` in strict mode, with tokens (to find `--`).
 *
 * @throws {ConfigError} For an unknown flag (suggesting the nearest), a missing value, a value given to a
 * flag that takes none, or a stray word when positionals are not allowed. The message never repeats
 * a flag's value.
 *
 * @example
 * ```ts
 * import { parseFlags } from "./cli_flags.ts";
 * const { values } = parseFlags(["--port", "-1"], {
 *   command: "demo",
 *   flags: { port: { type: "string" } },
 * });
 * values.port; // "-1"
 * ```
 */
export function parseFlags<T extends FlagTable>(args: string[], options: ParseFlagsOptions<T>) {
  const { flags, positionals = false } = options;
  try {
    return parseArgs({
      args: joinNegativeNumbers(args, flags),
      options: flags,
      strict: true,
      allowPositionals: positionals,
      tokens: true,
    });
  } catch (error: unknown) {
    throw flagError(error, options);
  }
}

/**
 * Rewrites `--max-retries -1` as `--max-retries=-1`: parseArgs would take `-1` for an option and
 * report the flag as missing its value, while the user plainly gave a (negative) number.
 */
function joinNegativeNumbers(args: string[], flags: FlagTable): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") return [...out, ...args.slice(i)];
    const next = args[i + 1];
    const option = arg.startsWith("--") ? flags[arg.slice(2)] : undefined;
    if (option?.type === "string" && next !== undefined && /^-\.?\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

function flagError<T extends FlagTable>(
  error: unknown,
  options: ParseFlagsOptions<T>,
): ConfigError {
  const { command, flags } = options;
  const help = `run 'mcp-rproxy ${command} --help' for the list`;
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  const flag = /'(-[^' =]*)/.exec(message)?.[1] ?? "";
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    if (!flag.startsWith("--")) {
      const shorts = Object.entries(flags).flatMap(([name, option]) =>
        option.short === undefined ? [] : [`-${option.short} (--${name})`]
      );
      const only = shorts.length === 1
        ? `the only short option is ${shorts[0]}`
        : `the only short options are ${shorts.join(" and ")}`;
      return new ConfigError(`Unknown option '${flag}': ${only}; ${help}`, { cause: error });
    }
    const close = closest(flag, Object.keys(flags).map((name) => `--${name}`));
    const advice = close === undefined ? help : `did you mean ${close}? R${help.slice(1)}`;
    return new ConfigError(`Unknown option '${flag}': ${advice}`, { cause: error });
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
  if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
    const word = /'([^']*)'/.exec(message)?.[1] ?? "";
    return new ConfigError(`Unexpected argument '${word}': ${command} takes only flags; ${help}`, {
      cause: error,
    });
  }
  return new ConfigError(`Cannot parse the arguments of ${command}: ${message}; ${help}`, {
    cause: error,
  });
}
