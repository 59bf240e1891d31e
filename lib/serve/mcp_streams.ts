// The SSE side of the MCP endpoint: connections bounded by `--max-client-buffer`, GET streams counted per
// token (`--max-streams-per-token`), and a GET with `Last-Event-ID` that resumes the stream it names.

import { ErrorCode } from "../protocol/jsonrpc.ts";
import { logger } from "../util/log.ts";
import type { McpClientSession } from "./mcp_client_session.ts";
import { rpcError } from "./mcp_http.ts";
import type { MemoryBudget } from "./memory_budget.ts";
import type { ServeMetrics } from "./metrics.ts";
import {
  type EventId,
  parseEventId,
  type ResumableStream,
  STANDALONE_STREAM,
  type StreamSettings,
} from "./resumable_stream.ts";
import { SSE_HEADERS, SseStream } from "./sse_stream.ts";
import type { Identity } from "./token_store.ts";

const log = logger("serve", "mcp");

/** Open GET streams one token may hold at once, by default. */
export const DEFAULT_MAX_STREAMS_PER_TOKEN = 16;

/** Options of {@link McpStreams}. */
export interface McpStreamsOptions {
  streams: StreamSettings;
  /** Unread bytes one connection may hold; undefined = unbounded. */
  maxClientBufferBytes: number | undefined;
  /** Open GET streams per token. Default {@link DEFAULT_MAX_STREAMS_PER_TOKEN}. */
  maxStreamsPerToken: number | undefined;
  now: () => number;
  metrics: ServeMetrics | undefined;
  /** Where what clients have not read is charged, against their owner's memory share. */
  budget?: MemoryBudget | undefined;
  /** Replicas: this replica's id, and the way to streams the others hold. */
  replica?: StreamReplica | undefined;
}

/** A resume that landed on one replica, for the replica holding the stream (lib/serve/cluster/). */
export interface StreamResume {
  sessionId: string;
  owner: string;
  serverName: string;
  lastEventId: string;
}

/** What the holder of a stream did with a {@link StreamResume}: the stream is on `connection`, or not. */
export type RelayOutcome =
  | { status: 200; connection: SseStream }
  | { status: number; body?: string };

/** How the MCP endpoint of a replica reaches streams the others hold. */
export interface StreamReplica {
  id: string;
  /**
   * Asks replica `rid` to resume the stream; on 200 it relays the stream's bytes into `connection` (the
   * client's) until the stream ends or `connection` does. Otherwise its answer (status and JSON body).
   */
  resume(
    rid: string,
    request: StreamResume,
    connection: SseStream,
  ): Promise<{ status: number; body?: string }>;
}

/** The SSE connections of the MCP endpoint. */
export class McpStreams {
  #options: McpStreamsOptions;
  /** Open GET streams by the credential that opened them. */
  #streamsByCredential = new Map<string, number>();

  constructor(options: McpStreamsOptions) {
    this.#options = options;
  }

  /** A new connection bounded by `maxClientBufferBytes` that logs and counts its overflow. */
  connection(session: McpClientSession, what: string): SseStream {
    const max = this.#options.maxClientBufferBytes;
    const connection = new SseStream(max === undefined ? {} : { maxBufferedBytes: max });
    const budget = this.#options.budget;
    if (budget !== undefined) {
      // The owner's oldest unread streams are what is cut first when the owner needs room.
      connection.chargeTo(budget.charge(session.owner, {
        what: what,
        evict: () => {
          this.#options.metrics?.errors.inc("memory");
          log.warning(
            "Cut the {what} of MCP client session {mcpSession} of {owner} on {name}: its owner's memory share is used up and this is its oldest unread stream (--memory-per-owner)",
            {
              event: "stream_cut",
              what,
              mcpSession: session.id,
              owner: session.owner,
              name: session.serverName,
            },
          );
          connection.cut("the owner's memory share is used up (--memory-per-owner)");
        },
      }));
    }
    connection.onOverflow = (buffered) => {
      this.#options.metrics?.errors.inc("slow_client");
      log.warning(
        "Closed the {what} of MCP client session {mcpSession} of {owner} on {name}: the client did not read {bytes} bytes queued for it (--max-client-buffer {limit})",
        {
          event: "slow_client",
          what,
          mcpSession: session.id,
          owner: session.owner,
          name: session.serverName,
          bytes: buffered,
          limit: max,
        },
      );
    };
    return connection;
  }

  /** The 429 for a new GET stream past `--max-streams-per-token`, or undefined. */
  limit(credential: string, replacing: boolean): Response | undefined {
    const limit = this.#options.maxStreamsPerToken ?? DEFAULT_MAX_STREAMS_PER_TOKEN;
    if (replacing || (this.#streamsByCredential.get(credential) ?? 0) < limit) return undefined;
    this.#options.metrics?.errors.inc("too_many_streams");
    return rpcError(
      429,
      null,
      ErrorCode.InternalError,
      `Too many open GET streams for this token (limit ${limit}, --max-streams-per-token); close one first`,
    );
  }

  /** Counts an open GET stream of `credential` until `connection` ends. */
  count(credential: string): (connection: SseStream) => void {
    this.#streamsByCredential.set(credential, (this.#streamsByCredential.get(credential) ?? 0) + 1);
    return (connection) => {
      connection.onEnd = () => {
        const left = (this.#streamsByCredential.get(credential) ?? 1) - 1;
        if (left > 0) this.#streamsByCredential.set(credential, left);
        else this.#streamsByCredential.delete(credential);
      };
    };
  }

  /**
   * A GET of the session's stream: the standalone stream afresh without `lastEventId`, else the stream it
   * names, resumed after that event (see docs/serve.md, Streams and resumption); on a replica, through the
   * replica the event id names when that is another (docs/scaling.md, Streams).
   */
  get(
    session: McpClientSession,
    identity: Identity,
    lastEventId: string | null,
  ): Response | Promise<Response> {
    if (lastEventId === null) return this.#getStream(session, identity, undefined);
    const eventId = parseEventId(lastEventId);
    const replica = this.#options.replica;
    if (eventId?.replica !== undefined && replica !== undefined && eventId.replica !== replica.id) {
      return this.#remote(session, identity, { rid: eventId.replica, replica, lastEventId });
    }
    const plan = this.#plan(session, lastEventId, eventId);
    if (plan instanceof Response) return plan;
    if (plan.stream.id === STANDALONE_STREAM) return this.#getStream(session, identity, plan.after);
    const connection = this.connection(session, `resumed stream ${plan.stream.id}`);
    this.resume(session, plan.stream, connection, plan.after);
    return streamResponse(session, connection);
  }

  /**
   * Replicas: a resume another replica took for a stream held here. The stream goes on a new connection
   * here (bounded and charged as any), whose bytes the caller relays; or the answer to give instead.
   */
  async relayed(session: McpClientSession, lastEventId: string): Promise<RelayOutcome> {
    const plan = this.#plan(session, lastEventId, parseEventId(lastEventId));
    if (plan instanceof Response) return { status: plan.status, body: await plan.text() };
    const connection = this.connection(session, `stream ${plan.stream.id} resumed elsewhere`);
    this.resume(session, plan.stream, connection, plan.after);
    return { status: 200, connection };
  }

  /** The stream to resume after which event, or the answer when there is none. */
  #plan(
    session: McpClientSession,
    lastEventId: string,
    eventId: EventId | undefined,
  ): Response | { stream: ResumableStream; after: number } {
    if (eventId === undefined) {
      return rpcError(
        400,
        null,
        ErrorCode.InvalidRequest,
        `Last-Event-ID '${
          lastEventId.slice(0, 64)
        }' is not an event id of this gateway (STREAM:EVENT, as sent in 'id:'); open the stream without it`,
      );
    }
    const stream = session.streams.get(eventId.stream);
    if (
      stream?.id === STANDALONE_STREAM && eventId.seq > stream.lastSeq &&
      session.takeEarlierGetStream()
    ) {
      // The session was restored: the client resumes from an event the earlier process sent, and gets
      // what this process holds from there on.
      stream.skipTo(eventId.seq);
    }
    if (stream === undefined && Number(eventId.stream) < session.firstStream) {
      // A stream of the process before a restart: this one holds nothing of it, which is the answer (an
      // error would only make the client try again and again). Its call was answered, or lost, there.
      log.info(
        "MCP client session {mcpSession} of {owner} on {name} asked for stream {stream} of the gateway before a restart: nothing of it is held",
        {
          event: "stream_of_earlier_process",
          mcpSession: session.id,
          owner: session.owner,
          name: session.serverName,
          stream: eventId.stream,
        },
      );
      return new Response(null, { status: 204, headers: { "mcp-session-id": session.id } });
    }
    if (stream === undefined || stream.gone || eventId.seq > stream.lastSeq) {
      const window = this.#options.streams.resumeWindowMs / 1000;
      return rpcError(
        410,
        null,
        ErrorCode.InvalidRequest,
        `Stream ${eventId.stream} of this session cannot be resumed from event ${eventId.seq}: a stream is kept ${window} s after its client left (--sse-resume-window) and within --sse-replay-bytes/--sse-replay-events`,
      );
    }
    if (stream.done && eventId.seq >= stream.lastSeq) {
      // Everything of a finished stream was seen: nothing more will come on it.
      return new Response(null, { status: 204, headers: { "mcp-session-id": session.id } });
    }
    return { stream, after: eventId.seq };
  }

  /**
   * A resume for a stream `rid` holds: the client's new connection is here (bounded and charged here),
   * and the holder relays the replay and what follows to it.
   */
  async #remote(
    session: McpClientSession,
    identity: Identity,
    to: { rid: string; replica: StreamReplica; lastEventId: string },
  ): Promise<Response> {
    const standalone = parseEventId(to.lastEventId)?.stream === STANDALONE_STREAM;
    const refused = standalone ? this.limit(identity.credential, false) : undefined;
    if (refused !== undefined) return refused;
    const connection = this.connection(session, `stream resumed from replica ${to.rid}`);
    if (standalone) this.count(identity.credential)(connection);
    const outcome = await to.replica.resume(to.rid, {
      sessionId: session.id,
      owner: session.owner,
      serverName: session.serverName,
      lastEventId: to.lastEventId,
    }, connection);
    if (outcome.status === 200) return streamResponse(session, connection);
    connection.close();
    const type = outcome.body ? { "content-type": "application/json" } : {};
    return new Response(outcome.body || null, {
      status: outcome.status,
      headers: { ...type, "mcp-session-id": session.id },
    });
  }

  /** Opens (or resumes after event `after`) the session's GET stream. */
  #getStream(session: McpClientSession, identity: Identity, after: number | undefined): Response {
    const credential = identity.credential;
    // A GET that replaces the session's own open stream does not add one.
    const standalone = session.streams.standalone;
    const replacing = standalone.attached && session.getStreamCredential === credential;
    const refused = this.limit(credential, replacing);
    if (refused !== undefined) return refused;
    const connection = this.connection(session, "GET stream");
    this.count(credential)(connection);
    session.getStreamCredential = credential;
    if (after === undefined) standalone.attach(connection);
    else this.resume(session, standalone, connection, after);
    // The session was heard from when its stream ends, so the idle TTL counts from then.
    const lost = connection.onCancel;
    connection.onCancel = () => {
      lost?.();
      session.touch(this.#options.now());
    };
    return streamResponse(session, connection);
  }

  /** Puts `stream` on `connection` after event `after`; a gap is warned about and counted. */
  resume(
    session: McpClientSession,
    stream: ResumableStream,
    connection: SseStream,
    after: number,
  ): void {
    if (stream.attach(connection, after)) return;
    this.#options.metrics?.errors.inc("replay_gap");
    log.warning(
      "MCP client session {mcpSession} of {owner} on {name} resumed stream {stream} after event {after}, but events after it were dropped from the replay buffer (--sse-replay-bytes, --sse-replay-events): it misses them",
      {
        event: "replay_gap",
        mcpSession: session.id,
        owner: session.owner,
        name: session.serverName,
        stream: stream.id,
        after,
      },
    );
  }
}

function streamResponse(session: McpClientSession, connection: SseStream): Response {
  return new Response(connection.readable, {
    headers: { ...SSE_HEADERS, "mcp-session-id": session.id },
  });
}
