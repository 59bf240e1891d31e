// What a link sent and its peer has not taken yet, charged to the owner's memory share: a client that
// stops reading its link must not grow serve's memory past that share.

import type { Charge } from "./memory_budget.ts";
import type { PeerSocket } from "./peer_socket.ts";

/**
 * Unsent bytes a link holds without a charge, as the kernel's socket buffer does: frames of one turn of the
 * event loop are written together (ws_peer_socket.ts), so a burst sits here for a moment on every healthy
 * link. Past it the link is measured after that turn, when only what the peer did not take remains.
 */
export const FREE_UNSENT_BYTES = 1024 * 1024;
/** How often what the peer has not taken yet is measured again while there is more than the free part. */
const RECHECK_MS = 200;

/** Options of {@link LinkSendBuffer}. */
export interface LinkSendBufferOptions {
  socket: Pick<PeerSocket, "bufferedAmount">;
  /** The owner's charge for it; without one nothing is measured. */
  charge: Charge | undefined;
  /** Called once when the share cannot hold what is unsent: the link must be closed. */
  full: () => void;
}

/**
 * The bytes sent on a link and not yet taken by its peer, as a charge kept up to date while there are more
 * than {@link FREE_UNSENT_BYTES}.
 *
 * @example
 * ```ts ignore
 * const unsent = new LinkSendBuffer({ socket, charge, full: () => link.close(1013, "link not reading") });
 * socket.send(text);
 * unsent.sent();
 * ```
 */
export class LinkSendBuffer {
  #options: LinkSendBufferOptions;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #done = false;

  constructor(options: LinkSendBufferOptions) {
    this.#options = options;
  }

  /** Bytes charged now. */
  get bytes(): number {
    return this.#options.charge?.bytes ?? 0;
  }

  /** A frame went out: past the free part, measure once this turn's writes have reached the socket. */
  sent(): void {
    const { charge, socket } = this.#options;
    if (charge === undefined || this.#done || this.#timer !== undefined) return;
    if (charge.bytes > 0 || socket.bufferedAmount > FREE_UNSENT_BYTES) this.#arm(0);
  }

  /**
   * Charges what is unsent now (nothing within the free part); false, after calling `full`, when the owner's
   * share cannot hold it.
   */
  measure(): boolean {
    const { charge, socket } = this.#options;
    if (charge === undefined || this.#done) return !this.#done;
    const buffered = socket.bufferedAmount;
    const held = buffered > FREE_UNSENT_BYTES ? buffered : 0;
    if (!charge.resize(held)) {
      this.release();
      this.#options.full();
      return false;
    }
    if (held > 0) this.#arm(RECHECK_MS);
    return true;
  }

  /** Stops measuring and gives the charge back (the link closed). */
  release(): void {
    this.#done = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#options.charge?.release();
  }

  #arm(ms: number): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.measure();
    }, ms);
  }
}
