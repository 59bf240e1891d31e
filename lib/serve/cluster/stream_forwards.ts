// Requests that belong to a stream another replica holds, handed to that replica's inbox and answered from
// it: a legacy SSE POST, an SSE link's POST. One table of requests waiting for their answer, each bounded
// by a deadline; the holder's answer is a text its asker reads (a status, or a status and its message).

import type { LegacyForward, LegacyReplica } from "../legacy_sse.ts";
import type { LinkPost, LinkPostAnswer, SseLinkReplica } from "../sse_link_endpoint.ts";
import type { Cluster } from "./cluster.ts";
import type { Envelope, EnvelopeKind } from "./envelope.ts";

/** What a forwarded request is: counted by it in `mcp_rproxy_stream_forwards_total{what}`. */
export type ForwardWhat = "legacy_post" | "link_post" | "resume";

/** The envelope kind of each forwarded request; every answer comes back as `forward_answer`. */
const KIND: Record<ForwardWhat, EnvelopeKind> = {
  legacy_post: "forward",
  link_post: "link_post",
  resume: "resume",
};

/** The outcome of {@link StreamForwards.ask}. */
export type ForwardOutcome =
  | { ok: true; answer: string }
  /** `gone`: the holder has no inbox (it is gone) or Redis refused; `timeout`: no answer in time. */
  | { ok: false; why: "gone" | "timeout" };

/** Options of {@link StreamForwards.ask}. */
export interface ForwardRequest {
  what: ForwardWhat;
  /** The replica holding the stream. */
  target: string;
  /** The stream's id (a link id, a session id), for the holder's logs. */
  sid: string;
  payload: string;
  /**
   * How long to wait for the answer, in ms; past it the holder drops the request too. Default
   * `--cluster-forward-timeout` ({@link StreamForwards.timeoutMs}).
   */
  timeoutMs?: number;
  /** The request's id, when the asker needs it before the answer ({@link StreamForwards.newId}). */
  id?: string;
}

/**
 * Forwards requests to the replica holding their stream and serves those forwarded here.
 *
 * @example
 * ```ts ignore
 * const forwards = new StreamForwards(cluster);
 * forwards.serve("link_post", (envelope) => holderSide(envelope.payload));
 * const outcome = await forwards.ask({ what: "link_post", target: "r2", sid, payload });
 * ```
 */
export class StreamForwards {
  readonly #cluster: Cluster;
  readonly #waiting = new Map<string, (outcome: ForwardOutcome) => void>();
  #next = 1;

  constructor(cluster: Cluster) {
    this.#cluster = cluster;
    cluster.on("forward_answer", (envelope) => {
      this.#waiting.get(envelope.id)?.({ ok: true, answer: envelope.payload });
    });
  }

  /** How long a forwarded request waits for its holder by default (`--cluster-forward-timeout`), in ms. */
  get timeoutMs(): number {
    return this.#cluster.settings.forwardTimeoutMs;
  }

  /** Why a forwarded request got no answer in time, naming the flag that bounds the wait. */
  timedOut(holder: string): string {
    return `${holder} did not answer within ${this.timeoutMs / 1000} s (--cluster-forward-timeout)`;
  }

  /** Requests waiting for their holder's answer. */
  get waiting(): number {
    return this.#waiting.size;
  }

  /** A new request id, unique on this replica. */
  newId(): string {
    return `${this.#cluster.replicaId}.f${this.#next++}`;
  }

  /** Sends `request` to its holder and resolves with the answer, or why there is none. */
  ask(request: ForwardRequest): Promise<ForwardOutcome> {
    const cluster = this.#cluster;
    const id = request.id ?? this.newId();
    cluster.metrics?.streamForwards.inc(request.what);
    const timeoutMs = request.timeoutMs ?? this.timeoutMs;
    return new Promise<ForwardOutcome>((resolve) => {
      const timer = setTimeout(() => done({ ok: false, why: "timeout" }), timeoutMs);
      const done = (outcome: ForwardOutcome) => {
        clearTimeout(timer);
        if (this.#waiting.delete(id)) resolve(outcome);
      };
      this.#waiting.set(id, done);
      cluster.inbox.send({
        kind: KIND[request.what],
        target: request.target,
        deadline: Date.now() + timeoutMs,
        generation: 0,
        sid: request.sid,
        id,
        payload: request.payload,
      }).catch(() => done({ ok: false, why: "gone" }));
    });
  }

  /**
   * Serves the requests of `what` forwarded here: `handle` gets the payload and resolves with the answer.
   * A request whose deadline passed is dropped: its asker answered its client already.
   */
  serve(what: ForwardWhat, handle: (payload: string, envelope: Envelope) => Promise<string>): void {
    const cluster = this.#cluster;
    cluster.on(KIND[what], (envelope) => {
      if (envelope.deadline !== 0 && envelope.deadline < Date.now()) return;
      void handle(envelope.payload, envelope).then((answer) =>
        cluster.inbox.send({
          kind: "forward_answer",
          target: envelope.origin,
          deadline: 0,
          generation: 0,
          sid: envelope.sid,
          id: envelope.id,
          payload: answer,
        }).catch(() => {}) // an asker gone has no one to answer
      );
    });
  }

  /**
   * The legacy transport's way to the others: a POST for a session whose connection another replica
   * holds goes there and comes back with its HTTP status: 404 when that replica is gone (the session
   * with it), 504 naming `--cluster-forward-timeout` when it does not answer in time.
   */
  legacyReplica(): LegacyReplica {
    return {
      id: this.#cluster.replicaId,
      forward: async (rid, post) => {
        const outcome = await this.ask({
          what: "legacy_post",
          target: rid,
          sid: post.sessionId,
          payload: JSON.stringify(post),
        });
        if (outcome.ok) return { status: Number(outcome.answer) || 404 };
        // Gone: its session went with it (404, open a new one); silent: say so, naming the bound.
        return outcome.why === "timeout"
          ? { status: 504, error: this.timedOut(`Replica ${rid} holding this session's stream`) }
          : { status: 404 };
      },
    };
  }

  /** Serves legacy POSTs forwarded here: `deliver` answers with the HTTP status. */
  serveLegacy(deliver: (post: LegacyForward) => Promise<number>): void {
    this.serve("legacy_post", async (payload) => {
      let post: LegacyForward;
      try {
        post = JSON.parse(payload) as LegacyForward;
      } catch {
        return "400";
      }
      return String(await deliver(post));
    });
  }

  /**
   * The SSE link endpoint's way to the others: a POST for a link whose stream another replica holds goes
   * there and comes back with that replica's answer. A replica gone means the link is gone (404); one that
   * does not answer in time, 504 (connect then dials a new link either way).
   */
  linkReplica(): SseLinkReplica {
    return {
      id: this.#cluster.replicaId,
      forward: async (rid, post) => {
        const outcome = await this.ask({
          what: "link_post",
          target: rid,
          sid: post.link,
          payload: encodeLinkPost(post),
        });
        if (outcome.ok) return decodeAnswer(outcome.answer);
        return outcome.why === "gone"
          ? {
            status: 404,
            error: `No such SSE link: replica ${rid} holding it is gone; open a new stream`,
          }
          : { status: 504, error: this.timedOut(`Replica ${rid} holding this SSE link`) };
      },
    };
  }

  /** Serves SSE link POSTs forwarded here: `take` checks and hands them to their link. */
  serveLinks(take: (post: LinkPost) => LinkPostAnswer): void {
    this.serve("link_post", (payload) => {
      const post = decodeLinkPost(payload);
      const answer = post === undefined
        ? { status: 400, error: "A malformed forwarded POST" }
        : take(post);
      return Promise.resolve(JSON.stringify(answer));
    });
  }
}

/**
 * A forwarded link POST: its facts as one line of JSON, then its body as it came (frames are not escaped
 * again: a body may be tens of MiB).
 */
export function encodeLinkPost(post: LinkPost): string {
  const { body, ...facts } = post;
  return `${JSON.stringify({ ...facts, text: body !== undefined })}\n${body ?? ""}`;
}

/** Reads {@link encodeLinkPost}'s text back; undefined when it is not one. */
export function decodeLinkPost(payload: string): LinkPost | undefined {
  const newline = payload.indexOf("\n");
  if (newline < 0) return undefined;
  let facts: Record<string, unknown>;
  try {
    facts = JSON.parse(payload.slice(0, newline)) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const { link, owner, seq, bytes, tooLarge, text } = facts;
  if (typeof link !== "string" || typeof owner !== "string") return undefined;
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(bytes)) return undefined;
  const post: LinkPost = { link, owner, seq: seq as number, bytes: bytes as number };
  if (text === true) post.body = payload.slice(newline + 1);
  if (Number.isSafeInteger(tooLarge)) post.tooLarge = tooLarge as number;
  return post;
}

function decodeAnswer(text: string): LinkPostAnswer {
  try {
    const { status, error } = JSON.parse(text) as { status?: unknown; error?: unknown };
    if (Number.isInteger(status)) {
      return typeof error === "string"
        ? { status: status as number, error }
        : { status: status as number };
    }
  } catch {
    // Not an answer: said below.
  }
  return { status: 502, error: "The replica holding this SSE link answered something unreadable" };
}
