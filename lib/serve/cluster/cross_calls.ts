// The origin's side of calls whose tunnel another replica holds: each gets a tunnel id `<rid>.<n>` that
// names this replica (and the same progress token), goes out as a `call` envelope, and waits here with its
// deadline and cancellation for the answer, which whichever replica holds the tunnel then routes back by
// that prefix (the holder at the time, or the one a resumed link landed on).

import { ErrorCode, errorResponse, type JsonObject } from "../../protocol/jsonrpc.ts";
import type { JsonRpcId, JsonRpcRequest, JsonRpcResponse } from "../../protocol/jsonrpc.ts";
import type { Payload } from "../../protocol/payload.ts";
import { isObject } from "../../util/json_object.ts";
import { RawResponse } from "../call_table.ts";
import type { CallOptions } from "../call_contract.ts";
import type { ClusterMetrics } from "./cluster_metrics.ts";
import type { Envelope, EnvelopeDraft } from "./envelope.ts";
import { UndeliverableError } from "./inbox.ts";
import { CROSS_ID } from "../../protocol/cross_replica_id.ts";

/**
 * The first call number of a replica process: its start time in ms × 1000. A replica started again under
 * the same id (`--replica-id`) numbers past every call its earlier process could have made (unless that one
 * averaged over 1000 calls a millisecond), so an answer to an old call that a resumed tunnel replays never
 * reaches a new caller.
 */
export function firstCallNumber(now = Date.now()): number {
  return Math.floor(now) * 1000 + 1;
}

/** The replica a tunnel id or progress token names, if it is a cross-replica one. */
export function originOf(id: unknown): string | undefined {
  return typeof id === "string" ? CROSS_ID.exec(id)?.[1] : undefined;
}

/** Where a cross-replica call goes: the tunnel session and the replica holding it. */
export interface CallRoute {
  sid: string;
  /** Replica id of the holder. */
  rid: string;
  /** Its ownership generation. */
  gen: number;
  /** The server's owner (the token's) and name: its directory entry. */
  owner: string;
  name: string;
  /** Its directory entry says per-client: each MCP client session has an instance of its own there. */
  perClient?: boolean;
}

interface Pending {
  /** The request as sent (tunnel id in place), to send again to a new holder. */
  message: JsonRpcRequest;
  deadline: number;
  /** Times it was sent on to another holder after the first refused it. */
  rerouted: number;
  originalId: JsonRpcId;
  method: string;
  progressToken?: string | number;
  route: CallRoute;
  /**
   * Where it was last sent. `route` may move on without it (`moveRoute`: the tunnel resumed elsewhere)
   * while the envelope waits unread in a dead holder's inbox; if that one says it never took the call, it
   * goes to the new holder.
   */
  sentTo: CallRoute;
  started: number;
  onProgress: ((notification: JsonObject) => void) | undefined;
  raw: boolean;
  /** The MCP client session whose instance takes it (per-client), or "". */
  client: string;
  settle: (response: JsonRpcResponse | RawResponse | undefined) => void;
}

/** Options of {@link CrossCalls}. */
export interface CrossCallsOptions {
  replicaId: string;
  /** Sends an envelope (the inbox's `send`): rejects with UndeliverableError when it cannot. */
  send: (draft: EnvelopeDraft) => Promise<void>;
  /** Default deadline of a call, in ms (`--call-timeout`). */
  callTimeoutMs: number;
  /**
   * The current route of a server whose holder refused a call as not holding its session any more (the
   * directory had moved on): the call, never sent to the server, goes there instead, once.
   */
  reroute?: (route: CallRoute) => Promise<CallRoute | undefined>;
  metrics?: ClusterMetrics | undefined;
  now?: () => number;
}

/**
 * Cross-replica calls this replica started, by tunnel id.
 *
 * @example
 * ```ts ignore
 * const calls = new CrossCalls({ replicaId: "a", send: (d) => inbox.send(d), callTimeoutMs: 300_000 });
 * const answer = await calls.call(route, request, { signal });
 * ```
 */
export class CrossCalls {
  readonly #options: CrossCallsOptions;
  readonly #pending = new Map<string, Pending>();
  readonly #now: () => number;
  #next = firstCallNumber();

  constructor(options: CrossCallsOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Calls waiting for their answer. */
  get size(): number {
    return this.#pending.size;
  }

  /** The routes calls wait on, each once (by session and generation). */
  routes(): CallRoute[] {
    const routes = new Map<string, CallRoute>();
    for (const { route } of this.#pending.values()) routes.set(`${route.sid}:${route.gen}`, route);
    return [...routes.values()];
  }

  /**
   * The tunnel of `route` is held under `next` now (its client resumed it on another replica): the calls
   * waiting on it wait there (cancellations go there too), and each is sent there again. The dead holder
   * may have written one to its link just before it died, where it was lost with its replay buffer; connect
   * runs a request whose id it has in flight or answered lately only once, and a call that did run has its
   * answer replayed by connect on the resumed link, whichever of the two comes first.
   */
  moveRoute(route: CallRoute, next: CallRoute): void {
    for (const [id, pending] of [...this.#pending]) {
      if (pending.route.sid !== route.sid || pending.route.gen !== route.gen) continue;
      pending.route = next;
      this.#options.metrics?.crossCallsResent.inc();
      this.#send(id, pending);
    }
  }

  /** Fails every call waiting on `route`'s session under its generation, with `why`. */
  failRoute(route: CallRoute, why: string): void {
    for (const [id, pending] of [...this.#pending]) {
      if (pending.route.sid === route.sid && pending.route.gen === route.gen) this.fail(id, why);
    }
  }

  /**
   * Sends `request` to the replica holding its tunnel and resolves with the answer under the caller's id.
   * Never rejects: an envelope that cannot be delivered, or a deadline, resolve with a JSON-RPC error;
   * cancellation resolves undefined (and tells the holder).
   */
  call(
    route: CallRoute,
    request: JsonRpcRequest,
    options: CallOptions,
  ): Promise<JsonRpcResponse | RawResponse | undefined> {
    const { signal, onProgress, raw = false } = options;
    const timeoutMs = options.timeoutMs ?? this.#options.callTimeoutMs;
    if (signal?.aborted) return Promise.resolve(undefined);
    const id = `${this.#options.replicaId}.${this.#next++}`;
    let message: JsonRpcRequest = { ...request, id };
    const params = request.params;
    let progressToken: string | number | undefined;
    if (isObject(params) && isObject(params._meta)) {
      const token = params._meta.progressToken;
      if (typeof token === "string" || (typeof token === "number" && Number.isInteger(token))) {
        progressToken = token;
        message = {
          ...message,
          params: { ...params, _meta: { ...params._meta, progressToken: id } },
        };
      }
    }
    return new Promise((resolve) => {
      const onAbort = () => {
        const cancelled = this.#take(id);
        if (cancelled === undefined) return;
        cancelled.settle(undefined);
        // Where the tunnel is now: it may have moved since the call was sent (`moveRoute`).
        this.#cancel(cancelled, id, String(signal?.reason ?? "cancelled"));
      };
      const timer = setTimeout(() => {
        const timedOut = this.#take(id);
        if (timedOut === undefined) return;
        this.#options.metrics?.crossCalls.inc("failed");
        timedOut.settle(errorResponse(
          request.id,
          ErrorCode.Timeout,
          `Call '${request.method}' to server '${route.name}' timed out after ${
            timeoutMs / 1000
          } s`,
        ));
        this.#cancel(timedOut, id, `timed out after ${timeoutMs / 1000} s`);
      }, timeoutMs);
      const pending: Pending = {
        message,
        deadline: Date.now() + timeoutMs,
        rerouted: 0,
        originalId: request.id,
        method: request.method,
        route,
        sentTo: route,
        started: this.#now(),
        onProgress,
        raw,
        client: options.clientSession ?? "",
        settle: (response) => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          resolve(response);
        },
      };
      if (progressToken !== undefined) pending.progressToken = progressToken;
      this.#pending.set(id, pending);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#send(id, pending);
    });
  }

  #send(id: string, pending: Pending): void {
    const { route } = pending;
    pending.sentTo = route;
    this.#options.send({
      kind: "call",
      target: route.rid,
      deadline: pending.deadline,
      generation: route.gen,
      sid: route.sid,
      id,
      client: pending.client,
      payload: JSON.stringify(pending.message),
    }).catch((error: unknown) => {
      // A holder without an inbox got nothing: if the tunnel moved on, the call can go there.
      const gone = error instanceof UndeliverableError && error.kind === "no-inbox";
      void this.#undelivered(id, describe(error, route), { elsewhere: gone, from: route });
    });
  }

  /**
   * The holder `from` did not send call `id` to its server; `elsewhere`: the tunnel moved, try its new
   * holder. A refusal by a holder the call was not last sent to changes nothing: it went on since.
   */
  async #undelivered(
    id: string,
    why: string,
    options: { elsewhere: boolean; from: CallRoute | { sid: string; gen: number } },
  ): Promise<boolean> {
    const { elsewhere, from } = options;
    const pending = this.#pending.get(id);
    if (pending === undefined) return false;
    const sent = pending.sentTo;
    if (from.sid !== sent.sid || from.gen !== sent.gen) return false;
    const next = elsewhere && pending.rerouted === 0
      ? await this.#options.reroute?.(sent).catch(() => undefined)
      : undefined;
    if (
      next === undefined || this.#pending.get(id) !== pending ||
      (next.sid === sent.sid && next.gen === sent.gen)
    ) {
      // Sent on meanwhile (its tunnel moved): it waits there.
      return pending.sentTo === sent ? this.fail(id, why) : false;
    }
    pending.route = next;
    pending.rerouted++;
    this.#send(id, pending);
    return true;
  }

  /**
   * An answer for call `id` (as {@link encodeAnswer} wrote it); false when no call waits for it (late: the
   * caller gave up, or this replica restarted).
   */
  answer(id: string, text: string): boolean {
    const pending = this.#take(id);
    if (pending === undefined) return false;
    this.#options.metrics?.crossCalls.inc("answered");
    this.#options.metrics?.crossCallSeconds.observe((this.#now() - pending.started) / 1000);
    const restored = decodeAnswer(text, pending.originalId);
    if (restored === undefined) {
      pending.settle(
        errorResponse(pending.originalId, ErrorCode.InternalError, "Malformed answer from replica"),
      );
      return true;
    }
    pending.settle(pending.raw ? restored : restored.parse());
    return true;
  }

  /** A progress notification for call `id`, its token put back. False when no call waits. */
  progress(id: string, notification: JsonObject): boolean {
    const pending = this.#pending.get(id);
    if (pending === undefined || pending.progressToken === undefined) return false;
    const params = isObject(notification.params) ? notification.params : {};
    pending.onProgress?.({
      ...notification,
      params: { ...params, progressToken: pending.progressToken },
    });
    return true;
  }

  /** Ends call `id` with a JSON-RPC error saying `why` (the holder could not take it). */
  fail(id: string, why: string): boolean {
    const pending = this.#take(id);
    if (pending === undefined) return false;
    this.#options.metrics?.crossCalls.inc("failed");
    pending.settle(errorResponse(pending.originalId, ErrorCode.TunnelUnavailable, why));
    return true;
  }

  /** Routes an envelope about one of these calls: answer, progress, undeliverable. */
  onEnvelope(envelope: Envelope): boolean {
    switch (envelope.kind) {
      case "answer":
        return this.answer(envelope.id, envelope.payload);
      case "progress": {
        const value: unknown = JSON.parse(envelope.payload);
        return isObject(value) && this.progress(envelope.id, value);
      }
      case "undeliverable": {
        let reason: { elsewhere?: unknown; message?: unknown } = {};
        try {
          reason = JSON.parse(envelope.payload);
        } catch {
          reason = { message: envelope.payload };
        }
        void this.#undelivered(envelope.id, String(reason.message), {
          elsewhere: reason.elsewhere === true,
          from: { sid: envelope.sid, gen: envelope.generation },
        });
        return true;
      }
      default:
        return false;
    }
  }

  /** Fails the calls sent before `time` (performance.now()) that wait still, with `why`. */
  failSentBefore(time: number, why: string): void {
    for (const [id, pending] of [...this.#pending]) if (pending.started < time) this.fail(id, why);
  }

  /** Fails every call waiting, with `why` (the replica is going away). */
  failAll(why: string): void {
    for (const id of [...this.#pending.keys()]) this.fail(id, why);
  }

  #take(id: string): Pending | undefined {
    const pending = this.#pending.get(id);
    if (pending !== undefined) this.#pending.delete(id);
    return pending;
  }

  /** Tells the holder of the call's tunnel now (it may have moved since it was sent: `moveRoute`). */
  #cancel(pending: Pending, id: string, reason: string): void {
    const { route, client } = pending;
    this.#options.send({
      kind: "cancel",
      target: route.rid,
      deadline: 0,
      generation: route.gen,
      sid: route.sid,
      id,
      client,
      payload: reason,
    }).catch(() => {});
  }
}

function describe(error: unknown, route: CallRoute): string {
  const why = error instanceof UndeliverableError && error.kind === "no-inbox"
    ? `replica ${route.rid} holding it is gone`
    : error instanceof Error
    ? error.message
    : String(error);
  return `Server '${route.name}' cannot be reached through replica ${route.rid}: ${why}`;
}

/**
 * An answer as it crosses replicas: `<start>:<length>` of its id in the text, a line feed, the text. The
 * holder marks where the id stands (it knows the span from its scan, or builds the text), so that the
 * origin puts the caller's id in without parsing a large result.
 *
 * @example
 * ```ts
 * import { decodeAnswer, encodeAnswer } from "./cross_calls.ts";
 * import { Payload } from "../../protocol/payload.ts";
 * const wire = encodeAnswer(Payload.fromValue({ jsonrpc: "2.0", id: "a.1", result: {} }));
 * decodeAnswer(wire, 7)?.text; // '{"jsonrpc":"2.0","id":7,"result":{}}'
 * ```
 */
export function encodeAnswer(payload: Payload): string {
  // A marker no server can have guessed, so that finding it finds the id's place and nothing else.
  const marker = `\u0000${crypto.randomUUID()}`;
  const text = payload.textWithId(marker) ??
    JSON.stringify({ ...(payload.value as object), id: marker });
  const quoted = JSON.stringify(marker);
  return `${text.indexOf(quoted)}:${quoted.length}\n${text}`;
}

/** The answer's text with `id` in place; undefined when `wire` is not an encoded answer. */
export function decodeAnswer(wire: string, id: JsonRpcId): RawResponse | undefined {
  const newline = wire.indexOf("\n");
  const match = /^(\d+):(\d+)$/.exec(wire.slice(0, Math.max(0, newline)));
  if (match === null) return undefined;
  const start = newline + 1 + Number(match[1]);
  const end = start + Number(match[2]);
  if (end > wire.length) return undefined;
  return new RawResponse(
    `${wire.slice(newline + 1, start)}${JSON.stringify(id)}${wire.slice(end)}`,
  );
}
