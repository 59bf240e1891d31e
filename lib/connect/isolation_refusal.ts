// Per-client isolation exists only with mcp-rproxy serve (the `client-sessions` extension). Against
// ContextForge (contracts A and B) or an older serve, a server that asks for it does not run: sharing
// instead would hand one client's roots, log level and subscriptions to every other client.

import { logger } from "../util/log.ts";

const log = logger("connect");

/**
 * Why a per-client server cannot run on a gateway of `contract` that lacks `client-sessions`.
 *
 * @example
 * ```ts
 * import { sharedOnly } from "./isolation_refusal.ts";
 * sharedOnly("B").includes("offers only shared isolation"); // true
 * ```
 */
export function sharedOnly(contract: string | undefined): string {
  const which = contract === "C"
    ? "this mcp-rproxy serve is older and lacks the client-sessions extension"
    : `this gateway (contract ${contract ?? "?"}, ContextForge) offers only shared isolation`;
  return `isolation per-client needs mcp-rproxy serve with the client-sessions extension, and ${which}: every MCP client would share one server session. Set isolation shared for this server, or register it with a current mcp-rproxy serve`;
}

/** Says that `server` does not run, and why (the other servers go on). */
export function logRefused(server: string, reason: string): void {
  log.error("{reason}; not running {server} (the other servers go on)", {
    event: "isolation_refused",
    server,
    reason,
  });
}
