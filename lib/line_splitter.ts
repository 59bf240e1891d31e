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
 * The framing core: feed it chunks, it calls back with each complete line. Pending chunks are kept in an
 * array and joined once per line, so a 64 MiB line costs one copy, not a quadratic series of
 * concatenations. A trailing `\r` is removed; empty lines are skipped.
 *
 * @example
 * ```ts
 * import { LineFramer } from "./line_splitter.ts";
 * const framer = new LineFramer((line) => console.log(line.text));
 * framer.push(new TextEncoder().encode("a\nb"));
 * framer.finish(); // logs "a", then "b"
 * ```
 */
export class LineFramer {
  #onLine: (line: Line) => void;
  #maxLineBytes: number;
  #onOversized: ((line: OversizedLine) => void) | undefined;
  #decoder = new TextDecoder();
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #skipping = false;

  constructor(onLine: (line: Line) => void, options: LineSplitterOptions = {}) {
    this.#onLine = onLine;
    this.#maxLineBytes = options.maxLineBytes ?? 64 * 1024 * 1024;
    this.#onOversized = options.onOversized;
  }

  /** Takes the next chunk. The chunk may be reused by the caller afterwards. */
  push(chunk: Uint8Array): void {
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(NEWLINE, start);
      const end = newline === -1 ? chunk.length : newline;
      const piece = chunk.subarray(start, end);
      if (this.#skipping) {
        if (newline !== -1) this.#skipping = false;
      } else if (this.#pendingBytes + piece.length > this.#maxLineBytes) {
        this.#giveUp(piece);
        if (newline !== -1) this.#skipping = false;
      } else if (newline === -1) {
        // The chunk may be reused by the reader: keep a copy of the unfinished tail.
        this.#pending.push(piece.slice());
        this.#pendingBytes += piece.length;
      } else {
        this.#emit(piece);
      }
      start = end + 1;
    }
  }

  /** Ends the input: an unterminated last line is passed on. */
  finish(): void {
    if (!this.#skipping && this.#pendingBytes > 0) this.#emit(new Uint8Array(0));
  }

  #emit(tail: Uint8Array): void {
    let bytes: Uint8Array;
    if (this.#pending.length === 0) bytes = tail;
    else {
      bytes = new Uint8Array(this.#pendingBytes + tail.length);
      let offset = 0;
      for (const piece of this.#pending) {
        bytes.set(piece, offset);
        offset += piece.length;
      }
      bytes.set(tail, offset);
      this.#pending = [];
      this.#pendingBytes = 0;
    }
    let end = bytes.length;
    if (end > 0 && bytes[end - 1] === CARRIAGE_RETURN) end--;
    if (end === 0) return;
    this.#onLine({ text: this.#decoder.decode(bytes.subarray(0, end)), bytes: end });
  }

  #giveUp(tail: Uint8Array): void {
    // The head spans every piece seen so far: the first piece alone may be a few bytes of a chunk's end.
    const total = this.#pendingBytes + tail.length;
    const head = new Uint8Array(Math.min(HEAD_BYTES, total));
    let offset = 0;
    for (const piece of [...this.#pending, tail]) {
      if (offset >= head.length) break;
      const part = piece.subarray(0, head.length - offset);
      head.set(part, offset);
      offset += part.length;
    }
    this.#onOversized?.({ head: this.#decoder.decode(head), bytes: total });
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#skipping = true;
  }
}

/**
 * A `TransformStream` from bytes to lines, on {@link LineFramer}.
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
    let framer: LineFramer;
    super({
      start(controller) {
        framer = new LineFramer((line) => controller.enqueue(line), options);
      },
      transform(chunk) {
        framer.push(chunk);
      },
      flush() {
        framer.finish();
      },
    });
  }
}

/**
 * Reads a byte stream to its end and calls `onLine` with each line's text, without a stream pipeline per
 * line (for the hot loops of the demo server and the benchmark driver). Releases the reader on every path.
 *
 * @example
 * ```ts
 * import { readLines } from "./line_splitter.ts";
 * await readLines(ReadableStream.from([new TextEncoder().encode("a\nb\n")]), (text) => console.log(text));
 * ```
 */
export async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (text: string) => void,
): Promise<void> {
  const framer = new LineFramer((line) => onLine(line.text));
  const reader = stream.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      framer.push(value);
    }
    framer.finish();
  } finally {
    reader.releaseLock();
  }
}
