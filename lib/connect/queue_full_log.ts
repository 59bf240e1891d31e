// What connect says when a local server's input queue has no room for a message: counted every time,
// logged at most once a second with how many were held back, so that a flood does not flood the log.

import { logger } from "../util/log.ts";
import { heldBackText, LogThrottle } from "../util/log_throttle.ts";
import type { RefusedMessage } from "./local_session.ts";
import type { ServerMetrics } from "./metrics.ts";

const log = logger("connect");

/** Counts and reports the messages one server's input queue refused. */
export class QueueFullLog {
  #label: string;
  #metrics: ServerMetrics | undefined;
  #throttle = new LogThrottle({ intervalMs: 1000 });

  constructor(label: string, metrics: ServerMetrics | undefined) {
    this.#label = label;
    this.#metrics = metrics;
  }

  /** A message the queue had no room for. */
  refused(refused: RefusedMessage): void {
    this.#metrics?.error("server_queue_full");
    const held = this.#throttle.take();
    if (held === undefined) return;
    log.warning("Refused a {kind}{method} for the local server {server}: {reason}{more}", {
      event: "server_queue_full",
      server: this.#label,
      kind: refused.kind,
      method: refused.method === undefined ? "" : ` (${refused.method})`,
      reason: refused.reason,
      more: heldBackText(held, "the last such line"),
      queuedBytes: refused.full.bytes,
      queuedMessages: refused.full.messages,
    });
  }
}
