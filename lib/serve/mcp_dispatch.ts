// What a message from an MCP client does, whatever transport brought it (Streamable HTTP or legacy
// HTTP+SSE): notifications (cancellation), answers to server requests, `initialize` answered from a shared
// server's held result or passed to the client's own instance of a per-client server, and calls through
// the tunnel, tracked as the session's calls.

import { isObject, type JsonObject } from "../util/json_object.ts";
import {
  ErrorCode,
  errorResponse,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from "../protocol/jsonrpc.ts";
import { negotiateVersion, SUPPORTED_PROTOCOL_VERSIONS } from "../protocol/mcp_versions.ts";
import { logger } from "../util/log.ts";
import { heldBackText, LogThrottle } from "../util/log_throttle.ts";
import { utf8Length } from "../util/utf8.ts";
import { RawResponse } from "./call_table.ts";
import type { ClientCall, McpClientSession } from "./mcp_client_session.ts";
import { type ClientStream, ResumableStream } from "./resumable_stream.ts";
import type { CallTarget } from "./call_contract.ts";
import type { TunnelRegistry } from "./tunnel_registry.ts";
import type { TunnelSession } from "./tunnel_session.ts";

const log = logger("serve", "mcp");

/** A call's answer: parsed, kept as text, or undefined when the call was cancelled. */
export type CallAnswer = JsonRpcResponse | RawResponse | undefined;

/** The client session a per-client server's frames must name; undefined for a shared server. */
export function clientSessionOf(
  session: McpClientSession,
  tunnel: CallTarget,
): string | undefined {
  return tunnel.perClient ? session.id : undefined;
}

/**
 * Handles a notification from a client: cancellation of its own call, else passed to the server (to its
 * own instance of a per-client server, which also gets its `initialized`). Returns why it could not be
 * passed on, or undefined once it was handled.
 */
export function clientNotification(
  message: JsonRpcNotification,
  session: McpClientSession,
  tunnel: CallTarget | undefined,
): string | undefined {
  // A shared server was initialized by the gateway, which sent its own `initialized`.
  if (message.method === "notifications/initialized" && tunnel?.perClient !== true) return;
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
  if (tunnel === undefined || !tunnel.calls.notify(message, clientSessionOf(session, tunnel))) {
    log.debug("Dropped client notification {method}: server not connected", {
      event: "client_notification_dropped",
      method: message.method,
    });
    return `Server '${session.serverName}' is not connected: the notification was not delivered`;
  }
  return undefined;
}

/** Warnings about a session's answers to nothing: a client can send them at will, so one per interval. */
const unknownAnswers = new WeakMap<McpClientSession, LogThrottle>();

/** Hands a client's answer to the server request that waits for it. */
export function clientResponse(response: JsonRpcResponse, session: McpClientSession): void {
  if (session.answer(response)) return;
  let throttle = unknownAnswers.get(session);
  if (throttle === undefined) {
    unknownAnswers.set(session, throttle = new LogThrottle({ intervalMs: 10_000 }));
  }
  const suppressed = throttle.take();
  if (suppressed === undefined) return;
  log.warning("Dropped a client response for unknown id on {name}{more}", {
    event: "unknown_client_response",
    name: session.serverName,
    more: heldBackText(suppressed),
  });
}

/**
 * How a per-client server's instance stops with its client's session (DELETE, TTL, room) when the tunnel
 * is held here: the tunnel session tells connect. (Replicas pass the end on to the holder instead.)
 */
export function endOnLocalTunnel(
  registry: TunnelRegistry<TunnelSession>,
): (session: McpClientSession, reason: string) => void {
  return (session, reason) =>
    registry.find(session.owner, session.serverName)?.endClientSession(session.id, reason);
}

/** The default of `--max-initialize-bytes`. */
export const DEFAULT_MAX_INITIALIZE_BYTES = 64 * 1024;

/**
 * The error for an `initialize` whose params (what its session keeps of the client while it lives) are
 * over `maxBytes` of JSON; undefined when they fit. Clients declare their capabilities in far less.
 */
export function initializeRefusal(
  message: JsonRpcRequest,
  maxBytes = DEFAULT_MAX_INITIALIZE_BYTES,
): JsonRpcResponse | undefined {
  const bytes = utf8Length(JSON.stringify(message.params ?? {}));
  if (bytes <= maxBytes) return undefined;
  return errorResponse(
    message.id,
    ErrorCode.InvalidParams,
    `The initialize params are ${bytes} bytes, over this gateway's limit of ${maxBytes} (--max-initialize-bytes): declare fewer capabilities or less client info`,
  );
}

/** What `initialize` gets: the answer, and what the client declared when it succeeded. */
export interface InitializeOutcome {
  response: JsonRpcResponse;
  /** Set when the server's held result was good: the client's capabilities and the version agreed. */
  accepted?: { capabilities: JsonObject; protocolVersion: string };
}

/**
 * Answers a client's `initialize` from the server's held result, with the protocol version negotiated:
 * the client's if the gateway supports it, else the latest.
 */
export async function answerInitialize(
  message: JsonRpcRequest,
  tunnel: CallTarget,
): Promise<InitializeOutcome> {
  const held = await tunnel.initializeResult();
  if (held.error !== undefined || !isObject(held.result)) {
    return { response: { ...held, id: message.id } };
  }
  const params = isObject(message.params) ? message.params : {};
  const protocolVersion = negotiateVersion(params.protocolVersion);
  return {
    response: { jsonrpc: "2.0", id: message.id, result: { ...held.result, protocolVersion } },
    accepted: {
      capabilities: isObject(params.capabilities) ? params.capabilities : {},
      protocolVersion,
    },
  };
}

/**
 * Passes a client's `initialize` to its own instance of a per-client server (connect starts it with
 * exactly these parameters; only the protocol version is one this gateway speaks), and records what the
 * client declared and the version agreed on when it succeeded.
 */
export async function initializeOwn(
  message: JsonRpcRequest,
  session: McpClientSession,
  tunnel: CallTarget,
): Promise<JsonRpcResponse> {
  const params = isObject(message.params) ? message.params : {};
  const protocolVersion = negotiateVersion(params.protocolVersion);
  const answer = await tunnel.calls.call(
    { ...message, params: { ...params, protocolVersion } },
    { clientSession: session.id },
  );
  const response = answer instanceof RawResponse
    ? answer.parse()
    : answer ?? errorResponse(message.id, ErrorCode.InternalError, "Initialize was cancelled");
  if (response.error === undefined && isObject(response.result)) {
    const agreed = response.result.protocolVersion;
    session.initialized(
      isObject(params.capabilities) ? params.capabilities : {},
      typeof agreed === "string" && SUPPORTED_PROTOCOL_VERSIONS.includes(agreed)
        ? agreed
        : protocolVersion,
    );
  }
  return response;
}

/** Why a request cannot go out now, as the error to answer; undefined when it can. */
export function callRefusal(
  message: JsonRpcRequest,
  session: McpClientSession,
  tunnel: CallTarget | undefined,
): JsonRpcResponse | undefined {
  if (tunnel === undefined) {
    return errorResponse(
      message.id,
      ErrorCode.TunnelUnavailable,
      `Server '${session.serverName}' is not connected`,
    );
  }
  if (session.hasCall(message.id)) {
    return errorResponse(
      message.id,
      ErrorCode.InvalidRequest,
      "A request with this id is in flight",
    );
  }
  return undefined;
}

/**
 * The stream of the call in flight that `message` repeats: same id, method and params, answered on a
 * resumable stream that is not finished. An HTTP client may send a POST again when its connection broke
 * before the answer's headers came back (fetch does, on a fresh connection), while the first one runs.
 */
export function repeatedCall(
  message: JsonRpcRequest,
  session: McpClientSession,
): ResumableStream | undefined {
  const call = session.call(message.id);
  const stream = call?.stream;
  if (
    call === undefined || !(stream instanceof ResumableStream) || !stream.open ||
    call.request.method !== message.method ||
    JSON.stringify(call.request.params) !== JSON.stringify(message.params)
  ) {
    return undefined;
  }
  return stream;
}

/** Options of {@link runCall}. */
export interface RunCallOptions {
  session: McpClientSession;
  tunnel: CallTarget;
  /** Where its progress and server requests go, when the call has a stream. */
  stream?: ClientStream;
  /** Receives the call's progress. */
  onProgress: (notification: JsonObject) => void;
  now: number;
}

/**
 * Sends a request through the tunnel as one of the session's calls (cancelled with the session, or by
 * the client's `notifications/cancelled`); the answer comes as text when it was long. The call is
 * forgotten once answered.
 */
export function runCall(
  message: JsonRpcRequest,
  options: RunCallOptions,
): { controller: AbortController; answer: Promise<CallAnswer> } {
  const { session, tunnel, stream, onProgress, now } = options;
  const controller = new AbortController();
  const call: ClientCall = { request: message, controller, started: now };
  if (stream !== undefined) call.stream = stream;
  const forget = session.addCall(message.id, call);
  const clientSession = clientSessionOf(session, tunnel);
  const answer = tunnel.calls.call(message, {
    signal: controller.signal,
    onProgress,
    raw: true,
    ...(clientSession === undefined ? {} : { clientSession }),
  }).then((response) => {
    forget();
    return response;
  });
  return { controller, answer };
}
