// Requests from the gateway that repeat one in flight at the server or answered lately. With serve's
// replicas a call may reach connect twice: through a holder that wrote it to its link and died, and again
// from its origin through the replica the tunnel resumed on (docs/scaling.md). It must run once: its one
// answer reaches the origin by its id, replayed on the resumed link if it was not acknowledged. Only ids
// of the cross-replica form `<rid>.<n>` are looked at: they are unique, where other gateways reuse ids.

import type { JsonRpcId, MessageFacts } from "../protocol/jsonrpc.ts";
import { CROSS_ID } from "../protocol/cross_replica_id.ts";
import { logger } from "../util/log.ts";

const log = logger("connect");

/** How many ids of answered calls are remembered, and at most how many in flight. */
export const REMEMBERED_IDS = 10_000;

/** Options of {@link RepeatedRequests}. */
export interface RepeatedRequestsOptions {
  /** Ids remembered (answered, and in flight, each), oldest forgotten first; default {@link REMEMBERED_IDS}. */
  limit?: number;
  /** Counts a dropped repeat. */
  onRepeat?: (id: string) => void;
}

/**
 * The cross-replica requests of one server seen in flight or answered lately.
 *
 * @example
 * ```ts
 * import { RepeatedRequests } from "./repeated_requests.ts";
 * const seen = new RepeatedRequests();
 * seen.repeats({ kind: "request", id: "r1.7", method: "tools/call" }); // false: runs
 * seen.repeats({ kind: "request", id: "r1.7", method: "tools/call" }); // true: in flight, dropped
 * ```
 */
export class RepeatedRequests {
  readonly #inFlight = new Set<string>();
  readonly #answered = new Set<string>();
  readonly #limit: number;
  readonly #onRepeat: ((id: string) => void) | undefined;

  constructor(options: RepeatedRequestsOptions = {}) {
    const { limit = REMEMBERED_IDS } = options;
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new RangeError(
        `Cannot remember requests as 'limit' must be a positive integer: current value is ${limit}`,
      );
    }
    this.#limit = limit;
    this.#onRepeat = options.onRepeat;
  }

  /**
   * True when `facts` are those of a cross-replica request in flight or answered lately: it must not reach
   * the server again. Otherwise a cross-replica request is remembered as in flight.
   */
  repeats(facts: MessageFacts | "batch"): boolean {
    if (facts === "batch" || facts.kind !== "request") return false;
    const id = facts.id;
    if (typeof id !== "string" || !CROSS_ID.test(id)) return false;
    if (this.#inFlight.has(id) || this.#answered.has(id)) {
      this.#onRepeat?.(id);
      log.debug("Dropped request {id}: it is in flight at the server or was answered already", {
        event: "repeated_request",
        id,
      });
      return true;
    }
    this.#remember(this.#inFlight, id);
    return false;
  }

  /** The call `id` was answered (by its server, or by connect with an error). */
  answered(id: JsonRpcId | null | undefined): void {
    if (typeof id === "string" && this.#inFlight.delete(id)) this.#remember(this.#answered, id);
  }

  #remember(ids: Set<string>, id: string): void {
    ids.add(id);
    // Sets iterate in insertion order: the first is the oldest.
    if (ids.size > this.#limit) ids.delete(ids.values().next().value!);
  }
}
