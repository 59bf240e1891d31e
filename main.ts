// The edge of the program: picks the command, reads arguments and environment, installs signal
// listeners, and maps outcomes to exit codes. Nothing under lib/ touches Deno.args, Deno.env or Deno.exit.

import { resolveConnectConfig } from "./lib/connect/config.ts";
import { Supervisor } from "./lib/connect/supervisor.ts";
import { checkHealth, startHealthServer } from "./lib/util/health_server.ts";
import { createConnectMetrics } from "./lib/connect/metrics.ts";
import {
  AuthRefusedError,
  ConfigError,
  EvictedError,
  ExitCode,
  RetriesExhaustedError,
  ServerStartError,
} from "./lib/util/errors.ts";
import { logger, setupLogging, shutdownLogging } from "./lib/util/log.ts";
import { VERSION } from "./lib/util/version.ts";
// `demo`, `demo-server` and `serve` are imported when chosen: `demo` pulls in the MCP SDK, and loading it
// for `connect` cost ~70 ms of start-up and ~23 MiB of RSS (docs/performance.md).

const COMMANDS = ["connect", "serve", "demo", "token"] as const;
type Command = typeof COMMANDS[number];

const TOP_HELP =
  `mcp-rproxy ${VERSION}: put a local stdio MCP server on a remote gateway, without opening a port

Usage:
  mcp-rproxy [connect] --gateway URL [options] -- COMMAND [ARGS...]
  mcp-rproxy serve [--listen HOST:PORT] [options]
  mcp-rproxy demo
  mcp-rproxy token new --owner OWNER [--role ROLES] [--file FILE] [--out FILE]

Commands:
  connect   (default) start a local MCP server and tunnel it to a gateway
  serve     run our own gateway: accept tunnels, serve them to MCP clients over Streamable HTTP
  demo      run serve + connect + an MCP client on loopback, needing nothing else
  token     add a token to serve's tokens file ('token new'); serve reloads it on SIGHUP

Run 'mcp-rproxy <command> --help' for the options of a command.
`;

function printError(message: string): void {
  console.error(`mcp-rproxy: ${message}`);
}

/** Says which permission flag is missing instead of a stack trace. */
function permissionHint(error: unknown): string | undefined {
  if (!(error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied)) {
    return undefined;
  }
  const message = (error as Error).message;
  const flag = /--allow-[a-z-]+/.exec(message)?.[0];
  if (flag === undefined) return `missing permission: ${message}`;
  const target = /"([^"]+)"/.exec(message)?.[1];
  return `missing permission: ${
    message.replace(/, run again with.*$/s, "")
  }; run again with ${flag}${target ? `=${target}` : ""} (see README, "Permissions")`;
}

/**
 * A repeat of the shutdown signal within this many milliseconds of the first is the same request: `deno
 * task` forwards the terminal's Ctrl-C to its child, which the terminal also signals, so one key press
 * arrives two or three times.
 */
const REPEAT_WINDOW_MS = 500;

/**
 * First signal: graceful shutdown. Another one, after {@link REPEAT_WINDOW_MS}: stop at once. Listeners
 * matter as PID 1, where Deno ignores SIGTERM.
 */
function installSignals(controller: AbortController, hardStop: () => void): () => void {
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  let firstAt: number | undefined;
  const handler = () => {
    const now = performance.now();
    if (firstAt === undefined) {
      firstAt = now;
      logger("main").info("Shutting down (send the signal again to stop at once)", {
        event: "shutdown",
      });
      controller.abort(new Error("shutdown requested"));
    } else if (now - firstAt >= REPEAT_WINDOW_MS) {
      hardStop();
      Deno.exit(ExitCode.Interrupted);
    }
  };
  for (const signal of signals) Deno.addSignalListener(signal, handler);
  return () => {
    for (const signal of signals) Deno.removeSignalListener(signal, handler);
  };
}

async function connectCommand(args: string[]): Promise<number> {
  const result = await resolveConnectConfig(args, {
    env: (name) => Deno.env.get(name),
    readTextFile: (path) => Deno.readTextFile(path),
  });
  if (result.kind === "help") {
    console.log(result.text);
    return ExitCode.Ok;
  }
  if (result.kind === "version") {
    console.log(VERSION);
    return ExitCode.Ok;
  }
  const { settings, warnings } = result;
  await setupLogging({ level: settings.logLevel, format: settings.logFormat });
  const log = logger("main");
  for (const warning of warnings) log.warn(warning);
  const controller = new AbortController();
  let tunnel: Supervisor | undefined;
  const removeSignals = installSignals(controller, () => tunnel?.kill());
  const metrics = createConnectMetrics({ version: VERSION });
  const health = settings.healthListen === undefined ? undefined : await startHealthServer({
    listen: settings.healthListen,
    ready: () => tunnel?.ready ?? false,
    metrics,
  });
  if (health) {
    log.info("Health and metrics on {url}", { event: "health_listening", url: health.url });
  }
  try {
    tunnel = new Supervisor({ settings, signal: controller.signal, metrics });
    await tunnel.run();
    return ExitCode.Ok;
  } catch (error) {
    if (error instanceof AuthRefusedError) {
      log.error("{error}; not retrying (exit code 3)", {
        event: "auth_refused",
        error: error.message,
      });
      return ExitCode.AuthRefused;
    }
    if (error instanceof EvictedError) {
      log.error("{error}; not reconnecting (exit code 4)", {
        event: "evicted",
        error: error.message,
      });
      return ExitCode.Evicted;
    }
    if (error instanceof RetriesExhaustedError || error instanceof ServerStartError) {
      log.error("{error}", { event: "fatal", error: error.message });
      // A permission narrowed too far is an input to fix, like a bad flag.
      return permissionHint(error.cause) ? ExitCode.Usage : ExitCode.Failure;
    }
    throw error;
  } finally {
    removeSignals();
    await health?.close();
  }
}

async function main(args: string[]): Promise<number> {
  const first = args[0];
  if (first === "--help" || first === "-h" || first === "help") {
    console.log(TOP_HELP);
    return ExitCode.Ok;
  }
  if (first === "healthcheck") {
    // For container HEALTHCHECKs on images without curl: exit 0 when the URL answers 200.
    const url = args[1] ?? "http://127.0.0.1:9090/readyz";
    return await checkHealth(url, { timeoutMs: 3000 }) ? ExitCode.Ok : ExitCode.Failure;
  }
  if (first === "demo-server") {
    // Hidden: the built-in MCP server the demo tunnels (a compiled binary has no other way to run it).
    const { runDemoServer } = await import("./lib/demo/server.ts");
    await runDemoServer();
    return ExitCode.Ok;
  }
  const command: Command = COMMANDS.includes(first as Command) ? first as Command : "connect";
  const rest = command === first ? args.slice(1) : args;
  if (rest[0] === "--version" || rest[0] === "-V") {
    // The same version whatever the command (connect also answers it among its flags).
    console.log(VERSION);
    return ExitCode.Ok;
  }
  switch (command) {
    case "connect":
      return await connectCommand(rest);
    case "serve": {
      const controller = new AbortController();
      const removeSignals = installSignals(controller, () => {});
      try {
        const { serveCommand } = await import("./lib/serve/command.ts");
        return await serveCommand(rest, {
          signal: controller.signal,
          env: (name) => Deno.env.get(name),
          readTextFile: (path) => Deno.readTextFile(path),
          // SIGHUP re-reads the tokens file; without a listener it would end the process.
          ...(Deno.build.os === "windows" ? {} : {
            subscribeReload: (listener: () => void) => {
              Deno.addSignalListener("SIGHUP", listener);
              return () => Deno.removeSignalListener("SIGHUP", listener);
            },
          }),
        });
      } finally {
        removeSignals();
      }
    }
    case "token": {
      const { tokenCommand } = await import("./lib/serve/token_command.ts");
      return await tokenCommand(rest);
    }
    case "demo": {
      const controller = new AbortController();
      let killDemo: (() => void) | undefined;
      const removeSignals = installSignals(controller, () => killDemo?.());
      try {
        const { demoCommand } = await import("./lib/demo/command.ts");
        return await demoCommand(rest, {
          signal: controller.signal,
          onKill: (kill) => killDemo = kill,
        });
      } finally {
        removeSignals();
      }
    }
  }
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (error) {
    const hint = permissionHint(error);
    if (error instanceof ConfigError) {
      printError(error.message);
      code = ExitCode.Usage;
    } else if (error instanceof ServerStartError || error instanceof RetriesExhaustedError) {
      printError(error.message);
      code = ExitCode.Failure;
    } else if (hint) {
      printError(hint);
      code = ExitCode.Usage;
    } else {
      printError(`unexpected error: ${(error as Error)?.stack ?? String(error)}`);
      code = ExitCode.Failure;
    }
  }
  await shutdownLogging().catch(() => {});
  Deno.exit(code);
}
