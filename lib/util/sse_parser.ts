// Reads a server-sent-events byte stream into events, in linear time however large an event is, and with a
// bound on what one event may hold (the reader of a link must not buffer without limit for its peer).

/** One dispatched event. */
export interface SseEvent {
  /** The `event:` field; `message` when there was none. */
  type: string;
  /** The `data:` lines joined with `\n`. */
  data: string;
}

/** Options of {@link SseParser}. */
export interface SseParserOptions {
  /** Largest event (its data, in UTF-16 units) kept; a larger one throws {@link SseEventTooLargeError}. */
  maxEventChars?: number;
}

/** An event grew past the parser's bound; the stream cannot be read further. */
export class SseEventTooLargeError extends Error {
  readonly chars: number;
  readonly limit: number;

  constructor(chars: number, limit: number) {
    super(`An event of more than ${limit} characters arrived (${chars} so far)`);
    this.name = "SseEventTooLargeError";
    this.chars = chars;
    this.limit = limit;
  }
}

/**
 * The SSE parser of the HTML standard's event-stream format, for lines ended by `\n` or `\r\n` (a lone
 * `\r` as a line end is not supported: no server of ours or proxy writes one). Comments (`:` lines) are
 * skipped, `id:` and `retry:` ignored.
 *
 * @example
 * ```ts
 * import { SseParser } from "./sse_parser.ts";
 * const events: string[] = [];
 * const parser = new SseParser((event) => events.push(`${event.type}:${event.data}`));
 * parser.push(new TextEncoder().encode("event: endpoint\ndata: sse/1\n\n: keepalive\n\ndata: {}\n\n"));
 * events; // ["endpoint:sse/1", "message:{}"]
 * ```
 */
export class SseParser {
  #onEvent: (event: SseEvent) => void;
  #maxEventChars: number;
  #decoder = new TextDecoder();
  /** Decoded pieces of the unfinished line. */
  #pending: string[] = [];
  #pendingChars = 0;
  #type = "";
  #data: string[] = [];
  #dataChars = 0;

  constructor(onEvent: (event: SseEvent) => void, options: SseParserOptions = {}) {
    this.#onEvent = onEvent;
    this.#maxEventChars = options.maxEventChars ?? 64 * 1024 * 1024;
  }

  /**
   * Takes the next chunk; dispatches every event it completes.
   *
   * @throws {SseEventTooLargeError} when an event passes the bound
   */
  push(chunk: Uint8Array): void {
    const text = this.#decoder.decode(chunk, { stream: true });
    let start = 0;
    while (start < text.length) {
      const newline = text.indexOf("\n", start);
      if (newline === -1) {
        this.#pending.push(text.slice(start));
        this.#pendingChars += text.length - start;
        this.#check(this.#pendingChars);
        return;
      }
      let line = text.slice(start, newline);
      if (this.#pending.length > 0) {
        this.#pending.push(line);
        line = this.#pending.join("");
        this.#pending = [];
        this.#pendingChars = 0;
      }
      start = newline + 1;
      this.#line(line.endsWith("\r") ? line.slice(0, -1) : line);
    }
  }

  #check(chars: number): void {
    if (this.#dataChars + chars > this.#maxEventChars) {
      throw new SseEventTooLargeError(this.#dataChars + chars, this.#maxEventChars);
    }
  }

  #line(line: string): void {
    if (line === "") return this.#dispatch();
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") {
      this.#check(value.length + 1);
      this.#data.push(value);
      this.#dataChars += value.length + 1;
    } else if (field === "event") this.#type = value;
  }

  #dispatch(): void {
    const data = this.#data;
    const type = this.#type || "message";
    this.#data = [];
    this.#dataChars = 0;
    this.#type = "";
    if (data.length === 0) return;
    this.#onEvent({ type, data: data.length === 1 ? data[0]! : data.join("\n") });
  }
}
