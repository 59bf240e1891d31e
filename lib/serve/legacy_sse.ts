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
  runCall,
} from "./mcp_dispatch.ts";
import { acceptOf, readJsonBody, rpcError } from "./mcp_http.ts";
import { SSE_HEADERS, type SseStream } from "./sse_stream.ts";
import type { TunnelRegistry } from "./tunnel_registry.ts";
import type { TunnelSession } from "./tunnel_session.ts";
import type { Identity } from "./token_store.ts";

const log = logger("serve", "mcp");

/** The protocol version a legacy session is assumed to speak until its `initialize` says otherwise. */
const LEGACY_PROTOCOL_VERSION = "2024-11-05";

/** Options of {@link LegacySse}. */
export interface LegacySseOptions {
  sessions: McpClientSessions;
  registry: TunnelRegistry<TunnelSession>;
  maxBodyBytes: number;
  /** Path prefix clients see before `/servers/…` ("" without one). */
  publicPath: string;
  now: () => number;
  /** Counts a GET stream of `credential` against `--max-streams-per-token` until its connection ends. */
  openStream(credential: string): (connection: SseStream) => void;
  /** A new SSE connection for `session`, bounded by `--max-client-buffer`. */
  connection(session: McpClientSession, what: string): SseStream;
}

/** The two paths of the legacy transport. */
export class LegacySse {
  #options: LegacySseOptions;

  constructor(options: LegacySseOptions) {
    this.#options = options;
  }

  /** `GET /servers/<serverName>/sse`: a new session, its SSE connection and its `endpoint` event. */
  open(request: HttpRequest, identity: Identity, serverName: string): Response {
    if (!acceptOf(request).sse) {
      return new Response("GET needs Accept: text/event-stream", { status: 406 });
    }
    const { sessions, registry, publicPath } = this.#options;
    const tunnel = registry.find(identity.owner, serverName);
    if (tunnel === undefined) {
      return rpcError(
        404,
        null,
        ErrorCode.InvalidRequest,
        `No server named '${serverName.slice(0, 128)}'`,
      );
    }
    const session = sessions.open({
      owner: identity.owner,
      serverName,
      capabilities: {},
      protocolVersion: LEGACY_PROTOCOL_VERSION,
      perClient: tunnel.perClient,
    }, { legacy: true });
    if (session === undefined) {
      return rpcError(
        429,
        null,
        ErrorCode.InternalError,
        `Too many MCP sessions for owner ${identity.owner} (limit ${sessions.maxPerOwner}, --max-mcp-sessions-per-owner); close some`,
      );
    }
    const connection = this.#options.connection(session, "legacy SSE stream");
    this.#options.openStream(identity.credential)(connection);
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
    if (
      session === undefined || !session.legacy || session.owner !== identity.owner ||
      session.serverName !== serverName
    ) {
      await request.body?.cancel();
      return rpcError(
        404,
        null,
        ErrorCode.InvalidRequest,
        "Session not found; open a new one with GET /servers/<name>/sse",
      );
    }
    const body = await readJsonBody(request, this.#options.maxBodyBytes);
    if (body instanceof Response) return body;
    if (Array.isArray(body)) {
      return rpcError(400, null, ErrorCode.InvalidRequest, "JSON-RPC batches are not supported");
    }
    const kind = classify(body);
    if (kind === "invalid") {
      return rpcError(400, null, ErrorCode.InvalidRequest, "Body is not a JSON-RPC message");
    }
    session.touch(this.#options.now());
    const message = body as JsonObject;
    const tunnel = this.#options.registry.find(identity.owner, serverName);
    if (kind === "notification") {
      clientNotification(message as JsonRpcNotification, session, tunnel);
    } else if (kind === "response") clientResponse(message as JsonRpcResponse, session);
    else void this.#request(message as JsonRpcRequest, session, tunnel);
    return new Response("Accepted", { status: 202 });
  }

  async #request(
    message: JsonRpcRequest,
    session: McpClientSession,
    tunnel: TunnelSession | undefined,
  ): Promise<void> {
    const stream = session.getStream;
    if (stream === undefined) return;
    if (message.method === "initialize") {
      if (tunnel === undefined) {
        stream.send(
          errorResponse(
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
