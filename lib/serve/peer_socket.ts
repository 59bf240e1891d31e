// The socket of one accepted link, behind one small interface, so that the tunnel code does not know which
// server stack accepted it (today: the npm `ws` server on node:http, lib/serve/http/ws_peer_socket.ts).

import type { LinkTransport } from "../protocol/frames.ts";
import { utf8Length } from "../util/utf8.ts";

/** A frame the socket refused as its header arrived, before holding its payload. */
export interface FrameRefusal {
  /**
   * `binary`: the protocol is JSON text (closed 1003); `too-large`: over the frame limit (closed 1009);
   * `memory`: the owner's memory share cannot hold it now (closed 1013).
   */
  kind: "binary" | "too-large" | "memory";
  /** The frame's (or message's) declared payload length, in bytes. */
  bytes: number;
  /** The frame limit, in bytes. */
  limit: number;
}

/** Callbacks of a {@link PeerSocket}. */
export interface PeerSocketEvents {
  /**
   * A text frame's header arrived, declaring the message's payload so far (`bytes`), before any of it is
   * held: false refuses it (the socket closes with 1013 and reports a `memory` refusal).
   */
  onFrameStart?(bytes: number): boolean;
  /** One whole text message, within the frame limit. */
  onMessage(text: string): void;
  /** A frame was refused at its header; the socket is already closing with the matching code. */
  onRefused(refusal: FrameRefusal): void;
  /** The socket closed (close handshake done or connection dropped); called once. */
  onClose(code: number, reason: string): void;
}

/** An accepted link's socket. */
export interface PeerSocket {
  /** How the link travels: a WebSocket, or an SSE stream with POSTs (sse_peer_socket.ts). */
  readonly transport: LinkTransport;
  /** Bytes queued and not yet written. */
  readonly bufferedAmount: number;
  /** True while frames can be sent. */
  readonly isOpen: boolean;
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>;
  /** Sends one text frame; false if it could not go out. */
  send(text: string): boolean;
  /** Closes with a code and reason (the reason is cut to the 123 bytes a close frame holds). */
  close(code: number, reason: string): void;
  /** Drops the connection without a close handshake (shutdown of a peer that did not answer one). */
  terminate(): void;
  /** Where events go from now on. */
  listen(events: PeerSocketEvents): void;
}

/**
 * What a request handler returns to accept a WebSocket upgrade: the server completes the handshake and
 * hands the socket to `accept`. A `Response` refuses the upgrade instead (sent as a plain HTTP answer).
 */
export interface WebSocketAccept {
  accept(socket: PeerSocket): void;
}

/** WebSocket close reasons are limited to 123 bytes. */
export function closeReason(text: string): string {
  let reason = text;
  while (utf8Length(reason) > 123) reason = reason.slice(0, -1);
  return reason;
}
