// The calls of one tunnel session: requests sent to the tunneled server with rewritten ids and their
// deadlines, the answers and progress routed back to their callers, cancellation, and the server's own
// requests and notifications handed to the MCP side.

import { Deadlines } from "../util/deadlines.ts";
import { isObject } from "../util/json_object.ts";
import { logger } from "../util/log.ts";
import {
  classify,
  ErrorCode,
  errorResponse,
  type JsonObject,
  type JsonRpcId,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from "../protocol/jsonrpc.ts";
import { isOneLine } from "../protocol/json_scan.ts";
import { LATEST_PROTOCOL_VERSION } from "../protocol/mcp_versions.ts";
import type { Payload } from "../protocol/payload.ts";
import { WaitingCalls } from "./call_queue.ts";
import { HeldInitialize } from "./held_initialize.ts";
import { LateAnswers } from "./late_answers.ts";
import type { Charge } from "./memory_budget.ts";
import { CallTable, RawResponse, restoreProgress, restoreResponse } from "./call_table.ts";
import { ServerRequests } from "./server_requests.ts";
import type { ServeMetrics } from "./metrics.ts";
import {
  type CallChannel,
  type CallLimits,
  type CallOptions,
  DEFAULT_MAX_QUEUED,
  type ServerMessageSink,
} from "./call_contract.ts";

const log = logger("serve", "calls");

interface Route {
  settle(response: JsonRpcResponse | RawResponse | undefined): void;
  onProgress?: (notification: JsonObject) => void;
  /** The per-client instance it went to: only that instance's progress reaches its caller. */
  clientSession?: string;
}

function reasonText(reason: unknown): string {
  if (typeof reason === "string") return reason;
  if (reason instanceof Error) return reason.message;
  return "cancelled";
}

/** The calls in flight through one tunnel session, both ways. */
export class TunnelCalls {
  #channel: CallChannel;
  #limits: CallLimits;
  #sink: ServerMessageSink;
  #metrics: ServeMetrics | undefined;
  #calls: CallTable<Route>;
  /** Calls waiting for a slot. */
  #queue: WaitingCalls;
  #pumping = false;
  /** Call timeouts (tunnel ids in flight, entries waiting): one timer for all, not one per call. */
  #deadlines = new Deadlines<number>();
  #requests: ServerRequests;
  #init: HeldInitialize;
  /** Answers no call waits for: late (given up, or asked by an earlier process) or bad. */
  #late: LateAnswers;

  constructor(
    channel: CallChannel,
    options: {
      limits: CallLimits;
      sink: ServerMessageSink;
      metrics?: ServeMetrics | undefined;
      /** Where the calls waiting for a slot are charged, against the owner's memory share. */
      queueCharge?: Charge | undefined;
      /** Where the server's requests waiting for an MCP client's answer are charged. */
      requestsCharge?: Charge | undefined;
      /** Where the server's held `initialize` result is charged. */
      initializeCharge?: Charge | undefined;
      /** Restored from the state store: the first tunnel id, and the held `initialize` result. */
      restored?: { firstTunnelId: number; initializeResult: JsonObject | undefined } | undefined;
    },
  ) {
    this.#channel = channel;
    const restored = options.restored;
    this.#calls = new CallTable(restored?.firstTunnelId);
    this.#late = new LateAnswers({
      channel,
      lateBelow: restored?.firstTunnelId ?? 1,
      metrics: options.metrics,
    });
    this.#init = new HeldInitialize(restored?.initializeResult, options.initializeCharge);
    this.#limits = options.limits;
    this.#queue = new WaitingCalls(
      options.limits.maxQueued ?? DEFAULT_MAX_QUEUED,
      options.metrics,
      options.queueCharge,
    );
    this.#sink = options.sink;
    this.#requests = new ServerRequests(channel, options.sink, { charge: options.requestsCharge });
    this.#metrics = options.metrics;
  }

  /** Calls in flight. */
  get size(): number {
    return this.#calls.size;
  }

  /**
   * Sends a request through the tunnel with a fresh tunnel id and resolves with the server's answer under
   * the caller's id. Past `maxInflight` calls in flight it waits in a FIFO queue for a slot, up to its own
   * deadline. Never rejects: a closed session, a full queue or a timeout resolve with a JSON-RPC error;
   * cancellation through `signal` resolves undefined.
   */
  call(
    request: JsonRpcRequest,
    options?: CallOptions & { raw?: false },
  ): Promise<JsonRpcResponse | undefined>;
  call(
    request: JsonRpcRequest,
    options: CallOptions,
  ): Promise<JsonRpcResponse | RawResponse | undefined>;
  call(
    request: JsonRpcRequest,
    options: CallOptions = {},
  ): Promise<JsonRpcResponse | RawResponse | undefined> {
    const name = this.#channel.name;
    if (!this.#channel.registered) {
      return Promise.resolve(
        errorResponse(request.id, ErrorCode.TunnelUnavailable, `Server '${name}' is not connected`),
      );
    }
    if (options.signal?.aborted) return Promise.resolve(undefined);
    if (this.#calls.size < this.#limits.maxInflight && this.#queue.size === 0) {
      return new Promise((resolve) => this.#send(request, options, { resolve, waitedMs: 0 }));
    }
    if (this.#queue.full) {
      this.#metrics?.errors.inc("queue_full");
      const { maxInflight } = this.#limits;
      return Promise.resolve(
        errorResponse(
          request.id,
          ErrorCode.InternalError,
          `Too many calls to server '${name}': ${maxInflight} in flight (limit --max-inflight ${maxInflight}) and ${this.#queue.size} queued (limit --max-queued ${this.#queue.maxEntries}); retry later`,
        ),
      );
    }
    return this.#enqueue(request, options);
  }

  /** Calls waiting for a slot. */
  get queued(): number {
    return this.#queue.size;
  }

  /** UTF-8 bytes of the requests waiting for a slot (what the memory budget charges for the queue). */
  get queuedBytes(): number {
    return this.#queue.bytes;
  }

  /** Waits in the queue, up to the call's own deadline, until {@link #pump} sends it. */
  #enqueue(
    request: JsonRpcRequest,
    options: CallOptions,
  ): Promise<JsonRpcResponse | RawResponse | undefined> {
    const timeoutMs = options.timeoutMs ?? this.#limits.callTimeoutMs;
    return this.#queue.wait(request, { ...options, timeoutMs }, {
      noRoom: () =>
        errorResponse(
          request.id,
          ErrorCode.InternalError,
          `Call '${request.method}' to server '${this.#channel.name}' cannot wait for a slot: its owner's memory share is used up (--memory-per-owner); retry later`,
        ),
      timedOut: () =>
        errorResponse(
          request.id,
          ErrorCode.Timeout,
          `Call '${request.method}' to server '${this.#channel.name}' timed out after ${
            timeoutMs / 1000
          } s waiting for a slot (${this.#calls.size} calls in flight, limit --max-inflight ${this.#limits.maxInflight})`,
        ),
    });
  }

  /** Sends queued calls, oldest first, while slots are free. Not re-entered from a send that fails. */
  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#calls.size < this.#limits.maxInflight) {
        const waiting = this.#queue.shift();
        if (waiting === undefined) return;
        const { request, options, resolve, waitedMs } = waiting;
        this.#send(request, options, { resolve, waitedMs });
      }
    } finally {
      this.#pumping = false;
    }
  }

  /** Sends a call now: a fresh tunnel id, its deadline (less the time it waited), its route back. */
  #send(
    request: JsonRpcRequest,
    options: CallOptions,
    how: {
      resolve: (response: JsonRpcResponse | RawResponse | undefined) => void;
      waitedMs: number;
    },
  ): void {
    const { timeoutMs = this.#limits.callTimeoutMs, signal, onProgress, raw = false } = options;
    const { clientSession } = options;
    const { resolve, waitedMs } = how;
    const name = this.#channel.name;
    const onAbort = () => {
      if (this.#calls.take(entry.tunnelId) === undefined) return;
      this.#late.giveUp(entry.tunnelId);
      route.settle(undefined);
      this.#sendCancel(entry.tunnelId, reasonText(signal?.reason), clientSession);
    };
    const route: Route = {
      settle: (response) => {
        this.#deadlines.delete(entry.tunnelId);
        signal?.removeEventListener("abort", onAbort);
        resolve(response instanceof RawResponse && !raw ? response.parse() : response);
        this.#pump();
      },
    };
    if (onProgress !== undefined) route.onProgress = onProgress;
    if (clientSession !== undefined) route.clientSession = clientSession;
    const { entry, message } = this.#calls.add(request, route);
    this.#deadlines.add(entry.tunnelId, Math.max(1, timeoutMs - waitedMs), () => {
      if (this.#calls.take(entry.tunnelId) === undefined) return;
      this.#late.giveUp(entry.tunnelId);
      const seconds = timeoutMs / 1000;
      this.#metrics?.errors.inc("call_timeout");
      route.settle(
        errorResponse(
          request.id,
          ErrorCode.Timeout,
          `Call '${request.method}' to server '${name}' timed out after ${seconds} s`,
        ),
      );
      this.#sendCancel(entry.tunnelId, `timed out after ${seconds} s`, clientSession);
    });
    signal?.addEventListener("abort", onAbort, { once: true });
    if (
      !this.#channel.sendData("request", message, clientSession) &&
      this.#calls.take(entry.tunnelId) !== undefined
    ) {
      route.settle(
        errorResponse(
          request.id,
          ErrorCode.TunnelUnavailable,
          `Server '${name}' is not connected`,
        ),
      );
    }
  }

  /**
   * The server's `initialize` result, learnt once through the tunnel and held, with `version` as this
   * gateway's client version. A failure is not held: the next caller asks again.
   */
  initializeResult(version: string): Promise<JsonRpcResponse> {
    return this.#init.get(
      this.#channel.name,
      () =>
        this.call({
          jsonrpc: "2.0",
          id: 0,
          method: "initialize",
          params: {
            protocolVersion: LATEST_PROTOCOL_VERSION,
            capabilities: {},
            clientInfo: { name: "mcp-rproxy-serve", version },
          },
        }),
      () => this.notify({ jsonrpc: "2.0", method: "notifications/initialized" }),
    );
  }

  /** The server's `initialize` result, once held. */
  get heldInitialize(): JsonObject | undefined {
    return this.#init.result;
  }

  /** The tunnel id the next call gets (what a restarted serve must start past). */
  get nextTunnelId(): number {
    return this.#calls.next;
  }

  /**
   * Sends a notification to the server (to `clientSession`'s instance, when given; buffered while
   * detached). False if it cannot go out.
   */
  notify(notification: JsonRpcNotification, clientSession?: string): boolean {
    if (!this.#channel.registered) return false;
    return this.#channel.sendData("request", notification, clientSession);
  }

  /** Ends every call (waiting ones too) with a JSON-RPC error saying `reason`, and aborts the server's requests. */
  failAll(reason: string): void {
    this.#deadlines.clear();
    this.#queue.failAll((waiting) =>
      errorResponse(
        waiting.request.id,
        ErrorCode.TunnelUnavailable,
        `Tunnel to server '${this.#channel.name}' closed before the call was sent: ${reason}`,
      )
    );
    for (const entry of this.#calls.drain()) {
      entry.route.settle(
        errorResponse(
          entry.originalId,
          ErrorCode.TunnelUnavailable,
          `Tunnel to server '${this.#channel.name}' closed before it answered: ${reason}`,
        ),
      );
    }
    this.#requests.abortAll("tunnel closed");
    this.#init.release();
  }

  /**
   * Routes the payload of a data frame from the client. Returns the message of a bad frame, if it was one.
   * A long answer is settled as text with the caller's id put in, never parsed. `clientSession` names the
   * per-client instance the message comes from, if any.
   */
  onPayload(type: string, payload: Payload, clientSession?: string): string | undefined {
    if (this.#sink.foreign?.(type, payload)) return undefined;
    if (payload.isText && type === "response") {
      const facts = payload.facts;
      if (facts !== "batch" && facts.kind === "response" && isOneLine(payload.text)) {
        const entry = this.#calls.take(facts.id);
        if (entry === undefined) this.#late.answer(facts.id);
        else entry.route.settle(new RawResponse(payload.textWithId(entry.originalId)!));
        return undefined;
      }
    }
    const message = payload.value;
    const kind = classify(message);
    if (type === "response") {
      if (kind !== "response") return "Frame 'response' needs a JSON-RPC response as 'payload'";
      this.#onResponse(message as JsonRpcResponse);
      return undefined;
    }
    if (type === "request" && kind === "request") {
      this.#requests.take(message as JsonRpcRequest, clientSession, payload.text.length);
      return undefined;
    }
    // A-style clients label everything loosely: take any notification or response, whatever the frame says.
    if (kind === "notification") {
      this.#onServerNotification(message as JsonRpcNotification, clientSession);
      return undefined;
    }
    if (kind === "response") {
      this.#onResponse(message as JsonRpcResponse);
      return undefined;
    }
    return `Frame '${type.slice(0, 32)}' carries no valid JSON-RPC message in 'payload'`;
  }

  #onResponse(response: JsonRpcResponse): void {
    const entry = this.#calls.take(response.id);
    if (entry === undefined) return this.#late.answer(response.id);
    entry.route.settle(restoreResponse(response, entry.originalId));
  }

  #sendCancel(tunnelId: JsonRpcId, reason: string, clientSession: string | undefined): void {
    this.notify({
      jsonrpc: "2.0",
      method: "notifications/cancelled",
      params: { requestId: tunnelId, reason },
    }, clientSession);
  }

  #onServerNotification(message: JsonRpcNotification, clientSession: string | undefined): void {
    const params = isObject(message.params) ? message.params : {};
    if (message.method === "notifications/progress") {
      const entry = this.#calls.byProgressToken(params.progressToken);
      if (
        entry !== undefined && entry.progressToken !== undefined &&
        entry.route.clientSession === clientSession
      ) {
        entry.route.onProgress?.(restoreProgress(message, entry.progressToken));
      } else {
        log.debug("Dropped progress for unknown token on server {name}", {
          event: "unknown_progress",
          name: this.#channel.name,
        });
      }
      return;
    }
    if (message.method === "notifications/cancelled") {
      const requestId = params.requestId;
      if (typeof requestId === "string" || typeof requestId === "number") {
        this.#requests.cancel(requestId, clientSession, reasonText(params.reason));
      }
      return;
    }
    this.#sink.serverNotification(message, clientSession);
  }
}
