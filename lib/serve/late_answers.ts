// Answers from a tunneled server that no call waits for: late ones (the call was given up here, or asked
// by the process a restored session comes from) are dropped and counted; one for an id never asked is a
// bad frame, warned about at most once per interval.

import { heldBackText, LogThrottle } from "../util/log_throttle.ts";
import { logger } from "../util/log.ts";
import type { ServeMetrics } from "./metrics.ts";

const log = logger("serve", "calls");

/** Given-up tunnel ids remembered for their late answers, at most. */
const MAX_GIVEN_UP = 4096;
/** One warning line per this many milliseconds for answers to ids never asked. */
const UNKNOWN_WARNING_INTERVAL_MS = 10_000;

/** Options of {@link LateAnswers}. */
export interface LateAnswersOptions {
  /** The server, for logs; and where a bad frame is counted (against its link). */
  channel: { readonly name: string; badFrame(message: string): void };
  /** Tunnel ids below this were asked by an earlier process (a restored session): late, not bad. */
  lateBelow: number;
  metrics?: ServeMetrics | undefined;
}

/**
 * Tells late answers from bad ones, for one tunnel session.
 *
 * @example
 * ```ts
 * import { LateAnswers } from "./late_answers.ts";
 * const late = new LateAnswers({ channel: { name: "s", badFrame: () => {} }, lateBelow: 100 });
 * late.giveUp(120);
 * late.answer(120); // dropped as late
 * late.answer(7); // dropped as late: an earlier process asked it
 * ```
 */
export class LateAnswers {
  #options: LateAnswersOptions;
  /** Tunnel ids of calls given up (timed out, cancelled): a late answer for one is expected, not bad. */
  #givenUp = new Set<number>();
  #warnings = new LogThrottle({ intervalMs: UNKNOWN_WARNING_INTERVAL_MS });

  constructor(options: LateAnswersOptions) {
    this.#options = options;
  }

  /** The call with this tunnel id was given up: its answer, if it comes, is late. */
  giveUp(tunnelId: number): void {
    this.#givenUp.add(tunnelId);
    if (this.#givenUp.size > MAX_GIVEN_UP) {
      this.#givenUp.delete(this.#givenUp.values().next().value!);
    }
  }

  /** An answer with this id came and no call waits for it. */
  answer(id: unknown): void {
    const { channel, lateBelow, metrics } = this.#options;
    const tunnelId = typeof id === "string" && /^\d+$/.test(id) ? Number(id) : id;
    if (
      typeof tunnelId === "number" &&
      (this.#givenUp.delete(tunnelId) || (tunnelId >= 0 && tunnelId < lateBelow))
    ) {
      // Given up here, or asked by the process this session was restored from (its caller is gone).
      metrics?.errors.inc("late_response");
      log.debug("Dropped a late answer for call {id} on server {name}: it was given up", {
        event: "late_response",
        id: tunnelId,
        name: channel.name,
      });
      return;
    }
    channel.badFrame("Response for an id that was never asked");
    const suppressed = this.#warnings.take();
    if (suppressed === undefined) return;
    log.warning("Dropped a response for unknown id {id} on server {name}{more}", {
      event: "unknown_response",
      id: JSON.stringify(id ?? null).slice(0, 64),
      name: channel.name,
      more: heldBackText(suppressed),
    });
  }
}
