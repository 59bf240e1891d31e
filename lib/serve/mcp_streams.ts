// The SSE side of the MCP endpoint: connections bounded by `--max-client-buffer`, GET streams counted per
// token (`--max-streams-per-token`), and a GET with `Last-Event-ID` that resumes the stream it names.

import { ErrorCode } from "../protocol/jsonrpc.ts";
import { logger } from "../util/log.ts";
import type { McpClientSession } from "./mcp_client_session.ts";
import { rpcError } from "./mcp_http.ts";
import type { MemoryBudget } from "./memory_budget.ts";
import type { ServeMetrics } from "./metrics.ts";
import {
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
   * names, resumed after that event (see docs/serve.md, Streams and resumption).
   */
  get(session: McpClientSession, identity: Identity, lastEventId: string | null): Response {
    if (lastEventId === null) return this.#getStream(session, identity, undefined);
    const eventId = parseEventId(lastEventId);
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
    if (stream.id === STANDALONE_STREAM) return this.#getStream(session, identity, eventId.seq);
    if (stream.done && eventId.seq >= stream.lastSeq) {
      // Everything of a finished stream was seen: nothing more will come on it.
      return new Response(null, { status: 204, headers: { "mcp-session-id": session.id } });
    }
    const connection = this.connection(session, `resumed stream ${stream.id}`);
    this.resume(session, stream, connection, eventId.seq);
    return new Response(connection.readable, {
      headers: { ...SSE_HEADERS, "mcp-session-id": session.id },
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
    return new Response(connection.readable, {
      headers: { ...SSE_HEADERS, "mcp-session-id": session.id },
    });
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
