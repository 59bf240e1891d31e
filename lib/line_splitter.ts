// Splits a byte stream into newline-delimited lines in linear time, however large a line is.

/** One line, decoded, with its size in bytes (without the newline). */
export interface Line {
  text: string;
  bytes: number;
}

/** Raised (as a line event, not thrown) when a line exceeds the limit. */
export interface OversizedLine {
  /** The first bytes of the line, decoded, so that a caller can try to find a request id in it. */
  head: string;
  /** How many bytes the line had when it was given up on (at least the limit). */
  bytes: number;
}

/** Options of {@link LineSplitter}. */
export interface LineSplitterOptions {
  /** Longest line kept, in bytes. Longer lines are reported through `onOversized` and skipped. */
  maxLineBytes?: number;
  /** Called once for each line that exceeded `maxLineBytes`. */
  onOversized?: (line: OversizedLine) => void;
}

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;
const HEAD_BYTES = 256;

/**
 * A `TransformStream` from bytes to lines. Pending chunks are kept in an array and joined once per line, so a
 * 64 MiB line costs one copy, not a quadratic series of concatenations. A trailing `\r` is removed; empty
 * lines are skipped.
 *
 * @example
 * ```ts
 * import { LineSplitter } from "./line_splitter.ts";
 * const lines = ReadableStream.from([new TextEncoder().encode("a\nb\n")]).pipeThrough(new LineSplitter());
 * for await (const line of lines) console.log(line.text);
 * ```
 */
export class LineSplitter extends TransformStream<Uint8Array, Line> {
  constructor(options: LineSplitterOptions = {}) {
    const { maxLineBytes = 64 * 1024 * 1024, onOversized } = options;
    const decoder = new TextDecoder();
    let pending: Uint8Array[] = [];
    let pendingBytes = 0;
    let skipping = false;

    const emit = (controller: TransformStreamDefaultController<Line>, tail: Uint8Array) => {
      let bytes: Uint8Array;
      if (pending.length === 0) bytes = tail;
      else {
        bytes = new Uint8Array(pendingBytes + tail.length);
        let offset = 0;
        for (const piece of pending) {
          bytes.set(piece, offset);
          offset += piece.length;
        }
        bytes.set(tail, offset);
        pending = [];
        pendingBytes = 0;
      }
      let end = bytes.length;
      if (end > 0 && bytes[end - 1] === CARRIAGE_RETURN) end--;
      if (end === 0) return;
      controller.enqueue({ text: decoder.decode(bytes.subarray(0, end)), bytes: end });
    };

    const giveUp = (tail: Uint8Array) => {
      // The head spans every piece seen so far: the first piece alone may be a few bytes of a chunk's end.
      const head = new Uint8Array(Math.min(HEAD_BYTES, pendingBytes + tail.length));
      let offset = 0;
      for (const piece of [...pending, tail]) {
        if (offset >= head.length) break;
        const part = piece.subarray(0, head.length - offset);
        head.set(part, offset);
        offset += part.length;
      }
      onOversized?.({ head: decoder.decode(head), bytes: pendingBytes + tail.length });
      pending = [];
      pendingBytes = 0;
      skipping = true;
    };

    super({
      transform(chunk, controller) {
        let start = 0;
        while (start < chunk.length) {
          const newline = chunk.indexOf(NEWLINE, start);
          const end = newline === -1 ? chunk.length : newline;
          const piece = chunk.subarray(start, end);
          if (skipping) {
            if (newline !== -1) skipping = false;
          } else if (pendingBytes + piece.length > maxLineBytes) {
            giveUp(piece);
            if (newline !== -1) skipping = false;
          } else if (newline === -1) {
            // The chunk may be reused by the reader: keep a copy of the unfinished tail.
            pending.push(piece.slice());
            pendingBytes += piece.length;
          } else {
            emit(controller, piece);
          }
          start = end + 1;
        }
      },
      flush(controller) {
        if (!skipping && pendingBytes > 0) emit(controller, new Uint8Array(0));
      },
    });
  }
}
