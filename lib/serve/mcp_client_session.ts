// The MCP clients of tunneled servers: one session per `Mcp-Session-Id` (or legacy SSE connection), owning
// its calls in flight, its resumable streams and the server-initiated requests it was asked to answer; and
// the table of them, bounded per owner.

import type { MemoryBudget } from "./memory_budget.ts";
import type { SharedSessionHooks } from "./shared_session_hooks.ts";
import { type ClientRecord, RECORD_VERSION } from "./state/records.ts";
import type { ServeState } from "./state/serve_state.ts";
import { isObject, type JsonObject } from "../util/json_object.ts";
import {
  ErrorCode,
  errorResponse,
  idKey,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from "../protocol/jsonrpc.ts";
import { type ClientStream, STREAM_DEFAULTS, type StreamSettings } from "./resumable_stream.ts";
import { SessionStreams } from "./session_streams.ts";

/** MCP client sessions one owner may hold; past it the least recently used idle one is forgotten. */
export const MAX_CLIENT_SESSIONS_PER_OWNER = 1024;

/** POST streams numbered per process a session lives in: a restored one numbers past the earlier ones. */
export const STREAMS_PER_EPOCH = 1_000_000_000;

/** One call in flight from an MCP client. */
export interface ClientCall {
  /** The request as the client sent it (to recognize the same request sent again). */
  request: JsonRpcRequest;
  controller: AbortController;
  /** Where its progress, server requests and answer go when not answered as plain JSON. */
  stream?: ClientStream;
  started: number;
}

/** A legacy (2024-11-05 HTTP+SSE) session's one SSE connection. */
export interface LegacyConnection extends ClientStream {
  close(): void;
}

/** One MCP client session. */
export class McpClientSession {
  readonly id: string;
  readonly owner: string;
  readonly serverName: string;
  /** Processes before this one the session lived in (restored from the state store that often). */
  readonly epoch: number;
  /** The session's server gives it an instance of its own (what it sends early is held for the client). */
  readonly perClient: boolean;
  /** Streams numbered below this were an earlier process's: their events are gone. */
  readonly firstStream: number;
  /** Its resumable SSE streams (Streamable HTTP): the GET stream and one per POST answered with SSE. */
  readonly streams: SessionStreams;
  #capabilities: JsonObject;
  #protocolVersion: string;
  #lastSeen: number;
  #legacy: LegacyConnection | undefined;
  #getStreamCredential: string | undefined;
  #calls = new Map<string, ClientCall>();
  #serverRequests = new Map<string, (response: JsonRpcResponse) => void>();
  /** Restored and its GET stream not resumed yet: it may name an event of the earlier process. */
  #earlierGetStream: boolean;
  #onTouch: (() => void) | undefined;

  constructor(
    options: {
      owner: string;
      serverName: string;
      capabilities: JsonObject;
      protocolVersion: string;
      now: number;
      streams?: StreamSettings;
      /** Where the replay of its streams is charged, against the owner's memory share. */
      budget?: MemoryBudget | undefined;
      /**
       * It has a server instance of its own: what the instance sends before the client opens its GET
       * stream is held for it (up to the replay bounds) instead of dropped.
       */
      perClient?: boolean | undefined;
      /** Restored from the state store: its id, and the processes it lived in before. */
      restored?: { id: string; epoch: number } | undefined;
      id?: string | undefined; // replicas: see `McpClientSessions.open`
      /** Runs when the client was heard from (the session's `lastSeen` is saved now and then). */
      onTouch?: () => void;
    },
  ) {
    this.id = options.restored?.id ?? options.id ?? crypto.randomUUID();
    this.epoch = options.restored?.epoch ?? 0;
    this.perClient = options.perClient === true;
    this.firstStream = this.epoch * STREAMS_PER_EPOCH + 1;
    this.#earlierGetStream = options.restored !== undefined;
    this.#onTouch = options.onTouch;
    this.owner = options.owner;
    this.serverName = options.serverName;
    this.#capabilities = options.capabilities;
    this.#protocolVersion = options.protocolVersion;
    this.#lastSeen = options.now;
    this.streams = new SessionStreams(
      options.streams ?? STREAM_DEFAULTS,
      undefined,
      options.budget?.charge(options.owner, { what: "event replay" }),
    );
    if (this.perClient) this.streams.standalone.hold();
    this.streams.numberFrom(this.firstStream);
  }

  /**
   * True once for a restored session (then false): its client may resume the GET stream from an event
   * the earlier process sent, which this one takes as the point to go on from.
   */
  takeEarlierGetStream(): boolean {
    const earlier = this.#earlierGetStream;
    this.#earlierGetStream = false;
    return earlier;
  }

  /** The session as the state store keeps it. */
  record(): ClientRecord {
    return {
      v: RECORD_VERSION,
      id: this.id,
      owner: this.owner,
      serverName: this.serverName,
      protocolVersion: this.#protocolVersion,
      capabilities: this.#capabilities,
      lastSeen: this.#lastSeen,
      epoch: this.epoch,
      ...(this.perClient ? { perClient: true } : {}),
    };
  }

  /** What the client declared in `initialize`. */
  get capabilities(): JsonObject {
    return this.#capabilities;
  }

  /** The protocol version negotiated in `initialize`. */
  get protocolVersion(): string {
    return this.#protocolVersion;
  }

  /** Records the client's `initialize` (a legacy session opens before it). */
  initialized(capabilities: JsonObject, protocolVersion: string): void {
    this.#capabilities = capabilities;
    this.#protocolVersion = protocolVersion;
  }

  /** True for a legacy HTTP+SSE session. */
  get legacy(): boolean {
    return this.#legacy !== undefined;
  }

  /** When the client was last heard from (ms since epoch). */
  get lastSeen(): number {
    return this.#lastSeen;
  }

  /** Records that the client was heard from. */
  touch(now: number): void {
    this.#lastSeen = now;
    this.#onTouch?.();
  }

  /** True with no call in flight and no open GET stream: the session may be forgotten. */
  get idle(): boolean {
    return this.#calls.size === 0 && this.getStream?.attached !== true;
  }

  /** True if the client declared `capability` (`roots`, `sampling`, `elicitation`, …). */
  declares(capability: string): boolean {
    return isObject(this.capabilities[capability]);
  }

  /**
   * Where messages not tied to a call go (server notifications, requests without a call stream): the
   * legacy connection, or the GET stream while it is open or within its resume window.
   */
  get getStream(): ClientStream | undefined {
    if (this.#legacy !== undefined) return this.#legacy;
    return this.streams.standalone.open ? this.streams.standalone : undefined;
  }

  /** The credential that opened the current GET stream connection. */
  get getStreamCredential(): string | undefined {
    return this.#getStreamCredential;
  }

  /** Records the credential of the GET stream's new connection. */
  set getStreamCredential(credential: string | undefined) {
    this.#getStreamCredential = credential;
  }

  /** Makes `connection` the session's one legacy SSE connection. */
  attachLegacy(connection: LegacyConnection): void {
    this.#legacy = connection;
  }

  /** Calls in flight. */
  get callCount(): number {
    return this.#calls.size;
  }

  /** True if a call with this JSON-RPC id is in flight. */
  hasCall(id: string | number): boolean {
    return this.#calls.has(idKey(id));
  }

  /** The call in flight with this JSON-RPC id. */
  call(id: string | number): ClientCall | undefined {
    return this.#calls.get(idKey(id));
  }

  /** Records a call in flight; returns a function that forgets it (once the call is answered). */
  addCall(id: string | number, call: ClientCall): () => void {
    const key = idKey(id);
    this.#calls.set(key, call);
    return () => {
      if (this.#calls.get(key) === call) this.#calls.delete(key);
    };
  }

  /** Cancels the call with this id (the client's `notifications/cancelled`). */
  cancelCall(id: string | number, reason: string): void {
    this.#calls.get(idKey(id))?.controller.abort(reason);
  }

  /** The stream of the most recent call whose stream has a client connection now. */
  latestStream(): ClientStream | undefined {
    let best: ClientCall | undefined;
    for (const call of this.#calls.values()) {
      if (
        call.stream !== undefined && call.stream.attached && (!best || call.started >= best.started)
      ) {
        best = call;
      }
    }
    return best?.stream;
  }

  /**
   * Waits for the client's answer to a server-initiated request with this id: `settle` is called with
   * it. A request with the same id still waiting is superseded (answered with an error).
   */
  expectAnswer(id: string | number, settle: (response: JsonRpcResponse) => void): () => void {
    const key = idKey(id);
    this.#serverRequests.get(key)?.(
      errorResponse(id, ErrorCode.InternalError, "Superseded by a request with the same id"),
    );
    this.#serverRequests.set(key, settle);
    return () => {
      if (this.#serverRequests.get(key) === settle) this.#serverRequests.delete(key);
    };
  }

  /** The client answered a server-initiated request; false if nothing waited for it. */
  answer(response: JsonRpcResponse): boolean {
    if (response.id === null) return false;
    const settle = this.#serverRequests.get(idKey(response.id));
    if (settle === undefined) return false;
    settle(response);
    return true;
  }

  /** Ends everything in flight. */
  end(reason: string): void {
    for (const call of this.#calls.values()) call.controller.abort(reason);
    this.#calls.clear();
    for (const settle of this.#serverRequests.values()) {
      settle(
        errorResponse(null, ErrorCode.TunnelUnavailable, `MCP client session ended: ${reason}`),
      );
    }
    this.#serverRequests.clear();
    this.streams.end();
    this.#legacy?.close();
  }
}

/** Options of {@link McpClientSessions}. */
export interface McpClientSessionsOptions {
  /** An idle session is forgotten after this long, in milliseconds. */
  ttlMs: number;
  /** Bounds and timing of each session's resumable streams. Default {@link STREAM_DEFAULTS}. */
  streams?: StreamSettings;
  /** Sessions one owner may hold. Default {@link MAX_CLIENT_SESSIONS_PER_OWNER}. */
  maxPerOwner?: number | undefined;
  now: () => number;
  /** Where each session's event replay is charged. */
  budget?: MemoryBudget | undefined;
  /** A session was deleted (`byClient`, for idleness, or for room): its per-client instance stops. */
  onEnd?: (session: McpClientSession, reason: string, byClient: boolean) => void;
  /** Where sessions are saved, so that a restarted gateway knows them (Streamable HTTP only). */
  state?: ServeState | undefined;
  /** Replicas: sessions shared with the others (see lib/serve/cluster/shared_sessions.ts). */
  shared?: SharedSessionHooks | undefined;
}

/** How a session saved by an earlier gateway is restored. */
type RestoredAs = { id: string; epoch: number; lastSeen: number };

/** The MCP client sessions of the gateway, by id. */
export class McpClientSessions {
  #sessions = new Map<string, McpClientSession>();
  #options: McpClientSessionsOptions;
  /** When each session's `lastSeen` was last saved. */
  #savedAt = new WeakMap<McpClientSession, number>();

  constructor(options: McpClientSessionsOptions) {
    this.#options = options;
  }

  /** Number of sessions. */
  get size(): number {
    return this.#sessions.size;
  }

  /** Sessions per owner at most. */
  get maxPerOwner(): number {
    return this.#options.maxPerOwner ?? MAX_CLIENT_SESSIONS_PER_OWNER;
  }

  /** The session with this id. */
  get(id: string): McpClientSession | undefined {
    return this.#sessions.get(id);
  }

  /** The session with this id, here or (replicas) taken with its id from the replica that opened it. */
  async find(id: string): Promise<McpClientSession | undefined> {
    const { shared } = this.#options;
    const local = this.#sessions.get(id);
    if (local !== undefined) shared?.used(id);
    const record = local === undefined ? await shared?.find(id) : undefined;
    return local ?? (record && (this.#sessions.get(id) ?? this.open(record, { id })));
  }

  /** Every session. */
  all(): Iterable<McpClientSession> {
    return this.#sessions.values();
  }

  /** The sessions of one server of one owner. */
  *ofServer(owner: string, serverName: string): Iterable<McpClientSession> {
    for (const session of this.#sessions.values()) {
      if (session.owner === owner && session.serverName === serverName) yield session;
    }
  }

  /**
   * Opens a session, forgetting the owner's least recently used idle one when the owner is at its cap.
   * Undefined when the owner is at its cap with no idle session.
   */
  open(
    fields: Pick<
      ConstructorParameters<typeof McpClientSession>[0],
      "owner" | "serverName" | "capabilities" | "protocolVersion" | "perClient"
    >,
    // `id` (replicas): the id another replica gave it (not published again), or one naming this one.
    how: { legacy?: boolean; restored?: RestoredAs; id?: string } = {},
  ): McpClientSession | undefined {
    let count = 0;
    let oldest: McpClientSession | undefined;
    for (const session of this.#sessions.values()) {
      if (session.owner !== fields.owner) continue;
      count++;
      if (session.idle && (oldest === undefined || session.lastSeen < oldest.lastSeen)) {
        oldest = session;
      }
    }
    if (count >= this.maxPerOwner) {
      if (oldest === undefined) return undefined;
      this.delete(oldest, "too many sessions for the owner");
    }
    const { legacy = false, restored } = how;
    const session: McpClientSession = new McpClientSession({
      ...fields,
      now: restored?.lastSeen ?? this.#options.now(),
      ...(this.#options.streams === undefined ? {} : { streams: this.#options.streams }),
      budget: this.#options.budget,
      restored,
      id: how.id,
      ...(legacy ? {} : { onTouch: () => this.#touched(session) }),
    });
    this.#sessions.set(session.id, session);
    // A legacy session lives on its one SSE connection, which a restart ends: nothing to keep.
    if (!legacy) this.#save(session);
    const fresh = !legacy && how.restored === undefined && how.id === undefined;
    if (fresh) this.#options.shared?.opened({ ...fields, id: session.id });
    return session;
  }

  /**
   * Restores the sessions a gateway before this one saved: their clients go on with the same
   * `Mcp-Session-Id`. Before the gateway listens. Returns how many were restored.
   */
  restore(records: readonly ClientRecord[]): number {
    const now = this.#options.now();
    let restored = 0;
    for (const record of [...records].sort((a, b) => a.lastSeen - b.lastSeen)) {
      if (this.#sessions.has(record.id) || now - record.lastSeen > this.#options.ttlMs) continue;
      const { id, owner, serverName, capabilities, protocolVersion, lastSeen, perClient } = record;
      const session = this.open({ owner, serverName, capabilities, protocolVersion, perClient }, {
        restored: { id, epoch: record.epoch + 1, lastSeen },
      });
      if (session !== undefined) restored++;
    }
    return restored;
  }

  /** Ends a session and forgets it; `byClient`: everywhere (the client's DELETE). */
  delete(session: McpClientSession, reason: string, byClient = false): void {
    if (this.#sessions.get(session.id) !== session) return;
    this.#sessions.delete(session.id);
    if (byClient) this.#options.shared?.deleted(session.id);
    session.end(reason);
    this.#options.onEnd?.(session, reason, byClient);
    if (!session.legacy) this.#options.state?.dropClient(session.id);
  }

  #save(session: McpClientSession): void {
    const state = this.#options.state;
    if (state === undefined) return;
    this.#savedAt.set(session, session.lastSeen);
    state.saveClient(session.record());
  }

  /** Saves `lastSeen` now and then: often enough that a restart forgets no session early by much. */
  #touched(session: McpClientSession): void {
    const savedAt = this.#savedAt.get(session) ?? 0;
    if (session.lastSeen - savedAt >= this.#options.ttlMs / 16) this.#save(session);
  }

  /** Forgets sessions idle for longer than the TTL; renews the shared records of those in use. */
  sweep(): void {
    const now = this.#options.now();
    for (const session of this.#sessions.values()) {
      if (session.idle && now - session.lastSeen > this.#options.ttlMs) {
        this.delete(session, "idle");
      } else if (!session.idle) this.#options.shared?.used(session.id); // alive for the others too
    }
  }

  /** Ends every session (the gateway stops); with a state store they are saved as they stand, for the next. */
  close(reason: string): void {
    for (const session of this.#sessions.values()) {
      if (!session.legacy) this.#save(session);
      session.end(reason);
    }
    this.#sessions.clear();
  }
}
