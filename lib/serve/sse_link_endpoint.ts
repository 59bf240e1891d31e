// serve's SSE link endpoints, for networks where WebSocket cannot pass: `GET <base>/reverse-proxy/sse` opens
// a link whose frames to the client travel on the response, `POST <base>/reverse-proxy/sse/<id>` takes the
// client's frames for it. A stream is admitted as a WebSocket upgrade is (token, owner limits); every POST
// proves the same owner again. The link itself is a TunnelLink over an SsePeerSocket.

import { SSE_BATCH_BYTES, SSE_LINK_SEGMENT, SSE_POST_SEQ_HEADER } from "../protocol/sse_link.ts";
import { logger } from "../util/log.ts";
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
  grant(request: Request): Promise<LinkGrant | Response>;
  /** The identity of a POST's token if it may connect, else the 401/403 to send. */
  authorize(request: Request): Promise<Identity | Response>;
  /** Largest frame, in bytes; a POST body may hold this plus {@link SSE_BATCH_BYTES}. */
  maxFrameBytes: number;
  /** Comment line interval, in milliseconds. Default {@link SSE_LINK_DEFAULTS}. */
  keepaliveMs?: number;
  metrics?: ServeMetrics;
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
  async handle(request: Request, rest: readonly string[]): Promise<Response> {
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

  async #open(request: Request): Promise<Response> {
    const grant = await this.#options.grant(request);
    if (grant instanceof Response) return grant;
    const id = crypto.randomUUID();
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

  async #post(request: Request, id: string): Promise<Response> {
    const { authorize, metrics } = this.#options;
    const identity = await authorize(request);
    if (identity instanceof Response) {
      metrics?.errors.inc("auth");
      await request.body?.cancel();
      return identity;
    }
    const socket = this.#sockets.get(id);
    if (socket === undefined) {
      return error(404, "No such SSE link: it closed, or the id is wrong; open a new stream");
    }
    if (socket.owner !== identity.owner) {
      log.debug("Refused a POST to link {link} by another owner", {
        event: "link_refused",
        link: id,
      });
      metrics?.errors.inc("auth");
      return error(403, "This link belongs to another owner");
    }
    const seqText = request.headers.get(SSE_POST_SEQ_HEADER) ?? "";
    const seq = Number(seqText);
    if (!/^\d{1,15}$/.test(seqText)) {
      return error(
        400,
        `Missing or malformed ${SSE_POST_SEQ_HEADER} header: give the POST's number`,
      );
    }
    if (!socket.startPost()) {
      return error(
        409,
        "A POST for this link is still being read: send the next when it is answered",
      );
    }
    try {
      return await this.#take(request, socket, seq);
    } finally {
      socket.endPost();
    }
  }

  /** Reads a POST's body (charged to the owner's memory share meanwhile) and hands its frames on. */
  async #take(request: Request, socket: SsePeerSocket, seq: number): Promise<Response> {
    const { maxFrameBytes, metrics } = this.#options;
    const limit = maxFrameBytes + SSE_BATCH_BYTES;
    const declared = Number(request.headers.get("content-length") ?? Number.NaN);
    // Held while read, as a WebSocket frame is: the declared size, else as much as may come.
    const held = Number.isFinite(declared) ? Math.min(declared, limit + 1) : limit;
    if (!socket.admitBody(held, maxFrameBytes)) {
      metrics?.errors.inc("memory");
      await request.body?.cancel();
      return error(503, "The memory share of this link's owner is used up: retry later", {
        "retry-after": "1",
      });
    }
    let bytes: Uint8Array;
    try {
      bytes = await readBody(request, limit);
    } catch (cause) {
      // Too slow: the listener answers 408. Cut off: nothing was taken, the client may send it again.
      if (cause instanceof RequestBodyTimeoutError) throw cause;
      if (!(cause instanceof BodyTooLargeError)) return error(400, "The body was cut off");
      metrics?.errors.inc("protocol");
      socket.refuseTooLarge(cause.bytes, maxFrameBytes);
      return error(413, `${cause.message}: frames over --max-frame-bytes are refused`);
    }
    let body: string;
    try {
      body = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      metrics?.errors.inc("protocol");
      socket.close(1007, "frames must be UTF-8 text");
      return error(400, "The body is not UTF-8 text: frames are JSON");
    }
    const outcome = socket.receive(seq, body);
    if (outcome === "closed") return error(404, "The SSE link closed");
    if (outcome === "gap") {
      return error(409, `POST ${seq} skipped ${socket.nextPost}: the link is closed`);
    }
    return new Response(null, { status: 202 });
  }
}
