// Backpressure from the link to the local server: Deno's WebSocket has no drain event and `send()` never
// blocks, so the tunnel stops reading the server's output while the socket holds too much, polling it.

import { delay } from "../util/delay.ts";

/** Bytes queued on the socket above which the server's output is no longer read. */
export const HIGH_WATER_BYTES = 8 * 1024 * 1024;
/** Bytes queued on the socket below which reading the server's output resumes. */
export const LOW_WATER_BYTES = 1024 * 1024;

/** What {@link drain} watches: the link's socket. */
export interface Buffered {
  readonly bufferedAmount: number;
  readonly isOpen: boolean;
}

/**
 * Resolves once the socket has sent most of what is queued (below {@link LOW_WATER_BYTES}), the link
 * closed, the signal aborted, or 300 s passed (a socket that never drains must not stop the server's
 * output for ever: its link's heartbeat deadline ends it first).
 */
export async function drain(link: Buffered, signal: AbortSignal): Promise<void> {
  for (
    let i = 0;
    i < 60_000 && link.isOpen && link.bufferedAmount > LOW_WATER_BYTES && !signal.aborted;
    i++
  ) {
    await delay(5);
  }
}
