// A WebSocket to the gateway opened while the first server starts: `register` needs the server's answer
// to `initialize` (its name), but the connection and the upgrade do not, so they overlap the server's
// start-up (docs/performance.md, target 3). The first link that dials the same URL with the same headers
// takes it, and sees its events as if it had opened it; one nobody takes in time is closed.

import type { LinkSocket, LinkSocketEvents, LinkSocketOptions, SocketEnd } from "./link_socket.ts";

/** How long an early socket may wait for its link: a gateway closes a link that does not register. */
export const EARLY_SOCKET_MAX_AGE_MS = 5_000;

/** An early socket: its events are held until a link takes it. */
export class EarlySocket {
  readonly options: LinkSocketOptions;
  #socket!: LinkSocket;
  #events: LinkSocketEvents | undefined;
  #held: ((events: LinkSocketEvents) => void)[] = [];
  #end: SocketEnd | undefined;
  #openedAt = performance.now();
  #taken = false;

  private constructor(options: LinkSocketOptions) {
    this.options = options;
  }

  /**
   * Opens a socket with `open`. Undefined when it cannot even start (a missing --allow-net): the link's
   * own dial then meets the same error and reports it.
   */
  static open(
    open: (options: LinkSocketOptions, events: LinkSocketEvents) => LinkSocket,
    options: LinkSocketOptions,
  ): EarlySocket | undefined {
    const early = new EarlySocket(options);
    try {
      early.#socket = open(options, {
        onOpen: () => early.#deliver((events) => events.onOpen()),
        onMessage: (data) => early.#deliver((events) => events.onMessage(data)),
        onEnd: (end: SocketEnd) => {
          early.#end = end;
          early.#deliver((events) => events.onEnd(end));
        },
      });
    } catch {
      return undefined;
    }
    return early;
  }

  /**
   * True when a link dialing with `options` may take it: same URL and headers, young enough that the
   * gateway has not given up on its registration, and still open or opening, or refused with an HTTP
   * status (the gateway's answer to this very upgrade: a refused token is not tried twice). One that
   * could not connect, or was closed, is not taken: the dial tries again, as it would have.
   */
  fits(options: LinkSocketOptions): boolean {
    const end = this.#end;
    return !this.#taken && (end === undefined || end.kind === "http-status") &&
      performance.now() - this.#openedAt < EARLY_SOCKET_MAX_AGE_MS &&
      options.url.href === this.options.url.href && options.caCert === this.options.caCert &&
      JSON.stringify(options.headers) === JSON.stringify(this.options.headers);
  }

  /**
   * Hands the socket to a link. What happened so far is replayed after this returns (the link keeps the
   * socket before its `onOpen` may send on it), in order, before anything later.
   */
  take(events: LinkSocketEvents): LinkSocket {
    this.#taken = true;
    queueMicrotask(() => {
      this.#events = events;
      for (const replay of this.#held.splice(0)) replay(events);
    });
    return this.#socket;
  }

  /** Closes it unless a link took it. */
  close(): void {
    if (this.#taken) return;
    this.#taken = true;
    this.#socket.close(1000, "not needed");
  }

  #deliver(event: (events: LinkSocketEvents) => void): void {
    if (this.#events !== undefined) event(this.#events);
    else this.#held.push(event);
  }
}
