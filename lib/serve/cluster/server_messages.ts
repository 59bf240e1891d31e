// What a tunneled server sends on its own, across replicas: a notification goes to every live replica
// (each hands it to its own clients of that server), and a request no client on the holder can answer
// goes to the others; the first with a capable client to claim it in Redis (SET NX) answers it, the rest
// decline, and with no taker it gets the same JSON-RPC error as on one replica. A per-client instance's
// messages go the same way, named for its client session (the envelope's `client`): only a replica where
// that session has a stream delivers them, for a request only one with a client connection now (else the
// holder's own, which may hold it for the client's GET stream).

import { ErrorCode, errorResponse } from "../../protocol/jsonrpc.ts";
import type {
  JsonRpcNotification,
  JsonRpcRequest,
  JsonRpcResponse,
} from "../../protocol/jsonrpc.ts";
import { isObject } from "../../util/json_object.ts";
import type { ServerRef } from "../client_router.ts";
import type { Cluster } from "./cluster.ts";
import type { Envelope } from "./envelope.ts";

/** What this replica's MCP clients can be asked (the gateway's `ClientRouter`). */
export interface LocalClients {
  notification(server: ServerRef, message: JsonRpcNotification, clientSession?: string): void;
  request(
    server: ServerRef,
    request: JsonRpcRequest,
    signal: AbortSignal,
    clientSession?: string,
  ): Promise<JsonRpcResponse>;
  /** Whether a client of `server` here (client session `clientSession`, if given) could answer `method` now. */
  canAnswer(server: ServerRef, method: string, clientSession?: string): boolean;
}

interface Asked {
  waiting: Set<string>;
  settle: (response: JsonRpcResponse | undefined) => void;
}

/**
 * Server notifications and requests between replicas.
 *
 * @example
 * ```ts ignore
 * const messages = new ServerMessages(cluster, endpoint.router);
 * messages.notification({ owner, name }, message); // here and on every other replica
 * ```
 */
export class ServerMessages {
  readonly #cluster: Cluster;
  readonly #local: LocalClients;
  readonly #asked = new Map<string, Asked>();
  #next = 1;

  constructor(cluster: Cluster, local: LocalClients) {
    this.#cluster = cluster;
    this.#local = local;
    cluster.on("notify", (e) => this.#onNotify(e));
    cluster.on("server_request", (e) => void this.#onRequest(e));
    cluster.on("server_answer", (e) => this.#onAnswer(e));
  }

  /**
   * Hands a server notification to this replica's clients (client session `clientSession` alone, when
   * given) and sends it to the other replicas.
   */
  notification(server: ServerRef, message: JsonRpcNotification, clientSession?: string): void {
    this.#local.notification(server, message, clientSession);
    const payload = JSON.stringify({ owner: server.owner, name: server.name, message });
    for (const rid of this.#others()) {
      this.#cluster.inbox.send({
        kind: "notify",
        target: rid,
        deadline: 0,
        generation: 0,
        sid: "",
        id: "",
        client: clientSession ?? "",
        payload,
      }).catch(() => {}); // a notification to a replica that just left has no one to reach
    }
  }

  /**
   * A server request: a capable client here answers it, else one on another replica (for a per-client
   * instance, its own client session `clientSession`, wherever it is connected).
   */
  request(
    server: ServerRef,
    request: JsonRpcRequest,
    signal: AbortSignal,
    clientSession?: string,
  ): Promise<JsonRpcResponse> {
    const others = this.#others();
    if (this.#local.canAnswer(server, request.method, clientSession) || others.length === 0) {
      return this.#local.request(server, request, signal, clientSession);
    }
    const id = `${this.#cluster.replicaId}.s${this.#next++}`;
    return new Promise((resolve) => {
      const settle = (response: JsonRpcResponse | undefined) => {
        if (this.#asked.get(id) !== asked) return;
        this.#asked.delete(id);
        signal.removeEventListener("abort", onAbort);
        // Nobody took it: ask here, which answers with the usual "no capable client" error.
        if (response === undefined) {
          resolve(this.#local.request(server, request, signal, clientSession));
        } else resolve({ ...response, id: request.id });
      };
      const asked: Asked = { waiting: new Set(others), settle };
      const onAbort = () => settle(errorResponse(request.id, ErrorCode.InternalError, "Cancelled"));
      signal.addEventListener("abort", onAbort, { once: true });
      this.#asked.set(id, asked);
      const payload = JSON.stringify({ owner: server.owner, name: server.name, request });
      for (const rid of others) {
        this.#cluster.inbox.send({
          kind: "server_request",
          target: rid,
          deadline: 0,
          generation: 0,
          sid: "",
          id,
          client: clientSession ?? "",
          payload,
        }).catch(() => this.#declined(id, rid));
      }
    });
  }

  #others(): string[] {
    return [...this.#cluster.liveness.replicas].filter((rid) => rid !== this.#cluster.replicaId);
  }

  #onNotify(envelope: Envelope): void {
    const body = parse(envelope.payload);
    if (body === undefined || !isObject(body.message)) return;
    const message = body.message as unknown as JsonRpcNotification;
    this.#local.notification(body.server, message, envelope.client || undefined);
  }

  async #onRequest(envelope: Envelope): Promise<void> {
    const body = parse(envelope.payload);
    const request = body?.request as unknown as JsonRpcRequest | undefined;
    const reply = (response: JsonRpcResponse | undefined) =>
      this.#cluster.inbox.send({
        kind: "server_answer",
        target: envelope.origin,
        deadline: 0,
        generation: 0,
        sid: "",
        id: envelope.id,
        payload: response === undefined ? "" : JSON.stringify(response),
      }).catch(() => {});
    const client = envelope.client || undefined;
    if (
      body === undefined || !isObject(request) ||
      !this.#local.canAnswer(body.server, request.method, client)
    ) {
      return void reply(undefined);
    }
    // One replica answers: the first with a capable client to claim the request.
    const claimed = await this.#cluster.commands.redis.set(
      `sr:${envelope.origin}:${envelope.id}`,
      this.#cluster.replicaId,
      "PX",
      300_000,
      "NX",
    ).catch(() => null);
    if (claimed !== "OK") return void reply(undefined);
    const controller = new AbortController();
    void reply(await this.#local.request(body.server, request, controller.signal, client));
  }

  #onAnswer(envelope: Envelope): void {
    if (envelope.payload === "") return this.#declined(envelope.id, envelope.origin);
    let response: unknown;
    try {
      response = JSON.parse(envelope.payload);
    } catch {
      return this.#declined(envelope.id, envelope.origin);
    }
    this.#asked.get(envelope.id)?.settle(response as JsonRpcResponse);
  }

  #declined(id: string, rid: string): void {
    const asked = this.#asked.get(id);
    if (asked === undefined) return;
    asked.waiting.delete(rid);
    if (asked.waiting.size === 0) asked.settle(undefined);
  }
}

function parse(
  text: string,
): { server: ServerRef; message?: unknown; request?: unknown } | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(value) || typeof value.owner !== "string" || typeof value.name !== "string") {
    return undefined;
  }
  return {
    server: { owner: value.owner, name: value.name },
    message: value.message,
    request: value.request,
  };
}
