// The sessions API at ContextForge's paths: list, inspect, evict, and call a tunneled server directly, with
// each owner limited to its own sessions (admins see all).

import { isObject } from "../util/json_object.ts";
import {
  classify,
  ErrorCode,
  errorResponse,
  type JsonRpcNotification,
  type JsonRpcRequest,
} from "../protocol/jsonrpc.ts";
import { logger } from "../util/log.ts";
import type { TunnelSession } from "./tunnel_session.ts";
import { negotiateVersion } from "../protocol/mcp_versions.ts";
import { BodyTooLargeError, readBody } from "./request_body.ts";
import type { TunnelRegistry } from "./tunnel_registry.ts";
import type { Identity } from "./token_store.ts";

const log = logger("serve", "sessions");

/** Options of {@link handleSessionsApi}. */
export interface SessionsApiOptions {
  registry: TunnelRegistry<TunnelSession>;
  /** Largest request body, in bytes. */
  maxBodyBytes: number;
}

/** Public facts of a session, as ContextForge's sessions API names them (plus ours). */
export interface SessionInfo {
  session_id: string;
  server_info: { name: string; description: string; protocol: string; requested_name: string };
  connected_at: string;
  last_activity: string;
  message_count: number;
  bytes_transferred: number;
  user: string;
  mcp_url: string;
  calls_in_flight: number;
  /** Present (true) while the session waits, without a link, to be resumed. */
  detached?: boolean;
  /** `per-client` when each MCP client has a server instance of its own, else `shared`. */
  isolation: "shared" | "per-client";
  /** A per-client server's live instances, as connect reported them last. */
  instances?: { client_session: string; pid?: number; started_at: string }[];
}

/** The sessions API's view of a session. */
export function sessionInfo(session: TunnelSession): SessionInfo {
  const stats = session.stats();
  return {
    session_id: session.id,
    server_info: {
      name: session.name,
      description: session.description,
      protocol: session.protocol,
      requested_name: session.requestedName,
    },
    connected_at: new Date(session.connectedAt).toISOString(),
    last_activity: new Date(stats.lastActivity).toISOString(),
    message_count: stats.messages,
    bytes_transferred: stats.bytes,
    user: session.owner,
    mcp_url: session.mcpUrl,
    calls_in_flight: stats.callsInFlight,
    ...(stats.detached ? { detached: true } : {}),
    isolation: session.perClient ? "per-client" : "shared",
    ...(session.perClient
      ? {
        instances: session.instances.map((instance) => ({
          client_session: instance.clientSession,
          ...(instance.pid === undefined ? {} : { pid: instance.pid }),
          started_at: new Date(instance.startedAt).toISOString(),
        })),
      }
      : {}),
  };
}

function problem(status: number, message: string): Response {
  return Response.json({ error: message }, { status });
}

/** The session `id` if `identity` may act on it, else the refusal (404 unknown, 403 someone else's). */
function sessionFor(
  registry: TunnelRegistry<TunnelSession>,
  id: string,
  identity: Identity,
): TunnelSession | Response {
  const link = registry.get(id);
  if (link === undefined) return problem(404, `Session ${id} not found`);
  if (link.owner !== identity.owner && !identity.roles.has("admin")) {
    return problem(403, `Session ${id} belongs to another owner`);
  }
  return link;
}

/**
 * Handles `/reverse-proxy/sessions[/{id}[/request]]` for an authenticated client. `segments` are the path
 * segments after `sessions`.
 *
 * - `GET /reverse-proxy/sessions` → `{sessions: [...], total}`
 * - `GET /reverse-proxy/sessions/{id}` → one session
 * - `DELETE /reverse-proxy/sessions/{id}` → closes the link with 4001 → `{status: "disconnected", session_id}`
 * - `POST /reverse-proxy/sessions/{id}/request` → the JSON-RPC response itself (504 on timeout)
 */
export async function handleSessionsApi(
  request: Request,
  identity: Identity,
  segments: string[],
  options: SessionsApiOptions,
): Promise<Response> {
  const { registry } = options;
  const [id, action, ...rest] = segments;
  if (id === undefined) {
    if (request.method !== "GET") return problem(405, "Use GET to list sessions");
    const links = registry.list(identity.roles.has("admin") ? undefined : identity.owner);
    return Response.json({ sessions: links.map(sessionInfo), total: links.length });
  }
  if (rest.length > 0 || (action !== undefined && action !== "request")) {
    return problem(404, "Not found");
  }
  const link = sessionFor(registry, id, identity);
  if (link instanceof Response) return link;
  if (action === undefined) {
    if (request.method === "GET") return Response.json(sessionInfo(link));
    if (request.method === "DELETE") {
      const by = link.owner === identity.owner ? identity.owner : `operator ${identity.owner}`;
      log.info("Session {session} of {owner} evicted by {by}", {
        session: link.id,
        owner: link.owner,
        by,
      });
      // Remembered as evicted: should the 4001 close be lost on the way, the client's resume attempt is
      // told so, and it stops instead of registering afresh.
      link.evict(by);
      return Response.json({ status: "disconnected", session_id: link.id });
    }
    return problem(405, "Use GET or DELETE on a session");
  }
  if (request.method !== "POST") return problem(405, "Use POST to send a request");
  if (link.perClient) {
    // Every message of a per-client server belongs to one MCP client's instance; this path has none.
    await request.body?.cancel();
    return problem(
      409,
      `Server '${link.name}' runs an instance per MCP client (isolation per-client): call it as an MCP client at ${link.mcpUrl}`,
    );
  }
  return await forward(request, link, options.maxBodyBytes);
}

async function forward(
  request: Request,
  link: TunnelSession,
  maxBodyBytes: number,
): Promise<Response> {
  let bytes: Uint8Array;
  try {
    bytes = await readBody(request, maxBodyBytes);
  } catch (error) {
    if (!(error instanceof BodyTooLargeError)) throw error;
    return problem(413, `${error.message} bytes (serve --max-frame-bytes)`);
  }
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    return Response.json(
      errorResponse(null, ErrorCode.ParseError, `Body is not JSON: ${(error as Error).message}`),
      { status: 400 },
    );
  }
  const kind = classify(body);
  if (kind === "notification") {
    const notification = body as JsonRpcNotification;
    // The gateway initialized the server itself; a second `initialized` would confuse it.
    if (notification.method !== "notifications/initialized" && !link.calls.notify(notification)) {
      return problem(502, `Server '${link.name}' is not connected`);
    }
    return Response.json({ status: "sent", session_id: link.id }, { status: 202 });
  }
  if (kind !== "request") {
    return Response.json(
      errorResponse(
        null,
        ErrorCode.InvalidRequest,
        "Body must be a JSON-RPC request or notification",
      ),
      { status: 400 },
    );
  }
  const call = body as JsonRpcRequest;
  if (call.method === "initialize") {
    // Answered from the held result, so that the server is initialized exactly once.
    const held = await link.initializeResult();
    if (held.error !== undefined || !isObject(held.result)) {
      return Response.json({ ...held, id: call.id });
    }
    const params = isObject(call.params) ? call.params : {};
    const version = negotiateVersion(params.protocolVersion);
    return Response.json({
      jsonrpc: "2.0",
      id: call.id,
      result: { ...held.result, protocolVersion: version },
    });
  }
  // Not tied to request.signal: Deno (legacy mode) aborts it on every completed response too.
  const response = await link.calls.call(call) ??
    errorResponse(call.id, ErrorCode.InternalError, "Request cancelled");
  const status = response.error?.code === ErrorCode.Timeout
    ? 504
    : response.error?.code === ErrorCode.TunnelUnavailable
    ? 502
    : 200;
  return Response.json(response, { status });
}
