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
