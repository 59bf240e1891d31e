// The MCP protocol versions this product speaks, newest first.

/** The newest MCP protocol version: what connect asks a local server for, and what serve asks a tunnel for. */
export const LATEST_PROTOCOL_VERSION = "2025-11-25";

/** Protocol versions MCP clients may negotiate with serve, newest first. */
export const SUPPORTED_PROTOCOL_VERSIONS: readonly string[] = [
  "2025-11-25",
  "2025-06-18",
  "2025-03-26",
  "2024-11-05",
];

/**
 * The version to answer a client's `initialize` with: the one it asked for when supported, else the
 * newest.
 *
 * @example
 * ```ts
 * import { negotiateVersion } from "./mcp_versions.ts";
 * negotiateVersion("2025-06-18"); // "2025-06-18"
 * negotiateVersion("1999-01-01"); // "2025-11-25"
 * ```
 */
export function negotiateVersion(requested: unknown): string {
  return typeof requested === "string" && SUPPORTED_PROTOCOL_VERSIONS.includes(requested)
    ? requested
    : LATEST_PROTOCOL_VERSION;
}
