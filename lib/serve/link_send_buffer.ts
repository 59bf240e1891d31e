// What a link sent and its peer has not taken yet, charged to the owner's memory share: a client that
// stops reading its link must not grow serve's memory past that share.

import type { Charge } from "./memory_budget.ts";
import type { PeerSocket } from "./peer_socket.ts";

/** How often what the peer has not taken yet is measured again while there is some. */
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
 * The bytes sent on a link and not yet taken by its peer, as a charge kept up to date after each send
 * and while any remain.
 *
 * @example
 * ```ts ignore
 * const unsent = new LinkSendBuffer({ socket, charge, full: () => link.close(1013, "link not reading") });
 * socket.send(text);
 * if (!unsent.measure()) return false;
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

  /** Charges what is unsent now; false (after calling `full`) when the owner's share cannot hold it. */
  measure(): boolean {
    const { charge, socket } = this.#options;
    if (charge === undefined || this.#done) return !this.#done;
    const buffered = socket.bufferedAmount;
    if (buffered === charge.bytes) return true;
    if (!charge.resize(buffered)) {
      this.release();
      this.#options.full();
      return false;
    }
    if (buffered > 0 && this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.measure();
      }, RECHECK_MS);
    }
    return true;
  }

  /** Stops measuring and gives the charge back (the link closed). */
  release(): void {
    this.#done = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#options.charge?.release();
  }
}
