// serve's SSE link endpoints, for networks where WebSocket cannot pass: `GET <base>/reverse-proxy/sse` opens
// a link whose frames to the client travel on the response, `POST <base>/reverse-proxy/sse/<id>` takes the
// client's frames for it. A stream is admitted as a WebSocket upgrade is (token, owner limits); every POST
// proves the same owner again. The link itself is a TunnelLink over an SsePeerSocket.

import type { HttpRequest } from "./http_request.ts";
import { SSE_BATCH_BYTES, SSE_LINK_SEGMENT, SSE_POST_SEQ_HEADER } from "../protocol/sse_link.ts";
import { logger } from "../util/log.ts";
import type { MemoryBudget } from "./memory_budget.ts";
import type { ServeMetrics } from "./metrics.ts";
import type { WebSocketAccept } from "./peer_socket.ts";
import { BodyTooLargeError, readBody, RequestBodyTimeoutError } from "./request_body.ts";
import { SsePeerSocket } from "./sse_peer_socket.ts";
import { SSE_HEADERS } from "./sse_stream.ts";
import type { Identity } from "./token_store.ts";

const log = logger("serve", "link");

/** Defaults of the SSE link. */
export const SSE_LINK_DEFAULTS = {
  /** A comment line on the stream at least this often (`--sse-link-keepalive`). */
  keepaliveMs: 15_000,
} as const;

/** Admission of one stream: its token's identity, and how to admit the socket as a link. */
export interface LinkGrant extends WebSocketAccept {
  identity: Identity;
}

/** Options of {@link SseLinkEndpoint}. */
export interface SseLinkEndpointOptions {
  /** Admits a stream as the WebSocket endpoint admits an upgrade: a grant, or the refusal to send. */
  grant(request: HttpRequest): Promise<LinkGrant | Response>;
  /** The identity of a POST's token if it may connect, else the 401/403 to send. */
  authorize(request: HttpRequest): Promise<Identity | Response>;
  /** Largest frame, in bytes; a POST body may hold this plus {@link SSE_BATCH_BYTES}. */
  maxFrameBytes: number;
  /** Comment line interval, in milliseconds. Default {@link SSE_LINK_DEFAULTS}. */
  keepaliveMs?: number;
  metrics?: ServeMetrics;
  /** Where a POST for a link another replica holds is charged while read, against its owner's share. */
  budget?: MemoryBudget;
  /** Replicas: this replica's id (in the link ids it mints), and the way to the others' links. */
  replica?: SseLinkReplica;
}

/** A POST of an SSE link, read on the replica it landed on, for the replica holding the link's stream. */
export interface LinkPost {
  link: string;
  owner: string;
  seq: number;
  /** UTF-8 bytes of `body`. */
  bytes: number;
  /** The frames, one per line; absent when the body was refused: over the limit (`tooLarge`), or not UTF-8. */
  body?: string;
  tooLarge?: number;
}

/** The holder's answer to a {@link LinkPost}: the HTTP status, and the error's message. */
export interface LinkPostAnswer {
  status: number;
  error?: string;
}

/** How the SSE link endpoint of a replica reaches the links whose streams the others hold. */
export interface SseLinkReplica {
  id: string;
  /** Hands a POST to the replica holding its link; resolves with that replica's answer. */
  forward(rid: string, post: LinkPost): Promise<LinkPostAnswer>;
}

function error(status: number, message: string, headers: Record<string, string> = {}): Response {
  return Response.json({ error: message }, { status, headers });
}

/**
 * The SSE link endpoints. `handle` answers every request under `<base>/reverse-proxy/sse`.
 *
 * @example
 * ```ts ignore
 * const sse = new SseLinkEndpoint({ grant, authorize, maxFrameBytes: 32 * 1024 * 1024 });
 * return await sse.handle(request, segmentsAfterSse);
 * ```
 */
export class SseLinkEndpoint {
  #options: SseLinkEndpointOptions;
  #keepaliveMs: number;
  #sockets = new Map<string, SsePeerSocket>();

  constructor(options: SseLinkEndpointOptions) {
    const keepaliveMs = options.keepaliveMs ?? SSE_LINK_DEFAULTS.keepaliveMs;
    if (!Number.isFinite(keepaliveMs) || keepaliveMs <= 0) {
      throw new RangeError(
        `Cannot serve SSE links as 'keepaliveMs' must be a positive number: current value is ${keepaliveMs}`,
      );
    }
    this.#options = options;
    this.#keepaliveMs = keepaliveMs;
  }

  /** SSE links open now. */
  get size(): number {
    return this.#sockets.size;
  }

  /** Answers a request whose path continues with `rest` after `/reverse-proxy/sse`. */
  async handle(request: HttpRequest, rest: readonly string[]): Promise<Response> {
    if (rest.length === 0) {
      if (request.method !== "GET") {
        return error(405, "Open the SSE link with GET", { allow: "GET" });
      }
      return await this.#open(request);
    }
    if (rest.length === 1) {
      if (request.method !== "POST") {
        return error(405, "Send frames with POST", { allow: "POST" });
      }
      return await this.#post(request, rest[0]!);
    }
    return error(404, "Not found");
  }

  async #open(request: HttpRequest): Promise<Response> {
    const grant = await this.#options.grant(request);
    if (grant instanceof Response) return grant;
    // A replica names itself in the id: a POST that lands on another replica is handed to this one.
    const replica = this.#options.replica;
    const id = replica === undefined ? crypto.randomUUID() : `${replica.id}.${crypto.randomUUID()}`;
    const socket = new SsePeerSocket({
      id,
      owner: grant.identity.owner,
      // Relative to the stream's URL (`…/reverse-proxy/sse`), so that a proxy's path prefix is kept.
      endpoint: `${SSE_LINK_SEGMENT}/${id}`,
      keepaliveMs: this.#keepaliveMs,
    });
    this.#sockets.set(id, socket);
    void socket.closed.then(() => this.#sockets.delete(id));
    grant.accept(socket);
    return new Response(socket.readable, { headers: SSE_HEADERS });
  }

  async #post(request: HttpRequest, id: string): Promise<Response> {
    const { authorize, metrics, replica } = this.#options;
    const identity = await authorize(request);
    if (identity instanceof Response) {
      metrics?.errors.inc("auth");
      await request.body?.cancel();
      return identity;
    }
    const socket = this.#sockets.get(id);
    const holder = socket === undefined ? REPLICA_LINK.exec(id)?.[1] : undefined;
    if (replica !== undefined && holder !== undefined && holder !== replica.id) {
      // The link's stream is on another replica (its id names it): the POST is handed to that one.
      return await this.#forward(request, { identity, id, holder, replica });
    }
    if (socket === undefined) {
      await request.body?.cancel();
      return error(404, NO_SUCH_LINK);
    }
    if (socket.owner !== identity.owner) {
      await request.body?.cancel();
      return answer(this.#wrongOwner(id));
    }
    const seq = seqOf(request);
    if (seq instanceof Response) return seq;
    if (!socket.startPost()) return answer(BUSY);
    try {
      const { maxFrameBytes } = this.#options;
      if (!socket.admitBody(declared(request, maxFrameBytes), maxFrameBytes)) {
        metrics?.errors.inc("memory");
        await request.body?.cancel();
        return answer(MEMORY);
      }
      const read = await this.#read(request);
      if (read instanceof Response) return read;
      return answer(this.#hand(socket, seq, read));
    } finally {
      socket.endPost();
    }
  }

  /**
   * A POST another replica took for a link whose stream is here, checked as a local one: the link, its
   * owner, one POST at a time, the owner's memory share, the POST's number.
   */
  forwarded(post: LinkPost): LinkPostAnswer {
    const socket = this.#sockets.get(post.link);
    if (socket === undefined) return { status: 404, error: NO_SUCH_LINK };
    if (socket.owner !== post.owner) return this.#wrongOwner(post.link);
    if (!socket.startPost()) return BUSY;
    try {
      const { maxFrameBytes, metrics } = this.#options;
      if (post.body !== undefined && !socket.admitBody(post.bytes, maxFrameBytes)) {
        metrics?.errors.inc("memory");
        return MEMORY;
      }
      return this.#hand(socket, post.seq, post);
    } finally {
      socket.endPost();
    }
  }

  /** Reads a POST for a link another replica holds (charged here meanwhile) and forwards it there. */
  async #forward(
    request: HttpRequest,
    to: { identity: Identity; id: string; holder: string; replica: SseLinkReplica },
  ): Promise<Response> {
    const { budget, maxFrameBytes, metrics } = this.#options;
    const seq = seqOf(request);
    if (seq instanceof Response) return seq;
    const charge = budget?.charge(to.identity.owner, { what: "forwarded SSE link POST" });
    try {
      if (charge !== undefined && !charge.resize(declared(request, maxFrameBytes))) {
        metrics?.errors.inc("memory");
        await request.body?.cancel();
        return answer(MEMORY);
      }
      const read = await this.#read(request);
      if (read instanceof Response) return read;
      charge?.resize(read.bytes);
      const post: LinkPost = { link: to.id, owner: to.identity.owner, seq, ...read };
      return answer(await to.replica.forward(to.holder, post));
    } finally {
      charge?.release();
    }
  }

  /** Reads a POST's body, up to the frame limit plus a batch: its text, or why it is refused. */
  async #read(request: HttpRequest): Promise<ReadPost | Response> {
    const limit = this.#options.maxFrameBytes + SSE_BATCH_BYTES;
    let bytes: Uint8Array;
    try {
      bytes = await readBody(request, limit);
    } catch (cause) {
      // Too slow: the listener answers 408. Cut off: nothing was taken, the client may send it again.
      if (cause instanceof RequestBodyTimeoutError) throw cause;
      if (!(cause instanceof BodyTooLargeError)) return error(400, "The body was cut off");
      return { bytes: 0, tooLarge: cause.bytes };
    }
    try {
      return {
        bytes: bytes.byteLength,
        body: new TextDecoder("utf-8", { fatal: true }).decode(bytes),
      };
    } catch {
      return { bytes: 0 };
    }
  }

  /** Hands a POST's frames to its link (or refuses them as the link's protocol says). */
  #hand(socket: SsePeerSocket, seq: number, read: ReadPost): LinkPostAnswer {
    const { maxFrameBytes, metrics } = this.#options;
    if (read.tooLarge !== undefined) {
      metrics?.errors.inc("protocol");
      socket.refuseTooLarge(read.tooLarge, maxFrameBytes);
      const limit = maxFrameBytes + SSE_BATCH_BYTES;
      return {
        status: 413,
        error:
          `Body of ${read.tooLarge} bytes exceeds the limit of ${limit}: frames over --max-frame-bytes are refused`,
      };
    }
    if (read.body === undefined) {
      metrics?.errors.inc("protocol");
      socket.close(1007, "frames must be UTF-8 text");
      return { status: 400, error: "The body is not UTF-8 text: frames are JSON" };
    }
    const outcome = socket.receive(seq, read.body);
    if (outcome === "closed") return { status: 404, error: "The SSE link closed" };
    if (outcome === "gap") {
      return { status: 409, error: `POST ${seq} skipped ${socket.nextPost}: the link is closed` };
    }
    return { status: 202 };
  }

  #wrongOwner(id: string): LinkPostAnswer {
    log.debug("Refused a POST to link {link} by another owner", {
      event: "link_refused",
      link: id,
    });
    this.#options.metrics?.errors.inc("auth");
    return { status: 403, error: "This link belongs to another owner" };
  }
}

/** A link id minted by a replica: `<rid>.<uuid>`, so that a POST landing on any replica finds its stream. */
const REPLICA_LINK = /^([A-Za-z0-9_-]{1,64})\.[0-9a-f-]{36}$/;

const NO_SUCH_LINK = "No such SSE link: it closed, or the id is wrong; open a new stream";
const BUSY: LinkPostAnswer = {
  status: 409,
  error: "A POST for this link is still being read: send the next when it is answered",
};
const MEMORY: LinkPostAnswer = {
  status: 503,
  error: "The memory share of this link's owner is used up: retry later",
};

/** A POST's body as read: its text, or why it was refused (over the limit; else, not UTF-8). */
interface ReadPost {
  /** UTF-8 bytes of `body`. */
  bytes: number;
  body?: string;
  tooLarge?: number;
}

/** The number a POST carries in its header, or the 400 to answer. */
function seqOf(request: HttpRequest): number | Response {
  const text = request.headers.get(SSE_POST_SEQ_HEADER) ?? "";
  if (/^\d{1,15}$/.test(text)) return Number(text);
  return error(400, `Missing or malformed ${SSE_POST_SEQ_HEADER} header: give the POST's number`);
}

/** What a POST body is charged while read, as a WebSocket frame is: its declared size, else the most. */
function declared(request: HttpRequest, maxFrameBytes: number): number {
  const limit = maxFrameBytes + SSE_BATCH_BYTES;
  const size = Number(request.headers.get("content-length") ?? Number.NaN);
  return Number.isFinite(size) ? Math.min(size, limit + 1) : limit;
}

function answer(outcome: LinkPostAnswer): Response {
  if (outcome.status === 202) return new Response(null, { status: 202 });
  return error(outcome.status, outcome.error ?? `HTTP ${outcome.status}`, {
    ...(outcome.status === 503 ? { "retry-after": "1" } : {}),
  });
}
