// JSON-RPC 2.0 message shapes, classification and error replies, shared by both ends of the tunnel.

import { isObject, type JsonObject } from "../util/json_object.ts";
import { scanJson, type Span } from "./json_scan.ts";

/** A JSON-RPC request or notification id. */
export type JsonRpcId = string | number;

/** Any JSON object. */
export type { JsonObject };

/** A JSON-RPC request: has a method and an id. */
export interface JsonRpcRequest extends JsonObject {
  jsonrpc: "2.0";
  id: JsonRpcId;
  method: string;
  params?: unknown;
}

/** A JSON-RPC notification: has a method and no id. */
export interface JsonRpcNotification extends JsonObject {
  jsonrpc: "2.0";
  method: string;
  params?: unknown;
}

/** A JSON-RPC error object. */
export interface JsonRpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

/** A JSON-RPC response: an id and exactly one of result or error. */
export interface JsonRpcResponse extends JsonObject {
  jsonrpc: "2.0";
  id: JsonRpcId | null;
  result?: unknown;
  error?: JsonRpcErrorObject;
}

/** One JSON-RPC message. */
export type JsonRpcMessage = JsonRpcRequest | JsonRpcNotification | JsonRpcResponse;

/** What a parsed value is, as far as routing is concerned. */
export type MessageKind = "request" | "notification" | "response" | "invalid";

/** Standard and MCP-reserved error codes used by this project. */
export const ErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  /** The local server went away while the request was in flight. */
  ServerUnavailable: -32000,
  /** The tunnel could not deliver the message. */
  TunnelUnavailable: -32001,
  /** The message is larger than the link allows. */
  MessageTooLarge: -32002,
  /** The call did not complete in time. */
  Timeout: -32003,
} as const;

function isId(value: unknown): value is JsonRpcId {
  return typeof value === "string" || (typeof value === "number" && Number.isFinite(value));
}

/**
 * Classifies one parsed JSON value as a JSON-RPC request, notification or response.
 *
 * @example
 * ```ts
 * import { classify } from "./jsonrpc.ts";
 * classify({ jsonrpc: "2.0", id: 1, method: "ping" }); // "request"
 * classify({ jsonrpc: "2.0", id: 1, result: {} }); // "response"
 * ```
 */
export function classify(value: unknown): MessageKind {
  if (!isObject(value) || value.jsonrpc !== "2.0") return "invalid";
  if (typeof value.method === "string") {
    if (!("id" in value)) return "notification";
    return isId(value.id) ? "request" : "invalid";
  }
  if ("result" in value || "error" in value) {
    return value.id === null || isId(value.id) ? "response" : "invalid";
  }
  return "invalid";
}

/** True if every element of a parsed value is a valid JSON-RPC message (a single one or a batch). */
export function isJsonRpc(value: unknown): boolean {
  if (Array.isArray(value)) {
    return value.length > 0 && value.every((m) => classify(m) !== "invalid");
  }
  return classify(value) !== "invalid";
}

/** Builds a JSON-RPC error response. */
export function errorResponse(
  id: JsonRpcId | null,
  code: number,
  message: string,
  data?: unknown,
): JsonRpcResponse {
  const error: JsonRpcErrorObject = data === undefined
    ? { code, message }
    : { code, message, data };
  return { jsonrpc: "2.0", id, error };
}

/** The id of a request or response, or undefined for anything else. */
export function idOf(value: unknown): JsonRpcId | undefined {
  return isObject(value) && isId(value.id) ? value.id : undefined;
}

/** The method of a request or notification, or undefined. */
export function methodOf(value: unknown): string | undefined {
  return isObject(value) && typeof value.method === "string" ? value.method : undefined;
}

/** A key that tells ids 1 and "1" apart, for maps of pending requests. */
export function idKey(id: JsonRpcId): string {
  return typeof id === "number" ? `n:${id}` : `s:${id}`;
}

/** What routing needs of one message: its kind, and its id and method when it has them. */
export interface MessageFacts {
  kind: MessageKind;
  id?: JsonRpcId | null;
  method?: string;
}

/** The {@link MessageFacts} of a parsed value (one message, not a batch). */
export function factsOf(value: unknown): MessageFacts {
  const kind = classify(value);
  if (kind === "invalid") return { kind };
  const message = value as JsonObject;
  const facts: MessageFacts = { kind };
  if (kind !== "notification") facts.id = message.id as JsonRpcId | null;
  if (kind !== "response") facts.method = message.method as string;
  return facts;
}

/** The members of a message that routing reads: a scan looks for these and no others. */
export const ROUTING_FIELDS: ReadonlySet<string> = new Set([
  "jsonrpc",
  "id",
  "method",
  "result",
  "error",
]);

/** A message read from its JSON text without parsing it: its facts, and where its routing fields are. */
export interface ScannedMessage {
  facts: MessageFacts;
  /** Spans of `jsonrpc`, `id`, `method`, `result` and `error` in the text, where present. */
  spans: ReadonlyMap<string, Span>;
}

/**
 * The facts of a message from the spans of its routing fields in `text` (as {@link scanJson} found them):
 * only the small fields are parsed; `result` and `error` only need to be present.
 */
export function factsOfSpans(text: string, spans: ReadonlyMap<string, Span>): MessageFacts {
  const value: JsonObject = {};
  for (const [name, span] of spans) {
    value[name] = name === "result" || name === "error"
      ? true
      : JSON.parse(text.slice(span.start, span.end));
  }
  return factsOf(value);
}

/**
 * Reads one message in JSON text without parsing the text into objects: the same facts as
 * `factsOf(JSON.parse(text))`, for texts too large to build twice, with the spans of its routing fields
 * (to put another id in its place, say). Returns `"batch"` for a JSON array (parse it and take each
 * element), undefined if the text is not valid JSON.
 *
 * @example
 * ```ts
 * import { scanMessage } from "./jsonrpc.ts";
 * const scanned = scanMessage('{"jsonrpc":"2.0","id":3,"result":{}}');
 * if (typeof scanned === "object") console.log(scanned.facts); // { kind: "response", id: 3 }
 * ```
 */
export function scanMessage(text: string): ScannedMessage | "batch" | undefined {
  const scan = scanJson(text, ROUTING_FIELDS);
  if (scan === undefined) return undefined;
  if (scan.root === "array") return "batch";
  if (scan.root !== "object") return { facts: { kind: "invalid" }, spans: scan.fields };
  return { facts: factsOfSpans(text, scan.fields), spans: scan.fields };
}

/**
 * The {@link MessageFacts} of one message in JSON text, without parsing it ({@link scanMessage}).
 *
 * @example
 * ```ts
 * import { scanFacts } from "./jsonrpc.ts";
 * scanFacts('{"jsonrpc":"2.0","id":3,"result":{}}'); // { kind: "response", id: 3 }
 * ```
 */
export function scanFacts(text: string): MessageFacts | "batch" | undefined {
  const scanned = scanMessage(text);
  return typeof scanned === "object" ? scanned.facts : scanned;
}
