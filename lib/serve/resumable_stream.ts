// The resumable SSE streams of one MCP session (MCP 2025-11-25, "Resumability and Redelivery"): every event
// carries an id `<stream>:<n>`, events are kept in a buffer bounded per session in UTF-8 bytes and in
// events, and a client whose connection dropped reconnects with `Last-Event-ID` to get what followed that
// id and then the rest. A stream left without a connection is kept for a window, then given up.

import { isOneLine } from "../protocol/json_scan.ts";
import type { SseStream } from "./sse_stream.ts";
import type { SessionStreams } from "./session_streams.ts";

const encoder = new TextEncoder();

/** Where messages for one MCP client go: a resumable stream, or a legacy SSE connection. */
export interface ClientStream {
  /** Writes a JSON-RPC message; false when the stream takes no more (ended, or nobody listens). */
  send(message: unknown): boolean;
  /**
   * Writes a message event encoded once for many streams ({@link encodeMessageEvent}): a notification
   * broadcast to every client of a server shares its bytes instead of holding a copy per stream.
   */
  sendEncoded(event: Uint8Array): boolean;
  /** Writes a JSON-RPC message given as one line of JSON text; false as for {@link send}. */
  sendText(json: string): boolean;
  /** True while a client connection is open on it (a message reaches the client now, not on resume). */
  readonly attached: boolean;
}

/** Bounds and timing of the resumable streams of one session. */
export interface StreamSettings {
  /** UTF-8 bytes of events kept for replay, per session. */
  replayBytes: number;
  /** Events kept for replay, per session. */
  replayEvents: number;
  /** How long a stream without a connection is kept for its client to come back, in milliseconds. */
  resumeWindowMs: number;
  /** The SSE `retry:` field sent on every connection: how long a client waits before reconnecting. */
  retryMs: number;
  /**
   * Replicas: `<rid>.`, put before every event id, so that a client resuming on another replica is sent
   * to this one (docs/scaling.md, Streams). Default "".
   */
  eventPrefix?: string;
}

/** Defaults of {@link StreamSettings}. */
export const STREAM_DEFAULTS: Readonly<StreamSettings> = {
  replayBytes: 8 * 1024 * 1024,
  replayEvents: 1000,
  resumeWindowMs: 30_000,
  retryMs: 1000,
};

/** The number of the session's standalone stream (its GET stream); POST streams count up from 1. */
export const STANDALONE_STREAM = "0";

/** An event id read back from a `Last-Event-ID` header. */
export interface EventId {
  /** The replica that sent it (replicas: `<rid>.<stream>:<n>`); undefined for `<stream>:<n>`. */
  replica?: string;
  stream: string;
  seq: number;
}

/** An event id of this gateway, `<stream>:<n>` or (replicas) `<rid>.<stream>:<n>`. */
export function parseEventId(text: string): EventId | undefined {
  const match = /^(?:([A-Za-z0-9_-]{1,64})\.)?(\d{1,15}):(\d{1,15})$/.exec(text.trim());
  if (match === null) return undefined;
  const id = { stream: String(Number(match[2])), seq: Number(match[3]) };
  return match[1] === undefined ? id : { replica: match[1], ...id };
}

/** An event kept for replay. */
export interface Kept {
  seq: number;
  /** The event's own `id:` line. */
  head: Uint8Array;
  /** `event: message` and `data:` lines, possibly shared with other streams. */
  body: Uint8Array;
}

/** Bytes of a kept event. */
export function sizeOf(event: Kept): number {
  return event.head.byteLength + event.body.byteLength;
}

/**
 * The `event:` and `data:` lines of one JSON-RPC message (one line of JSON text), encoded once: what
 * {@link ClientStream.sendEncoded} takes.
 *
 * @example
 * ```ts
 * import { encodeMessageEvent } from "./resumable_stream.ts";
 * encodeMessageEvent('{"jsonrpc":"2.0","method":"x"}').byteLength; // 53
 * ```
 */
export function encodeMessageEvent(json: string): Uint8Array {
  return encoder.encode(`event: message\ndata: ${json}\n\n`);
}

/**
 * One SSE stream of a session: a POST's answer (its progress, server requests and result) or the session's
 * standalone GET stream. It outlives the HTTP connections that carry it: {@link attach} puts it on a
 * connection, replaying what the client missed.
 */
export class ResumableStream implements ClientStream {
  readonly id: string;
  /** `id: <prefix><stream>:`, what every event's id line starts with. */
  readonly #idLine: string;
  /** Runs when the window passed with no connection while the stream was still open (a POST's call is then cancelled). */
  onExpired: (() => void) | undefined;
  /** Runs when a connection was cut because its client did not read (`--max-client-buffer`). */
  onOverflow: (() => void) | undefined;
  #streams: SessionStreams;
  #seq = 0;
  #kept: Kept[] = [];
  #head = 0;
  /** Events numbered up to this one are no longer kept. */
  #lostThrough = 0;
  #connection: SseStream | undefined;
  /** False until a first connection: events kept before it are replayed to it. */
  #attachedOnce = false;
  /** open: takes events; done: final event written; idle: nobody listens (standalone only); gone: forgotten. */
  #state: "open" | "done" | "idle" | "gone";

  /** @internal Use {@link SessionStreams.open}. */
  constructor(streams: SessionStreams, id: string, idle = false) {
    this.#streams = streams;
    this.id = id;
    this.#idLine = `id: ${streams.settings.eventPrefix ?? ""}${id}:`;
    this.#state = idle ? "idle" : "open";
  }

  get attached(): boolean {
    return this.#connection !== undefined && !this.#connection.closed;
  }

  /** True once its final event was written. */
  get done(): boolean {
    return this.#state === "done";
  }

  /** True while it takes events (attached, or within its window). */
  get open(): boolean {
    return this.#state === "open";
  }

  /** True once forgotten: its events are dropped and it cannot be resumed. */
  get gone(): boolean {
    return this.#state === "gone";
  }

  /** The number of its last event. */
  get lastSeq(): number {
    return this.#seq;
  }

  /** Events kept for replay. */
  get keptEvents(): number {
    return this.#kept.length - this.#head;
  }

  send(message: unknown): boolean {
    return this.#write(JSON.stringify(message)); // one line by construction
  }

  /** @throws {RangeError} if the text has a line break (an SSE `data` line ends at one) */
  sendText(json: string): boolean {
    if (!isOneLine(json)) {
      throw new RangeError("Cannot send an SSE message whose JSON text has a line break");
    }
    return this.#write(json);
  }

  sendEncoded(event: Uint8Array): boolean {
    return this.#writeBody(event);
  }

  #write(json: string): boolean {
    if (this.#state !== "open") return false;
    return this.#writeBody(encodeMessageEvent(json));
  }

  #writeBody(body: Uint8Array): boolean {
    if (this.#state !== "open") return false;
    const seq = ++this.#seq;
    const head = encoder.encode(`${this.#idLine}${seq}\n`);
    // Kept and written are the same bytes: a connection's queue does not copy them.
    this.#streams.keep(this, { seq, head, body });
    const connection = this.#connection;
    if (connection !== undefined && !connection.closed) {
      if (connection.write(head)) connection.write(body);
    }
    return true;
  }

  /**
   * Takes events before any client listens, for its first connection to replay: a per-client server may
   * ask its one client something (roots) before that client opened its GET stream.
   */
  hold(): void {
    if (this.#state === "idle" && !this.#attachedOnce) this.#state = "open";
  }

  /** The final event was written: the connection ends, the events stay for the window, then go. */
  finish(): void {
    if (this.#state !== "open" && this.#state !== "idle") return;
    this.#state = "done";
    this.#connection?.close();
    this.#connection = undefined;
    this.#streams.schedule(this);
  }

  /**
   * Puts the stream on `connection`: a priming event (an id, empty data) with the `retry:` field, then the
   * kept events after event `after` (the client's `Last-Event-ID`; none for a fresh connection), then the
   * live ones; a done stream's connection ends after the replay. A connection it was on is closed. Returns
   * false when events after `after` were dropped from the buffer (the rest is still replayed).
   */
  attach(connection: SseStream, after?: number): boolean {
    if (this.#state === "gone") throw new Error(`Stream ${this.id} is gone`);
    const previous = this.#connection;
    this.#connection = connection;
    previous?.close();
    this.#streams.unschedule(this);
    if (this.#state === "idle") this.#state = "open";
    connection.onCancel = () => this.#lost(connection);
    const reportOverflow = connection.onOverflow;
    connection.onOverflow = (bytes) => {
      reportOverflow?.(bytes);
      this.#lost(connection);
      this.onOverflow?.();
    };
    // A first connection gets what was held for it; a later fresh one starts from now.
    const from = after ?? (this.#attachedOnce ? this.#seq : 0);
    this.#attachedOnce = true;
    connection.write(
      encoder.encode(
        `${this.#idLine}${from}\nretry: ${this.#streams.settings.retryMs}\ndata: \n\n`,
      ),
    );
    const complete = from >= this.#lostThrough;
    for (let i = this.#head; i < this.#kept.length; i++) {
      const event = this.#kept[i]!;
      if (event.seq > from && !(connection.write(event.head) && connection.write(event.body))) {
        break;
      }
    }
    if (this.#state === "done") {
      connection.close();
      this.#connection = undefined;
    }
    return complete;
  }

  /** The connection ended without the stream ending: keep it for the window. */
  #lost(connection: SseStream): void {
    if (this.#connection !== connection) return;
    this.#connection = undefined;
    if (this.#state === "open") this.#streams.schedule(this);
  }

  /** @internal The window passed: give up an open stream, forget a done one. */
  expire(): void {
    if (this.attached) return;
    if (this.#state === "open") {
      if (this.id === STANDALONE_STREAM) {
        // The session's GET stream is never forgotten (its numbers go on), only left unheard.
        this.#state = "idle";
        this.evictAll();
        return;
      }
      this.onExpired?.();
    }
    this.forget();
  }

  /**
   * Continues numbering after `seq`, an event id an earlier gateway process sent on this stream (its
   * session was restored): the client resumes from there, and gets what this process holds.
   */
  skipTo(seq: number): void {
    if (seq > this.#seq) this.#lostThrough = this.#seq = seq;
  }

  /** Drops its events and ends it for good; a connection on it is closed. */
  forget(): void {
    if (this.#state === "gone") return;
    this.#state = "gone";
    this.#connection?.close();
    this.#connection = undefined;
    this.#streams.unschedule(this);
    this.evictAll();
    this.#streams.remove(this);
  }

  /** @internal Called by its {@link SessionStreams} to keep an event. */
  push(event: Kept): void {
    this.#kept.push(event);
  }

  /** @internal Drops its oldest kept event; returns its size in bytes (0 if none). */
  evictOldest(): number {
    const event = this.#kept[this.#head];
    if (event === undefined) return 0;
    this.#kept[this.#head++] = undefined as unknown as Kept;
    this.#lostThrough = event.seq;
    // Compact now and then so that the array does not keep the dropped slots forever.
    if (this.#head > 64 && this.#head * 2 > this.#kept.length) {
      this.#kept = this.#kept.slice(this.#head);
      this.#head = 0;
    }
    const bytes = sizeOf(event);
    this.#streams.released(bytes, 1);
    return bytes;
  }

  /** @internal Drops every kept event, and marks every event so far as lost. */
  evictAll(): void {
    let bytes = 0;
    const count = this.#kept.length - this.#head;
    for (let i = this.#head; i < this.#kept.length; i++) bytes += sizeOf(this.#kept[i]!);
    this.#kept = [];
    this.#head = 0;
    this.#lostThrough = this.#seq;
    this.#streams.released(bytes, count);
  }
}
