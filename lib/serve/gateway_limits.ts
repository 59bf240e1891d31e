// The numeric limits of the gateway in one place: what each means, its default, and how it is checked.

import { C_DEFAULT_MAX_FRAME_BYTES } from "../protocol/frames.ts";
import { MAX_CLIENT_SESSIONS_PER_OWNER } from "./mcp_client_session.ts";
import { STREAM_DEFAULTS } from "./resumable_stream.ts";
import { DEFAULT_MAX_QUEUED } from "./call_contract.ts";
import { SSE_LINK_DEFAULTS } from "./sse_link_endpoint.ts";

const MIB = 1024 * 1024;

/** Every limit of the gateway, each a number. */
export interface GatewayLimits {
  /** Largest inbound frame and MCP request body, in bytes. */
  maxFrameBytes: number;
  /** Live sessions one owner may hold, counting its links from their upgrade until they register. */
  maxSessionsPerOwner: number;
  /** Calls in flight per tunnel session; more wait in its queue. */
  maxInflight: number;
  /** Calls waiting for a slot per tunnel session, each up to its deadline; past it calls are refused. */
  maxQueued: number;
  /** Deadline of one call, in milliseconds. */
  callTimeoutMs: number;
  /** A link with no inbound frame for this long is closed, in milliseconds. */
  heartbeatTimeoutMs: number;
  /** WebSocket ping interval and pong deadline, in seconds (0 = off). */
  wsIdleTimeoutSeconds: number;
  /** A link not registered this long after its upgrade is closed with 4008, in milliseconds. */
  registerTimeoutMs: number;
  /** A request's headers must arrive within this long, in milliseconds (else 408). */
  headersTimeoutMs: number;
  /** A request body gets this long before `bodyMinBytesPerSecond` applies, in milliseconds. */
  bodyTimeoutMs: number;
  /** After `bodyTimeoutMs`, a body must keep arriving at this many bytes a second (else 408). */
  bodyMinBytesPerSecond: number;
  /** An idle keep-alive connection is closed after this long, in milliseconds. */
  keepAliveTimeoutMs: number;
  /** Malformed frames a minute tolerated before a link is closed. */
  maxBadFrames: number;
  /** Idle MCP client sessions are forgotten after this long, in milliseconds. */
  mcpSessionTtlMs: number;
  /** MCP client sessions one owner may hold (past it an idle one is forgotten, else 429). */
  maxMcpSessionsPerOwner: number;
  /**
   * How long a session whose link dropped waits for its client to resume it, in milliseconds; 0 turns the
   * `resume` extension off (docs/resume.md).
   */
  resumeWindowMs: number;
  /**
   * Bytes one MCP client's SSE stream (GET stream or a POST's answer) may hold unread; past it the stream
   * is closed (and its call cancelled) rather than letting a client that does not read grow memory.
   */
  maxClientBufferBytes: number;
  /** Open GET streams one token may hold at once. */
  maxStreamsPerToken: number;
  /**
   * UTF-8 bytes of an `initialize` request's params: what a session keeps of its client (capabilities,
   * client info) for as long as it lives, in memory, in the state store and, with replicas, in Redis.
   */
  maxInitializeBytes: number;
  /** UTF-8 bytes of SSE events kept per MCP session so that a client can resume its streams. */
  sseReplayBytes: number;
  /** SSE events kept per MCP session so that a client can resume its streams. */
  sseReplayEvents: number;
  /**
   * How long an SSE stream whose connection dropped is kept for its client to resume it, in milliseconds;
   * a call whose stream is not resumed in time is then cancelled.
   */
  sseResumeWindowMs: number;
  /** The SSE `retry:` field: how long a client waits before reconnecting a stream, in milliseconds. */
  sseRetryMs: number;
  /** Data frames kept per session for replay after a link drop. */
  replayFrames: number;
  /** UTF-8 bytes of frame text kept per session for replay after a link drop. */
  replayBytes: number;
  /** A comment line on every SSE link this often, in milliseconds (`--sse-link-keepalive`). */
  sseLinkKeepaliveMs: number;
  /** Memory held for all owners together (frames being received, replay and SSE buffers, queues), bytes. */
  memoryBudgetBytes: number;
  /** Memory held for one owner, bytes; past it the owner's new work is refused and its oldest streams cut. */
  memoryPerOwnerBytes: number;
}

/** Defaults of {@link GatewayLimits}. */
export const LIMIT_DEFAULTS = {
  maxFrameBytes: C_DEFAULT_MAX_FRAME_BYTES,
  maxSessionsPerOwner: 32,
  maxInflight: 64,
  maxQueued: DEFAULT_MAX_QUEUED,
  callTimeoutMs: 300_000,
  heartbeatTimeoutMs: 90_000,
  wsIdleTimeoutSeconds: 60,
  registerTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 10_000,
  bodyMinBytesPerSecond: 1024,
  keepAliveTimeoutMs: 5_000,
  maxBadFrames: 20,
  mcpSessionTtlMs: 3_600_000,
  maxMcpSessionsPerOwner: MAX_CLIENT_SESSIONS_PER_OWNER,
  resumeWindowMs: 60_000,
  replayFrames: 10_000,
  replayBytes: 64 * MIB,
  maxClientBufferBytes: 16 * MIB,
  maxStreamsPerToken: 16,
  maxInitializeBytes: 64 * 1024,
  sseReplayBytes: STREAM_DEFAULTS.replayBytes,
  sseReplayEvents: STREAM_DEFAULTS.replayEvents,
  sseResumeWindowMs: STREAM_DEFAULTS.resumeWindowMs,
  sseRetryMs: STREAM_DEFAULTS.retryMs,
  sseLinkKeepaliveMs: SSE_LINK_DEFAULTS.keepaliveMs,
  memoryBudgetBytes: 512 * MIB,
  memoryPerOwnerBytes: 160 * MIB,
} as const;

/** How each limit is checked. */
const RULES: Record<keyof GatewayLimits, "integer" | "positive" | "non-negative" | "count0"> = {
  maxFrameBytes: "integer",
  maxSessionsPerOwner: "integer",
  maxInflight: "integer",
  maxQueued: "integer",
  callTimeoutMs: "positive",
  heartbeatTimeoutMs: "positive",
  wsIdleTimeoutSeconds: "count0",
  registerTimeoutMs: "positive",
  headersTimeoutMs: "positive",
  bodyTimeoutMs: "positive",
  bodyMinBytesPerSecond: "positive",
  keepAliveTimeoutMs: "positive",
  maxBadFrames: "integer",
  mcpSessionTtlMs: "positive",
  maxMcpSessionsPerOwner: "integer",
  resumeWindowMs: "non-negative",
  replayFrames: "integer",
  replayBytes: "integer",
  maxClientBufferBytes: "integer",
  maxStreamsPerToken: "integer",
  maxInitializeBytes: "integer",
  sseReplayBytes: "integer",
  sseReplayEvents: "integer",
  sseResumeWindowMs: "positive",
  sseRetryMs: "integer",
  sseLinkKeepaliveMs: "positive",
  memoryBudgetBytes: "integer",
  memoryPerOwnerBytes: "integer",
};

const EXPECTED = {
  integer: "a positive integer",
  positive: "a positive number",
  "non-negative": "a non-negative number",
  count0: "a non-negative integer",
} as const;

function valid(rule: keyof typeof EXPECTED, value: number): boolean {
  if (!Number.isFinite(value)) return false;
  switch (rule) {
    case "integer":
      return Number.isInteger(value) && value > 0;
    case "positive":
      return value > 0;
    case "non-negative":
      return value >= 0;
    case "count0":
      return Number.isInteger(value) && value >= 0;
  }
}

/**
 * The limits with defaults applied, each checked.
 *
 * @throws {RangeError} naming the first limit that is out of range, and its value
 *
 * @example
 * ```ts
 * import { resolveLimits } from "./gateway_limits.ts";
 * resolveLimits({ maxInflight: 8 }).maxInflight; // 8
 * ```
 */
export function resolveLimits(given: Partial<GatewayLimits>): GatewayLimits {
  const limits = { ...LIMIT_DEFAULTS } as GatewayLimits;
  for (const key of Object.keys(RULES) as (keyof GatewayLimits)[]) {
    const value = given[key] ?? LIMIT_DEFAULTS[key];
    const rule = RULES[key];
    if (!valid(rule, value)) {
      throw new RangeError(
        `Cannot start gateway as '${key}' must be ${EXPECTED[rule]}: current value is ${value}`,
      );
    }
    limits[key] = value;
  }
  if (limits.memoryPerOwnerBytes > limits.memoryBudgetBytes) {
    throw new RangeError(
      `Cannot start gateway as 'memoryPerOwnerBytes' (${limits.memoryPerOwnerBytes}) exceeds 'memoryBudgetBytes' (${limits.memoryBudgetBytes})`,
    );
  }
  return limits;
}
