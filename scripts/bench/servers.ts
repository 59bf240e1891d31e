// The MCP servers the benchmark carries, the messages that start an MCP session, and the command lines of
// connect and serve as the benchmark runs them.

import { PATHS } from "./children.ts";

/** The servers a run can measure (`--servers`). */
export type ServerKind = "demo" | "everything";

const EVERYTHING = "npm:@modelcontextprotocol/server-everything@2026.8.31";

/** How each server is started, and whether it has the `big` tool (a result of a chosen size). */
export const SERVERS: Record<ServerKind, { command: string[]; hasBig: boolean }> = {
  demo: { command: [Deno.execPath(), "run", "--quiet", PATHS.demoServer], hasBig: true },
  everything: {
    command: [Deno.execPath(), "run", "--quiet", "-A", EVERYTHING, "stdio"],
    hasBig: false,
  },
};

/** Bound on every start-up wait (a process up, a link registered), in milliseconds. */
export const START_TIMEOUT_MS = 60_000;

/** The token serve is given and connect and the MCP clients present. */
export const TOKEN = crypto.randomUUID().replaceAll("-", "");

export const INITIALIZE =
  `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"mcp-rproxy-bench","version":"0"}}}`;
export const INITIALIZED = `{"jsonrpc":"2.0","method":"notifications/initialized"}`;

/** Hands out ids unique on one client. */
export function ids(): () => number {
  let next = 1;
  return () => next++;
}

/** `connect` with one server (the one-server form), JSON logs at info; `extra` flags before `--`. */
export function connectArgs(gateway: string, kind: ServerKind, extra: string[] = []): string[] {
  return [
    "connect",
    "--gateway",
    gateway,
    "--log-format",
    "json",
    "--log-level",
    "info",
    ...extra,
    "--server-name",
    `bench-${kind}`,
    "--",
    ...SERVERS[kind].command,
  ];
}

/** A command line as one `stdio="…"` value of `--server` (lib/connect/server_flag.ts quoting). */
function stdioValue(command: string[]): string {
  return command.map((word) => /^[\w@./:=-]+$/.test(word) ? word : `'${word}'`).join(" ");
}

/** `connect` with `count` servers on one link (`--server name=…,stdio="…"` each). */
export function manyServersArgs(gateway: string, kind: ServerKind, count: number): string[] {
  const servers = Array.from({ length: count }, (_, i) => [
    "--server",
    `name=bench-${kind}-${i + 1},stdio="${stdioValue(SERVERS[kind].command)}"`,
  ]).flat();
  return [
    "connect",
    "--gateway",
    gateway,
    "--log-format",
    "json",
    "--log-level",
    "info",
    ...servers,
  ];
}

/**
 * `serve` on 127.0.0.1:`port` with the bench's token file, logging warnings only. The figures are of the
 * tunnel: sessions are not saved (the state store is off the hot path anyway).
 */
export function serveArgs(port: number, tokensFile: string): string[] {
  return [
    "serve",
    "--listen",
    `127.0.0.1:${port}`,
    "--tokens-file",
    tokensFile,
    "--log-level",
    "warning",
    "--state-dir",
    "none",
  ];
}
