// node:http's request and response as the Web `Request` and `Response` the handlers use: the request body
// streamed with backpressure and held to a minimum arrival rate, the answer written back whole, or pumped
// with backpressure when it is an event stream.

import { Buffer } from "node:buffer";
import type { IncomingMessage, ServerResponse } from "node:http";
import { RequestBodyTimeoutError } from "../request_body.ts";
import type { BodyDeadlines } from "./body_deadlines.ts";

/** A minimum arrival rate for request bodies, as Apache's mod_reqtimeout words it (`body=10,MinRate=1024`). */
export interface BodyRate {
  /** Time a body gets before the rate applies, in milliseconds. */
  graceMs: number;
  /** After the grace, each further second must be paid for with this many bytes. */
  minBytesPerSecond: number;
}

/** Bytes of request body queued for a handler that has not read them, before the socket is paused. */
const BODY_HIGH_WATER_MARK = 64 * 1024;

/**
 * A body left unread when the answer went out is read and dropped for up to this many bytes and
 * milliseconds ("lingering close", as nginx does): closing at once would reset the connection, and a peer
 * still sending would lose the answer with its receive buffer. Past either bound the connection is dropped.
 */
const LINGER_BYTES = 4 * 1024 * 1024;
const LINGER_MS = 2_000;

/** Answers up to this size are written with their head in one write (see writeWebResponse). */
const ONE_WRITE_BYTES = 64 * 1024;

/** A request's origin comes from its `Host` header when that is a plain host[:port]. */
const PLAIN_HOST = /^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/;

/** One request from node:http, seen as a Web `Request`. */
export interface WebRequest {
  request: Request;
  /**
   * Once the answer is out: reads and drops what the client still sends of a body nobody read, within
   * bounds (see `LINGER_BYTES`), so that the connection stays usable or closes without a reset.
   */
  discardRest(): void;
  /** Stops watching the body's arrival rate. */
  dispose(): void;
}

/** Options of {@link toWebRequest}. */
export interface ToWebRequestOptions {
  /** `http` or `https`. */
  scheme: string;
  /** `host:port` of the listener, for a request whose `Host` header is absent or odd. */
  fallbackHost: string;
  /** Minimum body arrival rate, checked on `deadlines`' tick; undefined = none. */
  bodyRate?: { rate: BodyRate; deadlines: BodyDeadlines };
  /** The body stopped arriving fast enough: answer 408 and drop the connection. */
  onBodyTimeout?: (error: RequestBodyTimeoutError) => void;
  /**
   * Becomes the request's `signal`: it must abort when the client goes away before its answer was written
   * (the MCP endpoint cancels a call answered as plain JSON then), and only then.
   */
  clientGone?: AbortSignal;
}

/**
 * Builds a Web `Request` from a node:http request. The body (methods other than GET and HEAD) is a stream
 * fed from the socket, paused while the handler does not read; it errors with a
 * {@link RequestBodyTimeoutError} once it arrives more slowly than `bodyRate` allows.
 *
 * @throws {TypeError} when the request target is not a valid URL path
 */
export function toWebRequest(req: IncomingMessage, options: ToWebRequestOptions): WebRequest {
  const { scheme, fallbackHost, bodyRate, onBodyTimeout, clientGone } = options;
  const signal = clientGone === undefined ? {} : { signal: clientGone };
  const target = req.url ?? "/";
  if (!target.startsWith("/")) throw new TypeError("Request target must be a path");
  const hostHeader = req.headers.host;
  const host = hostHeader !== undefined && PLAIN_HOST.test(hostHeader) ? hostHeader : fallbackHost;
  const method = req.method ?? "GET";
  let unwatch: (() => void) | undefined;
  const dispose = () => unwatch?.();
  const hasBody = method !== "GET" && method !== "HEAD" &&
    (req.headers["transfer-encoding"] !== undefined ||
      (req.headers["content-length"] !== undefined && req.headers["content-length"] !== "0"));
  if (!hasBody) {
    // Nothing to read; whatever a GET carries anyway is the server's to discard.
    return {
      request: withHeaders(new Request(`${scheme}://${host}${target}`, { method, ...signal }), req),
      discardRest: () => linger(req),
      dispose,
    };
  }
  const started = performance.now();
  let received = 0;
  /** Time spent paused because the handler did not read: not the client's to pay for. */
  let pausedFor = 0;
  let pausedAt: number | undefined;
  let done = false;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    pull() {
      if (pausedAt !== undefined) {
        pausedFor += performance.now() - pausedAt;
        pausedAt = undefined;
      }
      req.resume();
    },
    cancel() {
      // The handler wants no more (a body over its limit): stop reading until the answer is out.
      done = true;
      dispose();
      req.pause();
    },
  }, { highWaterMark: BODY_HIGH_WATER_MARK, size: (chunk) => chunk.byteLength });
  req.on("data", (chunk: Uint8Array) => {
    if (done) return;
    received += chunk.byteLength;
    controller.enqueue(chunk);
    if ((controller.desiredSize ?? 0) <= 0) {
      pausedAt ??= performance.now();
      req.pause();
    }
  });
  req.on("end", () => {
    if (done) return;
    done = true;
    dispose();
    controller.close();
  });
  req.on("error", (error) => {
    if (done) return;
    done = true;
    dispose();
    controller.error(error);
  });
  if (bodyRate !== undefined) {
    const { graceMs, minBytesPerSecond } = bodyRate.rate;
    unwatch = bodyRate.deadlines.watch((now) => {
      if (done) return true;
      // Time spent paused (the handler not reading) is not the client's to pay for.
      const paused = pausedAt === undefined ? 0 : now - pausedAt;
      const due = started + pausedFor + paused + graceMs + (received / minBytesPerSecond) * 1000;
      if (now < due) return false;
      done = true;
      const error = new RequestBodyTimeoutError({
        bytes: received,
        elapsedMs: Math.round(now - started),
        minBytesPerSecond,
      });
      controller.error(error);
      onBodyTimeout?.(error);
      return true;
    });
  }
  return {
    request: withHeaders(
      new Request(`${scheme}://${host}${target}`, { method, body, ...signal }),
      req,
    ),
    discardRest() {
      if (req.complete) return;
      if (!done) {
        done = true;
        dispose();
        controller.error(new Error("The request was answered before its body was read"));
      }
      linger(req);
    },
    dispose,
  };
}

/**
 * Copies the request's headers into `request`. Appending to the new request's own headers costs a third
 * of handing `new Request` a `Headers` object, which it converts entry by entry (11 µs a call here).
 */
function withHeaders(request: Request, req: IncomingMessage): Request {
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) request.headers.append(raw[i]!, raw[i + 1]!);
  return request;
}

/** Reads and drops the rest of `req` within `LINGER_BYTES` and `LINGER_MS`, then drops the connection. */
function linger(req: IncomingMessage): void {
  const socket = req.socket;
  if (req.complete || socket.destroyed) return;
  let dropped = 0;
  const stop = () => {
    clearTimeout(timer);
    req.off("data", count);
    req.off("end", stop);
    socket.off("close", stop);
  };
  const drop = () => {
    stop();
    if (!req.complete) socket.destroy();
  };
  const count = (chunk: Uint8Array) => {
    dropped += chunk.byteLength;
    if (dropped > LINGER_BYTES) drop();
  };
  const timer = setTimeout(drop, LINGER_MS);
  req.on("data", count);
  req.once("end", stop);
  socket.once("close", stop);
  req.resume();
}

/** True for a response whose body is written as it is produced rather than whole. */
function isStream(response: Response): boolean {
  return response.headers.get("content-type")?.startsWith("text/event-stream") === true;
}

function waitWritable(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

/**
 * Writes a Web `Response` to a node:http response. A body is read whole and sent with its length, except
 * an event stream (`text/event-stream`), whose headers go out at once and whose chunks are pulled only
 * while the socket takes them: what the client does not read stays in the stream, where its producer can
 * see it (and give up on the client). The stream is cancelled when the client goes away, and the
 * connection is cut when the stream errors. `closeConnection` sends `connection: close` (a request body
 * left unread must not be read to keep the connection alive).
 */
export async function writeWebResponse(
  res: ServerResponse,
  response: Response,
  closeConnection: boolean,
): Promise<void> {
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => headers[name] = value);
  if (closeConnection) headers.connection = "close";
  const body = response.body;
  if (body === null) {
    res.writeHead(response.status, headers);
    res.end();
    return;
  }
  if (!isStream(response)) {
    const bytes = await response.bytes();
    headers["content-length"] = String(bytes.byteLength);
    if (res.destroyed) return;
    res.writeHead(response.status, headers);
    // node:http sends a string body in one write with the head; bytes go as a second buffer, which cost
    // a third of a small call's CPU here. latin1 maps each byte to one character and back unchanged.
    if (bytes.byteLength <= ONE_WRITE_BYTES) {
      res.end(
        Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1"),
        "latin1",
      );
    } else res.end(bytes);
    return;
  }
  res.writeHead(response.status, headers);
  res.flushHeaders();
  const reader = body.getReader();
  const gone = () => void reader.cancel().catch(() => {});
  res.on("close", gone);
  // A stream that errors while the socket is full (its client stopped reading) is noticed at once.
  reader.closed.catch(() => res.destroy());
  try {
    while (!res.destroyed) {
      const { value, done } = await reader.read();
      if (done) {
        res.end();
        return;
      }
      if (!res.write(value)) await waitWritable(res);
    }
  } catch {
    // The producer gave up on this client (its stream errored): cut the connection.
    res.destroy();
  } finally {
    res.off("close", gone);
    if (res.destroyed) gone();
  }
}
