// The MCP endpoint `/servers/<name>/mcp` of each registered server: the HTTP verbs of Streamable HTTP
// (MCP 2025-11-25) for many clients sharing one tunneled server, with resumable SSE streams; and beside it
// the legacy HTTP+SSE transport (legacy_sse.ts). Sessions, origins, server-initiated messages and what a
// client's message does live beside it (mcp_client_session.ts, cors.ts, client_router.ts, mcp_dispatch.ts).

import type { HttpRequest } from "./http_request.ts";
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
import { SUPPORTED_PROTOCOL_VERSIONS } from "../protocol/mcp_versions.ts";
import { RawResponse } from "./call_table.ts";
import { ClientRouter } from "./client_router.ts";
import { CorsPolicy } from "./cors.ts";
import { type McpClientSession, McpClientSessions } from "./mcp_client_session.ts";
import {
  answerInitialize,
  callRefusal,
  clientNotification,
  clientResponse,
  endOnLocalTunnel,
  initializeOwn,
  initializeRefusal,
  repeatedCall,
  runCall,
} from "./mcp_dispatch.ts";
import { type LegacyForward, LegacySse } from "./legacy_sse.ts";
import { STREAM_DEFAULTS, type StreamSettings } from "./resumable_stream.ts";
import { McpStreams, type RelayOutcome, type StreamResume } from "./mcp_streams.ts";
import type { CallTarget } from "./call_contract.ts";
import { SSE_HEADERS } from "./sse_stream.ts";
import { type Accept, acceptOf, readJsonBody, reply, rpcError, wantsStream } from "./mcp_http.ts";
import type { Identity } from "./token_store.ts";
import type { ClientRecord } from "./state/records.ts";
import { SessionsUnavailableError } from "./shared_session_hooks.ts";
import { chargedExchange } from "./exchange_charge.ts";
import type { McpEndpointOptions, McpRequestContext } from "./mcp_endpoint_contract.ts";

const log = logger("serve", "mcp");

/** What a client without an `MCP-Protocol-Version` header is assumed to speak. */
const DEFAULT_HEADER_VERSION = "2025-03-26";

/**
 * The MCP endpoints of all registered servers. Sessions belong to (owner, server name), not to one tunnel
 * link, so a `connect` that reconnects keeps its MCP clients.
 */
export class McpEndpoint {
  #options: McpEndpointOptions;
  #now: () => number;
  #sessions: McpClientSessions;
  #cors: CorsPolicy;
  #streamSettings: StreamSettings;
  #legacy: LegacySse;
  #streams: McpStreams;
  /** Routes what tunneled servers send on their own to these clients. */
  readonly router: ClientRouter;

  constructor(options: McpEndpointOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#streamSettings = options.streams ?? STREAM_DEFAULTS;
    this.#sessions = new McpClientSessions({
      ttlMs: options.sessionTtlMs,
      now: this.#now,
      streams: this.#streamSettings,
      budget: options.budget,
      // A per-client server's instance stops with its client's session (DELETE, TTL, room).
      onEnd: options.endClient ?? endOnLocalTunnel(options.registry),
      state: options.state,
      shared: options.shared,
      maxPerOwner: options.maxSessionsPerOwner,
    });
    this.#cors = new CorsPolicy(options.allowedOrigins);
    this.#streams = new McpStreams({
      streams: this.#streamSettings,
      maxClientBufferBytes: options.maxClientBufferBytes,
      maxStreamsPerToken: options.maxStreamsPerToken,
      now: this.#now,
      metrics: options.metrics,
      budget: options.budget,
      replica: options.streamReplica,
    });
    this.router = new ClientRouter(this.#sessions, options.callTimeoutMs);
    this.#legacy = new LegacySse({
      sessions: this.#sessions,
      registry: options.registry,
      limits: options,
      publicPath: options.publicPath ?? "",
      now: this.#now,
      streams: this.#streams,
      ...(options.remote === undefined ? {} : { remote: options.remote }),
      ...(options.replica === undefined ? {} : { replica: options.replica }),
    });
  }

  /** Replicas: a resume another replica took for a stream held here (its owner's session, its server). */
  resumed(request: StreamResume): Promise<RelayOutcome> {
    const session = this.#sessions.get(request.sessionId);
    if (session?.owner !== request.owner || session.serverName !== request.serverName) {
      return Promise.resolve({
        status: 404,
        body: '{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Session not found"}}',
      });
    }
    return this.#streams.relayed(session, request.lastEventId);
  }

  /** Replicas: a legacy POST another replica received for a session whose connection is here. */
  forwarded(post: LegacyForward): Promise<number> {
    return this.#legacy.forwarded(post);
  }

  /** Number of MCP client sessions. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** The ids of the MCP client sessions of one owner's server (a per-client server's instances). */
  clientSessionsOf(owner: string, serverName: string): string[] {
    return [...this.#sessions.ofServer(owner, serverName)].map((session) => session.id);
  }

  /** UTF-8 bytes of SSE events kept for replay, over all sessions. */
  get replayBytes(): number {
    let bytes = 0;
    for (const session of this.#sessions.all()) bytes += session.streams.bytes;
    return bytes;
  }

  /** A refused token's 401/403, with CORS headers; a refused `Origin` gets 403 instead (MCP transports). */
  authRefusal(request: HttpRequest, refused: { response: Response; serverName: string }): Response {
    const origin = this.#cors.refusal(request, refused.serverName, { authenticated: false });
    return origin ?? this.#cors.apply(request, refused.response);
  }

  /** Answers a CORS preflight for `/servers/<serverName>/…` (see {@link CorsPolicy.preflight}). */
  preflight(request: HttpRequest, serverName: string): Response {
    return this.#cors.preflight(request, serverName);
  }

  /** Handles one HTTP request to `/servers/<serverName>/<path>` from an authenticated client. */
  async handle(request: HttpRequest, context: McpRequestContext): Promise<Response> {
    const refused = this.#cors.refusal(request, context.serverName);
    if (refused !== undefined) return refused;
    const budget = this.#options.budget;
    if (budget === undefined) {
      return this.#cors.apply(request, await this.#dispatch(request, context));
    }
    const who = { budget, owner: context.identity.owner, maxBodyBytes: this.#options.maxBodyBytes };
    return this.#cors.apply(
      request,
      await chargedExchange(request, who, () => this.#dispatch(request, context)),
    );
  }

  /** Restores the MCP client sessions a gateway before this one saved; returns how many. */
  restore(records: readonly ClientRecord[]): number {
    return this.#sessions.restore(records);
  }

  /** Forgets sessions idle for longer than the TTL. */
  sweep(): void {
    this.#sessions.sweep();
  }

  /** Ends every session and stream. */
  close(): void {
    this.#sessions.close("gateway shutting down");
  }

  async #dispatch(request: HttpRequest, context: McpRequestContext): Promise<Response> {
    const { identity, serverName, path = "mcp" } = context;
    if (path === "sse") {
      if (request.method !== "GET") return notAllowed("GET, OPTIONS");
      const refused = this.#streams.limit(identity.credential, false);
      return refused ?? this.#legacy.open(request, identity, serverName);
    }
    if (path === "messages") {
      if (request.method !== "POST") return notAllowed("POST, OPTIONS");
      return await this.#legacy.post(request, identity, serverName);
    }
    switch (request.method) {
      case "POST":
        return await this.#post(request, context);
      case "GET":
        return await this.#get(request, identity, serverName);
      case "DELETE":
        return await this.#delete(request, identity, serverName);
      default:
        return notAllowed("GET, POST, DELETE, OPTIONS");
    }
  }

  async #session(
    request: HttpRequest,
    identity: Identity,
    serverName: string,
  ): Promise<McpClientSession | Response> {
    const id = request.headers.get("mcp-session-id");
    if (id === null) {
      return rpcError(400, null, ErrorCode.InvalidRequest, "Mcp-Session-Id header is required");
    }
    const session = await this.#sessions.find(id).catch((error: unknown) => {
      if (!(error instanceof SessionsUnavailableError)) throw error;
      // -32001 and Retry-After, as while serve stops: the request reached no session; send it again.
      return rpcError(503, null, -32001, error.message, { "retry-after": "1" });
    });
    if (session instanceof Response) return session;
    if (
      session === undefined || session.owner !== identity.owner ||
      session.serverName !== serverName || session.legacy
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

  async #post(request: HttpRequest, context: McpRequestContext): Promise<Response> {
    const { identity, serverName } = context;
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
    const session = await this.#session(request, identity, serverName);
    if (session instanceof Response) return session;
    const headers = { "mcp-session-id": session.id };
    const tunnel = await this.#tunnel(identity.owner, serverName);
    if (kind === "notification") {
      // A lost one is no 202: MCP says an input the server cannot accept gets an HTTP error status.
      const lost = clientNotification(message as JsonRpcNotification, session, tunnel);
      if (lost === undefined) return new Response(null, { status: 202, headers });
      return rpcError(503, null, ErrorCode.TunnelUnavailable, lost, headers);
    }
    if (kind === "response") {
      clientResponse(message as JsonRpcResponse, session);
      return new Response(null, { status: 202, headers });
    }
    return this.#call(message as JsonRpcRequest, {
      session,
      tunnel,
      accept,
      headers,
      clientGone: context.clientGone,
    });
  }

  async #initialize(
    message: JsonRpcRequest,
    identity: Identity,
    serverName: string,
    accept: Accept,
  ): Promise<Response> {
    const tooLarge = initializeRefusal(message, this.#options.maxInitializeBytes);
    if (tooLarge !== undefined) return reply(tooLarge, accept, {});
    const tunnel = await this.#tunnel(identity.owner, serverName);
    if (tunnel === undefined) {
      return rpcError(
        404,
        message.id,
        ErrorCode.InvalidRequest,
        `No server named '${serverName.slice(0, 128)}'`,
      );
    }
    // A per-client server's instance is initialized by its client itself, in a session opened first:
    // the instance's frames name it.
    const shared = tunnel.perClient ? undefined : await answerInitialize(message, tunnel);
    if (shared !== undefined && shared.accepted === undefined) {
      return reply(shared.response, accept, {});
    }
    const session = this.#sessions.open({
      owner: identity.owner,
      serverName,
      capabilities: shared?.accepted?.capabilities ?? {},
      protocolVersion: shared?.accepted?.protocolVersion ?? "",
      perClient: tunnel.perClient,
    });
    if (session === undefined) {
      return rpcError(
        429,
        message.id,
        ErrorCode.InternalError,
        `Too many MCP sessions for owner ${identity.owner} (limit ${this.#sessions.maxPerOwner}, --max-mcp-sessions-per-owner); end some with DELETE`,
      );
    }
    const response = shared?.response ?? await initializeOwn(message, session, tunnel);
    if (response.error !== undefined) {
      this.#sessions.delete(session, "its server instance did not initialize");
      return reply(response, accept, {});
    }
    // Replicas: the client's next request may land on another replica, which must find the session.
    await this.#options.shared?.published(session.id);
    log.info("MCP client session {mcpSession} of {owner} opened on {name}", {
      event: "mcp_session_opened",
      mcpSession: session.id,
      owner: identity.owner,
      name: serverName,
      ...(tunnel.perClient ? { isolation: "per-client" } : {}),
    });
    return reply(response, accept, { "mcp-session-id": session.id });
  }

  /** The server here, else (replicas) held by another replica. */
  async #tunnel(owner: string, name: string): Promise<CallTarget | undefined> {
    return this.#options.registry.find(owner, name) ?? await this.#options.remote?.(owner, name);
  }

  #call(
    message: JsonRpcRequest,
    context: {
      session: McpClientSession;
      tunnel: CallTarget | undefined;
      accept: Accept;
      headers: Record<string, string>;
      clientGone: AbortSignal | undefined;
    },
  ): Response | Promise<Response> {
    const { session, tunnel, accept, headers, clientGone } = context;
    const repeated = accept.sse ? repeatedCall(message, session) : undefined;
    if (repeated !== undefined) {
      // The same request again while it runs: the client lost the first answer's connection before it
      // saw any event. It gets the whole stream on this one.
      const connection = this.#streams.connection(session, `stream ${repeated.id} sent again`);
      this.#streams.resume(session, repeated, connection, 0);
      return new Response(connection.readable, { headers: { ...SSE_HEADERS, ...headers } });
    }
    const refusal = callRefusal(message, session, tunnel);
    if (refusal !== undefined || tunnel === undefined) return reply(refusal!, accept, headers);
    if (accept.sse && (!accept.json || wantsStream(message, session))) {
      // SSE lets progress and server requests for this call travel with it, and survive a dropped
      // connection. A plain call answers with JSON: no stream to set up and tear down per call (a third of
      // the gateway's cost per call).
      const stream = session.streams.open();
      const { controller, answer } = runCall(message, {
        session,
        tunnel,
        stream,
        now: this.#now(),
        onProgress: (progress) => {
          if (!stream.send(progress)) session.getStream?.send(progress);
        },
      });
      // A client that left is given the resume window to come back for its call (disconnection is not
      // cancellation); one that stopped reading is not coming back.
      const window = this.#streamSettings.resumeWindowMs / 1000;
      stream.onExpired = () =>
        controller.abort(`the MCP client did not come back for its stream within ${window} s`);
      stream.onOverflow = () => controller.abort("the MCP client stopped reading its stream");
      const connection = this.#streams.connection(
        session,
        `stream of call ${JSON.stringify(message.id).slice(0, 64)}`,
      );
      stream.attach(connection);
      void answer.then((response) => {
        if (response instanceof RawResponse) stream.sendText(response.text);
        else if (response !== undefined) stream.send(response);
        stream.finish();
      });
      return new Response(connection.readable, { headers: { ...SSE_HEADERS, ...headers } });
    }
    const { controller, answer } = runCall(message, {
      session,
      tunnel,
      now: this.#now(),
      onProgress: (progress) => session.getStream?.send(progress),
    });
    // No stream to resume: a client gone is a call given up.
    const gone = () => controller.abort("the MCP client disconnected");
    if (clientGone?.aborted) gone();
    else clientGone?.addEventListener("abort", gone, { once: true });
    return answer.then((response) => {
      clientGone?.removeEventListener("abort", gone);
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

  async #get(request: HttpRequest, identity: Identity, serverName: string): Promise<Response> {
    if (!acceptOf(request).sse) {
      return new Response("GET needs Accept: text/event-stream", { status: 406 });
    }
    const session = await this.#session(request, identity, serverName);
    if (session instanceof Response) return session;
    return this.#streams.get(session, identity, request.headers.get("last-event-id"));
  }

  async #delete(request: HttpRequest, identity: Identity, serverName: string): Promise<Response> {
    const session = await this.#session(request, identity, serverName);
    if (session instanceof Response) return session;
    this.#sessions.delete(session, "deleted by the client", true);
    log.info("MCP client session {mcpSession} of {owner} on {name} ended by the client", {
      event: "mcp_session_deleted",
      mcpSession: session.id,
      owner: identity.owner,
      name: serverName,
    });
    return new Response(null, { status: 204 });
  }
}

function notAllowed(allow: string): Response {
  return new Response("Method not allowed", { status: 405, headers: { allow } });
}
