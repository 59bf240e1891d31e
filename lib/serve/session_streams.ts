// The resumable streams of one MCP session together: the events kept to replay them, bounded per session
// in UTF-8 bytes and in events and charged to the owner's memory share, and the one timer that gives up
// streams whose connection did not come back within their window.

import type { Charge } from "./memory_budget.ts";
import {
  type Kept,
  ResumableStream,
  sizeOf,
  STANDALONE_STREAM,
  type StreamSettings,
} from "./resumable_stream.ts";

/**
 * The resumable streams of one MCP session and the events kept to replay them, bounded by
 * `replayBytes` (UTF-8) and `replayEvents` together. Past a bound, done streams go first (oldest first),
 * then the oldest events of the oldest stream. One timer serves the windows of all its streams.
 *
 * @example
 * ```ts
 * import { SessionStreams } from "./session_streams.ts";
 * import { STREAM_DEFAULTS } from "./resumable_stream.ts";
 * const streams = new SessionStreams(STREAM_DEFAULTS);
 * const stream = streams.open();
 * stream.send({ jsonrpc: "2.0", method: "notifications/progress", params: {} });
 * streams.bytes; // the UTF-8 bytes kept for replay
 * streams.end();
 * ```
 */
export class SessionStreams {
  readonly settings: StreamSettings;
  /** The session's GET stream: idle until a client opens it. */
  readonly standalone: ResumableStream;
  #streams = new Map<string, ResumableStream>();
  #next = 1;
  #bytes = 0;
  #events = 0;
  /** Streams waiting out their window, in the order they expire (all windows are equally long). */
  #expiring = new Map<ResumableStream, number>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #now: () => number;
  #charge: Charge | undefined;

  constructor(
    settings: StreamSettings,
    now: () => number = () => performance.now(),
    charge?: Charge,
  ) {
    this.settings = settings;
    this.#now = now;
    this.#charge = charge;
    this.standalone = new ResumableStream(this, STANDALONE_STREAM, true);
    this.#streams.set(STANDALONE_STREAM, this.standalone);
  }

  /** UTF-8 bytes of events kept for replay (what the memory budget charges for them). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Events kept for replay. */
  get events(): number {
    return this.#events;
  }

  /** Numbers new streams from `first` on: past those of earlier processes, for a restored session. */
  numberFrom(first: number): void {
    if (first > this.#next) this.#next = first;
  }

  /** A new stream (a POST's answer), numbered after the last. */
  open(): ResumableStream {
    const stream = new ResumableStream(this, String(this.#next++));
    this.#streams.set(stream.id, stream);
    return stream;
  }

  /** The stream with this number, unless forgotten. */
  get(id: string): ResumableStream | undefined {
    return this.#streams.get(id);
  }

  /** Forgets every stream and stops the timer. */
  end(): void {
    for (const stream of [...this.#streams.values()]) stream.forget();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#expiring.clear();
    this.#charge?.release();
  }

  /** @internal Keeps `event` of `stream`, dropping older events past the bounds. */
  keep(stream: ResumableStream, event: Kept): void {
    const { replayBytes, replayEvents } = this.settings;
    const bytes = sizeOf(event);
    if (bytes > replayBytes) {
      // Larger than the whole buffer: it cannot be replayed, nor can anything before it on this stream.
      stream.evictAll();
      return;
    }
    stream.push(event);
    this.#bytes += bytes;
    this.#events++;
    while (this.#bytes > replayBytes || this.#events > replayEvents) this.#evictOne();
    // Past the owner's memory share, the oldest events go first, as past the buffer's own bounds.
    while (this.#charge !== undefined && this.#bytes > 0 && !this.#charge.resize(this.#bytes)) {
      this.#evictOne();
    }
  }

  /** @internal Counts events dropped by a stream. */
  released(bytes: number, events: number): void {
    this.#bytes -= bytes;
    this.#events -= events;
    this.#charge?.resize(this.#bytes);
  }

  /** @internal */
  remove(stream: ResumableStream): void {
    if (this.#streams.get(stream.id) === stream && stream !== this.standalone) {
      this.#streams.delete(stream.id);
    }
  }

  /** @internal Starts `stream`'s window (again). */
  schedule(stream: ResumableStream): void {
    this.#expiring.delete(stream);
    this.#expiring.set(stream, this.#now() + this.settings.resumeWindowMs);
    if (this.#timer === undefined) this.#arm();
  }

  /** @internal */
  unschedule(stream: ResumableStream): void {
    this.#expiring.delete(stream);
  }

  #evictOne(): void {
    for (const stream of this.#streams.values()) {
      if (stream.done && stream.keptEvents > 0) return stream.forget();
    }
    for (const stream of this.#streams.values()) {
      if (stream.evictOldest() > 0) return;
    }
    throw new Error("Replay buffer over its bounds with nothing to evict"); // unreachable
  }

  #arm(): void {
    const first = this.#expiring.values().next();
    if (first.done) return;
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, first.value - this.#now()));
  }

  #fire(): void {
    this.#timer = undefined;
    const now = this.#now();
    for (const [stream, at] of this.#expiring) {
      if (at > now) break;
      this.#expiring.delete(stream);
      stream.expire();
    }
    this.#arm();
  }
}
