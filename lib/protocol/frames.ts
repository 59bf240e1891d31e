// The gateway wire protocol: frame shapes of contracts A and B, and the extensions of our own gateway (C).

import { SCAN_ABOVE_CHARS, scanJson } from "./json_scan.ts";
import type { JsonObject } from "./jsonrpc.ts";

/** Frame types a client sends. */
export type ClientFrameType =
  | "register"
  | "unregister"
  | "heartbeat"
  | "response"
  | "notification"
  | "request";

/** Frame types a gateway sends. */
export type GatewayFrameType =
  | "register_ack"
  | "register_complete"
  | "heartbeat"
  | "request"
  | "response"
  | "error";

/**
 * The key under which {@link parseFrame} with `payloadAsText` puts the JSON text of a long frame's
 * `payload`. A symbol, so that no field a gateway sends can pose as it.
 */
export const PAYLOAD_TEXT: unique symbol = Symbol("payloadText");

/** A decoded frame: an object with a string `type`. Other fields are checked by whoever reads them. */
export interface Frame extends JsonObject {
  type: string;
  sessionId?: string;
  /**
   * The JSON text of `payload`, in place of `payload`, for a long frame parsed with `payloadAsText` (it
   * is valid JSON: the whole frame was checked).
   */
  [PAYLOAD_TEXT]?: string;
}

/** Options of {@link parseFrame}. */
export interface ParseFrameOptions {
  /**
   * For a frame longer than {@link SCAN_ABOVE_CHARS}, give the payload's text under {@link PAYLOAD_TEXT}
   * (a slice of the frame's text, not a copy) instead of the parsed `payload`, so that a large message passes on without being built
   * as objects and serialized again.
   */
  payloadAsText?: boolean;
}

/**
 * Extensions our gateway (contract C) announces in `register_ack.extensions`. A and B announce none, and a client
 * uses an extension only when the gateway announced it.
 */
export const Extension = {
  /** The gateway takes `request` frames from the client (server-initiated requests) and sends back `response`. */
  ServerRequests: "server-requests",
  /** Frames up to `register_ack.maxFrameBytes` pass (MCP results of several MiB are normal). */
  LargeFrames: "large-frames",
  /** The gateway closes with {@link CloseCode.Evicted} when an operator removes the session. */
  EvictClose: "evict-close",
  /** Sequence numbers, acks and session resumption across link drops (docs/resume.md). */
  Resume: "resume",
} as const;

/** WebSocket close codes with a meaning in this protocol. */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  Policy: 1008,
  TooBig: 1009,
  InternalError: 1011,
  /** C: the session was removed by its owner or an operator; do not reconnect. */
  Evicted: 4001,
} as const;

/** B refuses inbound frames over 1 MiB with close 1009. */
export const CONTRACT_B_MAX_FRAME_BYTES = 1024 * 1024;

/** Deno's WebSocket refuses messages of 64 MiB and more. */
export const WEBSOCKET_MAX_MESSAGE_BYTES = 64 * 1024 * 1024 - 1;

/**
 * Parses one text frame. Returns a {@link SyntaxError} (not thrown) when the text is not a JSON object with a
 * string `type`, so a caller can report it and keep the link up.
 *
 * @example
 * ```ts
 * import { parseFrame } from "./frames.ts";
 * const frame = parseFrame('{"type":"heartbeat","sessionId":"s1"}');
 * if (!(frame instanceof Error)) console.log(frame.type); // "heartbeat"
 * ```
 */
export function parseFrame(text: string, options: ParseFrameOptions = {}): Frame | SyntaxError {
  let value: unknown;
  try {
    value = options.payloadAsText === true && text.length > SCAN_ABOVE_CHARS
      ? scannedFrame(text)
      : JSON.parse(text);
  } catch (error) {
    // V8's message quotes the text, and a frame's text may carry credentials: keep only the position.
    const position = /position (\d+)/.exec((error as Error).message)?.[1];
    return new SyntaxError(
      `Frame is not valid JSON${position === undefined ? "" : ` (error at character ${position})`}`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return new SyntaxError("Frame is not a JSON object");
  }
  const frame = value as JsonObject;
  if (typeof frame.type !== "string") {
    return new SyntaxError("Frame has no string 'type' field");
  }
  if ("sessionId" in frame && typeof frame.sessionId !== "string") {
    return new SyntaxError("Frame field 'sessionId' is not a string");
  }
  return frame as Frame;
}

/** A long frame with its `payload` as text; the other fields parsed. Throws a SyntaxError for invalid JSON. */
function scannedFrame(text: string): unknown {
  const scan = scanJson(text, "all");
  if (scan === undefined) throw new SyntaxError("Frame is not valid JSON");
  if (scan.root !== "object") return scan.root === "array" ? [] : null;
  const frame: Partial<Frame> = {};
  for (const [name, span] of scan.fields) {
    if (name === "payload") frame[PAYLOAD_TEXT] = text.slice(span.start, span.end);
    else {
      // Defined, not assigned: a field named `__proto__` must stay a field, as JSON.parse keeps it.
      Object.defineProperty(frame, name, {
        value: JSON.parse(text.slice(span.start, span.end)),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
  }
  return frame;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/** Byte length of a string in UTF-8, without allocating when the string is ASCII-short. */
export function utf8Length(text: string): number {
  // Every UTF-16 unit encodes to at most 3 bytes; a short string cannot exceed any limit we check.
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && isLowSurrogate(text.charCodeAt(i + 1))) {
      bytes += 4;
      i++;
    } else bytes += 3; // A lone surrogate is encoded as U+FFFD, 3 bytes.
  }
  return bytes;
}
