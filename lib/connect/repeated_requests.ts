// Requests from the gateway that repeat one in flight at the server or answered lately. With serve's
// replicas a call may reach connect twice: through a holder that wrote it to its link and died, and again
// from its origin through the replica the tunnel resumed on (docs/scaling.md). It must run once. A repeat
// of a call in flight is dropped: its one answer reaches the origin by its id. A repeat of an answered
// call is answered again with the kept answer, since the dead holder may have taken the first from the
// link without passing it on; if that answer is no longer kept, with an error that says so, never silence.
// Only ids of the cross-replica form `<rid>.<n>` are looked at: they are unique, where other gateways
// reuse ids.

import {
  ErrorCode,
  errorResponse,
  type JsonRpcId,
  type MessageFacts,
} from "../protocol/jsonrpc.ts";
import { CROSS_ID } from "../protocol/cross_replica_id.ts";
import { formatByteSize } from "../util/byte_size.ts";
import { logger } from "../util/log.ts";
import { KeptAnswers } from "./kept_answers.ts";

const log = logger("connect");

/** How many ids of answered calls are remembered per server by default, and at most how many in flight. */
export const REMEMBERED_IDS = 10_000;

/** Options of {@link RepeatedRequests}. */
export interface RepeatedRequestsOptions {
  /**
   * Ids remembered (answered, and in flight, each), oldest forgotten first; default {@link REMEMBERED_IDS}
   * (`--max-repeat-ids`).
   */
  limit?: number;
  /** Where answers are kept for repeats, shared by a connect's servers; default a store of its own. */
  answers?: KeptAnswers;
  /**
   * Sends `text` as the answer of a repeated request again (the kept answer, or an error saying it is no
   * longer kept), in a fresh frame on the current link: its holder routes it to the origin by the id.
   */
  answerAgain?: (text: string, about: { id: string; clientSession?: string | undefined }) => void;
  /** Counts a repeat. */
  onRepeat?: (id: string) => void;
}

/**
 * The cross-replica requests of one server seen in flight or answered lately, and their kept answers.
 *
 * @example
 * ```ts
 * import { RepeatedRequests } from "./repeated_requests.ts";
 * const sent: string[] = [];
 * const seen = new RepeatedRequests({ answerAgain: (text) => sent.push(text) });
 * const call = { kind: "request", id: "r1.7", method: "tools/call" } as const;
 * seen.repeats(call); // false: runs
 * seen.repeats(call); // true: in flight, dropped
 * seen.answered("r1.7", '{"jsonrpc":"2.0","id":"r1.7","result":{}}');
 * seen.repeats(call); // true: answered again, the text is in `sent`
 * ```
 */
export class RepeatedRequests {
  readonly #inFlight = new Set<string>();
  readonly #answered = new Set<string>();
  readonly #limit: number;
  readonly #answers: KeptAnswers;
  readonly #space: number;
  readonly #onRepeat: ((id: string) => void) | undefined;
  readonly #answerAgain: RepeatedRequestsOptions["answerAgain"];

  constructor(options: RepeatedRequestsOptions = {}) {
    const { limit = REMEMBERED_IDS } = options;
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new RangeError(
        `Cannot remember requests as 'limit' must be a positive integer: current value is ${limit}`,
      );
    }
    this.#limit = limit;
    this.#answers = options.answers ?? new KeptAnswers();
    this.#space = this.#answers.space();
    this.#onRepeat = options.onRepeat;
    this.#answerAgain = options.answerAgain;
  }

  /**
   * True when `facts` are those of a cross-replica request in flight or answered lately: it must not
   * reach the server again. One answered is answered again (`answerAgain`); one in flight is dropped.
   * Otherwise a cross-replica request is remembered as in flight. `clientSession`: a per-client server's
   * MCP client session the request came in, to answer it in.
   */
  repeats(facts: MessageFacts | "batch", clientSession?: string): boolean {
    if (facts === "batch" || facts.kind !== "request") return false;
    const id = facts.id;
    if (typeof id !== "string" || !CROSS_ID.test(id)) return false;
    if (this.#inFlight.has(id)) {
      this.#onRepeat?.(id);
      log.debug("Dropped request {id}: it is in flight at the server", {
        event: "repeated_request",
        id,
        outcome: "dropped",
      });
      return true;
    }
    if (!this.#answered.has(id)) {
      this.#remember(this.#inFlight, id);
      return false;
    }
    this.#onRepeat?.(id);
    const text = this.#answers.get(this.#space, id);
    if (text !== undefined) {
      log.info("Answered request {id} again: it ran once and its answer was sent before", {
        event: "repeated_request",
        id,
        outcome: "answered_again",
      });
      this.#answerAgain?.(text, { id, clientSession });
      return true;
    }
    const bound = formatByteSize(this.#answers.maxBytes);
    log.warning(
      "Answered request {id} with an error: it ran once, and its answer is no longer kept to send again (--max-repeat-answer-bytes {bound})",
      { event: "repeated_request", id, outcome: "answer_lost", bound },
    );
    const error = errorResponse(
      id,
      ErrorCode.TunnelUnavailable,
      `The call '${facts.method}' ran once at the MCP server, but its answer was lost with the gateway replica that held the link, and connect no longer keeps it to send again: raise --max-repeat-answer-bytes (now ${bound}) on connect to keep more answers`,
    );
    this.#answerAgain?.(JSON.stringify(error), { id, clientSession });
    return true;
  }

  /**
   * The call `id` was answered (by its server, or by connect with an error) with `text`, which is kept
   * for a repeat within the store's bound.
   */
  answered(id: JsonRpcId | null | undefined, text?: string, bytes?: number): void {
    if (typeof id !== "string" || !this.#inFlight.delete(id)) return;
    this.#remember(this.#answered, id);
    if (text !== undefined) this.#answers.keep(this.#space, id, text, bytes);
  }

  #remember(ids: Set<string>, id: string): void {
    ids.add(id);
    if (ids.size <= this.#limit) return;
    // Sets iterate in insertion order: the first is the oldest.
    const oldest = ids.values().next().value!;
    ids.delete(oldest);
    if (ids === this.#answered) this.#answers.forget(this.#space, oldest);
  }
}
