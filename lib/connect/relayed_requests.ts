// The requests a local server made of its MCP clients that connect passed to the gateway and that wait for
// an answer: remembered by client session and id (per-client instances each number their own from 0), so
// that each answer reaches the instance that asked, and failed when the gateway can no longer answer.

import { ErrorCode, errorResponse, type JsonRpcId } from "../protocol/jsonrpc.ts";
import type { LocalSide } from "./local_side.ts";

interface Waiting {
  id: JsonRpcId;
  clientSession: string | undefined;
}

function keyOf(id: unknown, clientSession: string | undefined): string {
  return `${clientSession ?? ""}\n${JSON.stringify(id)}`;
}

/** Server-initiated requests relayed to the gateway and not answered yet (contract C only). */
export class RelayedRequests {
  #waiting = new Map<string, Waiting>();

  /** A request of the server (of `clientSession`'s instance) went to the gateway. */
  add(id: JsonRpcId, clientSession: string | undefined): void {
    this.#waiting.set(keyOf(id, clientSession), { id, clientSession });
  }

  /** Its answer came, or it could not be sent after all. */
  delete(id: unknown, clientSession: string | undefined): void {
    this.#waiting.delete(keyOf(id, clientSession));
  }

  /** Answers every waiting request with an error saying `message`, each to the instance that asked. */
  failAll(local: LocalSide | undefined, message: string): void {
    for (const { id, clientSession } of this.#waiting.values()) {
      local?.reply(errorResponse(id, ErrorCode.TunnelUnavailable, message), clientSession);
    }
    this.#waiting.clear();
  }
}
