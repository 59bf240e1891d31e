// A server-sent-events response body that JSON-RPC messages are written to, that tells when the client
// went away, and that gives up on a client that stops reading instead of queueing for it without limit.

import { isOneLine } from "../protocol/json_scan.ts";
import type { Charge } from "./memory_budget.ts";

const encoder = new TextEncoder();

/** Headers of an SSE response. */
export const SSE_HEADERS = {
  "content-type": "text/event-stream",
  "cache-control": "no-cache, no-transform",
  "x-accel-buffering": "no",
};

/** Options of {@link SseStream}. */
export interface SseStreamOptions {
  /**
   * Bytes the stream may hold that the client has not pulled yet (beyond what the socket buffers). A
   * message is taken while fewer bytes than this wait before it, whatever its own size, so one large answer
   * after a few unread progress events never trips it; a message that finds this many or more waiting ends
   * the stream as an overflow. The stream thus holds at most this bound plus one message. Default:
   * unbounded.
   */
  maxBufferedBytes?: number;
}

/**
 * One SSE stream. `send` writes a `message` event; `close` ends the body; `onCancel` runs when the client
 * disconnects first; `onOverflow` runs when the client reads too slowly and the stream was ended for it.
 *
 * @example
 * ```ts
 * import { SseStream } from "./sse_stream.ts";
 * const stream = new SseStream({ maxBufferedBytes: 1024 * 1024 });
 * stream.send({ jsonrpc: "2.0", method: "notifications/tools/list_changed" });
 * stream.close();
 * await new Response(stream.readable).text(); // "event: message\ndata: {...}\n\n"
 * ```
 */
export class SseStream {
  /** The response body. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Called once if the client cancels the body (disconnects) before {@link close}. */
  onCancel: (() => void) | undefined;
  /**
   * Called once when a message would have taken the unread bytes past `maxBufferedBytes`: the queue was
   * dropped and the body errored (the client's connection is cut), so the stream is closed.
   */
  onOverflow: ((bufferedBytes: number) => void) | undefined;
  /** Called once when the stream ends, however it ends (closed, cancelled or overflowed). */
  onEnd: (() => void) | undefined;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #maxBufferedBytes: number;
  #closed = false;
  #charge: Charge | undefined;

  constructor(options: SseStreamOptions = {}) {
    const { maxBufferedBytes = Infinity } = options;
    if (!(maxBufferedBytes > 0)) {
      throw new RangeError(
        `Cannot create SseStream as 'maxBufferedBytes' must be positive: current value is ${maxBufferedBytes}`,
      );
    }
    this.#maxBufferedBytes = maxBufferedBytes;
    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      // The client read some: what it has not read is less, and so is what its owner is charged.
      pull: () => {
        this.#charge?.resize(this.bufferedBytes);
      },
      cancel: () => {
        if (this.#closed) return;
        this.#end();
        this.onCancel?.();
      },
    }, {
      // desiredSize is then the bound minus the bytes queued and not yet pulled by the HTTP server.
      highWaterMark: Number.isFinite(maxBufferedBytes) ? maxBufferedBytes : 0,
      size: (chunk) => chunk.byteLength,
    });
  }

  /**
   * Charges what the client has not read against its owner's memory share from now on. Past the share
   * the stream is cut, like a client that reads too slowly.
   */
  chargeTo(charge: Charge): void {
    this.#charge = charge;
  }

  /** Cuts the stream at once, dropping what is queued (its owner needs the memory). */
  cut(reason: string): void {
    if (this.#closed) return;
    this.#end();
    this.#controller.error(new Error(reason));
  }

  /** True once closed, cancelled or overflowed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes queued that the client has not pulled yet. */
  get bufferedBytes(): number {
    if (this.#closed || !Number.isFinite(this.#maxBufferedBytes)) return 0;
    return this.#maxBufferedBytes - (this.#controller.desiredSize ?? this.#maxBufferedBytes);
  }

  /** Writes one JSON-RPC message as a `message` event. False if the stream is closed or just overflowed. */
  send(message: unknown): boolean {
    return this.#enqueue(JSON.stringify(message)); // one line by construction
  }

  /**
   * Writes one JSON-RPC message given as JSON text, which must be one line (an SSE `data` line ends at a
   * line break). False if the stream is closed or just overflowed.
   *
   * @throws {RangeError} if the text has a line break
   */
  sendText(json: string): boolean {
    if (!isOneLine(json)) {
      throw new RangeError("Cannot send an SSE message whose JSON text has a line break");
    }
    return this.#enqueue(json);
  }

  #enqueue(json: string): boolean {
    return this.write(encoder.encode(`event: message\ndata: ${json}\n\n`));
  }

  /**
   * Writes bytes that are whole SSE events (the caller formats them; a resumable stream adds ids). The
   * chunk is queued as it is, not copied: the caller may keep it too. False if the stream is closed or just
   * overflowed.
   */
  write(chunk: Uint8Array): boolean {
    if (this.#closed) return false;
    const buffered = this.bufferedBytes;
    if (buffered >= this.#maxBufferedBytes) {
      this.#overflow(buffered);
      return false;
    }
    try {
      this.#controller.enqueue(chunk);
    } catch {
      this.#end();
      return false;
    }
    if (this.#charge !== undefined && !this.#charge.resize(this.bufferedBytes)) {
      this.#overflow(this.bufferedBytes);
      return false;
    }
    return true;
  }

  /** Marks the stream ended and tells `onEnd`, once. */
  #end(): void {
    this.#closed = true;
    this.#charge?.release();
    const onEnd = this.onEnd;
    this.onEnd = undefined;
    onEnd?.();
  }

  /** Ends the stream. */
  close(): void {
    if (this.#closed) return;
    this.#end();
    try {
      this.#controller.close();
    } catch {
      // Already errored by the runtime: nothing left to end.
    }
  }

  #overflow(buffered: number): void {
    this.#end();
    // error() (unlike close()) drops the queued chunks at once, which is the point.
    this.#controller.error(
      new Error(`The client did not read ${buffered} bytes of its event stream`),
    );
    this.onOverflow?.(buffered);
  }
}
