// The SSE link, written once for both ends: a long-lived event stream carries gateway → client frames, and
// POSTs of frames to the URL its first event names carry the other direction. The frames are the WebSocket
// link's (frames.ts); only how they travel differs. For people: docs/serve.md, "Links over SSE".

/** The stream's path under `<base>/reverse-proxy/`; POSTs go to `<base>/reverse-proxy/sse/<link id>`. */
export const SSE_LINK_SEGMENT = "sse";

/**
 * The stream's first event: its data is where to POST frames, a URL reference resolved against the
 * stream's own URL (so that a path prefix a reverse proxy adds is kept).
 */
export const SSE_ENDPOINT_EVENT = "endpoint";

/** The stream's last event when the gateway closes the link: data `{"code":4001,"reason":"…"}`. */
export const SSE_CLOSE_EVENT = "close";

/**
 * Each POST carries the next number of this counter (0, 1, 2, … per link), so that a POST retried after a
 * network error is taken once: a number already taken is answered 202 and dropped, a gap refused (409).
 */
export const SSE_POST_SEQ_HEADER = "x-post-seq";

/** The media type of a POST body: one frame per line (frames are JSON text without line breaks). */
export const SSE_POST_CONTENT_TYPE = "application/x-ndjson";

/**
 * A client batches the frames queued while its previous POST was in flight, up to this many bytes (a single
 * larger frame goes alone). The gateway takes a body of up to its frame limit plus this.
 */
export const SSE_BATCH_BYTES = 1024 * 1024;

const LINE_BREAK = /\r\n|\r|\n/;

/**
 * A frame as an SSE event without a type (a `message` event). A frame whose text holds line breaks (JSON
 * whitespace of a payload that travels as it came) becomes several `data:` lines, which the reader joins
 * with `\n`: the same JSON value.
 *
 * @example
 * ```ts
 * import { encodeFrameEvent } from "./sse_link.ts";
 * encodeFrameEvent('{"type":"heartbeat"}'); // 'data: {"type":"heartbeat"}\n\n'
 * ```
 */
export function encodeFrameEvent(text: string): string {
  if (!text.includes("\n") && !text.includes("\r")) return `data: ${text}\n\n`;
  return `${text.split(LINE_BREAK).map((line) => `data: ${line}\n`).join("")}\n`;
}

/** The `endpoint` event naming where to POST. */
export function encodeEndpointEvent(reference: string): string {
  return `event: ${SSE_ENDPOINT_EVENT}\ndata: ${reference}\n\n`;
}

/** The `close` event: how the gateway ended the link, as a WebSocket close would say it. */
export function encodeCloseEvent(code: number, reason: string): string {
  return `event: ${SSE_CLOSE_EVENT}\ndata: ${JSON.stringify({ code, reason })}\n\n`;
}

/** Reads a `close` event's data; undefined when it is not `{code: integer, reason?: string}`. */
export function readCloseEvent(data: string): { code: number; reason: string } | undefined {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const { code, reason } = value as { code?: unknown; reason?: unknown };
  if (!Number.isInteger(code)) return undefined;
  return { code: code as number, reason: typeof reason === "string" ? reason : "" };
}

/** A POST body for `frames` (each one line of JSON). */
export function joinBatch(frames: readonly string[]): string {
  return frames.length === 1 ? frames[0]! : frames.join("\n");
}

/**
 * The frames of a POST body: its lines, empty ones skipped. A frame never holds `\n` when connect sent it
 * (JSON text on one line); a `\r` inside one is JSON whitespace and stays.
 *
 * @example
 * ```ts
 * import { splitBatch } from "./sse_link.ts";
 * splitBatch('{"a":1}\n{"b":2}\n'); // ['{"a":1}', '{"b":2}']
 * ```
 */
export function splitBatch(body: string): string[] {
  if (!body.includes("\n")) return body === "" ? [] : [body];
  return body.split("\n").filter((line) => line !== "");
}
