// Id rewriting for one tunnel: every call gets a fresh numeric tunnel id (and progress token), so that many
// MCP clients with overlapping ids can share one server; answers and progress are mapped back.

import { isObject } from "../util/json_object.ts";
import type { Span } from "../protocol/json_scan.ts";
import type {
  JsonObject,
  JsonRpcId,
  JsonRpcRequest,
  JsonRpcResponse,
} from "../protocol/jsonrpc.ts";

/** A progress token (MCP: a string or an integer). */
export type ProgressToken = string | number;

/** What the table remembers of one call in flight. */
export interface CallEntry<T> {
  /** The id the tunnel sees. */
  tunnelId: number;
  /** The id the caller used, restored on the answer. */
  originalId: JsonRpcId;
  /** The method, for logs and errors. */
  method: string;
  /** The caller's progress token, if the call asked for progress. */
  progressToken?: ProgressToken;
  /** Whatever the owner of the table attaches (the route back to the caller). */
  route: T;
}

function isProgressToken(value: unknown): value is ProgressToken {
  return typeof value === "string" || (typeof value === "number" && Number.isInteger(value));
}

/**
 * Calls in flight on one tunnel, keyed by tunnel id.
 *
 * @example
 * ```ts
 * import { CallTable } from "./call_table.ts";
 * const table = new CallTable<string>();
 * const { message } = table.add({ jsonrpc: "2.0", id: "a", method: "tools/list" }, "client-1");
 * const entry = table.take(message.id);
 * entry?.route; // "client-1"
 * ```
 */
export class CallTable<T> {
  #next: number;
  #calls = new Map<number, CallEntry<T>>();

  /** `first`: the first tunnel id (past those an earlier process may have used). */
  constructor(first = 1) {
    this.#next = first;
  }

  /** The tunnel id the next call gets. */
  get next(): number {
    return this.#next;
  }

  /** Number of calls in flight. */
  get size(): number {
    return this.#calls.size;
  }

  /**
   * Registers a call and returns the request to send through the tunnel: the same request with the tunnel
   * id, and with `params._meta.progressToken` replaced by the tunnel id when present.
   */
  add(request: JsonRpcRequest, route: T): { entry: CallEntry<T>; message: JsonRpcRequest } {
    const tunnelId = this.#next++;
    const entry: CallEntry<T> = { tunnelId, originalId: request.id, method: request.method, route };
    let message: JsonRpcRequest = { ...request, id: tunnelId };
    const params = request.params;
    if (isObject(params) && isObject(params._meta) && isProgressToken(params._meta.progressToken)) {
      entry.progressToken = params._meta.progressToken;
      message = {
        ...message,
        params: { ...params, _meta: { ...params._meta, progressToken: tunnelId } },
      };
    }
    this.#calls.set(tunnelId, entry);
    return { entry, message };
  }

  /** The call with this tunnel id, left in the table. */
  get(tunnelId: unknown): CallEntry<T> | undefined {
    const id = typeof tunnelId === "string" && /^\d+$/.test(tunnelId) ? Number(tunnelId) : tunnelId;
    return typeof id === "number" ? this.#calls.get(id) : undefined;
  }

  /** Removes and returns the call with this tunnel id (a string of digits counts too). */
  take(tunnelId: unknown): CallEntry<T> | undefined {
    const entry = this.get(tunnelId);
    if (entry !== undefined) this.#calls.delete(entry.tunnelId);
    return entry;
  }

  /** The call a `notifications/progress` token belongs to (tunnel progress tokens are tunnel ids). */
  byProgressToken(token: unknown): CallEntry<T> | undefined {
    const entry = this.get(token);
    return entry?.progressToken === undefined ? undefined : entry;
  }

  /** Removes and returns every call. */
  drain(): CallEntry<T>[] {
    const entries = [...this.#calls.values()];
    this.#calls.clear();
    return entries;
  }
}

/**
 * A response kept as JSON text (one line, valid JSON-RPC), for answers too large to parse only to write
 * them out again. {@link RawResponse.parse} gives the object where one is needed.
 */
export class RawResponse {
  readonly text: string;

  constructor(text: string) {
    this.text = text;
  }

  /** The response as an object. */
  parse(): JsonRpcResponse {
    return JSON.parse(this.text) as JsonRpcResponse;
  }
}

/**
 * The tunnel's answer, as text, with the caller's id put in place of the tunnel's: `idSpan` is where the
 * tunnel id stands in `text`. The large rest is not copied until the text is written out.
 */
export function restoreResponseText(
  text: string,
  idSpan: Span,
  originalId: JsonRpcId,
): RawResponse {
  return new RawResponse(
    text.slice(0, idSpan.start) + JSON.stringify(originalId) + text.slice(idSpan.end),
  );
}

/** The tunnel's answer with the caller's id put back. */
export function restoreResponse(response: JsonRpcResponse, originalId: JsonRpcId): JsonRpcResponse {
  return { ...response, id: originalId };
}

/** A `notifications/progress` from the tunnel with the caller's progress token put back. */
export function restoreProgress(notification: JsonObject, token: ProgressToken): JsonObject {
  const params = isObject(notification.params) ? notification.params : {};
  return { ...notification, params: { ...params, progressToken: token } };
}
