// The legacy HTTP+SSE transport (MCP 2024-11-05) beside Streamable HTTP: `GET /servers/<name>/sse` opens a
// session whose one SSE connection first names, in an `endpoint` event, where to POST messages
// (`/servers/<name>/messages?sessionId=…`); every answer, progress and server message then comes on that
// connection. Same auth, routing, limits and owner isolation as /mcp; its connection closing ends the
// session (the transport has no resumption).

import type { HttpRequest } from "./http_request.ts";
import {
  classify,
  ErrorCode,
  errorResponse,
  type JsonObject,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from "../protocol/jsonrpc.ts";
import { logger } from "../util/log.ts";
import { RawResponse } from "./call_table.ts";
import type {
  LegacyConnection,
  McpClientSession,
  McpClientSessions,
} from "./mcp_client_session.ts";
import {
  answerInitialize,
  callRefusal,
  clientNotification,
  clientResponse,
  initializeOwn,
  initializeRefusal,
  runCall,
} from "./mcp_dispatch.ts";
import { acceptOf, readJsonBody, rpcError } from "./mcp_http.ts";
import type { McpStreams } from "./mcp_streams.ts";
import { SSE_HEADERS } from "./sse_stream.ts";
import type { TunnelRegistry } from "./tunnel_registry.ts";
import type { TunnelSession } from "./tunnel_session.ts";
import type { CallTarget } from "./call_contract.ts";
import type { Identity } from "./token_store.ts";

const log = logger("serve", "mcp");

/** The protocol version a legacy session is assumed to speak until its `initialize` says otherwise. */
const LEGACY_PROTOCOL_VERSION = "2024-11-05";

/** Options of {@link LegacySse}. */
export interface LegacySseOptions {
  sessions: McpClientSessions;
  registry: TunnelRegistry<TunnelSession>;
  /** The largest POST body, and the largest `initialize` params (`--max-initialize-bytes`). */
  limits: { maxBodyBytes: number; maxInitializeBytes?: number | undefined };
  /** Path prefix clients see before `/servers/…` ("" without one). */
  publicPath: string;
  now: () => number;
  /**
   * New SSE connections for sessions, bounded by `--max-client-buffer`, and counted against
   * `--max-streams-per-token` until they end.
   */
  streams: Pick<McpStreams, "connection" | "count" | "limit">;
  /** Replicas: a server another replica holds. */
  remote?: (owner: string, name: string) => Promise<CallTarget | undefined>;
  /** Replicas: this replica's id (in the session ids it mints), and the way to the others' sessions. */
  replica?: LegacyReplica;
}

/** A legacy POST for a session another replica holds the connection of (lib/serve/cluster/). */
export interface LegacyForward {
  owner: string;
  serverName: string;
  sessionId: string;
  message: JsonObject;
}

/** How a replica reaches the legacy sessions of the others. */
export interface LegacyReplica {
  id: string;
  /**
   * Hands a POST to the replica holding its session's connection; resolves with the HTTP status, and why
   * when that replica did not answer (504).
   */
  forward(rid: string, post: LegacyForward): Promise<{ status: number; error?: string }>;
}

/** A legacy session id minted by a replica: `<rid>.<uuid>`, so that any replica finds its holder. */
const REPLICA_SESSION = /^([A-Za-z0-9_-]{1,64})\.[0-9a-f-]{36}$/;

/** The two paths of the legacy transport. */
export class LegacySse {
  #options: LegacySseOptions;

  constructor(options: LegacySseOptions) {
    this.#options = options;
  }

  /** `GET /servers/<serverName>/sse`: a new session, its SSE connection and its `endpoint` event. */
  async open(request: HttpRequest, identity: Identity, serverName: string): Promise<Response> {
    if (!acceptOf(request).sse) {
      return new Response("GET needs Accept: text/event-stream", { status: 406 });
    }
    const { sessions, publicPath, replica } = this.#options;
    const tunnel = await this.#tunnel(identity.owner, serverName);
    if (tunnel === undefined) {
      return rpcError(
        404,
        null,
        ErrorCode.InvalidRequest,
        `No server named '${serverName.slice(0, 128)}'`,
      );
    }
    // Checked again after the lookup, which may wait (a server another replica holds): GETs of one
    // token that all passed the check before it must not all open.
    const tooMany = this.#options.streams.limit(identity.credential, false);
    if (tooMany !== undefined) return tooMany;
    const session = sessions.open({
      owner: identity.owner,
      serverName,
      capabilities: {},
      protocolVersion: LEGACY_PROTOCOL_VERSION,
      perClient: tunnel.perClient,
    }, {
      legacy: true,
      // A replica names itself in the id: a POST that lands on another replica is handed to this one.
      ...(replica === undefined ? {} : { id: `${replica.id}.${crypto.randomUUID()}` }),
    });
    if (session === undefined) {
      return rpcError(
        429,
        null,
        ErrorCode.InternalError,
        `Too many MCP sessions for owner ${identity.owner} (limit ${sessions.maxPerOwner}, --max-mcp-sessions-per-owner); close some`,
      );
    }
    const connection = this.#options.streams.connection(session, "legacy SSE stream");
    this.#options.streams.count(identity.credential)(connection);
    const legacy: LegacyConnection = {
      send: (message) => connection.send(message),
      sendEncoded: (event) => connection.write(event),
      sendText: (json) => connection.sendText(json),
      get attached() {
        return !connection.closed;
      },
      close: () => connection.close(),
    };
    session.attachLegacy(legacy);
    // No resumption in this transport: a connection gone is a session gone, its calls cancelled.
    const end = (why: string) => {
      sessions.delete(session, why);
      log.info("Legacy SSE session {mcpSession} of {owner} on {name} ended: {reason}", {
        event: "mcp_session_deleted",
        mcpSession: session.id,
        owner: session.owner,
        name: serverName,
        reason: why,
      });
    };
    connection.onCancel = () => end("the client closed its SSE connection");
    const reportOverflow = connection.onOverflow;
    connection.onOverflow = (bytes) => {
      reportOverflow?.(bytes);
      end("the client stopped reading its SSE connection");
    };
    const path = `${publicPath}/servers/${encodeURIComponent(serverName)}/messages`;
    connection.write(
      new TextEncoder().encode(`event: endpoint\ndata: ${path}?sessionId=${session.id}\n\n`),
    );
    log.info("Legacy SSE session {mcpSession} of {owner} opened on {name}", {
      event: "mcp_session_opened",
      mcpSession: session.id,
      owner: identity.owner,
      name: serverName,
      transport: "sse",
    });
    return new Response(connection.readable, { headers: SSE_HEADERS });
  }

  /** `POST /servers/<serverName>/messages?sessionId=…`: one message; its answer goes on the connection. */
  async post(request: HttpRequest, identity: Identity, serverName: string): Promise<Response> {
    const id = new URL(request.url).searchParams.get("sessionId");
    const session = id === null ? undefined : this.#options.sessions.get(id);
    const holder = id === null ? undefined : REPLICA_SESSION.exec(id)?.[1];
    const replica = this.#options.replica;
    if (
      session === undefined && replica !== undefined && holder !== undefined &&
      holder !== replica.id
    ) {
      const body = await this.#message(request);
      if (body instanceof Response) return body;
      const { status, error } = await replica.forward(holder, {
        owner: identity.owner,
        serverName,
        sessionId: id!,
        message: body,
      });
      if (error !== undefined) return Response.json({ error }, { status });
      return status === 202 ? new Response("Accepted", { status }) : notFound();
    }
    if (
      session === undefined || !session.legacy || session.owner !== identity.owner ||
      session.serverName !== serverName
    ) {
      await request.body?.cancel();
      return notFound();
    }
    const body = await this.#message(request);
    if (body instanceof Response) return body;
    return this.#deliver(session, body);
  }

  /**
   * A POST another replica received for a session whose connection is here: 202 when its session is
   * here and its owner's, else 404.
   */
  forwarded(post: LegacyForward): Promise<number> {
    const session = this.#options.sessions.get(post.sessionId);
    if (
      session === undefined || !session.legacy || session.owner !== post.owner ||
      session.serverName !== post.serverName
    ) {
      return Promise.resolve(404);
    }
    return this.#deliver(session, post.message).then((response) => response.status);
  }

  /** The body of a POST: one JSON-RPC message, or the error to answer. */
  async #message(request: HttpRequest): Promise<JsonObject | Response> {
    const body = await readJsonBody(request, this.#options.limits.maxBodyBytes);
    if (body instanceof Response) return body;
    if (Array.isArray(body)) {
      return rpcError(400, null, ErrorCode.InvalidRequest, "JSON-RPC batches are not supported");
    }
    if (classify(body) === "invalid") {
      return rpcError(400, null, ErrorCode.InvalidRequest, "Body is not a JSON-RPC message");
    }
    return body as JsonObject;
  }

  /** One message of `session`: its answer goes on the session's connection. */
  async #deliver(session: McpClientSession, message: JsonObject): Promise<Response> {
    const kind = classify(message);
    session.touch(this.#options.now());
    const tunnel = await this.#tunnel(session.owner, session.serverName);
    if (kind === "notification") {
      clientNotification(message as JsonRpcNotification, session, tunnel);
    } else if (kind === "response") clientResponse(message as JsonRpcResponse, session);
    else void this.#request(message as JsonRpcRequest, session, tunnel);
    return new Response("Accepted", { status: 202 });
  }

  /** The server here, else (replicas) held by another replica. */
  async #tunnel(owner: string, name: string): Promise<CallTarget | undefined> {
    return this.#options.registry.find(owner, name) ?? await this.#options.remote?.(owner, name);
  }

  async #request(
    message: JsonRpcRequest,
    session: McpClientSession,
    tunnel: CallTarget | undefined,
  ): Promise<void> {
    const stream = session.getStream;
    if (stream === undefined) return;
    if (message.method === "initialize") {
      const tooLarge = initializeRefusal(message, this.#options.limits.maxInitializeBytes);
      if (tooLarge !== undefined || tunnel === undefined) {
        stream.send(
          tooLarge ?? errorResponse(
            message.id,
            ErrorCode.TunnelUnavailable,
            `Server '${session.serverName}' is not connected`,
          ),
        );
        return;
      }
      if (tunnel.perClient) {
        stream.send(await initializeOwn(message, session, tunnel));
        return;
      }
      const { response, accepted } = await answerInitialize(message, tunnel);
      if (accepted !== undefined) {
        session.initialized(accepted.capabilities, accepted.protocolVersion);
      }
      stream.send(response);
      return;
    }
    const refusal = callRefusal(message, session, tunnel);
    if (refusal !== undefined || tunnel === undefined) {
      stream.send(refusal);
      return;
    }
    const { answer } = runCall(message, {
      session,
      tunnel,
      stream,
      now: this.#options.now(),
      onProgress: (progress) => stream.send(progress),
    });
    const response = await answer;
    if (response instanceof RawResponse) stream.sendText(response.text);
    else if (response !== undefined) stream.send(response);
  }
}

function notFound(): Response {
  return rpcError(
    404,
    null,
    ErrorCode.InvalidRequest,
    "Session not found; open a new one with GET /servers/<name>/sse",
  );
}
