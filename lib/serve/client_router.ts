// What a tunneled server sends on its own reaches its MCP clients. A shared server's notifications go to
// every client of the server, and its requests (roots, sampling, elicitation) to the one client that can
// answer; what a per-client instance sends goes to its own client session and to no other. Requests have
// a deadline and cancellation both ways.

import { ErrorCode, errorResponse } from "../protocol/jsonrpc.ts";
import type { JsonRpcNotification, JsonRpcRequest, JsonRpcResponse } from "../protocol/jsonrpc.ts";
import { logger } from "../util/log.ts";
import type { McpClientSession, McpClientSessions } from "./mcp_client_session.ts";
import { encodeMessageEvent } from "./resumable_stream.ts";
import type { ClientStream } from "./resumable_stream.ts";

const log = logger("serve", "mcp");

/** Client capability a server-initiated request needs. */
const CAPABILITY_OF: Record<string, string> = {
  "roots/list": "roots",
  "sampling/createMessage": "sampling",
  "elicitation/create": "elicitation",
};

/** The tunneled server a message comes from. */
export interface ServerRef {
  readonly owner: string;
  readonly name: string;
}

/** Routes server-initiated messages to MCP client sessions. */
export class ClientRouter {
  #sessions: McpClientSessions;
  #timeoutMs: number;

  /** `timeoutMs`: how long a client may take to answer a server-initiated request. */
  constructor(sessions: McpClientSessions, timeoutMs: number) {
    this.#sessions = sessions;
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Sends a server notification to every client of that server, or to `clientSession` alone (a
   * per-client instance's): on their GET streams (kept for replay while a stream waits within its resume
   * window) or legacy SSE connections.
   */
  notification(server: ServerRef, message: JsonRpcNotification, clientSession?: string): void {
    if (clientSession !== undefined) {
      const delivered = this.#own(server, clientSession)?.getStream?.send(message) === true;
      log.debug("Notification {method} from {name} reached its client: {delivered}", {
        event: "server_notification",
        method: message.method,
        name: server.name,
        delivered,
      });
      return;
    }
    let delivered = 0;
    // Encoded once: a flood of notifications to many clients holds one copy of each, not one per client.
    let event: Uint8Array | undefined;
    for (const session of this.#sessions.ofServer(server.owner, server.name)) {
      const stream = session.getStream;
      if (stream === undefined) continue;
      event ??= encodeMessageEvent(JSON.stringify(message));
      if (stream.sendEncoded(event)) delivered++;
    }
    log.debug("Notification {method} from {name} reached {count} clients", {
      event: "server_notification",
      method: message.method,
      name: server.name,
      count: delivered,
    });
  }

  /**
   * Routes a server-initiated request to one client of that server that declared the capability it needs,
   * preferring a client with a call in flight on an SSE stream (the request most likely belongs to that
   * call), else one with a GET stream, each with a client connection open now. Without such a client it
   * answers with a JSON-RPC error at once.
   */
  request(
    server: ServerRef,
    request: JsonRpcRequest,
    signal: AbortSignal,
    clientSession?: string,
  ): Promise<JsonRpcResponse> {
    const capability = CAPABILITY_OF[request.method];
    const target = clientSession === undefined
      ? this.#target(server, capability)
      : this.#ownTarget(server, clientSession, capability);
    if (target === undefined) {
      return Promise.resolve(
        errorResponse(
          request.id,
          ErrorCode.MethodNotFound,
          clientSession !== undefined
            ? `The MCP client of this instance of server '${server.name}' is not connected, or did not declare the '${capability}' capability needed for '${request.method}'`
            : capability === undefined
            ? `No MCP client of server '${server.name}' is connected to answer '${request.method}'`
            : `No connected MCP client of server '${server.name}' declared the '${capability}' capability`,
        ),
      );
    }
    const { session, stream } = target;
    return new Promise((resolve) => {
      const finish = (response: JsonRpcResponse) => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        forget();
        resolve(response);
      };
      const cancel = (reason: string) =>
        stream.send({
          jsonrpc: "2.0",
          method: "notifications/cancelled",
          params: { requestId: request.id, reason },
        });
      const onAbort = () => {
        cancel(String(signal.reason ?? "cancelled"));
        finish(errorResponse(request.id, ErrorCode.InternalError, "Cancelled"));
      };
      const timer = setTimeout(() => {
        cancel("timed out");
        finish(
          errorResponse(
            request.id,
            ErrorCode.Timeout,
            `The MCP client did not answer '${request.method}' within ${this.#timeoutMs / 1000} s`,
          ),
        );
      }, this.#timeoutMs);
      signal.addEventListener("abort", onAbort, { once: true });
      const forget = session.expectAnswer(request.id, finish);
      if (!stream.send(request)) {
        finish(
          errorResponse(request.id, ErrorCode.TunnelUnavailable, "The MCP client's stream closed"),
        );
      }
    });
  }

  /**
   * Whether a client of `server` connected here (client session `clientSession`, when given) could be
   * asked `method` now: with a client connection open, not only a stream held for it.
   */
  canAnswer(server: ServerRef, method: string, clientSession?: string): boolean {
    if (clientSession === undefined) {
      return this.#target(server, CAPABILITY_OF[method]) !== undefined;
    }
    return this.#ownTarget(server, clientSession, CAPABILITY_OF[method])?.stream.attached === true;
  }

  /** The client session `id` of `server`, when it is one of that server's. */
  #own(server: ServerRef, id: string): McpClientSession | undefined {
    const session = this.#sessions.get(id);
    return session?.owner === server.owner && session.serverName === server.name
      ? session
      : undefined;
  }

  /**
   * Where a per-client instance's request goes: its own client, on the stream of its latest call with a
   * connection, else its GET stream (held for the client until it opens it: the instance may ask right
   * after `initialized`, before the GET).
   */
  #ownTarget(
    server: ServerRef,
    id: string,
    capability: string | undefined,
  ): { session: McpClientSession; stream: ClientStream } | undefined {
    const session = this.#own(server, id);
    if (session === undefined || (capability !== undefined && !session.declares(capability))) {
      return undefined;
    }
    const stream = session.latestStream() ?? session.getStream;
    return stream === undefined ? undefined : { session, stream };
  }

  #target(
    server: ServerRef,
    capability: string | undefined,
  ): { session: McpClientSession; stream: ClientStream } | undefined {
    let best: { session: McpClientSession; stream: ClientStream; rank: number } | undefined;
    for (const session of this.#sessions.ofServer(server.owner, server.name)) {
      if (capability !== undefined && !session.declares(capability)) continue;
      const callStream = session.latestStream();
      const getStream = session.getStream;
      const stream = callStream ?? (getStream?.attached ? getStream : undefined);
      if (stream === undefined) continue;
      const rank = (callStream ? 2e15 : 0) + session.lastSeen;
      if (best === undefined || rank > best.rank) best = { session, stream, rank };
    }
    return best;
  }
}
