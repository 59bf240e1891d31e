// Tunnel sessions to and from their records: what a session saves (resume_credentials.ts hashes its
// secret), what a restarted serve restores it from, and the mark an ended session leaves.

import { type EndedSession, hashToken, sameSecret } from "../resume_credentials.ts";
import type { RestoredTunnel } from "../session_contract.ts";
import type { TunnelSession } from "../tunnel_session.ts";
import {
  type EndedReason,
  type EndedRecord,
  RECORD_VERSION,
  type TunnelRecord,
} from "./records.ts";

/** The record of a session that can be resumed; undefined for one that cannot (resume off). */
export function tunnelRecord(session: TunnelSession): TunnelRecord | undefined {
  const resume = session.resumeState();
  if (resume === undefined) return undefined;
  const initializeResult = session.calls.heldInitialize;
  return {
    v: RECORD_VERSION,
    id: session.id,
    owner: session.owner,
    name: session.name,
    requestedName: session.requestedName,
    description: session.description,
    protocol: session.protocol,
    mcpUrl: session.mcpUrl,
    tokenHash: resume.tokenHash,
    channel: session.channel,
    connectedAt: session.connectedAt,
    seqIn: resume.seqIn,
    tunnelIdsFrom: resume.firstTunnelId,
    ...(initializeResult === undefined ? {} : { initializeResult }),
    ...(session.perClient ? { isolation: "per-client" as const } : {}),
  };
}

/** What a session restored from `record` starts from. */
export function restoredTunnel(record: TunnelRecord): RestoredTunnel {
  return {
    id: record.id,
    connectedAt: record.connectedAt,
    tokenHash: record.tokenHash,
    seqIn: record.seqIn,
    firstTunnelId: record.tunnelIdsFrom,
    initializeResult: record.initializeResult,
  };
}

/** The mark of a session that ended for `reason`; undefined without a secret to check a resume by. */
export function endedRecord(
  session: TunnelSession,
  reason: EndedReason,
  endedAt: number,
): EndedRecord | undefined {
  const tokenHash = session.resumeState()?.tokenHash;
  if (tokenHash === undefined) return undefined;
  return { v: RECORD_VERSION, id: session.id, owner: session.owner, tokenHash, reason, endedAt };
}

/** An ended session from its mark, for the memory of ended sessions. */
export function endedSession(record: EndedRecord): EndedSession {
  return {
    id: record.id,
    owner: record.owner,
    matchesToken: (token) => sameSecret(record.tokenHash, hashToken(token)),
  };
}
