// node:http's request as the `HttpRequest` serve's handlers read: headers straight from node's parsed
// object, the URL, signal and body stream built only when asked for, and a body read whole without a
// stream in between (the MCP POST path). The body is held to a minimum arrival rate on a shared tick.

import type { IncomingMessage } from "node:http";
import type { HttpRequest } from "../http_request.ts";
import { RequestBodyTimeoutError } from "../request_body.ts";
import type { BodyDeadlines, Watched } from "./body_deadlines.ts";

/** A minimum arrival rate for request bodies, as Apache's mod_reqtimeout words it (`body=10,MinRate=1024`). */
export interface BodyRate {
  /** Time a body gets before the rate applies, in milliseconds. */
  graceMs: number;
  /** After the grace, each further second must be paid for with this many bytes. */
  minBytesPerSecond: number;
}

/** Options of {@link NodeRequest}. */
export interface NodeRequestOptions {
  /** `http` or `https`. */
  scheme: string;
  /** `host:port` of the listener, for a request whose `Host` header is absent or odd. */
  fallbackHost: string;
  /** Minimum body arrival rate, checked on `deadlines`' tick; undefined = none. */
  bodyRate?: { rate: BodyRate; deadlines: BodyDeadlines };
  /** The body stopped arriving fast enough: answer 408 and drop the connection. */
  onBodyTimeout?: (error: RequestBodyTimeoutError) => void;
  /**
   * Becomes the request's `signal` when it is read: it must abort when the client goes away before its
   * answer was written (the MCP endpoint cancels a call answered as plain JSON then), and only then.
   */
  clientGone?: () => AbortSignal;
}

/** Bytes of request body queued for a handler that has not read them, before the socket is paused. */
const BODY_HIGH_WATER_MARK = 64 * 1024;

/** A request's origin comes from its `Host` header when that is a plain host[:port]. */
const PLAIN_HOST = /^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/;

/**
 * A path that the URL parser would return unchanged: no percent-encoding, no dot segments, no character
 * it would escape or rewrite. Any other path is read through `new URL` (which normalizes it).
 */
const PLAIN_PATH = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*$/;
const DOT_SEGMENT = /\/\.\.?(?:\/|$)/;

/** Headers as node parsed them (names lower-case, repeated ones joined), read like Web `Headers`. */
class NodeHeaders {
  #headers: IncomingMessage["headers"];

  constructor(headers: IncomingMessage["headers"]) {
    this.#headers = headers;
  }

  get(name: string): string | null {
    const value = this.#headers[name.toLowerCase()];
    if (value === undefined) return null;
    return typeof value === "string" ? value : value.join(", ");
  }

  has(name: string): boolean {
    return this.#headers[name.toLowerCase()] !== undefined;
  }
}

/** A body being read whole. */
interface WholeBody {
  chunks: Uint8Array[];
  resolve: (body: ArrayBuffer) => void;
  reject: (error: unknown) => void;
}

/**
 * One node:http request as an {@link HttpRequest}.
 *
 * @throws {TypeError} from the constructor when the request target is not a path
 */
export class NodeRequest implements HttpRequest, Watched {
  readonly method: string;
  readonly headers: NodeHeaders;
  #req: IncomingMessage;
  #options: NodeRequestOptions;
  #target: string;
  #url: string | undefined;
  #signal: AbortSignal | undefined;
  #hasBody: boolean;
  #stream: ReadableStream<Uint8Array> | undefined;
  #controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  #whole: WholeBody | undefined;
  #started = performance.now();
  #received = 0;
  /** Time spent paused because the handler did not read: not the client's to pay for. */
  #pausedFor = 0;
  #pausedAt: number | undefined;
  /** The body is settled: read to its end, failed, cancelled, or given up on. */
  #done = false;
  /** Why the body failed, for a reader that comes after. */
  #error: unknown;
  /** Listening to the body's data: the handler asked for it. */
  #reading = false;
  #watching = false;

  constructor(req: IncomingMessage, options: NodeRequestOptions) {
    const target = req.url ?? "/";
    if (!target.startsWith("/")) throw new TypeError("Request target must be a path");
    this.#req = req;
    this.#options = options;
    this.#target = target;
    this.method = req.method ?? "GET";
    this.headers = new NodeHeaders(req.headers);
    const h = req.headers;
    this.#hasBody = this.method !== "GET" && this.method !== "HEAD" &&
      (h["transfer-encoding"] !== undefined ||
        (h["content-length"] !== undefined && h["content-length"] !== "0"));
    if (!this.#hasBody) {
      this.#done = true;
      return;
    }
    // Not read until the handler asks (node pauses the socket when its buffer fills): until then the
    // body counts as paused, which the client does not pay for.
    this.#pausedAt = this.#started;
    req.on("error", (error) => this.#fail(error));
    if (options.bodyRate !== undefined) {
      options.bodyRate.deadlines.watch(this);
      this.#watching = true;
    }
  }

  get url(): string {
    if (this.#url === undefined) {
      const host = this.#req.headers.host;
      const origin = host !== undefined && PLAIN_HOST.test(host)
        ? host
        : this.#options.fallbackHost;
      this.#url = `${this.#options.scheme}://${origin}${this.#target}`;
    }
    return this.#url;
  }

  /** The path, as `new URL(url).pathname` would give it (without parsing when it is plain). */
  get pathname(): string {
    const query = this.#target.indexOf("?");
    const path = query === -1 ? this.#target : this.#target.slice(0, query);
    return PLAIN_PATH.test(path) && !DOT_SEGMENT.test(path) ? path : new URL(this.url).pathname;
  }

  get signal(): AbortSignal {
    return this.#signal ??= this.#options.clientGone?.() ?? new AbortController().signal;
  }

  get body(): ReadableStream<Uint8Array> | null {
    if (!this.#hasBody) return null;
    return this.#stream ??= this.#openStream();
  }

  /** The whole body, read from node's events directly unless its stream was taken already. */
  arrayBuffer(): Promise<ArrayBuffer> {
    if (!this.#hasBody) return Promise.resolve(new ArrayBuffer(0));
    if (this.#stream !== undefined) return new Response(this.#stream).arrayBuffer();
    if (this.#error !== undefined) return Promise.reject(this.#error);
    if (this.#whole !== undefined || this.#done) {
      return Promise.reject(new TypeError("The body was already used"));
    }
    const { promise, resolve, reject } = Promise.withResolvers<ArrayBuffer>();
    this.#whole = { chunks: [], resolve, reject };
    this.#read();
    return promise;
  }

  /** The body's deadline (one shared tick for all bodies): true once it needs no more checks. */
  checkDeadline(now: number): boolean {
    if (this.#done) return true;
    const rate = this.#options.bodyRate!.rate;
    // Time spent paused (the handler not reading) is not the client's to pay for.
    const paused = this.#pausedAt === undefined ? 0 : now - this.#pausedAt;
    const due = this.#started + this.#pausedFor + paused + rate.graceMs +
      (this.#received / rate.minBytesPerSecond) * 1000;
    if (now < due) return false;
    this.#watching = false;
    const error = new RequestBodyTimeoutError({
      bytes: this.#received,
      elapsedMs: Math.round(now - this.#started),
      minBytesPerSecond: rate.minBytesPerSecond,
    });
    this.#fail(error);
    this.#options.onBodyTimeout?.(error);
    return true;
  }

  /** The answer is out: a body nobody read to its end is given up on (the listener lingers on the rest). */
  abandonBody(): void {
    if (this.#done) return;
    this.#fail(new Error("The request was answered before its body was read"));
  }

  /** Stops watching the body's arrival rate. */
  dispose(): void {
    if (!this.#watching) return;
    this.#watching = false;
    this.#options.bodyRate?.deadlines.unwatch(this);
  }

  /** Starts (or resumes) reading the body from the socket. */
  #read(): void {
    if (this.#pausedAt !== undefined) {
      this.#pausedFor += performance.now() - this.#pausedAt;
      this.#pausedAt = undefined;
    }
    if (this.#reading) {
      this.#req.resume();
      return;
    }
    this.#reading = true;
    this.#req.on("data", (chunk: Uint8Array) => this.#onData(chunk));
    this.#req.on("end", () => this.#onEnd());
  }

  #openStream(): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
        if (this.#error !== undefined) controller.error(this.#error);
        else if (this.#done) controller.close();
      },
      pull: () => {
        if (!this.#done) this.#read();
      },
      cancel: () => {
        // The handler wants no more (a body over its limit): stop reading until the answer is out.
        this.#done = true;
        this.dispose();
        this.#req.pause();
      },
    }, { highWaterMark: BODY_HIGH_WATER_MARK, size: (chunk) => chunk.byteLength });
  }

  #onData(chunk: Uint8Array): void {
    if (this.#done) return;
    this.#received += chunk.byteLength;
    const whole = this.#whole;
    if (whole !== undefined) {
      whole.chunks.push(chunk);
      return;
    }
    const controller = this.#controller!;
    controller.enqueue(chunk);
    if ((controller.desiredSize ?? 0) <= 0) {
      this.#pausedAt ??= performance.now();
      this.#req.pause();
    }
  }

  #onEnd(): void {
    if (this.#done) return;
    this.#done = true;
    this.dispose();
    const whole = this.#whole;
    if (whole !== undefined) whole.resolve(joined(whole.chunks, this.#received));
    else this.#controller?.close();
  }

  #fail(error: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#error = error;
    this.dispose();
    if (this.#whole !== undefined) this.#whole.reject(error);
    else if (this.#controller !== undefined) this.#controller.error(error);
  }
}

function joined(chunks: Uint8Array[], total: number): ArrayBuffer {
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out.buffer;
}
