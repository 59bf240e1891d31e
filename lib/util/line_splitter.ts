// Splits a byte stream into newline-delimited lines in linear time, however large a line is.

/** One line, decoded, with its size in bytes (without the newline). */
export interface Line {
  text: string;
  bytes: number;
}

/** Raised (as a line event, not thrown) when a line that exceeded the limit ends. */
export interface OversizedLine {
  /** The first bytes of the line, decoded, so that a caller can try to find a request id in it. */
  head: string;
  /**
   * The last bytes of the line, decoded: serializers that write `id` after `result` (the MCP TypeScript
   * SDK does) leave it only here.
   */
  tail: string;
  /** How many bytes the line had (more than the limit). */
  bytes: number;
}

/** Options of {@link LineSplitter}. */
export interface LineSplitterOptions {
  /** Longest line kept, in bytes. Longer lines are reported through `onOversized` and skipped. */
  maxLineBytes?: number;
  /** Called once for each line that exceeded `maxLineBytes`, when it ends. */
  onOversized?: (line: OversizedLine) => void;
}

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;
const HEAD_BYTES = 256;
const TAIL_BYTES = 256;

/**
 * The framing core: feed it chunks, it calls back with each complete line. A line that spans chunks is
 * decoded piece by piece as it arrives and joined once as text, so a 64 MiB line costs one copy of its
 * bytes as text (not its bytes kept, joined and then decoded), and no chunk is retained: the caller may
 * reuse its buffer. A trailing `\r` is removed; empty lines are skipped.
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
  /** The decoded pieces of the unfinished line (a character cut between chunks waits in the decoder). */
  #pending: string[] = [];
  #pendingBytes = 0;
  /** The first bytes of the unfinished line, for {@link OversizedLine.head}. */
  #head: Uint8Array | undefined;
  /** The last bytes of the unfinished line (a ring would save a copy; 256 bytes a chunk is nothing). */
  #tail = new Uint8Array(TAIL_BYTES);
  #tailBytes = 0;
  /** The line being skipped, reported when it ends. */
  #skipped: { head: Uint8Array; bytes: number } | undefined;

  constructor(onLine: (line: Line) => void, options: LineSplitterOptions = {}) {
    this.#onLine = onLine;
    this.#maxLineBytes = options.maxLineBytes ?? 64 * 1024 * 1024;
    this.#onOversized = options.onOversized;
  }

  /** Takes the next chunk. Nothing refers to the chunk afterwards: the caller may reuse it. */
  push(chunk: Uint8Array): void {
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(NEWLINE, start);
      const end = newline === -1 ? chunk.length : newline;
      const piece = chunk.subarray(start, end);
      if (this.#skipped !== undefined) {
        this.#skip(piece);
        if (newline !== -1) this.#endSkip();
      } else if (this.#pendingBytes + piece.length > this.#maxLineBytes) {
        this.#giveUp(piece);
        if (newline !== -1) this.#endSkip();
      } else if (newline === -1) {
        this.#keep(piece);
      } else {
        this.#emit(piece);
      }
      start = end + 1;
    }
  }

  /** Ends the input: an unterminated last line is passed on (or reported, when oversized). */
  finish(): void {
    if (this.#skipped !== undefined) this.#endSkip();
    else if (this.#pendingBytes > 0) this.#emit(new Uint8Array(0));
  }

  /** Keeps the last {@link TAIL_BYTES} bytes seen of the current line. */
  #remember(piece: Uint8Array): void {
    if (piece.length >= TAIL_BYTES) {
      this.#tail.set(piece.subarray(piece.length - TAIL_BYTES));
      this.#tailBytes = TAIL_BYTES;
      return;
    }
    const kept = Math.min(this.#tailBytes, TAIL_BYTES - piece.length);
    this.#tail.copyWithin(0, this.#tailBytes - kept, this.#tailBytes);
    this.#tail.set(piece, kept);
    this.#tailBytes = kept + piece.length;
  }

  #keep(piece: Uint8Array): void {
    if (this.#pendingBytes < HEAD_BYTES) {
      const head = new Uint8Array(Math.min(HEAD_BYTES, this.#pendingBytes + piece.length));
      if (this.#head !== undefined) head.set(this.#head);
      head.set(piece.subarray(0, head.length - this.#pendingBytes), this.#pendingBytes);
      this.#head = head;
    }
    this.#remember(piece);
    this.#pending.push(this.#decoder.decode(piece, { stream: true }));
    this.#pendingBytes += piece.length;
  }

  #emit(tail: Uint8Array): void {
    let text: string;
    let bytes = tail.length;
    if (this.#pendingBytes === 0) {
      text = this.#decoder.decode(tail);
    } else {
      this.#pending.push(this.#decoder.decode(tail));
      text = this.#pending.join("");
      bytes += this.#pendingBytes;
      this.#reset();
    }
    if (text.charCodeAt(text.length - 1) === CARRIAGE_RETURN) {
      text = text.slice(0, -1);
      bytes--;
    }
    if (bytes === 0) return;
    this.#onLine({ text, bytes });
  }

  #giveUp(tail: Uint8Array): void {
    // The head spans every piece seen so far: the first piece alone may be a few bytes of a chunk's end.
    const total = this.#pendingBytes + tail.length;
    const head = new Uint8Array(Math.min(HEAD_BYTES, total));
    if (this.#head !== undefined) head.set(this.#head.subarray(0, head.length));
    const kept = this.#head?.length ?? 0;
    if (kept < head.length) head.set(tail.subarray(0, head.length - kept), kept);
    this.#decoder.decode(); // drops a character cut at the end of the last piece
    this.#remember(tail);
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#head = undefined;
    this.#skipped = { head, bytes: total };
  }

  #skip(piece: Uint8Array): void {
    this.#remember(piece);
    this.#skipped!.bytes += piece.length;
  }

  /** The skipped line has ended: reports it with its head and tail, which may hold its id. */
  #endSkip(): void {
    const { head, bytes } = this.#skipped!;
    const decoder = new TextDecoder();
    const tail = decoder.decode(this.#tail.subarray(0, this.#tailBytes));
    this.#skipped = undefined;
    this.#tailBytes = 0;
    this.#onOversized?.({ head: decoder.decode(head), tail, bytes });
  }

  #reset(): void {
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#head = undefined;
    this.#tailBytes = 0;
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
