// The log lines of a tunnel session's life (detached, expired, resumed, closed), each naming the session,
// its owner and its server, so that an operator can follow one session through the gateway's log.

import { logger } from "../util/log.ts";

const log = logger("serve", "session");

/** Who a line is about. */
export interface SessionRef {
  readonly id: string;
  readonly owner: string;
  readonly name: string;
}

function fields(session: SessionRef): { session: string; owner: string; name: string } {
  return { session: session.id, owner: session.owner, name: session.name };
}

/** The session lost its link and waits `seconds` to be resumed. */
export function logDetached(
  session: SessionRef,
  detail: { reason: string; seconds: number; calls: number },
): void {
  log.info(
    "Session {session} of {owner} ({name}) lost its link ({reason}); waiting up to {seconds} s for it to resume, {calls} call(s) in flight",
    { event: "session_detached", ...fields(session), ...detail },
  );
}

/** The session was not resumed within its window. */
export function logExpired(session: SessionRef, detail: { seconds: number; calls: number }): void {
  log.warning(
    "Session {session} of {owner} ({name}) was not resumed within {seconds} s: failing its {calls} call(s) in flight",
    { event: "session_expired", ...fields(session), ...detail },
  );
}

/** The session was resumed on a new link. */
export function logResumed(
  session: SessionRef,
  detail: { ms: number; count: number; calls: number },
): void {
  log.info(
    "Session {session} of {owner} ({name}) resumed after {ms} ms: replayed {count} frame(s), {calls} call(s) in flight",
    { event: "session_resumed", ...fields(session), ...detail },
  );
}

/** The session ended. */
export function logClosed(session: SessionRef, end: { kind: string; reason: string }): void {
  log.info("Session {session} of {owner} ({name}) closed: {reason}", {
    event: "session_closed",
    ...fields(session),
    kind: end.kind,
    reason: end.reason,
  });
}

/** The session's replay buffer overflowed: it cannot be resumed after a link drop. */
export function logReplayOverflow(session: SessionRef): void {
  log.warning(
    "Session {session} of {owner} ({name}): the replay buffer overflowed; it cannot be resumed after a link drop",
    { event: "replay_overflow", ...fields(session) },
  );
}

/** A data frame arrived past a missing one: the link is dropped so that the client resumes. */
export function logSequenceGap(session: SessionRef, detail: { seq: unknown; last: unknown }): void {
  log.warning(
    "Session {session}: frame {seq} arrived after {last}; a frame is missing, dropping the link so the client resumes",
    { event: "sequence_gap", ...fields(session), ...detail },
  );
}
