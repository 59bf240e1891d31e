// The tunnel's wire protocol, written once: every envelope both ends send is encoded here and read here.
// Contracts A and B (ContextForge) are subsets; our gateway (C) adds extensions a client uses only when the
// gateway announced them. Names and codes the later protocol additions rely on are settled here too.

import { isObject, type JsonObject } from "../util/json_object.ts";
import { SCAN_ABOVE_CHARS, scanJson } from "./json_scan.ts";
import { factsOfSpans, ROUTING_FIELDS } from "./jsonrpc.ts";
import { Payload } from "./payload.ts";

/** Data frame types: they carry a JSON-RPC message in `payload`. */
export type DataFrameType = "request" | "response" | "notification";

/**
 * Extensions our gateway (contract C) announces in `register_ack.extensions`, and a client asks for in
 * `register.extensions`. A and B announce none; each side uses one only when the other announced it.
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
  /** Many servers on one link: every frame names its server in `channel`, one `register` per server. */
  Channels: "channels",
  /** Per-client server instances: frames carry the MCP client's session in `clientSession`. */
  ClientSessions: "client-sessions",
} as const;

/** WebSocket close codes, also used in a per-server `close` frame, with a meaning in this protocol. */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  /** A binary frame: the protocol is JSON text. */
  UnsupportedData: 1003,
  Policy: 1008,
  TooBig: 1009,
  InternalError: 1011,
  /** The gateway cannot take this now (an owner's memory share is used up); retry later. */
  TryAgainLater: 1013,
  /** C: the session was removed by its owner or an operator; do not come back (connect exits 4). */
  Evicted: 4001,
  /** C: a newer registration or resumption of the same server took over (on another link or replica). */
  Superseded: 4002,
  /** C: the link did not register within the gateway's register timeout. */
  RegisterTimeout: 4008,
  /** C: the owner holds as many sessions as it may; retry with backoff (not an auth refusal). */
  TooManySessions: 4029,
} as const;

/** How connect reaches the gateway (`--transport`); `auto` tries WebSocket first. */
export const LINK_TRANSPORTS = ["websocket", "sse"] as const;
/** A link transport. */
export type LinkTransport = typeof LINK_TRANSPORTS[number];

/** How connect reaches a local server: a child process, Streamable HTTP, or legacy HTTP+SSE. */
export const SERVER_TRANSPORTS = ["stdio", "http", "sse"] as const;
/** A local server transport. */
export type ServerTransport = typeof SERVER_TRANSPORTS[number];

/** Whether MCP clients share one server instance or get one each. */
export const ISOLATIONS = ["shared", "per-client"] as const;
/** An isolation mode. */
export type Isolation = typeof ISOLATIONS[number];

/** B refuses inbound frames over 1 MiB with close 1009. */
export const CONTRACT_B_MAX_FRAME_BYTES = 1024 * 1024;

/**
 * Our gateway's default frame limit (`serve --max-frame-bytes`): a 40 MiB tool result passes with room for
 * its JSON-RPC and frame envelopes, and for servers that send a text twice (content and structured).
 */
export const C_DEFAULT_MAX_FRAME_BYTES = 48 * 1024 * 1024;

/** Deno's WebSocket refuses messages of 64 MiB and more. */
export const WEBSOCKET_MAX_MESSAGE_BYTES = 64 * 1024 * 1024 - 1;

/** A decoded frame: the envelope's fields checked for type, the rest as sent. */
export interface Frame {
  type: string;
  sessionId?: string;
  /** C with `channels`: which of the link's servers the frame belongs to. */
  channel?: string;
  /** C with `client-sessions`: which MCP client session (per-client instance) the frame belongs to. */
  clientSession?: string;
  /** C with `resume`: the data frame's sequence number. */
  seq?: number;
  /** C with `resume`: the highest sequence number received in order (cumulative). */
  ack?: number;
  /** Data frames: the JSON-RPC message (as text for long frames, so that it can pass on unparsed). */
  payload?: Payload;
  /** Every other member, unchecked. Never log `authentication` (downstream credentials). */
  fields: JsonObject;
}

const ENVELOPE_STRINGS = ["sessionId", "channel", "clientSession"] as const;
const ENVELOPE_COUNTERS = ["seq", "ack"] as const;
const PAYLOAD_NESTED = { field: "payload", wanted: ROUTING_FIELDS };

function syntaxError(position: string | undefined): SyntaxError {
  return new SyntaxError(
    `Frame is not valid JSON${position === undefined ? "" : ` (error at character ${position})`}`,
  );
}

/**
 * Parses one text frame in a single pass. A long frame (over {@link SCAN_ABOVE_CHARS}) is scanned, not
 * built: its payload stays text, with the facts routing needs found in the same pass. Returns a
 * {@link SyntaxError} (not thrown) when the text is not a frame, so that a caller can report it and keep
 * the link up. The error never quotes the text (a frame may carry credentials).
 *
 * @example
 * ```ts
 * import { parseFrame } from "./frames.ts";
 * const frame = parseFrame('{"type":"response","sessionId":"s1","payload":{"jsonrpc":"2.0","id":1,"result":{}}}');
 * if (!(frame instanceof Error)) console.log(frame.type, frame.payload?.facts); // response { kind: "response", id: 1 }
 * ```
 */
export function parseFrame(text: string): Frame | SyntaxError {
  let fields: JsonObject;
  let payload: Payload | undefined;
  if (text.length > SCAN_ABOVE_CHARS) {
    const scanned = scanFrame(text);
    if (scanned instanceof SyntaxError) return scanned;
    ({ fields, payload } = scanned);
  } else {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      return syntaxError(/position (\d+)/.exec((error as Error).message)?.[1]);
    }
    if (!isObject(value)) return new SyntaxError("Frame is not a JSON object");
    fields = value;
    if ("payload" in fields) payload = Payload.fromValue(fields.payload);
  }
  return frameOf(fields, payload);
}

/** Checks the envelope's fields and lifts them out of `fields`. */
function frameOf(fields: JsonObject, payload: Payload | undefined): Frame | SyntaxError {
  const { type } = fields;
  if (typeof type !== "string") return new SyntaxError("Frame has no string 'type' field");
  const frame: Frame = { type, fields };
  for (const name of ENVELOPE_STRINGS) {
    const value = fields[name];
    if (value === undefined) continue;
    if (typeof value !== "string") return new SyntaxError(`Frame field '${name}' is not a string`);
    frame[name] = value;
  }
  for (const name of ENVELOPE_COUNTERS) {
    const value = fields[name];
    if (value === undefined) continue;
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
      return new SyntaxError(`Frame field '${name}' is not a non-negative integer`);
    }
    frame[name] = value;
  }
  if (payload !== undefined) frame.payload = payload;
  return frame;
}

/** A long frame: its fields parsed, except `payload`, kept as text with the facts of its message. */
function scanFrame(text: string): { fields: JsonObject; payload?: Payload } | SyntaxError {
  const scan = scanJson(text, "all", PAYLOAD_NESTED);
  if (scan === undefined) return syntaxError(undefined);
  if (scan.root !== "object") return new SyntaxError("Frame is not a JSON object");
  const fields: JsonObject = {};
  let payload: Payload | undefined;
  for (const [name, span] of scan.fields) {
    if (name === "payload") {
      const payloadText = text.slice(span.start, span.end);
      const nested = scan.nested!;
      if (nested.root === "array") payload = Payload.fromText(payloadText, "batch");
      else if (nested.root === "scalar") payload = Payload.fromValue(JSON.parse(payloadText));
      else {
        const spans = new Map<string, { start: number; end: number }>();
        for (const [key, at] of nested.fields) {
          spans.set(key, { start: at.start - span.start, end: at.end - span.start });
        }
        payload = Payload.fromText(payloadText, factsOfSpans(payloadText, spans), spans.get("id"));
      }
      continue;
    }
    // Defined, not assigned: a field named `__proto__` must stay a field, as JSON.parse keeps it.
    Object.defineProperty(fields, name, {
      value: JSON.parse(text.slice(span.start, span.end)),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return payload === undefined ? { fields } : { fields, payload };
}

/** The envelope of a data frame. */
export interface DataFrameParts {
  type: DataFrameType;
  sessionId: string;
  channel?: string | undefined;
  clientSession?: string | undefined;
  seq?: number | undefined;
  ack?: number | undefined;
  /** The payload's JSON text, inserted as is (never re-serialized). */
  payloadText: string;
}

/**
 * A data frame around a payload that is already JSON text. The one place data frames are written.
 *
 * @example
 * ```ts
 * import { encodeDataFrame } from "./frames.ts";
 * encodeDataFrame({ type: "response", sessionId: "s", seq: 2, ack: 5, payloadText: '{"jsonrpc":"2.0","id":1,"result":{}}' });
 * ```
 */
export function encodeDataFrame(parts: DataFrameParts): string {
  const { type, sessionId, channel, clientSession, seq, ack, payloadText } = parts;
  let text = `{"type":"${type}","sessionId":${JSON.stringify(sessionId)}`;
  if (channel !== undefined) text += `,"channel":${JSON.stringify(channel)}`;
  if (clientSession !== undefined) text += `,"clientSession":${JSON.stringify(clientSession)}`;
  if (seq !== undefined) text += `,"seq":${seq},"ack":${ack ?? 0}`;
  return `${text},"payload":${payloadText}}`;
}

/** Bytes of a data frame's envelope around its payload, at most, for size checks before encoding. */
export function dataFrameOverhead(parts: Omit<DataFrameParts, "payloadText" | "type">): number {
  // Field names, quotes and two 16-digit counters, plus the ids (which may need escaping: times 6).
  return 120 + 6 * (parts.sessionId.length + (parts.channel?.length ?? 0) +
        (parts.clientSession?.length ?? 0));
}

/** The envelope fields every control frame may carry. */
interface ControlParts {
  sessionId: string;
  channel?: string | undefined;
}

/**
 * A heartbeat. From a client: every keepalive interval (C: `keepaliveMs` announces the interval, `ack`
 * rides along). From a gateway: only ever the reply to one (never answer a gateway heartbeat).
 */
export function encodeHeartbeat(
  parts: ControlParts & {
    keepaliveMs?: number;
    ack?: number;
    /** With `channels`: the cumulative ack of each channel's session. */
    acks?: Record<string, number>;
    timestamp?: string;
  },
): string {
  return JSON.stringify({ type: "heartbeat", ...parts });
}

/** A standalone cumulative acknowledgement (C with `resume`), when no data frame carries one soon. */
export function encodeAck(parts: ControlParts & { ack: number }): string {
  return JSON.stringify({ type: "ack", ...parts });
}

/** A client's goodbye: the gateway ends the session (or, with a channel, that server's session only). */
export function encodeUnregister(parts: ControlParts): string {
  return JSON.stringify({ type: "unregister", ...parts });
}

/** A gateway's report of a bad frame; the link stays up. */
export function encodeError(parts: Partial<ControlParts> & { message: string }): string {
  return JSON.stringify({ type: "error", ...parts });
}

/**
 * C with `channels`: the gateway ended one server's session on the link (evicted, superseded, …) with a
 * {@link CloseCode}; the link and its other servers go on.
 */
export function encodeClose(
  parts: ControlParts & { channel: string; code: number; reason: string },
): string {
  return JSON.stringify({ type: "close", ...parts });
}

/** C with `client-sessions`: an MCP client session ended; its per-client instance should stop. */
export function encodeClientSessionEnd(
  parts: ControlParts & { clientSession: string; reason: string },
): string {
  return JSON.stringify({ type: "client_session_end", ...parts });
}

/** The client session and reason of a `client_session_end` frame; undefined without a client session. */
export function readClientSessionEnd(
  frame: Frame,
): { clientSession: string; reason: string } | undefined {
  const { clientSession } = frame;
  if (clientSession === undefined) return undefined;
  const reason = frame.fields.reason;
  return { clientSession, reason: typeof reason === "string" ? reason.slice(0, 256) : "" };
}

/** One live per-client instance, as connect reports it (`client_instances`). */
export interface ClientInstanceInfo {
  clientSession: string;
  /** Process id of a stdio instance (its process group); absent for an HTTP upstream session. */
  pid?: number;
  /** When it started, ms since epoch. */
  startedAt: number;
}

/** Instances one `client_instances` frame may list, at most; more are ignored. */
export const MAX_LISTED_INSTANCES = 4096;

/**
 * C with `client-sessions`: connect's list of a per-client server's live instances, sent whole after each
 * registration and each start or stop, so that a lost one is corrected by the next.
 */
export function encodeClientInstances(
  parts: ControlParts & { instances: readonly ClientInstanceInfo[] },
): string {
  return JSON.stringify({ type: "client_instances", ...parts });
}

/** The instances of a `client_instances` frame; malformed entries are dropped, the list is bounded. */
export function readClientInstances(frame: Frame): ClientInstanceInfo[] {
  const value = frame.fields.instances;
  if (!Array.isArray(value)) return [];
  const instances: ClientInstanceInfo[] = [];
  for (const entry of value.slice(0, MAX_LISTED_INSTANCES)) {
    if (!isObject(entry)) continue;
    const { clientSession, pid, startedAt } = entry;
    if (typeof clientSession !== "string" || clientSession.length > 256) continue;
    const instance: ClientInstanceInfo = {
      clientSession,
      startedAt: typeof startedAt === "number" && Number.isFinite(startedAt) ? startedAt : 0,
    };
    if (typeof pid === "number" && Number.isSafeInteger(pid) && pid > 0) instance.pid = pid;
    instances.push(instance);
  }
  return instances;
}

/** The code and reason of a `close` frame; undefined when it has no integer code. */
export function readClose(frame: Frame): { code: number; reason: string } | undefined {
  const { code, reason } = frame.fields;
  if (typeof code !== "number" || !Number.isInteger(code)) return undefined;
  return { code, reason: typeof reason === "string" ? reason : "" };
}

/** The message of an `error` frame (any value becomes text). */
export function readErrorMessage(frame: Frame): string {
  const message = frame.fields.message;
  return typeof message === "string" ? message : JSON.stringify(message ?? "");
}

/** A heartbeat's per-channel acks (with `channels`): channel → cumulative ack; malformed entries dropped. */
export function readAcks(frame: Frame): Map<string, number> {
  const acks = new Map<string, number>();
  const value = frame.fields.acks;
  if (!isObject(value)) return acks;
  for (const [channel, ack] of Object.entries(value).slice(0, 1024)) {
    if (typeof ack === "number" && Number.isSafeInteger(ack) && ack >= 0) acks.set(channel, ack);
  }
  return acks;
}

/** A client heartbeat's announced keepalive interval, if it gave a positive number. */
export function readKeepaliveMs(frame: Frame): number | undefined {
  const value = frame.fields.keepaliveMs;
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : undefined;
}
