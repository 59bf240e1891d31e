// A link's PeerSocket over SSE: frames to the client are events on one long-lived response, frames from it
// arrive in the POSTs its link endpoint takes (sse_link_endpoint.ts), numbered so that a retried POST is
// taken once. A close is a last `close` event with its code; a comment line every keepalive interval keeps
// idle proxies from cutting the stream.

import {
  encodeCloseEvent,
  encodeEndpointEvent,
  encodeFrameEvent,
  splitBatch,
} from "../protocol/sse_link.ts";
import { CloseCode } from "../protocol/frames.ts";
import { closeReason, type PeerSocket, type PeerSocketEvents } from "./peer_socket.ts";

const encoder = new TextEncoder();
const KEEPALIVE = encoder.encode(": keepalive\n\n");
/** Queued events are handed to the HTTP server in pieces of up to this size (fewer, larger writes). */
const MERGE_BYTES = 64 * 1024;
/** The code a link gets when its stream went away without a close (as WebSocket's 1006). */
export const STREAM_LOST = 1006;

/** Options of {@link SsePeerSocket}. */
export interface SsePeerSocketOptions {
  /** The link's id: the last segment of its POST URL. */
  id: string;
  /** The owner of the token that opened the stream: POSTs must come from the same owner. */
  owner: string;
  /** The POST URL as the first event names it (a reference resolved against the stream's URL). */
  endpoint: string;
  /** A comment line goes out this often while nothing else is queued, in milliseconds; 0 = never. */
  keepaliveMs: number;
}

/** What became of one POST's frames. */
export type PostOutcome =
  /** The frames were handed to the link. */
  | "taken"
  /** This POST number was taken before (a retry): nothing was done. */
  | "duplicate"
  /** A POST number was skipped: frames are missing, the link is closing. */
  | "gap"
  /** The link is closed. */
  | "closed";

/**
 * The socket of one SSE link. Its {@link readable} is the response body; the HTTP server pulls it as the
 * connection takes bytes, so {@link bufferedAmount} is what the client has not taken yet.
 *
 * @example
 * ```ts ignore
 * const socket = new SsePeerSocket({ id, owner, endpoint: `sse/${id}`, keepaliveMs: 15_000 });
 * const link = new TunnelLink(socket, options);
 * return new Response(socket.readable, { headers: SSE_HEADERS });
 * ```
 */
export class SsePeerSocket implements PeerSocket {
  readonly transport = "sse";
  readonly id: string;
  readonly owner: string;
  readonly readable: ReadableStream<Uint8Array>;
  readonly closed: Promise<void>;
  #resolveClosed!: () => void;
  #events: PeerSocketEvents | undefined;
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  /** Wakes a pull waiting for bytes. */
  #wake: (() => void) | undefined;
  /** `closing`: the close event is queued and the stream ends once it is taken. */
  #state: "open" | "closing" | "terminated" | "closed" = "open";
  #close: { code: number; reason: string } = { code: STREAM_LOST, reason: "" };
  #keepalive: ReturnType<typeof setInterval> | undefined;
  #nextPost = 0;
  #posting = false;

  constructor(options: SsePeerSocketOptions) {
    const { id, owner, endpoint, keepaliveMs } = options;
    this.id = id;
    this.owner = owner;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    this.readable = new ReadableStream<Uint8Array>({
      pull: (controller) => this.#pull(controller),
      cancel: () => this.#ended(STREAM_LOST, "the client closed the stream"),
    }, { highWaterMark: 0 });
    this.#enqueue(encodeEndpointEvent(endpoint));
    if (keepaliveMs > 0) {
      this.#keepalive = setInterval(() => {
        if (this.#state === "open" && this.#queuedBytes === 0) this.#enqueueBytes(KEEPALIVE);
      }, keepaliveMs);
    }
  }

  /** Bytes queued that the HTTP server has not taken yet. */
  get bufferedAmount(): number {
    return this.#queuedBytes;
  }

  get isOpen(): boolean {
    return this.#state === "open";
  }

  /** The number the next POST must carry. */
  get nextPost(): number {
    return this.#nextPost;
  }

  /** Marks a POST's body as being read; false while another one is (a link's POSTs go one at a time). */
  startPost(): boolean {
    if (this.#posting) return false;
    this.#posting = true;
    return true;
  }

  /** The POST's body was read and handed on, or failed to be: what it held is no longer charged. */
  endPost(): void {
    this.#posting = false;
    this.#events?.onFrameStart?.(0);
  }

  /**
   * A POST body of `bytes` is about to be read: charged to the owner's memory share as a WebSocket frame
   * is at its header. False when the share cannot hold it now: the link closes with 1013 (retry later).
   */
  admitBody(bytes: number, limit: number): boolean {
    if (this.#state !== "open" || (this.#events?.onFrameStart?.(bytes) ?? true)) return true;
    this.close(CloseCode.TryAgainLater, "memory share of this owner used up; retry later");
    this.#events?.onRefused({ kind: "memory", bytes, limit });
    return false;
  }

  listen(events: PeerSocketEvents): void {
    this.#events = events;
  }

  send(text: string): boolean {
    if (this.#state !== "open") return false;
    this.#enqueue(encodeFrameEvent(text));
    return true;
  }

  close(code: number, reason: string): void {
    if (this.#state !== "open") return;
    this.#state = "closing";
    this.#close = { code, reason: closeReason(reason) };
    clearInterval(this.#keepalive);
    this.#enqueue(encodeCloseEvent(code, this.#close.reason));
    this.#wake?.();
  }

  terminate(): void {
    if (this.#state === "terminated" || this.#state === "closed") return;
    this.#state = "terminated";
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#wake?.();
  }

  /**
   * Takes the body of POST number `seq`: each line is a frame, handed to the link in order (it checks
   * sizes and shapes, as for a WebSocket message).
   */
  receive(seq: number, body: string): PostOutcome {
    if (this.#state !== "open") return "closed";
    if (seq < this.#nextPost) return "duplicate";
    if (seq > this.#nextPost) {
      this.close(
        CloseCode.ProtocolError,
        `POST ${seq} arrived while ${this.#nextPost} was expected`,
      );
      return "gap";
    }
    this.#nextPost++;
    for (const frame of splitBatch(body)) {
      if (this.#state !== "open") break;
      this.#events?.onMessage(frame);
    }
    return "taken";
  }

  /** A POST body over the limit: refused as a WebSocket frame over it is, closing the link with 1009. */
  refuseTooLarge(bytes: number, limit: number): void {
    if (this.#state !== "open") return;
    this.close(CloseCode.TooBig, `frame of ${bytes} bytes exceeds the limit of ${limit}`);
    this.#events?.onRefused({ kind: "too-large", bytes, limit });
  }

  #enqueue(text: string): void {
    this.#enqueueBytes(encoder.encode(text));
  }

  #enqueueBytes(bytes: Uint8Array): void {
    this.#queue.push(bytes);
    this.#queuedBytes += bytes.byteLength;
    this.#wake?.();
  }

  async #pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    while (this.#queue.length === 0) {
      if (this.#state === "terminated") {
        controller.error(new Error("The SSE link was terminated"));
        return this.#ended(STREAM_LOST, "terminated");
      }
      if (this.#state === "closing" || this.#state === "closed") {
        try {
          controller.close();
        } catch {
          // Cancelled by the client already: nothing left to end.
        }
        return this.#ended(this.#close.code, this.#close.reason);
      }
      await new Promise<void>((resolve) => this.#wake = resolve);
      this.#wake = undefined;
    }
    controller.enqueue(this.#take());
  }

  /** The next piece to write: one large event alone, or small ones merged. */
  #take(): Uint8Array {
    const first = this.#queue[0]!;
    let count = 1;
    let bytes = first.byteLength;
    while (count < this.#queue.length && bytes + this.#queue[count]!.byteLength <= MERGE_BYTES) {
      bytes += this.#queue[count]!.byteLength;
      count++;
    }
    const taken = this.#queue.splice(0, count);
    this.#queuedBytes -= bytes;
    if (count === 1) return first;
    const merged = new Uint8Array(bytes);
    let offset = 0;
    for (const piece of taken) {
      merged.set(piece, offset);
      offset += piece.byteLength;
    }
    return merged;
  }

  #ended(code: number, reason: string): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    clearInterval(this.#keepalive);
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#wake?.();
    this.#resolveClosed();
    this.#events?.onClose(code, reason);
  }
}
