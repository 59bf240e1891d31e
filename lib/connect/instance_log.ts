// The log lines of a per-client server's instances (started, refused at the cap, failed to start,
// exited, stopped), each naming the server and the MCP client session the instance serves.

import { logger } from "../util/log.ts";

const log = logger("connect");

/** Which instance a line is about. */
export interface InstanceRef {
  server: string;
  clientSession: string;
}

/** An instance started (with the process id of a stdio one). */
export function logStarted(ref: InstanceRef, pid: number | undefined): void {
  log.info("Started an instance of {server} for MCP client session {clientSession}{where}", {
    event: "instance_started",
    ...ref,
    where: pid === undefined ? "" : ` (pid ${pid})`,
    ...(pid === undefined ? {} : { pid }),
  });
}

/** A new session was refused an instance: `max` run already. */
export function logRefused(ref: InstanceRef, max: number): void {
  log.warning(
    "Refused an instance of {server} for a new MCP client session: {max} are running (max_instances)",
    { event: "instance_refused", ...ref, max },
  );
}

/** An instance could not start. */
export function logStartFailed(ref: InstanceRef, error: string): void {
  log.error("{error}", { event: "instance_start_failed", ...ref, error });
}

/** An instance ended: on its own (`reason` undefined: it exited) or stopped by connect for `reason`. */
export function logEnded(ref: InstanceRef, exit: string, reason: string | undefined): void {
  if (reason === undefined) {
    log.error(
      "The instance of {server} for MCP client session {clientSession} exited ({exit}); its calls get errors, its next request starts another",
      { event: "instance_exited", ...ref, exit },
    );
    return;
  }
  log.info("Stopped the instance of {server} for MCP client session {clientSession}: {reason}", {
    event: "instance_stopped",
    ...ref,
    reason,
    exit,
  });
}
