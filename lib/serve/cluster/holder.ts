// The holder's side of cross-replica calls: a `call` envelope for a tunnel session held here goes to its
// server as it came (its id and progress token name the origin; to its client's own instance when the
// server is per-client and the envelope names an MCP client session), a `cancel` becomes the server's
// `notifications/cancelled`, and every answer or progress the server sends for such an id goes back to the
// replica its prefix names, whichever replica sent the call and whichever link it came back on.

import { ErrorCode, errorResponse, type JsonObject } from "../../protocol/jsonrpc.ts";
import type { JsonRpcNotification, JsonRpcRequest } from "../../protocol/jsonrpc.ts";
import { classify } from "../../protocol/jsonrpc.ts";
import { Payload } from "../../protocol/payload.ts";
import { isObject } from "../../util/json_object.ts";
import { delay } from "../../util/delay.ts";
import { logger } from "../../util/log.ts";
import type { TunnelSession } from "../tunnel_session.ts";
import { type CrossCalls, encodeAnswer, originOf } from "./cross_calls.ts";
import type { Envelope, EnvelopeDraft } from "./envelope.ts";
import { UndeliverableError } from "./inbox.ts";

const log = logger("serve", "cluster");

/** Options of {@link Holder}. */
export interface HolderOptions {
  replicaId: string;
  /** The tunnel session with this id held here, if any. */
  session: (sid: string) => TunnelSession | undefined;
  /** Sends an envelope (the inbox's `send`). */
  send: (draft: EnvelopeDraft) => Promise<void>;
  /** This replica's own cross-replica calls: answers to them may arrive here after a failover. */
  crossCalls: CrossCalls;
  /** A message of MCP client session `client` went to its per-client instance of `session`'s server. */
  clientSeen?: (session: TunnelSession, client: string) => void;
  /** Counts an answer no one waits for any more (`late_response`). */
  late?: () => void;
  /**
   * Whether replica `rid` was alive at the last beat. An answer whose origin has no inbox and was not alive
   * then has no caller (a resumed link replays the answers of calls a dead replica sent): dropped and
   * counted at once rather than retried. (A replica started since the last beat may not be seen yet, so
   * this is asked only once its inbox is found missing.) Default: every replica is.
   */
  alive?: (rid: string) => boolean;
  /** An answer that could not be sent is tried again this often, this many times; 1000 ms, 10. */
  retryMs?: number;
  retries?: number;
}

/**
 * Serves cross-replica calls for the tunnel sessions held here.
 *
 * @example
 * ```ts ignore
 * const holder = new Holder({ replicaId: "h", session: (sid) => registry.get(sid), send, crossCalls });
 * cluster.on("call", (e) => holder.onCall(e));
 * ```
 */
export class Holder {
  readonly #options: HolderOptions;
  readonly #closing = new AbortController();

  constructor(options: HolderOptions) {
    this.#options = options;
  }

  /** A `call` envelope: a request or notification for the server of a session held here. */
  onCall(envelope: Envelope): void {
    const session = this.#options.session(envelope.sid);
    if (session === undefined || session.closed) {
      return this.#undeliverable(
        envelope,
        `the tunnel session is not held by replica ${this.#options.replicaId} any more`,
        true,
      );
    }
    if (envelope.deadline !== 0 && envelope.deadline < Date.now()) {
      return this.#undeliverable(envelope, "its deadline passed before it reached the holder");
    }
    let message: unknown;
    try {
      message = JSON.parse(envelope.payload);
    } catch {
      return this.#undeliverable(envelope, "its payload is not JSON");
    }
    const kind = classify(message);
    // A per-client server's message of one MCP client session goes to that client's own instance.
    const client = session.perClient && envelope.client ? envelope.client : undefined;
    if (
      kind === "request" && (message as JsonRpcRequest).method === "initialize" &&
      client === undefined
    ) {
      // The held result, answered here: the server is initialized once, by the holder.
      void session.initializeResult().then((response) =>
        this.#answer(envelope.origin, session, Payload.fromValue({ ...response, id: envelope.id }))
      );
      return;
    }
    if (kind !== "request" && kind !== "notification") {
      return this.#undeliverable(envelope, "its payload is not a JSON-RPC request or notification");
    }
    if (client !== undefined) this.#options.clientSeen?.(session, client);
    if (!session.calls.notify(message as JsonRpcNotification, client) && kind === "request") {
      this.#undeliverable(envelope, `server '${session.name}' is not connected`);
    }
  }

  /** A `cancel` envelope: the origin's client gave the call up. */
  onCancel(envelope: Envelope): void {
    const session = this.#options.session(envelope.sid);
    session?.calls.notify({
      jsonrpc: "2.0",
      method: "notifications/cancelled",
      params: { requestId: envelope.id, reason: envelope.payload || "cancelled" },
    }, session.perClient && envelope.client ? envelope.client : undefined);
  }

  /**
   * A message from the server of `session` for a call another replica (or this one, as an origin) sent:
   * routed by its id's prefix. False when it is not such a message.
   */
  foreign(session: TunnelSession, payload: Payload): boolean {
    const facts = payload.facts;
    if (facts === "batch") return false;
    if (facts.kind === "response") {
      if (originOf(facts.id) === undefined) return false;
      this.#answer(originOf(facts.id)!, session, payload);
      return true;
    }
    if (facts.kind !== "notification" || facts.method !== "notifications/progress") return false;
    const value = payload.value as JsonObject;
    const token = isObject(value.params) ? value.params.progressToken : undefined;
    const origin = originOf(token);
    if (origin === undefined) return false;
    if (origin === this.#options.replicaId) {
      this.#options.crossCalls.progress(token as string, value);
      return true;
    }
    this.#options.send({
      kind: "progress",
      target: origin,
      deadline: 0,
      generation: 0,
      sid: session.id,
      id: token as string,
      payload: payload.text,
    }).catch(() => {}); // progress is advisory: a gone origin has no one to show it to
    return true;
  }

  #answer(origin: string, session: TunnelSession, payload: Payload): void {
    const id = (payload.facts as { id?: unknown }).id as string;
    const wire = encodeAnswer(payload);
    if (origin === this.#options.replicaId) {
      if (!this.#options.crossCalls.answer(id, wire)) this.#options.late?.();
      return;
    }
    this.#sendAnswer({
      kind: "answer",
      target: origin,
      deadline: 0,
      generation: 0,
      sid: session.id,
      id,
      payload: wire,
    }).catch((error: unknown) => {
      this.#options.late?.();
      log.debug("Dropped the answer of call {id}: its origin replica {origin} is gone ({error})", {
        event: "late_response",
        id,
        origin,
        error: error instanceof Error ? error.message : String(error),
      });
    });
  }

  /**
   * Sends an answer; when its origin has no inbox or Redis is down, tries again a second apart for a while:
   * an origin that lives renews its inbox with each beat (a busy process may miss one, an empty Redis lost
   * it), Redis comes back, and only an origin gone for good loses the answer, together with its caller.
   */
  async #sendAnswer(draft: EnvelopeDraft): Promise<void> {
    const { retryMs = 1_000, retries = 10 } = this.#options;
    for (let attempt = 0;; attempt++) {
      try {
        return await this.#options.send(draft);
      } catch (error: unknown) {
        const gone = error instanceof UndeliverableError && error.kind === "no-inbox" &&
          this.#options.alive?.(draft.target) === false;
        const again = error instanceof UndeliverableError && !gone;
        if (!again || attempt >= retries || this.#closing.signal.aborted) throw error;
        await delay(retryMs, this.#closing.signal);
      }
    }
  }

  /** Stops retrying answers (shutdown). */
  close(): void {
    this.#closing.abort();
  }

  /** Tells the origin its call was not sent to the server; `elsewhere`: try the current holder. */
  #undeliverable(envelope: Envelope, why: string, elsewhere = false): void {
    if (envelope.kind !== "call" || envelope.id === "") return;
    this.#options.send({
      kind: "undeliverable",
      target: envelope.origin,
      deadline: 0,
      generation: envelope.generation,
      sid: envelope.sid,
      id: envelope.id,
      payload: JSON.stringify({ elsewhere, message: `The call could not be delivered: ${why}` }),
    }).catch(() => {});
  }
}

/** A JSON-RPC error for a request whose server another replica holds while Redis is down. */
export function redisDownError(id: JsonRpcRequest["id"], why: string) {
  return errorResponse(
    id,
    ErrorCode.TunnelUnavailable,
    `Cross-replica calls are refused while Redis is unreachable (${why}); calls to servers held by this replica go on`,
  );
}
