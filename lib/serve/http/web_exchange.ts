// Writing the Web `Response` a handler gave back to node:http: whole (with its head in one write), or pumped
// with backpressure when it is an event stream; and the lingering read of a request body nobody read. The
// request side is http/node_request.ts.

import { Buffer } from "node:buffer";
import type { IncomingMessage, ServerResponse } from "node:http";
import { holdAnswer } from "../exchange_charge.ts";
import type { Charge } from "../memory_budget.ts";

/**
 * A body left unread when the answer went out is read and dropped for up to this many bytes and
 * milliseconds ("lingering close", as nginx does): closing at once would reset the connection, and a peer
 * still sending would lose the answer with its receive buffer. Past either bound the connection is dropped.
 */
const LINGER_BYTES = 4 * 1024 * 1024;
const LINGER_MS = 2_000;

/** Answers up to this size are written with their head in one write (see writeWebResponse). */
const ONE_WRITE_BYTES = 64 * 1024;

/** Statuses that carry no body (no `content-length` either). */
const NO_BODY: ReadonlySet<number> = new Set([101, 204, 205, 304]);

/** Reads and drops the rest of `req` within `LINGER_BYTES` and `LINGER_MS`, then drops the connection. */
export function linger(req: IncomingMessage): void {
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

/**
 * Releases `charge` once the socket has handed everything written to the kernel (its `drain`), or closed:
 * the response's own `finish` comes as soon as the bytes reach the socket's buffer, which is too early.
 */
function releaseWhenTaken(res: ServerResponse, charge: Charge): void {
  const socket = res.socket;
  if (socket === null || socket.destroyed || socket.writableLength === 0) return charge.release();
  const release = () => {
    socket.off("drain", release);
    socket.off("close", release);
    charge.release();
  };
  socket.on("drain", release);
  socket.on("close", release);
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
  if (!isStream(response)) {
    if (NO_BODY.has(response.status)) {
      res.writeHead(response.status, headers);
      res.end();
      return;
    }
    // Read without touching `response.body`: that getter turns a body given as text into a stream,
    // which then has to be read back chunk by chunk.
    const bytes = await response.bytes();
    if (res.destroyed) return;
    // A large answer is charged to its owner until the client has taken it (exchange_charge.ts).
    const hold = holdAnswer(response, bytes.byteLength);
    if (hold !== undefined && "refusal" in hold) {
      return await writeWebResponse(res, hold.refusal, closeConnection);
    }
    headers["content-length"] = String(bytes.byteLength);
    res.writeHead(response.status, headers);
    // node:http sends a string body in one write with the head; bytes go as a second buffer, which cost
    // a third of a small call's CPU here. latin1 maps each byte to one character and back unchanged.
    if (bytes.byteLength <= ONE_WRITE_BYTES) {
      res.end(
        Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1"),
        "latin1",
      );
    } else res.end(bytes);
    if (hold !== undefined) releaseWhenTaken(res, hold.charge);
    return;
  }
  const body = response.body;
  res.writeHead(response.status, headers);
  if (body === null) {
    res.end();
    return;
  }
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
