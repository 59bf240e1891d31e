// What routing (Tunnel) needs of the local side of one server, whether it is one shared local session
// (LocalSession) or an instance per MCP client session (ClientInstances): messages in, calls in flight,
// answers to the server's own requests, and for per-client servers the client sessions' ends.

import type { ClientInstanceInfo } from "../protocol/frames.ts";
import type { JsonObject, JsonRpcResponse, MessageFacts } from "../protocol/jsonrpc.ts";
import type { InFlight } from "./local_session.ts";

/** The local side of one server, as routing sees it. `clientSession` names a per-client instance. */
export interface LocalSide {
  /** Requests from the tunnel not answered yet. */
  readonly inFlightCount: number;
  /** Removes and returns the requests in flight, so that the caller answers each with an error. */
  takeInFlight(): InFlight[];
  /**
   * Takes a request, notification or response from the tunnel; returns a response to send back at once
   * when it is answered locally, else undefined (the answer comes as a message from the server).
   */
  fromTunnel(
    payload: JsonObject,
    generation: number,
    clientSession?: string,
  ): JsonRpcResponse | undefined;
  /**
   * Forwards a message given as text, unparsed, when nothing in it needs connect's attention: true when
   * forwarded, a response to send back when refused, false when the caller must parse it and use
   * {@link LocalSide.fromTunnel}.
   */
  forwardText(
    text: string,
    facts: MessageFacts | "batch",
    generation: number,
    clientSession?: string,
  ): boolean | JsonRpcResponse;
  /** Writes an answer to a request the server made (of `clientSession`'s instance). */
  reply(response: JsonRpcResponse, clientSession?: string): void;
  /** Per-client: the gateway ended this MCP client session; its instance stops. */
  endClient?(clientSession: string, reason: string): void;
  /** Per-client: only these client sessions are open at the gateway; the others' instances stop. */
  retain?(open: readonly string[]): void;
  /** Per-client: the live instances, for the gateway's sessions API. */
  instances?(): ClientInstanceInfo[];
}
