// The MCP endpoint `/servers/<name>/mcp` of each registered server: Streamable HTTP (MCP 2025-11-25) for
// many clients sharing one tunneled server, with per-client sessions, id routing, and server-initiated requests.

import { isObject } from "../util/json_object.ts";
import {
  classify,
  ErrorCode,
  errorResponse,
  idKey,
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
import type { TunnelSession } from "./tunnel_session.ts";
import { BodyTooLargeError, readBody } from "./request_body.ts";
import type { TunnelRegistry } from "./tunnel_registry.ts";
import { SSE_HEADERS, SseStream } from "./sse_stream.ts";
import type { Identity } from "./token_store.ts";

const log = logger("serve", "mcp");

/** What a client without an `MCP-Protocol-Version` header is assumed to speak. */
const DEFAULT_HEADER_VERSION = "2025-03-26";
/** MCP client sessions one owner may hold; past it the least recently used idle one is forgotten. */
export const MAX_CLIENT_SESSIONS_PER_OWNER = 1024;
/** CORS headers every answer to an allowed browser origin carries (besides the origin itself). */
const CORS_EXPOSE = { "access-control-expose-headers": "mcp-session-id", vary: "Origin" };
/** CORS headers of a preflight answer; a browser may cache it this many seconds (Chrome caps at 7200). */
const CORS_PREFLIGHT = {
  "access-control-allow-methods": "GET, POST, DELETE",
  "access-control-allow-headers":
    "authorization, content-type, mcp-session-id, mcp-protocol-version, last-event-id",
  "access-control-max-age": "7200",
};
/** Client capability a server-initiated request needs. */
const CAPABILITY_OF: Record<string, string> = {
  "roots/list": "roots",
  "sampling/createMessage": "sampling",
  "elicitation/create": "elicitation",
};

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
 * True when a call may produce messages before its result that should travel with it: progress (it
 * has a progress token) or a server-initiated request to a client that can answer one.
 */
function wantsStream(message: JsonRpcRequest, session: ClientSession): boolean {
  const meta = (message.params as { _meta?: { progressToken?: unknown } } | undefined)?._meta;
  if (meta?.progressToken !== undefined) return true;
  const capabilities = session.capabilities;
  return capabilities.roots !== undefined || capabilities.sampling !== undefined ||
    capabilities.elicitation !== undefined;
}

/** One call in flight from an MCP client. */
interface ClientCall {
  controller: AbortController;
  /** The SSE stream of the POST, when the client took one. */
  stream?: SseStream;
  started: number;
}

/** One MCP client session (one `Mcp-Session-Id`). */
class ClientSession {
  readonly id = crypto.randomUUID();
  lastSeen: number;
  getStream: SseStream | undefined;
  readonly calls = new Map<string, ClientCall>();
  readonly serverRequests = new Map<string, (response: JsonRpcResponse) => void>();

  constructor(
    readonly owner: string,
    readonly serverName: string,
    readonly capabilities: JsonObject,
    readonly protocolVersion: string,
    now: number,
  ) {
    this.lastSeen = now;
  }

  /** The most recent call with an open SSE stream. */
  latestStream(): SseStream | undefined {
    let best: ClientCall | undefined;
    for (const call of this.calls.values()) {
      if (
        call.stream !== undefined && !call.stream.closed && (!best || call.started >= best.started)
      ) {
        best = call;
      }
    }
    return best?.stream;
  }

  /** Ends everything in flight. */
  end(reason: string): void {
    for (const call of this.calls.values()) call.controller.abort(reason);
    this.calls.clear();
    for (const [key, settle] of this.serverRequests) {
      settle(
        errorResponse(key, ErrorCode.TunnelUnavailable, `MCP client session ended: ${reason}`),
      );
    }
    this.serverRequests.clear();
    this.getStream?.close();
    this.getStream = undefined;
  }
}

function rpcError(
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
function acceptOf(request: Request): { json: boolean; sse: boolean } {
  const accept = (request.headers.get("accept") ?? "*/*").toLowerCase();
  const types = accept.split(",").map((part) => part.split(";")[0]!.trim());
  return {
    json: types.some((t) => t === "application/json" || t === "application/*" || t === "*/*"),
    sse: types.includes("text/event-stream"),
  };
}

/**
 * The MCP endpoints of all registered servers. Sessions belong to (owner, server name), not to one tunnel
 * link, so a `connect` that reconnects keeps its MCP clients.
 */
export class McpEndpoint {
  #options: McpEndpointOptions;
  #now: () => number;
  #sessions = new Map<string, ClientSession>();

  constructor(options: McpEndpointOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** Number of MCP client sessions. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** True for an origin `--allowed-origin` (or the gateway's own origins) allow. */
  #originAllowed(origin: string): boolean {
    return this.#options.allowedOrigins.has("*") || this.#options.allowedOrigins.has(origin);
  }

  /** The refusal of a request whose `Origin` is not allowed, or undefined when it may go on. */
  #refuseOrigin(request: Request, serverName: string): Response | undefined {
    const origin = request.headers.get("origin");
    if (origin === null || this.#originAllowed(origin)) return undefined;
    log.warning("Refused origin {origin} for {name}", { origin, name: serverName });
    return rpcError(403, null, ErrorCode.InvalidRequest, `Origin ${origin} is not allowed`);
  }

  /**
   * Adds the CORS headers a browser needs to read `response` when the request came from an allowed
   * `Origin`; other responses are returned as they are.
   */
  withCors(request: Request, response: Response): Response {
    const origin = request.headers.get("origin");
    if (origin === null || !this.#originAllowed(origin)) return response;
    response.headers.set("access-control-allow-origin", origin);
    for (const [name, value] of Object.entries(CORS_EXPOSE)) response.headers.set(name, value);
    return response;
  }

  /**
   * Answers a CORS preflight (`OPTIONS`, which browsers send without credentials) for
   * `/servers/<serverName>/mcp`: 204 with the allowed methods and headers for an allowed origin, 403 for
   * another one.
   */
  preflight(request: Request, serverName: string): Response {
    const refused = this.#refuseOrigin(request, serverName);
    if (refused !== undefined) return refused;
    const response = new Response(null, {
      status: 204,
      headers: { allow: "GET, POST, DELETE, OPTIONS" },
    });
    if (request.headers.get("origin") === null) return response;
    for (const [name, value] of Object.entries(CORS_PREFLIGHT)) response.headers.set(name, value);
    return this.withCors(request, response);
  }

  /** Handles one HTTP request to `/servers/<serverName>/mcp` from an authenticated client. */
  async handle(request: Request, identity: Identity, serverName: string): Promise<Response> {
    const refused = this.#refuseOrigin(request, serverName);
    if (refused !== undefined) return refused;
    return this.withCors(request, await this.#dispatch(request, identity, serverName));
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

  /** Sends a server notification to every client of that server (on their GET streams). */
  serverNotification(link: TunnelSession, message: JsonRpcNotification): void {
    let delivered = 0;
    for (const session of this.#sessions.values()) {
      if (session.owner !== link.owner || session.serverName !== link.name) continue;
      if (session.getStream?.send(message)) delivered++;
    }
    log.debug("Notification {method} from {name} reached {count} clients", {
      method: message.method,
      name: link.name,
      count: delivered,
    });
  }

  /**
   * Routes a server-initiated request to one client of that server that declared the capability it needs,
   * preferring a client with a call in flight on an SSE stream (the request most likely belongs to that
   * call), else one with a GET stream. Without such a client it answers with a JSON-RPC error at once.
   */
  serverRequest(
    link: TunnelSession,
    request: JsonRpcRequest,
    signal: AbortSignal,
  ): Promise<JsonRpcResponse> {
    const capability = CAPABILITY_OF[request.method];
    let target: { session: ClientSession; stream: SseStream; rank: number } | undefined;
    for (const session of this.#sessions.values()) {
      if (session.owner !== link.owner || session.serverName !== link.name) continue;
      if (capability !== undefined && !isObject(session.capabilities[capability])) continue;
      const callStream = session.latestStream();
      const stream = callStream ??
        (session.getStream && !session.getStream.closed ? session.getStream : undefined);
      if (stream === undefined) continue;
      const rank = (callStream ? 2e15 : 0) + session.lastSeen;
      if (target === undefined || rank > target.rank) target = { session, stream, rank };
    }
    if (target === undefined) {
      return Promise.resolve(
        errorResponse(
          request.id,
          ErrorCode.MethodNotFound,
          capability === undefined
            ? `No MCP client of server '${link.name}' is connected to answer '${request.method}'`
            : `No connected MCP client of server '${link.name}' declared the '${capability}' capability`,
        ),
      );
    }
    const { session, stream } = target;
    const key = idKey(request.id);
    return new Promise((resolve) => {
      const finish = (response: JsonRpcResponse) => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        if (session.serverRequests.get(key) === finish) session.serverRequests.delete(key);
        resolve(response);
      };
      const onAbort = () => {
        stream.send({
          jsonrpc: "2.0",
          method: "notifications/cancelled",
          params: { requestId: request.id, reason: String(signal.reason ?? "cancelled") },
        });
        finish(errorResponse(request.id, ErrorCode.InternalError, "Cancelled"));
      };
      const timer = setTimeout(() => {
        stream.send({
          jsonrpc: "2.0",
          method: "notifications/cancelled",
          params: { requestId: request.id, reason: "timed out" },
        });
        finish(
          errorResponse(
            request.id,
            ErrorCode.Timeout,
            `The MCP client did not answer '${request.method}' within ${
              this.#options.callTimeoutMs / 1000
            } s`,
          ),
        );
      }, this.#options.callTimeoutMs);
      signal.addEventListener("abort", onAbort, { once: true });
      session.serverRequests.get(key)?.(
        errorResponse(
          request.id,
          ErrorCode.InternalError,
          "Superseded by a request with the same id",
        ),
      );
      session.serverRequests.set(key, finish);
      if (!stream.send(request)) {
        finish(
          errorResponse(request.id, ErrorCode.TunnelUnavailable, "The MCP client's stream closed"),
        );
      }
    });
  }

  /** Forgets sessions idle for longer than the TTL. */
  sweep(): void {
    const now = this.#now();
    for (const [id, session] of this.#sessions) {
      const idle = now - session.lastSeen > this.#options.sessionTtlMs;
      if (idle && session.calls.size === 0 && (!session.getStream || session.getStream.closed)) {
        this.#sessions.delete(id);
        session.end("idle");
      }
    }
  }

  /** Ends every session and stream. */
  close(): void {
    for (const session of this.#sessions.values()) session.end("gateway shutting down");
    this.#sessions.clear();
  }

  #session(
    request: Request,
    identity: Identity,
    serverName: string,
  ): ClientSession | Response {
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
        `Unsupported MCP-Protocol-Version ${version}; supported: ${
          SUPPORTED_PROTOCOL_VERSIONS.join(", ")
        }`,
      );
    }
    session.lastSeen = this.#now();
    return session;
  }

  async #readBody(request: Request): Promise<unknown | Response> {
    const type = (request.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
    if (type !== "application/json") {
      await request.body?.cancel();
      return rpcError(415, null, ErrorCode.InvalidRequest, "Content-Type must be application/json");
    }
    let bytes: Uint8Array;
    try {
      bytes = await readBody(request, this.#options.maxBodyBytes);
    } catch (error) {
      if (!(error instanceof BodyTooLargeError)) throw error;
      return rpcError(413, null, ErrorCode.InvalidRequest, error.message);
    }
    try {
      return JSON.parse(new TextDecoder().decode(bytes));
    } catch (error) {
      return rpcError(
        400,
        null,
        ErrorCode.ParseError,
        `Body is not JSON: ${(error as Error).message}`,
      );
    }
  }

  async #post(request: Request, identity: Identity, serverName: string): Promise<Response> {
    const body = await this.#readBody(request);
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
    const link = this.#options.registry.find(identity.owner, serverName);
    if (kind === "notification") {
      this.#clientNotification(message as JsonRpcNotification, session, link);
      return new Response(null, { status: 202, headers });
    }
    if (kind === "response") {
      const response = message as JsonRpcResponse;
      const settle = response.id === null
        ? undefined
        : session.serverRequests.get(idKey(response.id));
      if (settle === undefined) {
        log.warning("Dropped a client response for unknown id on {name}", { name: serverName });
      } else {
        settle(response);
      }
      return new Response(null, { status: 202, headers });
    }
    return this.#call(message as JsonRpcRequest, { session, link, accept, headers });
  }

  #clientNotification(
    message: JsonRpcNotification,
    session: ClientSession,
    link: TunnelSession | undefined,
  ): void {
    if (message.method === "notifications/initialized") return; // the gateway's own was sent already
    if (message.method === "notifications/cancelled") {
      const params = isObject(message.params) ? message.params : {};
      const requestId = params.requestId;
      if (typeof requestId === "string" || typeof requestId === "number") {
        // The link sends the server a cancellation with the rewritten id.
        session.calls.get(idKey(requestId))?.controller.abort(
          typeof params.reason === "string" ? params.reason : "cancelled by the client",
        );
      }
      return;
    }
    if (link === undefined || !link.notify(message)) {
      log.debug("Dropped client notification {method}: server not connected", {
        method: message.method,
      });
    }
  }

  async #initialize(
    message: JsonRpcRequest,
    identity: Identity,
    serverName: string,
    accept: { json: boolean; sse: boolean },
  ): Promise<Response> {
    const link = this.#options.registry.find(identity.owner, serverName);
    if (link === undefined) {
      return rpcError(404, message.id, ErrorCode.InvalidRequest, `No server named '${serverName}'`);
    }
    const held = await link.initializeResult();
    if (held.error !== undefined || !isObject(held.result)) {
      return this.#reply({ ...held, id: message.id }, accept, {});
    }
    const params = isObject(message.params) ? message.params : {};
    const version = negotiateVersion(params.protocolVersion);
    if (!this.#makeRoom(identity.owner)) {
      return rpcError(
        429,
        message.id,
        ErrorCode.InternalError,
        `Too many MCP sessions for owner ${identity.owner} (limit ${MAX_CLIENT_SESSIONS_PER_OWNER}); end some with DELETE`,
      );
    }
    const session = new ClientSession(
      identity.owner,
      serverName,
      isObject(params.capabilities) ? params.capabilities : {},
      version,
      this.#now(),
    );
    this.#sessions.set(session.id, session);
    log.info("MCP client session {mcpSession} of {owner} opened on {name}", {
      mcpSession: session.id,
      owner: identity.owner,
      name: serverName,
    });
    return this.#reply(
      { jsonrpc: "2.0", id: message.id, result: { ...held.result, protocolVersion: version } },
      accept,
      { "mcp-session-id": session.id },
    );
  }

  /** Keeps an owner under the session cap by forgetting its least recently used idle session. */
  #makeRoom(owner: string): boolean {
    let count = 0;
    let oldest: ClientSession | undefined;
    for (const session of this.#sessions.values()) {
      if (session.owner !== owner) continue;
      count++;
      const idle = session.calls.size === 0 && (!session.getStream || session.getStream.closed);
      if (idle && (oldest === undefined || session.lastSeen < oldest.lastSeen)) oldest = session;
    }
    if (count < MAX_CLIENT_SESSIONS_PER_OWNER) return true;
    if (oldest === undefined) return false;
    this.#sessions.delete(oldest.id);
    oldest.end("too many sessions for the owner");
    return true;
  }

  /** One answer as JSON, or as a one-event SSE stream when the client accepts only SSE. */
  #reply(
    response: JsonRpcResponse,
    accept: { json: boolean; sse: boolean },
    headers: Record<string, string>,
  ): Response {
    if (accept.json) return Response.json(response, { headers });
    const stream = new SseStream();
    stream.send(response);
    stream.close();
    return new Response(stream.readable, { headers: { ...SSE_HEADERS, ...headers } });
  }

  #call(
    message: JsonRpcRequest,
    context: {
      session: ClientSession;
      link: TunnelSession | undefined;
      accept: { json: boolean; sse: boolean };
      headers: Record<string, string>;
    },
  ): Response | Promise<Response> {
    const { session, link, accept, headers } = context;
    if (link === undefined) {
      return this.#reply(
        errorResponse(
          message.id,
          ErrorCode.TunnelUnavailable,
          `Server '${session.serverName}' is not connected`,
        ),
        accept,
        headers,
      );
    }
    const key = idKey(message.id);
    if (session.calls.has(key)) {
      return this.#reply(
        errorResponse(message.id, ErrorCode.InvalidRequest, "A request with this id is in flight"),
        accept,
        headers,
      );
    }
    const controller = new AbortController();
    const call: ClientCall = { controller, started: this.#now() };
    session.calls.set(key, call);
    const forget = () => {
      if (session.calls.get(key) === call) session.calls.delete(key);
    };
    if (accept.sse && (!accept.json || wantsStream(message, session))) {
      // SSE lets progress and server requests for this call travel with it. A plain call answers with
      // JSON: no stream to set up and tear down per call (a third of the gateway's cost per call).
      // Overflow is treated like a disconnect: the server gets notifications/cancelled for the call.
      const stream = this.#boundedStream(
        session,
        `stream of call ${JSON.stringify(message.id)}`,
        () => controller.abort("the MCP client stopped reading its stream"),
      );
      call.stream = stream;
      stream.onCancel = () => controller.abort("the MCP client disconnected");
      void link.call(message, {
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
    // JSON mode cannot see a client disconnect (request.signal also aborts on success in Deno's legacy
    // mode): the call runs to its answer or timeout. SSE mode cancels on disconnect.
    return link.call(message, {
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
  #boundedStream(session: ClientSession, what: string, closed: () => void): SseStream {
    const max = this.#options.maxClientBufferBytes;
    const stream = new SseStream(max === undefined ? {} : { maxBufferedBytes: max });
    stream.onOverflow = (buffered) => {
      this.#options.metrics?.errors.inc("slow_client");
      log.warning(
        "Closed the {what} of MCP client session {mcpSession} of {owner} on {name}: the client did not read {bytes} bytes queued for it (--max-client-buffer {limit})",
        {
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
    const gone = () => {
      if (session.getStream === stream) session.getStream = undefined;
      session.lastSeen = this.#now();
    };
    const stream = this.#boundedStream(session, "GET stream", gone);
    const previous = session.getStream;
    session.getStream = stream;
    previous?.close();
    stream.onCancel = gone;
    return new Response(stream.readable, {
      headers: { ...SSE_HEADERS, "mcp-session-id": session.id },
    });
  }

  #delete(request: Request, identity: Identity, serverName: string): Response {
    const session = this.#session(request, identity, serverName);
    if (session instanceof Response) return session;
    this.#sessions.delete(session.id);
    session.end("deleted by the client");
    log.info("MCP client session {mcpSession} of {owner} on {name} ended by the client", {
      mcpSession: session.id,
      owner: identity.owner,
      name: serverName,
    });
    return new Response(null, { status: 204 });
  }
}
