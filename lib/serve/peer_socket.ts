// The socket of one accepted link, behind one small interface, so that the tunnel code does not know which
// server stack accepted it. Today: the WebSocket that `Deno.upgradeWebSocket` gives.

import { utf8Length } from "../util/utf8.ts";

/** Callbacks of a {@link PeerSocket}. */
export interface PeerSocketEvents {
  /** One text frame, or the byte size of a binary frame. */
  onMessage(data: string | { binary: number }): void;
  /** The socket closed (close handshake done or connection dropped); called once. */
  onClose(code: number, reason: string): void;
}

/** An accepted link's socket. */
export interface PeerSocket {
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
  /** Where events go from now on. */
  listen(events: PeerSocketEvents): void;
}

/** WebSocket close reasons are limited to 123 bytes. */
export function closeReason(text: string): string {
  let reason = text;
  while (utf8Length(reason) > 123) reason = reason.slice(0, -1);
  return reason;
}

/**
 * Wraps a server-side WebSocket from `Deno.upgradeWebSocket`.
 *
 * @example
 * ```ts ignore
 * const { socket, response } = Deno.upgradeWebSocket(request);
 * const peer = fromWebSocket(socket);
 * ```
 */
export function fromWebSocket(socket: WebSocket): PeerSocket {
  let events: PeerSocketEvents | undefined;
  const closed = Promise.withResolvers<void>();
  let closeTimer: ReturnType<typeof setTimeout> | undefined;
  socket.addEventListener("message", (event) => {
    const data = event.data;
    if (typeof data === "string") events?.onMessage(data);
    else {
      const binary = data instanceof ArrayBuffer ? data.byteLength : (data as Blob).size;
      events?.onMessage({ binary });
    }
  });
  socket.addEventListener("close", (event) => {
    clearTimeout(closeTimer);
    closed.resolve();
    events?.onClose(event.code, event.reason);
  });
  socket.addEventListener("error", () => {
    // The close event follows; nothing to add.
  });
  return {
    get bufferedAmount() {
      return socket.bufferedAmount;
    },
    get isOpen() {
      return socket.readyState === WebSocket.OPEN;
    },
    closed: closed.promise,
    send(text) {
      if (socket.readyState !== WebSocket.OPEN) return false;
      try {
        socket.send(text);
        return true;
      } catch {
        return false;
      }
    },
    close(code, reason) {
      clearTimeout(closeTimer);
      // Deno drops the connection without the close frame (the peer sees code 0) when close() runs while
      // received frames are still queued; closing from a fresh task delivers the code reliably.
      closeTimer = setTimeout(() => {
        try {
          socket.close(code, closeReason(reason));
        } catch {
          // Already closing or never opened.
        }
      }, 0);
    },
    listen(next) {
      events = next;
    },
  };
}
