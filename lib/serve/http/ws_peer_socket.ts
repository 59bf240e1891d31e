// A link's PeerSocket over the npm `ws` server: text messages in, text frames out, close codes with their
// reasons, a ping timer with a pong deadline, and frames refused at their header (binary, or over the
// frame limit) before their payload is held.

import type { Duplex } from "node:stream";
// @ts-types="@types/ws"
import type { WebSocket } from "ws";
import { CloseCode } from "../../protocol/frames.ts";
import {
  closeReason,
  type FrameRefusal,
  type PeerSocket,
  type PeerSocketEvents,
} from "../peer_socket.ts";

/**
 * After refusing a frame, what the peer still sends is read and dropped up to this many bytes (enough for
 * a small overrun and the peer's close reply, so that its client sees our close code), then the socket is
 * no longer read and ws drops it when its close timeout passes. Reading the rest of a 60 MiB frame just to
 * drop it would cost as much memory as the frame (Deno's node:net allocates every read and V8 collects
 * those buffers only after some 64 MiB), which is what refusing it was for.
 */
const REFUSED_DRAIN_BYTES = 1024 * 1024;

/** Options of {@link fromWs}. */
export interface WsPeerSocketOptions {
  /** The upgraded connection under `ws`, to stop reading it after a refusal. */
  socket: Duplex;
  /** The frame limit `ws` was given as `maxPayload`, in bytes: for the refusal's reason. */
  maxFrameBytes: number;
  /**
   * A ping goes out every this many milliseconds; a peer that answered neither the previous ping nor sent
   * anything since is dropped. 0 turns pings off.
   */
  idleTimeoutMs: number;
}

/**
 * The parts of ws 8's frame parser (lib/receiver.js, a private API of the pinned version) that the
 * frame-header check reads. `haveLength` runs once a frame's opcode and payload length are known and
 * before any payload byte is kept; `_opcode` is already the message's opcode for a continuation frame.
 */
interface ReceiverInternals {
  _opcode: number;
  _payloadLength: number;
  _totalPayloadLength: number;
  haveLength(cb: (error?: Error) => void): unknown;
  createError(
    ctor: ErrorConstructor,
    message: string,
    prefix: boolean,
    statusCode: number,
    errorCode: string,
  ): Error;
}

/** Counts what arrives after a refusal and stops reading past {@link REFUSED_DRAIN_BYTES}. */
function stopReadingSoon(socket: Duplex): void {
  let dropped = 0;
  const count = (chunk: Uint8Array) => {
    dropped += chunk.byteLength;
    if (dropped <= REFUSED_DRAIN_BYTES) return;
    socket.off("data", count);
    // ws resumes the socket to drop what it no longer parses; this runs after that, on a later read.
    socket.pause();
  };
  socket.on("data", count);
}

const OPCODE_BINARY = 0x02;
const FIRST_CONTROL_OPCODE = 0x08;

function receiverOf(ws: WebSocket): ReceiverInternals | undefined {
  const receiver = (ws as unknown as { _receiver?: Partial<ReceiverInternals> })._receiver;
  return typeof receiver?.haveLength === "function" && typeof receiver.createError === "function"
    ? receiver as ReceiverInternals
    : undefined;
}

/**
 * Makes `ws` refuse a binary frame, or one whose message would pass `maxFrameBytes`, as soon as its
 * header is parsed: the close frame carries our code and reason, and ws stops handing the socket's bytes
 * to the parser (what still arrives is dropped, see {@link REFUSED_DRAIN_BYTES}). Without
 * the hook (a ws whose parser changed), `maxPayload` still refuses oversized frames at the header, with
 * 1009 and no reason, and a binary message is refused once whole (bounded by `maxPayload`).
 */
function refuseAtHeader(
  ws: WebSocket,
  maxFrameBytes: number,
  refused: (refusal: FrameRefusal) => void,
  admit: (bytes: number) => boolean,
): boolean {
  const receiver = receiverOf(ws);
  if (receiver === undefined) return false;
  const haveLength = receiver.haveLength;
  receiver.haveLength = function (this: ReceiverInternals, cb: (error?: Error) => void) {
    if (this._opcode >= FIRST_CONTROL_OPCODE) return haveLength.call(this, cb);
    const bytes = this._totalPayloadLength + this._payloadLength;
    if (this._opcode === OPCODE_BINARY) {
      const refusal = { kind: "binary", bytes, limit: maxFrameBytes } as const;
      ws.close(CloseCode.UnsupportedData, "binary frames are not supported; send JSON text frames");
      refused(refusal);
      // An error from the parser is what makes ws stop parsing; its own close is a no-op by now.
      cb(this.createError(Error, "binary frame", false, 1003, "WS_ERR_BINARY_FRAME"));
      return;
    }
    if (bytes > maxFrameBytes) {
      ws.close(
        CloseCode.TooBig,
        `frame of ${bytes} bytes exceeds the limit of ${maxFrameBytes} (serve --max-frame-bytes)`,
      );
      refused({ kind: "too-large", bytes, limit: maxFrameBytes });
      return haveLength.call(this, cb);
    }
    if (!admit(bytes)) {
      ws.close(CloseCode.TryAgainLater, "memory share of this owner used up; retry later");
      refused({ kind: "memory", bytes, limit: maxFrameBytes });
      cb(this.createError(Error, "memory share used up", false, 1013, "WS_ERR_MEMORY_SHARE"));
      return;
    }
    return haveLength.call(this, cb);
  };
  return true;
}

/**
 * Wraps a server-side `ws` WebSocket, right after the handshake (before any frame is parsed).
 *
 * @example
 * ```ts ignore
 * wss.handleUpgrade(req, socket, head, (ws) => {
 *   const peer = fromWs(ws, { maxFrameBytes: 32 * 1024 * 1024, idleTimeoutMs: 60_000 });
 * });
 * ```
 */
export function fromWs(ws: WebSocket, options: WsPeerSocketOptions): PeerSocket {
  const { socket, maxFrameBytes, idleTimeoutMs } = options;
  let events: PeerSocketEvents | undefined;
  const closed = Promise.withResolvers<void>();
  let alive = true;
  let refusedOnce = false;
  const refused = (refusal: FrameRefusal) => {
    if (refusedOnce) return;
    refusedOnce = true;
    stopReadingSoon(socket);
    events?.onRefused(refusal);
  };
  const hooked = refuseAtHeader(
    ws,
    maxFrameBytes,
    refused,
    (bytes) => events?.onFrameStart?.(bytes) ?? true,
  );
  const pinger = idleTimeoutMs <= 0 ? undefined : setInterval(() => {
    if (!alive) {
      ws.terminate();
      return;
    }
    alive = false;
    ws.ping();
  }, idleTimeoutMs);

  ws.on("message", (data: Buffer, isBinary: boolean) => {
    alive = true;
    if (!isBinary) {
      events?.onMessage(data.toString("utf8"));
      return;
    }
    if (hooked) return; // refused at its header already
    ws.close(CloseCode.UnsupportedData, "binary frames are not supported; send JSON text frames");
    refused({ kind: "binary", bytes: data.length, limit: maxFrameBytes });
  });
  ws.on("pong", () => alive = true);
  ws.on("error", (error: Error & { code?: string }) => {
    // Without the hook, maxPayload's own refusal arrives here (ws has sent 1009 already).
    if (error.code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") {
      refused({ kind: "too-large", bytes: maxFrameBytes + 1, limit: maxFrameBytes });
    }
    // Anything else: the close event follows.
  });
  ws.on("close", (code: number, reason: Buffer) => {
    clearInterval(pinger);
    closed.resolve();
    events?.onClose(code, reason.toString("utf8"));
  });
  return {
    transport: "websocket",
    get bufferedAmount() {
      return ws.bufferedAmount;
    },
    get isOpen() {
      return ws.readyState === ws.OPEN;
    },
    closed: closed.promise,
    send(text) {
      if (ws.readyState !== ws.OPEN) return false;
      ws.send(text);
      return true;
    },
    close(code, reason) {
      ws.close(code, closeReason(reason));
    },
    terminate() {
      ws.terminate();
    },
    listen(next) {
      events = next;
    },
  };
}
