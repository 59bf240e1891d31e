// connect's own `initialize` request to a local server, and the id prefix of its internal requests: apart
// from local_handshake.ts so that the early start (early_servers.ts) sends the same request without
// loading logging.

import type { JsonObject } from "../protocol/jsonrpc.ts";
import { LATEST_PROTOCOL_VERSION } from "../protocol/mcp_versions.ts";
import { VERSION } from "../util/version.ts";

/** Ids of connect's own requests to the server: no client's id can look like them. */
export const INTERNAL_ID_PREFIX = `mcp-rproxy-${crypto.randomUUID()}-`;

/** The id of connect's own `initialize`. */
export const INIT_ID = `${INTERNAL_ID_PREFIX}init`;

/**
 * The `initialize` request connect sends: with `params` given (a per-client instance: its client's own),
 * or else connect's, which declare roots, sampling and elicitation so that a shared server offers its full
 * feature set; what the gateway cannot deliver is answered with an error at once (see Tunnel).
 */
export function initializeRequest(params?: JsonObject): string {
  return JSON.stringify({
    jsonrpc: "2.0",
    id: INIT_ID,
    method: "initialize",
    params: params ?? {
      protocolVersion: LATEST_PROTOCOL_VERSION,
      capabilities: { roots: { listChanged: true }, sampling: {}, elicitation: {} },
      clientInfo: { name: "mcp-rproxy", version: VERSION },
    },
  });
}
