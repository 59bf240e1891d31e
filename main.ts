// The edge of the program: reads the arguments and the environment, installs signal listeners, runs one
// command, and maps its outcome to the one exit code table. Nothing under lib/ touches Deno.args,
// Deno.env or Deno.exit.

import {
  AuthRefusedError,
  EvictedError,
  RetriesExhaustedError,
  ServerStartError,
} from "./lib/connect/errors.ts";
import { UnhealthyError } from "./lib/healthcheck/command.ts";
import { StateInUseError, TokenFileError } from "./lib/serve/errors.ts";
import type { Command, CommandContext } from "./lib/util/command.ts";
import { closest } from "./lib/util/did_you_mean.ts";
import { ConfigError, ListenError } from "./lib/util/errors.ts";
import { readInterruptKeys } from "./lib/util/interrupt_keys.ts";
import { VERSION } from "./lib/util/version.ts";
// Every command is imported when chosen: `demo` pulls in the MCP SDK, and loading it for `connect` cost
// ~70 ms of start-up and ~23 MiB of RSS; `connect` spawns its servers before it loads logging (LogTape),
// its link and its tunnel (docs/performance.md). So is the logging module: by the command that sets it up.
type Logging = typeof import("./lib/util/log.ts");

/** Process exit codes, documented in the README; {@link exitCodeFor} is the only map to them. */
export const ExitCode = {
  /** Clean shutdown (signal, or the session ended normally); also after help and version. */
  Ok: 0,
  /**
   * Runtime failure: retries exhausted, the local server cannot start, cannot listen, the state file is
   * held by another process, unhealthy.
   */
  Failure: 1,
  /** Bad input: flags, environment, config file, a file they name, or a missing permission. */
  Usage: 2,
  /** The gateway refused the credentials (HTTP 401/403 or close 1008): retrying will not help. */
  AuthRefused: 3,
  /** The gateway evicted the session (close 4001): an operator asked this client to go away. */
  Evicted: 4,
  /** A second signal arrived during shutdown. */
  Interrupted: 130,
} as const;

const COMMANDS = ["connect", "serve", "demo", "healthcheck", "token"] as const;
type CommandName = typeof COMMANDS[number];

const TOP_HELP =
  `mcp-rproxy ${VERSION}: put a local stdio MCP server on a remote gateway, without opening a port

Usage:
  mcp-rproxy [connect] --gateway URL [options] -- COMMAND [ARGS...]
  mcp-rproxy serve [--listen HOST:PORT] [options]
  mcp-rproxy demo [--port N] [--server "COMMAND"]
  mcp-rproxy healthcheck [URL]
  mcp-rproxy token new --owner OWNER [--role ROLES] [--file FILE] [--out FILE]

Commands:
  connect       (default) start a local MCP server and tunnel it to a gateway
  serve         run our own gateway: accept tunnels, serve them to MCP clients over Streamable HTTP
  demo          run serve + connect + an MCP client on loopback, needing nothing else
  healthcheck   exit 0 when a health URL answers 2xx, else 1 (container HEALTHCHECK without curl)
  token         add a token to serve's tokens file ('token new'); serve reloads it on SIGHUP

Options:
  -h, --help      show this help (or, after a command, that command's help) and exit
  -V, --version   show the version and exit

Run 'mcp-rproxy <command> --help' for the options of a command.
Exit codes: 0 clean shutdown; 1 runtime failure; 2 bad input or a missing permission;
3 the gateway refused the credentials; 4 the gateway evicted the session; 130 a second signal.
`;

/** The permission error behind `error`, if a permission flag is missing or narrowed too far. */
function permissionError(error: unknown): Error | undefined {
  const isPermission = (e: unknown): e is Error =>
    e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied;
  if (isPermission(error)) return error;
  const cause = (error as { cause?: unknown } | null)?.cause;
  return isPermission(cause) ? cause : undefined;
}

/**
 * The exit code of a command's outcome: `undefined` for a clean end, else the error it threw. The one
 * place outcomes become exit codes.
 *
 * @example
 * ```ts
 * import { ExitCode, exitCodeFor } from "./main.ts";
 * exitCodeFor(undefined) === ExitCode.Ok; // true
 * ```
 */
export function exitCodeFor(error: unknown): number {
  if (error === undefined) return ExitCode.Ok;
  if (error instanceof ConfigError) return ExitCode.Usage;
  if (error instanceof AuthRefusedError) return ExitCode.AuthRefused;
  if (error instanceof EvictedError) return ExitCode.Evicted;
  // A permission narrowed too far is an input to fix, like a bad flag; but a port below 1024 refused by
  // the OS (PermissionDenied inside ListenError) is the address's fault.
  if (!(error instanceof ListenError) && permissionError(error) !== undefined) {
    return ExitCode.Usage;
  }
  return ExitCode.Failure;
}

/** Says which permission flag is missing instead of a stack trace. */
function permissionHint(error: Error): string {
  const message = error.message;
  const flag = /--allow-[a-z-]+/.exec(message)?.[0];
  if (flag === undefined) return `missing permission: ${message}`;
  const target = /"([^"]+)"/.exec(message)?.[1];
  return `missing permission: ${
    message.replace(/, run again with.*$/s, "")
  }; run again with ${flag}${target ? `=${target}` : ""} (see docs/operations.md, "Permissions")`;
}

/** The line that reports a failed command, and the event name it is logged with. */
function describeFailure(error: unknown): { event: string; message: string } {
  if (error instanceof AuthRefusedError) {
    return { event: "auth_refused", message: `${error.message}; not retrying (exit code 3)` };
  }
  if (error instanceof EvictedError) {
    return { event: "evicted", message: `${error.message}; not reconnecting (exit code 4)` };
  }
  if (error instanceof ConfigError) return { event: "bad_input", message: error.message };
  const expected = error instanceof RetriesExhaustedError || error instanceof ServerStartError ||
    error instanceof ListenError || error instanceof UnhealthyError ||
    error instanceof TokenFileError || error instanceof StateInUseError;
  if (expected) return { event: "fatal", message: error.message };
  const permission = permissionError(error);
  if (permission !== undefined) {
    return { event: "missing_permission", message: permissionHint(permission) };
  }
  const text = error instanceof Error ? error.stack ?? error.message : String(error);
  return { event: "fatal", message: `unexpected error: ${text}` };
}

/**
 * A repeat of the shutdown signal within this many milliseconds of the first is the same request: `deno
 * task` forwards the terminal's Ctrl-C to its child, which the terminal also signals, so one key press
 * arrives two or three times.
 */
const REPEAT_WINDOW_MS = 500;

/**
 * First signal: graceful shutdown. Another one, after {@link REPEAT_WINDOW_MS}: stop at once. Listeners
 * matter as PID 1, where Deno ignores SIGTERM. With `keys` and a terminal on stdin, Ctrl-C is read as a
 * key (raw mode) instead: the terminal then sends no SIGINT to the wrappers the program was started
 * through (`npx` runs it under `sh -c`, and dash re-raises a SIGINT it saw once its child has exited, so
 * `npx` reported 130 for a clean stop). A typed key is never a duplicate: the second one stops at once.
 */
function installSignals(
  controller: AbortController,
  options: { hardStop: () => void; keys: boolean; logging: () => Logging | undefined },
): () => void {
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  let firstAt: number | undefined;
  let restoreTerminal = () => {};
  const interrupt = (repeatWindowMs: number) => {
    const now = performance.now();
    if (firstAt === undefined) {
      firstAt = now;
      // Before logging is set up, a record would go nowhere anyway.
      options.logging()?.logger("main").info(
        "Shutting down (send the signal again to stop at once)",
        {
          event: "shutdown",
        },
      );
      controller.abort(new Error("shutdown requested"));
    } else if (now - firstAt >= repeatWindowMs) {
      restoreTerminal();
      options.hardStop();
      Deno.exit(ExitCode.Interrupted);
    }
  };
  const handler = () => interrupt(REPEAT_WINDOW_MS);
  for (const signal of signals) Deno.addSignalListener(signal, handler);
  if (options.keys) {
    restoreTerminal = readInterruptKeys(Deno.stdin, { onInterrupt: () => interrupt(0) });
  }
  return () => {
    restoreTerminal();
    for (const signal of signals) Deno.removeSignalListener(signal, handler);
  };
}

function writeAll(stream: { writeSync(bytes: Uint8Array): number }, text: string): void {
  const bytes = new TextEncoder().encode(text);
  let written = 0;
  while (written < bytes.length) written += stream.writeSync(bytes.subarray(written));
}

async function loadCommand(name: CommandName): Promise<Command> {
  switch (name) {
    case "connect":
      return (await import("./lib/connect/command.ts")).connectCommand;
    case "serve":
      return (await import("./lib/serve/command.ts")).serveCommand;
    case "demo":
      return (await import("./lib/demo/command.ts")).demoCommand;
    case "healthcheck":
      return (await import("./lib/healthcheck/command.ts")).healthcheckCommand;
    case "token":
      return (await import("./lib/serve/token_command.ts")).tokenCommand;
  }
}

/** Picks the command: the first word when it names one, else `connect` with every argument. */
function pickCommand(args: string[]): { name: CommandName; rest: string[] } {
  const first = args[0];
  if (COMMANDS.includes(first as CommandName)) {
    return { name: first as CommandName, rest: args.slice(1) };
  }
  // connect takes no word before `--`, so a first word that is no flag was meant as a command
  if (first !== undefined && !first.startsWith("-")) {
    const close = closest(first, COMMANDS);
    throw new ConfigError(
      `Unknown command '${first}': ${
        close === undefined ? "" : `did you mean ${close}? `
      }Commands are ${COMMANDS.join(", ")}; run 'mcp-rproxy --help'`,
    );
  }
  return { name: "connect", rest: args };
}

/** Runs one command to its end; resolves with nothing, or rejects with what the command threw. */
async function run(args: string[], state: { logging?: Logging }): Promise<void> {
  const first = args[0];
  if (first === "--help" || first === "-h" || first === "help") {
    writeAll(Deno.stdout, TOP_HELP);
    return;
  }
  if (first === "demo-server") {
    // Hidden: the built-in MCP server the demo tunnels (a compiled binary has no other way to run it).
    // No signal listeners: the default action ends it when connect stops it.
    if (args[1] === "--help" || args[1] === "-h") {
      writeAll(
        Deno.stdout,
        "Usage: mcp-rproxy demo-server\n\nThe demo's built-in MCP server on stdio.\n",
      );
      return;
    }
    const { runDemoServer } = await import("./lib/demo/server.ts");
    await runDemoServer();
    return;
  }
  const { name, rest } = pickCommand(args);
  if (rest[0] === "--version" || rest[0] === "-V") {
    // The same version whatever the command (each also answers it among its flags).
    writeAll(Deno.stdout, `${VERSION}\n`);
    return;
  }
  const command = await loadCommand(name);
  const controller = new AbortController();
  let hardStop = () => {};
  // healthcheck and token are short: a Ctrl-C should end them at once, as without listeners.
  const removeSignals = name === "healthcheck" || name === "token"
    ? () => {}
    : installSignals(controller, {
      hardStop: () => hardStop(),
      keys: name === "demo",
      logging: () => state.logging,
    });
  const context: CommandContext = {
    signal: controller.signal,
    env: (variable) => Deno.env.get(variable),
    readTextFile: (path) => Deno.readTextFile(path),
    stdout: (text) => writeAll(Deno.stdout, text),
    stderr: (text) => writeAll(Deno.stderr, text),
    setupLogging: async (options) => {
      const logging = await import("./lib/util/log.ts");
      await logging.setupLogging(options);
      state.logging = logging;
    },
    onHardStop: (stop) => hardStop = stop,
    // SIGHUP re-reads serve's tokens file and connect's config file; without a listener it would end
    // the process.
    ...(Deno.build.os === "windows" || (name !== "serve" && name !== "connect") ? {} : {
      subscribeReload: (listener: () => void) => {
        Deno.addSignalListener("SIGHUP", listener);
        return () => Deno.removeSignalListener("SIGHUP", listener);
      },
    }),
  };
  try {
    await command(rest, context);
  } finally {
    removeSignals();
  }
}

if (import.meta.main) {
  const state: { logging?: Logging } = {};
  let failure: unknown;
  try {
    await run(Deno.args, state);
  } catch (error: unknown) {
    // `undefined` thrown is still a failure, not a clean end
    failure = error ?? new Error("undefined thrown");
  }
  const code = exitCodeFor(failure);
  if (failure !== undefined) {
    const { event, message } = describeFailure(failure);
    if (state.logging) state.logging.logger("main").error("{error}", { event, error: message });
    else console.error(`mcp-rproxy: ${message}`);
  }
  await state.logging?.shutdownLogging().catch(() => {});
  Deno.exit(code);
}
