// What main.ts hands every command: the outside world (environment, files, stdout, logging, signals),
// injected so that lib/ never reaches for Deno.args, Deno.env or Deno.exit and tests control it all.

import type { LogLevel } from "@logtape/logtape";
import type { LogFormat } from "./log.ts";

/**
 * The context of one command run. A command resolves when it finished cleanly (exit code 0) and throws
 * a typed error otherwise; main.ts alone maps outcomes to exit codes.
 */
export interface CommandContext {
  /** Aborted by the first SIGINT or SIGTERM: shut down cleanly and resolve. */
  signal: AbortSignal;
  /** Reads an environment variable; undefined when unset. */
  env: (name: string) => string | undefined;
  /** Reads a whole file as UTF-8 text. */
  readTextFile: (path: string) => Promise<string>;
  /** Writes text to stdout as is (help, version, the demo's report, a new token). */
  stdout: (text: string) => void;
  /** Writes text to stderr as is: notes for a person that are not log records. */
  stderr: (text: string) => void;
  /** Configures logging once the command knows its level and format; main.ts resets it at exit. */
  setupLogging: (options: { level: LogLevel; format: LogFormat }) => Promise<void>;
  /** Registers what a second signal does before the process exits 130: kill child processes. */
  onHardStop: (stop: () => void) => void;
  /** Subscribes to reload requests (SIGHUP where there is one); returns the removal. */
  subscribeReload?: (listener: () => void) => () => void;
}

/** A command: arguments after its name, and the context. Resolves on a clean end (exit code 0). */
export type Command = (args: string[], context: CommandContext) => Promise<void>;
