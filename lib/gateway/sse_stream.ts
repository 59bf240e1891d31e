// A server-sent-events response body that JSON-RPC messages are written to, and that tells when the client
// went away.

const encoder = new TextEncoder();

/** Headers of an SSE response. */
export const SSE_HEADERS = {
  "content-type": "text/event-stream",
  "cache-control": "no-cache, no-transform",
  "x-accel-buffering": "no",
};

/**
 * One SSE stream. `send` writes a `message` event; `close` ends the body; `onCancel` runs when the client
 * disconnects first.
 *
 * @example
 * ```ts
 * import { SseStream } from "./sse_stream.ts";
 * const stream = new SseStream();
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
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #closed = false;

  constructor() {
    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      cancel: () => {
        if (this.#closed) return;
        this.#closed = true;
        this.onCancel?.();
      },
    });
  }

  /** True once closed or cancelled. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Writes one JSON-RPC message as a `message` event. False if the stream is closed. */
  send(message: unknown): boolean {
    if (this.#closed) return false;
    try {
      this.#controller.enqueue(
        encoder.encode(`event: message\ndata: ${JSON.stringify(message)}\n\n`),
      );
      return true;
    } catch {
      this.#closed = true;
      return false;
    }
  }

  /** Ends the stream. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#controller.close();
    } catch {
      // Already errored by the runtime: nothing left to end.
    }
  }
}
