// What one HTTP exchange holds for its owner, charged to the owner's memory share: a request body while
// it is read and handled (a client may send many large ones at once), and a whole answer (plain JSON)
// until its client has taken it (a client that never reads would hold it for as long as its connection
// lasts). Past the share the request is refused, or the answer replaced by a short refusal (503).

import type { Charge, MemoryBudget } from "./memory_budget.ts";
import type { HttpRequest } from "./http_request.ts";
import { rpcError } from "./mcp_http.ts";
import { logger } from "../util/log.ts";
import { heldBackText, LogThrottle } from "../util/log_throttle.ts";

const log = logger("serve", "http");

/** Answers up to this size are not charged: a connection's kernel buffers hold as much. */
export const UNCHARGED_BYTES = 64 * 1024;
/**
 * Bodies up to this size are not charged: what a small one becomes is charged where it is kept (a replay
 * buffer, a queued call), and counting it twice would refuse calls that fit.
 */
export const UNCHARGED_BODY_BYTES = 1024 * 1024;

/** Refusals are many when a client keeps asking: one line per interval, with a count. */
const refusals = new LogThrottle({ intervalMs: 10_000 });

/** What holding an answer of some size comes to: its charge, or the answer to send instead. */
export type AnswerHold = { charge: Charge } | { refusal: Response };

const holders = new WeakMap<Response, (bytes: number) => AnswerHold>();

/** Who an exchange is for and where its memory is charged. */
export interface ExchangeOwner {
  budget: MemoryBudget;
  owner: string;
  /** The largest body taken (`--max-frame-bytes`): what a body of undeclared length is charged. */
  maxBodyBytes: number;
}

/**
 * Runs `handle` with the request's body charged to the owner (its declared length, else the largest body
 * taken) until it is handled (a call's message is held until it is answered), and marks its answer to be charged
 * while it is written ({@link holdAnswer}). A body the owner's share cannot hold is refused with 503
 * before it is read.
 */
export async function chargedExchange(
  request: HttpRequest,
  who: ExchangeOwner,
  handle: () => Promise<Response>,
): Promise<Response> {
  const { budget, owner, maxBodyBytes } = who;
  let charge: Charge | undefined;
  if (request.method === "POST") {
    const declared = request.headers.get("content-length");
    const bytes = declared === null ? maxBodyBytes : Math.min(Number(declared) || 0, maxBodyBytes);
    if (bytes > UNCHARGED_BODY_BYTES) {
      charge = budget.charge(owner, { what: "request body" });
      if (!charge.resize(bytes)) {
        charge.release();
        return refusal("A request body", bytes, owner);
      }
    }
  }
  try {
    return markAnswer(await handle(), budget, owner);
  } finally {
    charge?.release();
  }
}

/** Marks `response` to be charged to `owner` while it is written, past {@link UNCHARGED_BYTES}. */
function markAnswer(response: Response, budget: MemoryBudget, owner: string): Response {
  holders.set(response, (bytes) => {
    const charge = budget.charge(owner, { what: "answer being written" });
    if (charge.resize(bytes)) return { charge };
    charge.release();
    return { refusal: refusal("The answer", bytes, owner) };
  });
  return response;
}

/** How to hold `response` of `bytes` while it is written; undefined when it is not charged. */
export function holdAnswer(response: Response, bytes: number): AnswerHold | undefined {
  if (bytes <= UNCHARGED_BYTES) return undefined;
  return holders.get(response)?.(bytes);
}

function refusal(what: string, bytes: number, owner: string): Response {
  const suppressed = refusals.take();
  if (suppressed !== undefined) {
    log.warning(
      "Refused {what} of {bytes} bytes for {owner}: its memory share is full (answers its clients have not read, bodies being read){more}",
      {
        event: "memory_refused",
        what: what.toLowerCase(),
        owner,
        bytes,
        more: heldBackText(suppressed, "the last line"),
      },
    );
  }
  const message =
    `${what} of ${bytes} bytes does not fit in the memory share of owner ${owner} (--memory-per-owner) while earlier answers wait for their clients to read them; read them, or retry later`;
  return rpcError(503, null, -32000, message, { "retry-after": "1" });
}
