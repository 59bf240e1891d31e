// The contract of a tunnel session's calls: what a caller may ask of a call, the limits they run under,
// what the calls need of their session, and where the server's own messages go.

import type {
  JsonObject,
  JsonRpcNotification,
  JsonRpcRequest,
  JsonRpcResponse,
} from "../protocol/jsonrpc.ts";
import type { Payload } from "../protocol/payload.ts";
import type { RawResponse } from "./call_table.ts";

/** Options of `TunnelCalls.call`. */
export interface CallOptions {
  /** Deadline in milliseconds; the session's `callTimeoutMs` when omitted. */
  timeoutMs?: number;
  /** Aborting cancels the call: the server gets `notifications/cancelled` and the call resolves undefined. */
  signal?: AbortSignal;
  /** Receives `notifications/progress` for this call, with the caller's progress token restored. */
  onProgress?: (notification: JsonObject) => void;
  /**
   * Resolve with a `RawResponse` (the answer's JSON text, caller's id in place) when the answer
   * came in a long frame, instead of parsing it: for callers that only write the answer out.
   */
  raw?: boolean;
  /**
   * With `client-sessions`: the MCP client session the call belongs to, so that connect hands it to that
   * client's own server instance (per-client isolation).
   */
  clientSession?: string;
}

/** Calls that may wait for a slot per tunnel session, by default. */
export const DEFAULT_MAX_QUEUED = 4096;

/** Limits of the calls of one session. */
export interface CallLimits {
  /** Calls in flight; more wait in the queue. */
  maxInflight: number;
  /**
   * Calls that may wait for a slot, first in first out, each up to its own deadline; past it a call is
   * refused with a JSON-RPC error at once. Default {@link DEFAULT_MAX_QUEUED}.
   */
  maxQueued?: number;
  /** Default deadline of a call, in milliseconds. */
  callTimeoutMs: number;
}

/** What the calls need of their session. */
export interface CallChannel {
  /** The server's name, for messages. */
  readonly name: string;
  /** True while registered (a detached session buffers for replay). */
  readonly registered: boolean;
  /**
   * Sends a data frame to the client (for `clientSession`'s instance, when given); false when it cannot
   * reach it.
   */
  sendData(type: "request" | "response", payload: JsonObject, clientSession?: string): boolean;
  /** Counts a bad frame against the link (answers for ids never asked count as such). */
  badFrame(message: string): void;
}

/**
 * Where the server's own messages go (the MCP endpoint). `clientSession` is set when they come from a
 * per-client instance: they belong to that MCP client session alone.
 */
export interface ServerMessageSink {
  /** The server sent a notification that is not progress for a call (list changes, logs, …). */
  serverNotification(message: JsonRpcNotification, clientSession?: string): void;
  /**
   * The server sent a request (roots/list, sampling/createMessage, elicitation/create, …). `signal`
   * aborts when the server cancels it or the session closes.
   */
  serverRequest(
    request: JsonRpcRequest,
    signal: AbortSignal,
    clientSession?: string,
  ): Promise<JsonRpcResponse>;
  /**
   * Replicas: an answer or progress for a call another replica sent (its id names that replica, see
   * lib/serve/cluster/). True when it was taken; then the calls of this session never see it.
   */
  foreign?(type: string, payload: Payload): boolean;
}

/**
 * What the MCP endpoint calls a server through: a tunnel session held here, or (replicas) one that
 * another replica holds.
 */
export interface CallTarget {
  /** A per-client server (each MCP client session its own instance); false across replicas. */
  readonly perClient: boolean;
  /** The server's `initialize` result, held. */
  initializeResult(): Promise<JsonRpcResponse>;
  readonly calls: {
    /** As `TunnelCalls.call`: never rejects; cancellation resolves undefined. */
    call(
      request: JsonRpcRequest,
      options: CallOptions,
    ): Promise<JsonRpcResponse | RawResponse | undefined>;
    /** Sends a notification to the server (a per-client one's instance); false when it cannot go out. */
    notify(notification: JsonRpcNotification, clientSession?: string): boolean;
  };
}
