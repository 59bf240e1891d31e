// The MCP endpoint `/servers/<name>/mcp` of each registered server: the HTTP verbs of Streamable HTTP
// (MCP 2025-11-25) for many clients sharing one tunneled server. Sessions, origins and server-initiated
// messages live beside it (mcp_client_session.ts, cors.ts, client_router.ts).

import { isObject } from "../util/json_object.ts";
import {
  classify,
  ErrorCode,
  errorResponse,
  type JsonObject,
  type JsonRpcId,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from "../protocol/jsonrpc.ts";
import { logger } from "../util/log.ts";
import { negotiateVersion, SUPPORTED_PROTOCOL_VERSIONS } from "../protocol/mcp_versions.ts";
import type { ServeMetrics } from "./metrics.ts";
import { RawResponse } from "./call_table.ts";
import { ClientRouter } from "./client_router.ts";
import { CorsPolicy } from "./cors.ts";
import { type ClientCall, type McpClientSession, McpClientSessions } from "./mcp_client_session.ts";
import type { TunnelSession } from "./tunnel_session.ts";
import type { TunnelRegistry } from "./tunnel_registry.ts";
import { SSE_HEADERS, SseStream } from "./sse_stream.ts";
import { type Accept, acceptOf, readJsonBody, reply, rpcError, wantsStream } from "./mcp_http.ts";
import type { Identity } from "./token_store.ts";

const log = logger("serve", "mcp");

/** Open GET streams one token may hold at once, by default. */
export const DEFAULT_MAX_STREAMS_PER_TOKEN = 16;
/** What a client without an `MCP-Protocol-Version` header is assumed to speak. */
const DEFAULT_HEADER_VERSION = "2025-03-26";

/** Options of {@link McpEndpoint}. */
export interface McpEndpointOptions {
  /** Live tunnel sessions. */
  registry: TunnelRegistry<TunnelSession>;
  /** Deadline of a call and of a server-initiated request, in milliseconds. */
  callTimeoutMs: number;
  /** Largest POST body, in bytes. */
  maxBodyBytes: number;
  /** An MCP session idle this long (no request, no open stream) is forgotten, in milliseconds. */
  sessionTtlMs: number;
  /** MCP client sessions one owner may hold (default 1,024). */
  maxSessionsPerOwner?: number;
  /** Open GET streams one token may hold at once, so that one client cannot take its owner's share. */
  maxStreamsPerToken?: number;
  /** Origins allowed in an `Origin` header (`*` allows any); requests without `Origin` pass. */
  allowedOrigins: ReadonlySet<string>;
  /**
   * Bytes one SSE stream (a GET stream or a POST's answer) may hold that its client has not read; past it
   * the stream is closed (`slow_client`). Default unbounded.
   */
  maxClientBufferBytes?: number;
  /** The clock. Default `Date.now`. */
  now?: () => number;
  /** Counts requests for unknown sessions (`no_session`) and streams closed on slow clients (`slow_client`). */
  metrics?: ServeMetrics;
}

/**
 * The MCP endpoints of all registered servers. Sessions belong to (owner, server name), not to one tunnel
 * link, so a `connect` that reconnects keeps its MCP clients.
 */
export class McpEndpoint {
  #options: McpEndpointOptions;
  #now: () => number;
  #sessions: McpClientSessions;
  #cors: CorsPolicy;
  /** Open GET streams by the credential that opened them. */
  #streamsByCredential = new Map<string, number>();
  /** Routes what tunneled servers send on their own to these clients. */
  readonly router: ClientRouter;

  constructor(options: McpEndpointOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#sessions = new McpClientSessions({
      ttlMs: options.sessionTtlMs,
      now: this.#now,
      ...(options.maxSessionsPerOwner === undefined
        ? {}
        : { maxPerOwner: options.maxSessionsPerOwner }),
    });
    this.#cors = new CorsPolicy(options.allowedOrigins);
    this.router = new ClientRouter(this.#sessions, options.callTimeoutMs);
  }

  /** Number of MCP client sessions. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Adds CORS headers for an allowed browser origin (see {@link CorsPolicy.apply}). */
  withCors(request: Request, response: Response): Response {
    return this.#cors.apply(request, response);
  }

  /** Answers a CORS preflight for `/servers/<serverName>/mcp` (see {@link CorsPolicy.preflight}). */
  preflight(request: Request, serverName: string): Response {
    return this.#cors.preflight(request, serverName);
  }

  /** Handles one HTTP request to `/servers/<serverName>/mcp` from an authenticated client. */
  async handle(request: Request, identity: Identity, serverName: string): Promise<Response> {
    const refused = this.#cors.refusal(request, serverName);
    if (refused !== undefined) return refused;
    return this.#cors.apply(request, await this.#dispatch(request, identity, serverName));
  }

  /** Forgets sessions idle for longer than the TTL. */
  sweep(): void {
    this.#sessions.sweep();
  }

  /** Ends every session and stream. */
  close(): void {
    this.#sessions.close("gateway shutting down");
  }

  async #dispatch(request: Request, identity: Identity, serverName: string): Promise<Response> {
    switch (request.method) {
      case "POST":
        return await this.#post(request, identity, serverName);
      case "GET":
        return this.#get(request, identity, serverName);
      case "DELETE":
        return this.#delete(request, identity, serverName);
      default:
        return new Response("Method not allowed", {
          status: 405,
          headers: { allow: "GET, POST, DELETE, OPTIONS" },
        });
    }
  }

  #session(
    request: Request,
    identity: Identity,
    serverName: string,
  ): McpClientSession | Response {
    const id = request.headers.get("mcp-session-id");
    if (id === null) {
      return rpcError(400, null, ErrorCode.InvalidRequest, "Mcp-Session-Id header is required");
    }
    const session = this.#sessions.get(id);
    if (
      session === undefined || session.owner !== identity.owner || session.serverName !== serverName
    ) {
      this.#options.metrics?.errors.inc("no_session");
      return rpcError(404, null, ErrorCode.InvalidRequest, "Session not found; initialize again");
    }
    const version = request.headers.get("mcp-protocol-version") ?? DEFAULT_HEADER_VERSION;
    if (!SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
      return rpcError(
        400,
        null,
        ErrorCode.InvalidRequest,
        `Unsupported MCP-Protocol-Version ${version.slice(0, 40)}; supported: ${
          SUPPORTED_PROTOCOL_VERSIONS.join(", ")
        }`,
      );
    }
    session.touch(this.#now());
    return session;
  }

  async #post(request: Request, identity: Identity, serverName: string): Promise<Response> {
    const body = await readJsonBody(request, this.#options.maxBodyBytes);
    if (body instanceof Response) return body;
    if (Array.isArray(body)) {
      return rpcError(400, null, ErrorCode.InvalidRequest, "JSON-RPC batches are not supported");
    }
    const kind = classify(body);
    if (kind === "invalid") {
      return rpcError(400, null, ErrorCode.InvalidRequest, "Body is not a JSON-RPC message");
    }
    const message = body as JsonObject;
    const accept = acceptOf(request);
    if (kind === "request" && !accept.json && !accept.sse) {
      return rpcError(
        406,
        message.id as JsonRpcId,
        ErrorCode.InvalidRequest,
        "Accept must include application/json or text/event-stream",
      );
    }
    if (kind === "request" && message.method === "initialize") {
      return await this.#initialize(message as JsonRpcRequest, identity, serverName, accept);
    }
    const session = this.#session(request, identity, serverName);
    if (session instanceof Response) return session;
    const headers = { "mcp-session-id": session.id };
    const tunnel = this.#options.registry.find(identity.owner, serverName);
    if (kind === "notification") {
      this.#clientNotification(message as JsonRpcNotification, session, tunnel);
      return new Response(null, { status: 202, headers });
    }
    if (kind === "response") {
      if (!session.answer(message as JsonRpcResponse)) {
        log.warning("Dropped a client response for unknown id on {name}", {
          event: "unknown_client_response",
          name: serverName,
        });
      }
      return new Response(null, { status: 202, headers });
    }
    return this.#call(message as JsonRpcRequest, { session, tunnel, accept, headers });
  }

  #clientNotification(
    message: JsonRpcNotification,
    session: McpClientSession,
    tunnel: TunnelSession | undefined,
  ): void {
    if (message.method === "notifications/initialized") return; // the gateway's own was sent already
    if (message.method === "notifications/cancelled") {
      const params = isObject(message.params) ? message.params : {};
      const requestId = params.requestId;
      if (typeof requestId === "string" || typeof requestId === "number") {
        // The tunnel session sends the server a cancellation with the rewritten id.
        session.cancelCall(
          requestId,
          typeof params.reason === "string" ? params.reason : "cancelled by the client",
        );
      }
      return;
    }
    if (tunnel === undefined || !tunnel.calls.notify(message)) {
      log.debug("Dropped client notification {method}: server not connected", {
        event: "client_notification_dropped",
        method: message.method,
      });
    }
  }

  async #initialize(
    message: JsonRpcRequest,
    identity: Identity,
    serverName: string,
    accept: Accept,
  ): Promise<Response> {
    const tunnel = this.#options.registry.find(identity.owner, serverName);
    if (tunnel === undefined) {
      return rpcError(
        404,
        message.id,
        ErrorCode.InvalidRequest,
        `No server named '${serverName.slice(0, 128)}'`,
      );
    }
    const held = await tunnel.initializeResult();
    if (held.error !== undefined || !isObject(held.result)) {
      return reply({ ...held, id: message.id }, accept, {});
    }
    const params = isObject(message.params) ? message.params : {};
    const version = negotiateVersion(params.protocolVersion);
    const session = this.#sessions.open({
      owner: identity.owner,
      serverName,
      capabilities: isObject(params.capabilities) ? params.capabilities : {},
      protocolVersion: version,
    });
    if (session === undefined) {
      return rpcError(
        429,
        message.id,
        ErrorCode.InternalError,
        `Too many MCP sessions for owner ${identity.owner} (limit ${this.#sessions.maxPerOwner}); end some with DELETE`,
      );
    }
    log.info("MCP client session {mcpSession} of {owner} opened on {name}", {
      event: "mcp_session_opened",
      mcpSession: session.id,
      owner: identity.owner,
      name: serverName,
    });
    return reply(
      { jsonrpc: "2.0", id: message.id, result: { ...held.result, protocolVersion: version } },
      accept,
      { "mcp-session-id": session.id },
    );
  }

  #call(
    message: JsonRpcRequest,
    context: {
      session: McpClientSession;
      tunnel: TunnelSession | undefined;
      accept: Accept;
      headers: Record<string, string>;
    },
  ): Response | Promise<Response> {
    const { session, tunnel, accept, headers } = context;
    if (tunnel === undefined) {
      return reply(
        errorResponse(
          message.id,
          ErrorCode.TunnelUnavailable,
          `Server '${session.serverName}' is not connected`,
        ),
        accept,
        headers,
      );
    }
    if (session.hasCall(message.id)) {
      return reply(
        errorResponse(message.id, ErrorCode.InvalidRequest, "A request with this id is in flight"),
        accept,
        headers,
      );
    }
    const controller = new AbortController();
    const call: ClientCall = { controller, started: this.#now() };
    const forget = session.addCall(message.id, call);
    if (accept.sse && (!accept.json || wantsStream(message, session))) {
      // SSE lets progress and server requests for this call travel with it. A plain call answers with
      // JSON: no stream to set up and tear down per call (a third of the gateway's cost per call).
      // Overflow is treated like a disconnect: the server gets notifications/cancelled for the call.
      const stream = this.#boundedStream(
        session,
        `stream of call ${JSON.stringify(message.id).slice(0, 64)}`,
        () => controller.abort("the MCP client stopped reading its stream"),
      );
      call.stream = stream;
      stream.onCancel = () => controller.abort("the MCP client disconnected");
      void tunnel.calls.call(message, {
        signal: controller.signal,
        onProgress: (progress) => {
          if (!stream.send(progress)) session.getStream?.send(progress);
        },
        raw: true,
      }).then((response) => {
        forget();
        if (response instanceof RawResponse) stream.sendText(response.text);
        else if (response !== undefined) stream.send(response);
        stream.close();
      });
      return new Response(stream.readable, { headers: { ...SSE_HEADERS, ...headers } });
    }
    // JSON mode cannot see a client disconnect through Request alone: the call runs to its answer or
    // timeout. SSE mode cancels on disconnect.
    return tunnel.calls.call(message, {
      signal: controller.signal,
      onProgress: (progress) => session.getStream?.send(progress),
      raw: true,
    }).then((response) => {
      forget();
      if (response instanceof RawResponse) {
        // A long answer, as the tunnel sent it (caller's id in place): not parsed and serialized again.
        return new Response(response.text, {
          headers: { ...headers, "content-type": "application/json" },
        });
      }
      return Response.json(
        response ?? errorResponse(message.id, ErrorCode.InternalError, "Request cancelled"),
        { headers },
      );
    });
  }

  /** A stream bounded by `maxClientBufferBytes` that logs and counts its overflow, then runs `closed`. */
  #boundedStream(session: McpClientSession, what: string, closed: () => void): SseStream {
    const max = this.#options.maxClientBufferBytes;
    const stream = new SseStream(max === undefined ? {} : { maxBufferedBytes: max });
    stream.onOverflow = (buffered) => {
      this.#options.metrics?.errors.inc("slow_client");
      log.warning(
        "Closed the {what} of MCP client session {mcpSession} of {owner} on {name}: the client did not read {bytes} bytes queued for it (--max-client-buffer {limit})",
        {
          event: "slow_client",
          what,
          mcpSession: session.id,
          owner: session.owner,
          name: session.serverName,
          bytes: buffered,
          limit: max,
        },
      );
      closed();
    };
    return stream;
  }

  #get(request: Request, identity: Identity, serverName: string): Response {
    if (!acceptOf(request).sse) {
      return new Response("GET needs Accept: text/event-stream", { status: 406 });
    }
    const session = this.#session(request, identity, serverName);
    if (session instanceof Response) return session;
    const limit = this.#options.maxStreamsPerToken ?? DEFAULT_MAX_STREAMS_PER_TOKEN;
    const credential = identity.credential;
    const open = this.#streamsByCredential.get(credential) ?? 0;
    // A GET that replaces the session's own open stream does not add one.
    const replacing = session.getStream !== undefined && session.getStreamCredential === credential;
    if (!replacing && open >= limit) {
      this.#options.metrics?.errors.inc("too_many_streams");
      return rpcError(
        429,
        null,
        ErrorCode.InternalError,
        `Too many open GET streams for this token (limit ${limit}, --max-streams-per-token); close one first`,
      );
    }
    const gone = () => {
      session.getStreamGone(stream);
      session.touch(this.#now());
    };
    const stream = this.#boundedStream(session, "GET stream", gone);
    this.#streamsByCredential.set(credential, open + 1);
    stream.onEnd = () => {
      const left = (this.#streamsByCredential.get(credential) ?? 1) - 1;
      if (left > 0) this.#streamsByCredential.set(credential, left);
      else this.#streamsByCredential.delete(credential);
    };
    session.openGetStream(stream, credential);
    stream.onCancel = gone;
    return new Response(stream.readable, {
      headers: { ...SSE_HEADERS, "mcp-session-id": session.id },
    });
  }

  #delete(request: Request, identity: Identity, serverName: string): Response {
    const session = this.#session(request, identity, serverName);
    if (session instanceof Response) return session;
    this.#sessions.delete(session, "deleted by the client");
    log.info("MCP client session {mcpSession} of {owner} on {name} ended by the client", {
      event: "mcp_session_deleted",
      mcpSession: session.id,
      owner: identity.owner,
      name: serverName,
    });
    return new Response(null, { status: 204 });
  }
}
