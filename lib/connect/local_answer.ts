// What connect answers itself when the gateway cannot relay a request the local server made (contracts A
// and B, or no link): `ping` gets its empty result, anything else an error that says why.

import {
  ErrorCode,
  errorResponse,
  type JsonRpcId,
  type JsonRpcResponse,
} from "../protocol/jsonrpc.ts";
import { logger } from "../util/log.ts";
import type { LinkChannel } from "./link_channel.ts";
import type { ServerMessage } from "./local_session.ts";

const log = logger("connect");

/** Why the gateway on `link` cannot relay a server's request, in words for logs and errors. */
export function unrelayedBecause(link: LinkChannel | undefined): string {
  return link?.isOpen
    ? `the gateway (contract ${link.contract ?? "?"}) does not relay server-initiated requests`
    : "the link to the gateway is down";
}

/**
 * Answers a server-initiated request the gateway cannot relay: `ping` locally, others with an error.
 *
 * @example
 * ```ts
 * import { localAnswer } from "./local_answer.ts";
 * localAnswer({ kind: "request", id: 1, method: "ping", text: "" }, "no link"); // { jsonrpc: "2.0", id: 1, result: {} }
 * ```
 */
export function localAnswer(message: ServerMessage, why: string): JsonRpcResponse {
  const id = message.id as JsonRpcId;
  log.info("Answered the server's {method} request locally: {why}", {
    event: "server_request_answered",
    method: String(message.method),
    why,
  });
  if (message.method === "ping") return { jsonrpc: "2.0", id, result: {} };
  return errorResponse(
    id,
    ErrorCode.MethodNotFound,
    `mcp-rproxy cannot deliver '${String(message.method)}' to a client: ${why}`,
  );
}
