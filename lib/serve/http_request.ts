// What serve's handlers read of an HTTP request. A Web `Request` is one (tests build them); the listener
// hands over a lighter view of node:http's request (http/node_request.ts) that builds only what is read.

/** The parts of a request serve's handlers use: a subset of the Web `Request`. */
export interface HttpRequest {
  readonly method: string;
  /** The absolute URL (scheme and host from the listener when the `Host` header is absent or odd). */
  readonly url: string;
  readonly headers: { get(name: string): string | null };
  /** Aborts when the client goes away before its answer was written whole. */
  readonly signal: AbortSignal;
  /** The body as a stream; null for a request without one. */
  readonly body: ReadableStream<Uint8Array> | null;
  /** The whole body (the server holds it to its declared length). */
  arrayBuffer(): Promise<ArrayBuffer>;
}

/** The path of a request, without its query. */
export function pathOf(request: HttpRequest): string {
  return "pathname" in request && typeof request.pathname === "string"
    ? request.pathname
    : new URL(request.url).pathname;
}
