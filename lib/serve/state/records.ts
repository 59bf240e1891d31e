// What serve keeps in its state store, record by record: a tunnel session's metadata (never its resume
// secret, only a hash), an MCP client session, and the mark of an ended session. Written and read here
// only, each with a version, so that a record from another release is recognized rather than misread.

import { isObject, type JsonObject } from "../../util/json_object.ts";
import type { StateKey } from "./store.ts";

/** The spaces serve's records live in. */
export const SPACE = {
  /** A tunnel session that can be resumed: {@link TunnelRecord}. */
  tunnel: "tunnel",
  /** An MCP client session (Streamable HTTP): {@link ClientRecord}. */
  client: "client",
  /** A session that ended in a way a late resume must learn of: {@link EndedRecord}. */
  ended: "ended",
} as const;

/** The version of the records this code writes. */
export const RECORD_VERSION = 1;

/** A tunnel session, as much as a restarted serve needs to let its client resume it. */
export interface TunnelRecord {
  v: typeof RECORD_VERSION;
  id: string;
  owner: string;
  name: string;
  requestedName: string;
  description: string;
  protocol: string;
  mcpUrl: string;
  /** SHA-256 of the resume secret (resume_credentials.ts `hashToken`); the secret is never stored. */
  tokenHash: string;
  /** The session's channel on its link ("" without channels). */
  channel: string;
  /** When it registered (ms since epoch). */
  connectedAt: number;
  /** The client's data frames serve had received in order when this was written (its cumulative ack). */
  seqIn: number;
  /** Tunnel ids below this may have been used by a process before: their answers are late. */
  tunnelIdsFrom: number;
  /** The server's `initialize` result, held so that a restarted serve need not ask again. */
  initializeResult?: JsonObject;
  /** Set when each MCP client gets a server instance of its own. */
  isolation?: "per-client";
}

/** An MCP client session of the Streamable HTTP transport. */
export interface ClientRecord {
  v: typeof RECORD_VERSION;
  id: string;
  owner: string;
  serverName: string;
  protocolVersion: string;
  /** What the client declared in `initialize`. */
  capabilities: JsonObject;
  /** When the client was last heard from (ms since epoch). */
  lastSeen: number;
  /** How many times the session was restored: its stream numbers start past the earlier ones'. */
  epoch: number;
  /** Set when the session's server gives each client an instance of its own. */
  perClient?: boolean;
}

/** Why a session that ended can no longer be resumed, as `register_ack.resumeError` says it. */
export type EndedReason = "evicted" | "expired" | "overflowed" | "bad-ack" | "superseded";

const ENDED_REASONS: readonly string[] = [
  "evicted",
  "expired",
  "overflowed",
  "bad-ack",
  "superseded",
];

/** A session that ended: kept a while so that a late resume gets the reason, not `unknown-session`. */
export interface EndedRecord {
  v: typeof RECORD_VERSION;
  id: string;
  owner: string;
  tokenHash: string;
  reason: EndedReason;
  /** When it ended (ms since epoch). */
  endedAt: number;
}

/** The key of a record. */
export function recordKey(space: keyof typeof SPACE, id: string): StateKey {
  return { space: SPACE[space], id };
}

function strings(value: JsonObject, names: readonly string[]): boolean {
  return names.every((name) => typeof value[name] === "string");
}

function counts(value: JsonObject, names: readonly string[]): boolean {
  return names.every((name) => {
    const n = value[name];
    return typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
  });
}

function parsed(text: string): JsonObject | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return isObject(value) && value.v === RECORD_VERSION ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Reads a tunnel record; undefined when it is not one this version wrote (the caller drops it).
 *
 * @example
 * ```ts
 * import { readTunnelRecord } from "./records.ts";
 * readTunnelRecord("{}"); // undefined
 * ```
 */
export function readTunnelRecord(text: string): TunnelRecord | undefined {
  const value = parsed(text);
  if (
    value === undefined ||
    !strings(value, [
      "id",
      "owner",
      "name",
      "requestedName",
      "description",
      "protocol",
      "mcpUrl",
      "tokenHash",
      "channel",
    ]) ||
    !counts(value, ["connectedAt", "seqIn", "tunnelIdsFrom"]) ||
    (value.initializeResult !== undefined && !isObject(value.initializeResult)) ||
    (value.isolation !== undefined && value.isolation !== "per-client")
  ) {
    return undefined;
  }
  return value as unknown as TunnelRecord;
}

/** Reads an MCP client session record; undefined when it is not one this version wrote. */
export function readClientRecord(text: string): ClientRecord | undefined {
  const value = parsed(text);
  if (
    value === undefined || !strings(value, ["id", "owner", "serverName", "protocolVersion"]) ||
    !isObject(value.capabilities) || !counts(value, ["lastSeen", "epoch"]) ||
    (value.perClient !== undefined && typeof value.perClient !== "boolean")
  ) {
    return undefined;
  }
  return value as unknown as ClientRecord;
}

/** Reads an ended-session record; undefined when it is not one this version wrote. */
export function readEndedRecord(text: string): EndedRecord | undefined {
  const value = parsed(text);
  if (
    value === undefined || !strings(value, ["id", "owner", "tokenHash"]) ||
    !ENDED_REASONS.includes(String(value.reason)) || !counts(value, ["endedAt"])
  ) {
    return undefined;
  }
  return value as unknown as EndedRecord;
}
