// Reading an HTTP request body with a size limit that holds while reading, not after: a body sent
// without Content-Length (chunked) must not be buffered whole before it is found too large.

import type { HttpRequest } from "./http_request.ts";

/** The body was larger than the limit; nothing more of it was read. */
export class BodyTooLargeError extends Error {
  /** Bytes declared or read when the limit was hit (at least `limit + 1`). */
  readonly bytes: number;
  readonly limit: number;

  constructor(bytes: number, limit: number) {
    super(`Body of ${bytes} bytes exceeds the limit of ${limit}`);
    this.name = "BodyTooLargeError";
    this.bytes = bytes;
    this.limit = limit;
  }
}

/** The body arrived more slowly than the server's minimum rate; the connection is dropped. */
export class RequestBodyTimeoutError extends Error {
  /** Bytes received before the deadline passed. */
  readonly bytes: number;
  readonly elapsedMs: number;
  readonly minBytesPerSecond: number;

  constructor(facts: { bytes: number; elapsedMs: number; minBytesPerSecond: number }) {
    super(
      `Body arrived too slowly: ${facts.bytes} bytes in ${facts.elapsedMs} ms, below ${facts.minBytesPerSecond} bytes/s after the grace period`,
    );
    this.name = "RequestBodyTimeoutError";
    this.bytes = facts.bytes;
    this.elapsedMs = facts.elapsedMs;
    this.minBytesPerSecond = facts.minBytesPerSecond;
  }
}

/**
 * Reads the whole body of `request`, at most `limit` bytes. A declared Content-Length over the limit is
 * refused before reading; a chunked body is read until it passes the limit, then cancelled.
 *
 * @throws {BodyTooLargeError} when the body is larger than `limit`
 *
 * @example
 * ```ts
 * import { readBody } from "./request_body.ts";
 * const bytes = await readBody(new Request("http://x/", { method: "POST", body: "{}" }), 1024);
 * console.log(bytes.length); // 2
 * ```
 */
export async function readBody(request: HttpRequest, limit: number): Promise<Uint8Array> {
  const declared = request.headers.get("content-length");
  if (declared !== null) {
    const bytes = Number(declared);
    if (bytes > limit) {
      await request.body?.cancel();
      throw new BodyTooLargeError(bytes, limit);
    }
    // The server holds the body to its declared length.
    return new Uint8Array(await request.arrayBuffer());
  }
  if (request.body === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  // Leaving the loop early cancels the stream, so the rest of an oversized body is never read.
  for await (const chunk of request.body) {
    total += chunk.length;
    if (total > limit) throw new BodyTooLargeError(total, limit);
    chunks.push(chunk);
  }
  if (chunks.length === 1) return chunks[0]!;
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}
