// What a server line too long to parse still tells from its first and last bytes: the request the server
// makes in it, or the ids of the call it may answer, so that neither the server nor a caller waits for ever.

import type { JsonRpcId } from "../protocol/jsonrpc.ts";
import type { OversizedLine } from "../util/line_splitter.ts";

/** What {@link readOversized} found. */
export interface OversizedFacts {
  /** The line is a request of the server's own (it has a method and an id): the server awaits its answer. */
  request?: { id: JsonRpcId; method: string };
  /** Otherwise, the ids of the call it may answer, most certain first. */
  ids: JsonRpcId[];
}

const STRING = String.raw`"(?:[^"\\]|\\.)*"`;
const NUMBER = String.raw`-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?`;
/** One member of an object with a scalar value, and the comma after it: a member known to be whole. */
const MEMBER = new RegExp(
  String.raw`\s*(${STRING})\s*:\s*(${STRING}|${NUMBER}|true|false|null)\s*,`,
  "y",
);
/** `"id"` as the last member of the line's object: top-level for sure (a nested one has more braces after). */
const ID_AT_END = new RegExp(String.raw`"id"\s*:\s*(${STRING}|${NUMBER})\s*\}\s*$`);

/**
 * The scalar members the line's object starts with, up to its first member that is not a scalar: these
 * are top-level for sure (`{"jsonrpc":"2.0","id":7,"result":…` gives `jsonrpc` and `id`).
 */
function leadingMembers(head: string): Map<string, unknown> {
  const members = new Map<string, unknown>();
  const open = /^\s*\{/.exec(head);
  if (open === null) return members;
  MEMBER.lastIndex = open[0].length;
  for (let match = MEMBER.exec(head); match !== null; match = MEMBER.exec(head)) {
    const [key, value] = [parse(match[1]!), parse(match[2]!)];
    if (typeof key !== "string") break; // a string the regular expression took and JSON does not
    members.set(key, value);
  }
  return members;
}

function parse(json: string): unknown {
  try {
    return JSON.parse(json);
  } catch {
    return undefined;
  }
}

function isId(value: unknown): value is JsonRpcId {
  return typeof value === "string" || typeof value === "number";
}

/**
 * Reads a line that was too long to parse: a request of the server's own when it starts with a method
 * and has an id (first, or last as the MCP TypeScript SDK writes `{"method":…,"jsonrpc":"2.0","id":0}`);
 * else the ids of the call it may answer: one that ends the line (the SDK's `{"result":…,"id":7}`), then
 * one among its leading members.
 *
 * @example
 * ```ts
 * import { readOversized } from "./oversized_line.ts";
 * readOversized({ head: '{"result":{"content":[', tail: '"jsonrpc":"2.0","id":7}', bytes: 9e6 });
 * // { ids: [7] }
 * ```
 */
export function readOversized(line: OversizedLine): OversizedFacts {
  const leading = leadingMembers(line.head);
  const atEnd = ID_AT_END.exec(line.tail)?.[1];
  const lastId = atEnd === undefined ? undefined : parse(atEnd);
  const firstId = leading.get("id");
  const method = leading.get("method");
  if (typeof method === "string") {
    const id = isId(firstId) ? firstId : isId(lastId) ? lastId : undefined;
    return id === undefined ? { ids: [] } : { request: { id, method }, ids: [] };
  }
  return { ids: [lastId, firstId].filter(isId) };
}
