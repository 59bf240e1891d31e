// Reads a `text/event-stream` body into events, as the WHATWG "server-sent events" parsing rules say:
// lines end in CRLF, LF or CR; `data:` lines join with LF; an empty line ends an event; comments are
// skipped. An event over the size bound is dropped whole and reported with its first and last characters
// (where a JSON-RPC message keeps its id), so memory stays bounded.

/** One event: its type (`message` when none was given), its data, and its id when one was set. */
export interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

/** Options of {@link readSseEvents}. */
export interface SseReaderOptions {
  /** Largest event kept, in UTF-16 code units of its data (about bytes for JSON). Default 64 MiB. */
  maxEventChars?: number;
  /** Called for each event dropped for its size. */
  onOversized?: (chars: number, ends: OversizedEnds) => void;
}

/** What is kept of an event dropped for its size: the first and the last characters of its data. */
export interface OversizedEnds {
  head: string;
  tail: string;
}

/** Characters kept of each end of an event dropped for its size. */
const ENDS_CHARS = 256;

/**
 * The events of an event-stream body, in order, until it ends. The caller cancels the body to stop early
 * (breaking out of the loop does).
 *
 * @example
 * ```ts
 * import { readSseEvents } from "./sse_reader.ts";
 * const body = new Response("event: endpoint\ndata: /message?s=1\n\n").body!;
 * for await (const event of readSseEvents(body)) console.log(event.event, event.data);
 * // endpoint /message?s=1
 * ```
 */
export async function* readSseEvents(
  body: ReadableStream<Uint8Array>,
  options: SseReaderOptions = {},
): AsyncGenerator<SseEvent> {
  const { maxEventChars = 64 * 1024 * 1024, onOversized } = options;
  const decoder = new TextDecoder();
  const reader = body.getReader();
  /** The pieces of the unfinished line, joined once it ends (no quadratic concatenation). */
  let pieces: string[] = [];
  let lineChars = 0;
  let afterCR = false;
  let data: string[] = [];
  let dataChars = 0;
  let type = "";
  let id: string | undefined;
  let lastId: string | undefined;
  let dropping = false;
  /** Of the event being dropped: its first characters (set when the drop begins) and its last ones. */
  let head = "";
  let tail = "";
  const ready: SseEvent[] = [];
  /** The event's data is past the bound from here on: keep its head (what it had, then `more`). */
  const startDrop = (more: string) => {
    if (dropping) return;
    dropping = true;
    const before = data.join("\n").slice(0, ENDS_CHARS);
    head = (data.length > 0 ? `${before}\n${more.slice(0, ENDS_CHARS)}` : more).slice(
      0,
      ENDS_CHARS,
    );
    tail = "";
    data = [];
  };
  const keepTail = (text: string) => {
    tail = (tail + text.slice(-ENDS_CHARS)).slice(-ENDS_CHARS);
  };

  const endEvent = () => {
    if (dropping) onOversized?.(dataChars, { head, tail });
    else if (data.length > 0) {
      const event: SseEvent = { event: type || "message", data: data.join("\n") };
      if (id !== undefined) lastId = id;
      if (lastId !== undefined) event.id = lastId;
      ready.push(event);
    }
    data = [];
    dataChars = 0;
    type = "";
    id = undefined;
    dropping = false;
    head = "";
    tail = "";
  };
  const line = (text: string) => {
    if (text === "") return endEvent();
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") {
      dataChars += value.length + 1;
      if (dropping) keepTail(`\n${value}`);
      else if (dataChars > maxEventChars) {
        startDrop(value);
        keepTail(value);
      } else data.push(value);
    } else if (field === "event") type = value;
    else if (field === "id" && !value.includes("\0")) id = value;
  };
  /** A line past the bound: only its start is kept (to know its field), the rest is dropped. */
  let lineTooLong = false;
  const endLine = () => {
    const text = pieces.join("");
    pieces = [];
    lineChars = 0;
    if (lineTooLong) {
      lineTooLong = false; // its head and tail were kept as it came
      return;
    }
    line(text);
  };
  const feed = (chunk: string) => {
    let i = afterCR && chunk.charCodeAt(0) === 10 ? 1 : 0; // the LF of a CRLF split across chunks
    afterCR = false;
    let start = i;
    for (; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      if (!lineTooLong) pieces.push(chunk.slice(start, i));
      else keepTail(chunk.slice(Math.max(start, i - ENDS_CHARS), i));
      endLine();
      if (c === 13) {
        if (i + 1 === chunk.length) afterCR = true;
        else if (chunk.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
    }
    if (start >= chunk.length) return;
    if (lineTooLong) return keepTail(chunk.slice(Math.max(start, chunk.length - ENDS_CHARS)));
    const rest = chunk.slice(start);
    lineChars += rest.length;
    if (dataChars + lineChars > maxEventChars) {
      lineTooLong = true;
      dataChars += lineChars;
      // A line this long is a data line (a field name is short): its value starts after `data:`.
      const sofar = pieces.join("") + rest;
      startDrop(sofar.slice(0, ENDS_CHARS + 6).replace(/^data: ?/, ""));
      keepTail(sofar);
      pieces = [];
    } else pieces.push(rest);
  };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      feed(decoder.decode(value, { stream: true }));
      while (ready.length > 0) yield ready.shift()!;
    }
    feed(decoder.decode());
    if (pieces.length > 0 || lineTooLong) endLine();
    while (ready.length > 0) yield ready.shift()!;
  } finally {
    await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
