// The requests a tunneled server makes of its MCP clients (roots, sampling, elicitation, ping): handed to
// the MCP side, cancelled when the server says so or the session closes, and answered back through the
// tunnel. Keyed by client session and id: per-client instances each number their own requests from 0.

import {
  ErrorCode,
  errorResponse,
  idKey,
  type JsonObject,
  type JsonRpcRequest,
} from "../protocol/jsonrpc.ts";
import type { CallChannel, ServerMessageSink } from "./call_contract.ts";
import type { Charge } from "./memory_budget.ts";

/** What a waiting request holds besides its text (its timer, promises and map entries), charged too. */
const WAITING_OVERHEAD_BYTES = 1024;

/** The key of a server request: its instance's client session ("" when shared) and its id. */
function keyOf(clientSession: string | undefined, id: string | number): string {
  return `${clientSession ?? ""}\n${idKey(id)}`;
}

/** The server-initiated requests of one tunnel session that wait for a client's answer. */
export class ServerRequests {
  #channel: CallChannel;
  #sink: ServerMessageSink;
  #waiting = new Map<string, AbortController>();
  /** Where the waiting requests are charged: a server must not hold its owner's clients' memory unbounded. */
  #charge: Charge | undefined;
  #bytes = 0;

  constructor(
    channel: CallChannel,
    sink: ServerMessageSink,
    options: { charge?: Charge | undefined } = {},
  ) {
    this.#channel = channel;
    this.#sink = sink;
    this.#charge = options.charge;
  }

  /**
   * A request from the server (of `clientSession`'s instance), `textBytes` long: answered through the
   * tunnel. One that does not fit in its owner's memory share is answered with an error at once.
   */
  take(request: JsonRpcRequest, clientSession: string | undefined, textBytes = 0): void {
    const send = (payload: JsonObject) =>
      this.#channel.sendData("response", payload, clientSession);
    if (request.method === "ping") {
      send({ jsonrpc: "2.0", id: request.id, result: {} });
      return;
    }
    const bytes = textBytes + WAITING_OVERHEAD_BYTES;
    if (this.#charge !== undefined && !this.#charge.resize(this.#bytes + bytes)) {
      send(errorResponse(
        request.id,
        ErrorCode.InternalError,
        `Request '${
          request.method.slice(0, 64)
        }' of server '${this.#channel.name}' cannot wait for an MCP client's answer: its owner's memory share is used up (--memory-per-owner; this server's requests waiting hold ${this.#bytes} bytes); retry later`,
      ));
      return;
    }
    this.#bytes += bytes;
    const key = keyOf(clientSession, request.id);
    this.#waiting.get(key)?.abort("superseded by a request with the same id");
    const controller = new AbortController();
    this.#waiting.set(key, controller);
    this.#sink.serverRequest(request, controller.signal, clientSession).then(
      (response) => response,
      (error: unknown) =>
        errorResponse(request.id, ErrorCode.InternalError, `Gateway error: ${String(error)}`),
    ).then((response) => {
      this.#bytes -= bytes;
      this.#charge?.resize(this.#bytes);
      if (this.#waiting.get(key) === controller) this.#waiting.delete(key);
      if (controller.signal.aborted || !this.#channel.registered) return;
      send({ ...response, id: request.id });
    });
  }

  /** The server cancelled its request `id` (of `clientSession`'s instance). */
  cancel(id: string | number, clientSession: string | undefined, reason: string): void {
    this.#waiting.get(keyOf(clientSession, id))?.abort(reason);
  }

  /** Aborts every request (the session closed) and gives their memory back. */
  abortAll(reason: string): void {
    for (const controller of this.#waiting.values()) controller.abort(reason);
    this.#waiting.clear();
    this.#charge?.release();
  }
}
