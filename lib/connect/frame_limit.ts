// The gateway's frame limit applied to what the local server writes: whether a payload fits in a data
// frame, and the JSON-RPC error that tells a caller (or the server) that it did not.

import { logger } from "../util/log.ts";
import { dataFrameOverhead } from "../protocol/frames.ts";
import {
  ErrorCode,
  errorResponse,
  type JsonRpcId,
  type JsonRpcResponse,
} from "../protocol/jsonrpc.ts";
import { utf8Length } from "../util/utf8.ts";
import { formatByteSize } from "../util/byte_size.ts";
import { CONNECT_DEFAULTS, type ConnectSettings } from "./settings.ts";

const log = logger("connect");

/** A data frame over the gateway's limit: its size and the limit, in bytes. */
export interface Oversize {
  bytes: number;
  limit: number;
}

/**
 * The frame's size and the limit when a payload in a data frame of `sessionId` would pass `limit`.
 * `payloadBytes`, when known, saves counting the payload's UTF-8 length.
 *
 * @example
 * ```ts
 * import { oversize } from "./frame_limit.ts";
 * oversize("x".repeat(2000), { sessionId: "s", limit: 1024 }); // { bytes: 2126, limit: 1024 }
 * ```
 */
export function oversize(
  payloadText: string,
  options: { payloadBytes?: number | undefined; sessionId: string; limit: number },
): Oversize | undefined {
  const { payloadBytes, sessionId, limit } = options;
  const overhead = dataFrameOverhead({ sessionId });
  // A UTF-16 unit is at most 3 bytes in UTF-8: only count when the frame could be over the limit.
  if ((payloadText.length + overhead) * 3 <= limit) return undefined;
  const bytes = (payloadBytes ?? utf8Length(payloadText)) + overhead;
  return bytes > limit ? { bytes, limit } : undefined;
}

/** `-32002` for `id`: `<what> (N bytes) exceeds the gateway's message limit of M bytes`. */
export function tooLargeError(id: JsonRpcId, what: string, size: Oversize): JsonRpcResponse {
  return errorResponse(
    id,
    ErrorCode.MessageTooLarge,
    `${what} (${size.bytes} bytes) exceeds the gateway's message limit of ${size.limit} bytes (mcp-rproxy serve: --max-frame-bytes)`,
  );
}

/** What a caller is told when the local server's answer was over connect's own bound. */
export function oversizedText(limitBytes: number): string {
  return `The local server's answer exceeded ${
    formatByteSize(limitBytes)
  }, the largest message connect takes from it (connect --max-message-bytes)`;
}

/**
 * The local server wrote a message over connect's own bound (`--max-message-bytes`): it is counted, and
 * its caller, if it has one, gets `-32002` saying so instead of nothing.
 */
export function answerOversized(
  tunnel: { oversizedAnswer(error: JsonRpcResponse, clientSession?: string): void },
  about: {
    settings: ConnectSettings;
    id: JsonRpcId | undefined;
    clientSession?: string;
    metrics?: { error(kind: "message_too_large"): void } | undefined;
  },
): void {
  about.metrics?.error("message_too_large");
  if (about.id === undefined) return;
  const limit = about.settings.maxMessageBytes ?? CONNECT_DEFAULTS.maxMessageBytes;
  tunnel.oversizedAnswer(
    errorResponse(about.id, ErrorCode.MessageTooLarge, oversizedText(limit)),
    about.clientSession,
  );
}

/** Says that a message of `type` was too large for the gateway, and whether its caller got an error. */
export function logTooLarge(type: string, size: Oversize, answered: boolean): void {
  const { bytes, limit } = size;
  if (answered) {
    log.warning(
      "An answer of {bytes} bytes exceeds the gateway's frame limit of {limit} bytes; sent an error",
      { event: "frame_too_large", bytes, limit },
    );
    return;
  }
  log.warning(
    "A {type} of {bytes} bytes exceeds the gateway's frame limit of {limit} bytes; not forwarded",
    { event: "frame_too_large", type, bytes, limit },
  );
}
