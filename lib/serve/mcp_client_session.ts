// The MCP clients of tunneled servers: one session per `Mcp-Session-Id`, owning its calls in flight, its
// GET stream and the server-initiated requests it was asked to answer; and the table of them, bounded
// per owner.

import { isObject, type JsonObject } from "../util/json_object.ts";
import { ErrorCode, errorResponse, idKey, type JsonRpcResponse } from "../protocol/jsonrpc.ts";
import type { SseStream } from "./sse_stream.ts";

/** MCP client sessions one owner may hold; past it the least recently used idle one is forgotten. */
export const MAX_CLIENT_SESSIONS_PER_OWNER = 1024;

/** One call in flight from an MCP client. */
export interface ClientCall {
  controller: AbortController;
  /** The SSE stream of the POST, when the client took one. */
  stream?: SseStream;
  started: number;
}

/** One MCP client session. */
export class McpClientSession {
  readonly id: string = crypto.randomUUID();
  readonly owner: string;
  readonly serverName: string;
  /** What the client declared in `initialize`. */
  readonly capabilities: JsonObject;
  readonly protocolVersion: string;
  #lastSeen: number;
  #getStream: SseStream | undefined;
  #getStreamCredential: string | undefined;
  #calls = new Map<string, ClientCall>();
  #serverRequests = new Map<string, (response: JsonRpcResponse) => void>();

  constructor(
    options: {
      owner: string;
      serverName: string;
      capabilities: JsonObject;
      protocolVersion: string;
      now: number;
    },
  ) {
    this.owner = options.owner;
    this.serverName = options.serverName;
    this.capabilities = options.capabilities;
    this.protocolVersion = options.protocolVersion;
    this.#lastSeen = options.now;
  }

  /** When the client was last heard from (ms since epoch). */
  get lastSeen(): number {
    return this.#lastSeen;
  }

  /** Records that the client was heard from. */
  touch(now: number): void {
    this.#lastSeen = now;
  }

  /** True with no call in flight and no open GET stream: the session may be forgotten. */
  get idle(): boolean {
    return this.#calls.size === 0 && (this.#getStream === undefined || this.#getStream.closed);
  }

  /** True if the client declared `capability` (`roots`, `sampling`, `elicitation`, …). */
  declares(capability: string): boolean {
    return isObject(this.capabilities[capability]);
  }

  /** The open GET stream, if any. */
  get getStream(): SseStream | undefined {
    const stream = this.#getStream;
    return stream !== undefined && !stream.closed ? stream : undefined;
  }

  /** The credential that opened the current GET stream. */
  get getStreamCredential(): string | undefined {
    return this.#getStreamCredential;
  }

  /** Makes `stream` the session's GET stream, opened with `credential`, closing the previous one. */
  openGetStream(stream: SseStream, credential: string): void {
    const previous = this.#getStream;
    this.#getStream = stream;
    this.#getStreamCredential = credential;
    previous?.close();
  }

  /** Forgets `stream` as the GET stream if it still is. */
  getStreamGone(stream: SseStream): void {
    if (this.#getStream === stream) this.#getStream = undefined;
  }

  /** Calls in flight. */
  get callCount(): number {
    return this.#calls.size;
  }

  /** True if a call with this JSON-RPC id is in flight. */
  hasCall(id: string | number): boolean {
    return this.#calls.has(idKey(id));
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

  /** The most recent call with an open SSE stream. */
  latestStream(): SseStream | undefined {
    let best: ClientCall | undefined;
    for (const call of this.#calls.values()) {
      if (
        call.stream !== undefined && !call.stream.closed && (!best || call.started >= best.started)
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
    this.#getStream?.close();
    this.#getStream = undefined;
  }
}

/** Options of {@link McpClientSessions}. */
export interface McpClientSessionsOptions {
  /** An idle session is forgotten after this long, in milliseconds. */
  ttlMs: number;
  /** Sessions one owner may hold. Default {@link MAX_CLIENT_SESSIONS_PER_OWNER}. */
  maxPerOwner?: number;
  now: () => number;
}

/** The MCP client sessions of the gateway, by id. */
export class McpClientSessions {
  #sessions = new Map<string, McpClientSession>();
  #options: McpClientSessionsOptions;

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
    fields: Omit<ConstructorParameters<typeof McpClientSession>[0], "now">,
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
    const session = new McpClientSession({ ...fields, now: this.#options.now() });
    this.#sessions.set(session.id, session);
    return session;
  }

  /** Ends a session and forgets it. */
  delete(session: McpClientSession, reason: string): void {
    if (this.#sessions.get(session.id) === session) this.#sessions.delete(session.id);
    session.end(reason);
  }

  /** Forgets sessions idle for longer than the TTL. */
  sweep(): void {
    const now = this.#options.now();
    for (const session of this.#sessions.values()) {
      if (session.idle && now - session.lastSeen > this.#options.ttlMs) {
        this.delete(session, "idle");
      }
    }
  }

  /** Ends every session. */
  close(reason: string): void {
    for (const session of this.#sessions.values()) session.end(reason);
    this.#sessions.clear();
  }
}
