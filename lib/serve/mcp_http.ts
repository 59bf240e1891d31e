// The HTTP side of the MCP endpoint: what `Accept` allows, reading a JSON body within a limit, and
// writing one JSON-RPC answer as JSON or as a one-event SSE stream.

import {
  ErrorCode,
  errorResponse,
  type JsonRpcId,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from "../protocol/jsonrpc.ts";
import type { McpClientSession } from "./mcp_client_session.ts";
import { BodyTooLargeError, readBody } from "./request_body.ts";
import { SSE_HEADERS, SseStream } from "./sse_stream.ts";

/** What the `Accept` header allows. */
export interface Accept {
  json: boolean;
  sse: boolean;
}

/**
 * True when a call may produce messages before its result that should travel with it: progress (it
 * has a progress token) or a server-initiated request to a client that can answer one.
 */
export function wantsStream(message: JsonRpcRequest, session: McpClientSession): boolean {
  const meta = (message.params as { _meta?: { progressToken?: unknown } } | undefined)?._meta;
  if (meta?.progressToken !== undefined) return true;
  return session.declares("roots") || session.declares("sampling") ||
    session.declares("elicitation");
}

export function rpcError(
  status: number,
  id: JsonRpcId | null,
  code: number,
  message: string,
  headers?: HeadersInit,
): Response {
  return Response.json(
    errorResponse(id, code, message),
    headers ? { status, headers } : { status },
  );
}

/** What the `Accept` header allows. Absent or `*\/*` allows JSON. */
export function acceptOf(request: Request): Accept {
  const accept = (request.headers.get("accept") ?? "*/*").toLowerCase();
  const types = accept.split(",").map((part) => part.split(";")[0]!.trim());
  return {
    json: types.some((t) => t === "application/json" || t === "application/*" || t === "*/*"),
    sse: types.includes("text/event-stream"),
  };
}

/** One answer as JSON, or as a one-event SSE stream when the client accepts only SSE. */
export function reply(
  response: JsonRpcResponse,
  accept: Accept,
  headers: Record<string, string>,
): Response {
  if (accept.json) return Response.json(response, { headers });
  const stream = new SseStream();
  stream.send(response);
  stream.close();
  return new Response(stream.readable, { headers: { ...SSE_HEADERS, ...headers } });
}

/**
 * Reads a JSON body of at most `maxBytes`: the parsed value, or the answer to send (415 for another content
 * type, 413 when too large, 400 when not JSON).
 */
export async function readJsonBody(
  request: Request,
  maxBytes: number,
): Promise<unknown | Response> {
  const type = (request.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/json") {
    await request.body?.cancel();
    return rpcError(415, null, ErrorCode.InvalidRequest, "Content-Type must be application/json");
  }
  let bytes: Uint8Array;
  try {
    bytes = await readBody(request, maxBytes);
  } catch (error) {
    if (!(error instanceof BodyTooLargeError)) throw error;
    return rpcError(
      413,
      null,
      ErrorCode.InvalidRequest,
      `Request body of ${error.bytes} bytes exceeds the limit of ${error.limit} bytes (serve --max-frame-bytes)`,
    );
  }
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    return rpcError(
      400,
      null,
      ErrorCode.ParseError,
      `Body is not JSON: ${(error as Error).message.slice(0, 200)}`,
    );
  }
}
