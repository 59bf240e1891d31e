// Which transport the link uses (`--transport`): WebSocket or SSE as told, or `auto`: WebSocket, and the SSE
// link only where WebSocket cannot pass here and the SSE link works; back to WebSocket once an upgrade
// passes again. Never because of an auth refusal, never because the gateway is down.

import type { LinkTransport } from "../protocol/frames.ts";
import { delay } from "../util/delay.ts";
import { logger } from "../util/log.ts";
import type { Link } from "./link.ts";
import { EarlySocket } from "./early_socket.ts";
import { DialError } from "./link_outcome.ts";
import {
  type LinkSocket,
  type LinkSocketEvents,
  type LinkSocketOptions,
  openWebSocket,
} from "./link_socket.ts";
import { dialHeaders, sseEndpointOf } from "./link_url.ts";
import type { ConnectMetrics } from "./metrics.ts";
import { CONNECT_DEFAULTS, type ConnectSettings, type TransportSetting } from "./settings.ts";
import { openSseSocket } from "./sse_link_socket.ts";

const log = logger("connect");

// Defined with the settings, so that reading the command line does not load the link code.
export { TRANSPORT_SETTINGS, type TransportSetting } from "./settings.ts";

/** A WebSocket probe gets this long to open. */
const PROBE_TIMEOUT_MS = 10_000;
/** Handshake resets in a row that make auto try the SSE link. */
const RESETS_BEFORE_SSE = 2;

/** How to open a socket of one transport. */
export type SocketOpener = (options: LinkSocketOptions, events: LinkSocketEvents) => LinkSocket;

/** One dial: the transport, its endpoint and how to open it. */
export interface Dial {
  transport: LinkTransport;
  url: URL;
  openSocket: SocketOpener;
}

/** Options of {@link TransportChoice}. */
export interface TransportChoiceOptions {
  setting: TransportSetting;
  /** The WebSocket endpoint; the SSE link's is derived from it. */
  url: URL;
  /** While auto uses SSE, a WebSocket upgrade is tried this often, in milliseconds. */
  retryMs: number;
  /** Headers of a probe upgrade (the token: a gateway refuses an upgrade without one). */
  probeHeaders?: Record<string, string>;
  /** Extra trusted CA (PEM), for probes. */
  caCert?: string;
  /** Called whenever the transport in use changes, and once at the start. */
  onTransport?: (transport: LinkTransport) => void;
}

/** Why an upgrade's failure means WebSocket cannot pass here, or undefined when it does not. */
function blockedBy(error: DialError, resets: number): string | undefined {
  if (error.kind === "http-status" && error.status !== undefined) {
    // 401/403 are auth (kind "auth"); 404 means a wrong path, not a blocked upgrade.
    if (error.status === 404) return undefined;
    return `the upgrade was answered with HTTP ${error.status} instead of 101`;
  }
  if (error.kind === "unreachable" && error.failure === "reset" && resets >= RESETS_BEFORE_SSE) {
    return `the connection was reset during the upgrade ${resets} times in a row`;
  }
  return undefined;
}

/** True for an SSE stream refused because the gateway has no such endpoint (contracts A and B). */
function noSseEndpoint(error: unknown): boolean {
  return error instanceof DialError && error.kind === "http-status" &&
    (error.status === 404 || error.status === 405);
}

/**
 * Picks the transport of each dial and moves between them in `auto` mode.
 *
 * @example
 * ```ts ignore
 * const choice = new TransportChoice({ setting: "auto", url, retryMs: 600_000 });
 * const link = await choice.dial((dial) => Link.open({ ...options, url: dial.url, openSocket: dial.openSocket }));
 * ```
 */
export class TransportChoice {
  #options: TransportChoiceOptions;
  #current: LinkTransport;
  /** WebSocket handshakes reset in a row. */
  #resets = 0;
  /** The gateway has no SSE link (it spoke contract A or B, or answered the stream 404). */
  #noSse = false;
  /** A WebSocket opened before the first dial (see {@link preopen}). */
  #early: EarlySocket | undefined;
  /** A dial was made: too late to open one early. */
  #dialed = false;

  constructor(options: TransportChoiceOptions) {
    this.#options = options;
    this.#current = options.setting === "sse" ? "sse" : "websocket";
    options.onTransport?.(this.#current);
  }

  /** The transport the next dial uses. */
  get current(): LinkTransport {
    return this.#current;
  }

  /**
   * Opens a WebSocket now, with the headers every dial sends, for the first dial to take: the connection
   * and the upgrade then overlap the start of the local server. Only over WebSocket (an SSE link's stream
   * is no plain socket to hand over), and only before the first dial; closed by {@link close} if no dial
   * took it.
   */
  preopen(): void {
    const { url, probeHeaders = {}, caCert } = this.#options;
    if (this.#current !== "websocket" || this.#early !== undefined || this.#dialed) return;
    this.#early = EarlySocket.open(openWebSocket, {
      url,
      headers: probeHeaders,
      ...(caCert === undefined ? {} : { caCert }),
    });
  }

  /** Closes the socket of {@link preopen} if no dial took it. */
  close(): void {
    this.#early?.close();
    this.#early = undefined;
  }

  /**
   * Dials with the current transport. In `auto` mode a WebSocket that cannot pass here is followed at once
   * by a dial of the SSE link, which becomes the transport only if it registers; otherwise the
   * WebSocket's error is thrown (an auth refusal of the SSE link is thrown instead: it is the token's).
   */
  async dial(open: (dial: Dial) => Promise<Link>): Promise<Link> {
    this.#dialed = true;
    const transport = this.#current;
    try {
      const link = await open(this.#dialOf(transport));
      if (transport === "websocket") this.#resets = 0;
      // Contracts A and B have no SSE link: a blocked upgrade later must not send auto looking for one.
      if (link.contract !== "C") this.#noSse = true;
      return link;
    } catch (error) {
      if (this.#options.setting !== "auto" || !(error instanceof DialError)) throw error;
      if (transport === "sse") {
        if (noSseEndpoint(error)) {
          this.#noSse = true;
          this.#switchTo("websocket", "the gateway has no SSE link endpoint any more");
        }
        throw error;
      }
      this.#resets = error.kind === "unreachable" && error.failure === "reset"
        ? this.#resets + 1
        : 0;
      const why = blockedBy(error, this.#resets);
      if (why === undefined) throw error;
      if (this.#noSse) {
        log.warning(
          "WebSocket cannot pass here ({why}), and this gateway (contract A or B) offers no SSE link: staying on WebSocket",
          { event: "transport_stays", why },
        );
        throw error;
      }
      log.info("WebSocket cannot pass here ({why}): trying the SSE link", {
        event: "transport_probe",
        why,
      });
      let link: Link;
      try {
        link = await open(this.#dialOf("sse"));
      } catch (sseError) {
        if (sseError instanceof DialError && sseError.kind === "auth") throw sseError;
        if (noSseEndpoint(sseError)) this.#noSse = true;
        log.warning(
          this.#noSse
            ? "The gateway has no SSE link endpoint (ContextForge gateways, contracts A and B, offer only WebSocket): staying on WebSocket"
            : "The SSE link failed too ({error}): staying on WebSocket",
          { event: "transport_stays", error: String((sseError as Error)?.message ?? sseError) },
        );
        throw error;
      }
      this.#resets = 0;
      this.#switchTo("sse", `WebSocket cannot pass here: ${why}`);
      return link;
    }
  }

  /**
   * While `auto` uses the SSE link: tries a WebSocket upgrade every `retryMs` and resolves true once one
   * passes (the transport is then WebSocket again; the caller moves its link over). Resolves false when
   * `signal` aborts, and at once when there is nothing to wait for.
   */
  async websocketPasses(signal: AbortSignal): Promise<boolean> {
    if (this.#options.setting !== "auto" || this.#current !== "sse") {
      // Nothing to come back to: wait for the caller to stop waiting.
      await new Promise<void>((resolve) => {
        if (signal.aborted) return resolve();
        signal.addEventListener("abort", () => resolve(), { once: true });
      });
      return false;
    }
    while (!signal.aborted) {
      await delay(this.#options.retryMs, signal).catch(() => {});
      if (signal.aborted) break;
      if (await this.#probe(signal)) {
        this.#switchTo("websocket", "a WebSocket upgrade passes again");
        return true;
      }
    }
    return false;
  }

  #dialOf(transport: LinkTransport): Dial {
    const { url } = this.#options;
    return transport === "sse"
      ? { transport, url: sseEndpointOf(url), openSocket: openSseSocket }
      : { transport, url, openSocket: (options, events) => this.#openWebSocket(options, events) };
  }

  /** The early socket when it fits this dial (then never again), else a new one. */
  #openWebSocket(options: LinkSocketOptions, events: LinkSocketEvents): LinkSocket {
    const early = this.#early;
    this.#early = undefined;
    if (early?.fits(options)) return early.take(events);
    early?.close();
    return openWebSocket(options, events);
  }

  #switchTo(transport: LinkTransport, why: string): void {
    if (this.#current === transport) return;
    this.#current = transport;
    const retry = transport === "sse"
      ? `; WebSocket is tried again every ${this.#options.retryMs / 1000} s`
      : "";
    log.info("Link transport is now {transport}: {why}{retry}", {
      event: "transport_changed",
      transport,
      why,
      retry,
    });
    this.#options.onTransport?.(transport);
  }

  /** Opens a WebSocket and closes it at once: true if the upgrade passed. */
  #probe(signal: AbortSignal): Promise<boolean> {
    const { url, probeHeaders = {}, caCert } = this.#options;
    return new Promise<boolean>((resolve) => {
      let socket: LinkSocket | undefined;
      let done = false;
      const finish = (passed: boolean, why: string) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        socket?.close(1000, "transport probe");
        log.debug("WebSocket probe: {result}", {
          event: "transport_probe_result",
          result: passed ? "the upgrade passed" : why,
        });
        resolve(passed);
      };
      const onAbort = () => finish(false, "stopped");
      const timer = setTimeout(() => finish(false, "no answer in time"), PROBE_TIMEOUT_MS);
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        socket = openWebSocket({ url, headers: probeHeaders, ...(caCert ? { caCert } : {}) }, {
          onOpen: () => finish(true, ""),
          onMessage: () => {},
          onEnd: (end) => {
            if (end.kind === "http-status") finish(false, `HTTP ${end.status}`);
            else if (end.kind === "failed") finish(false, end.message);
            else finish(false, `closed with ${end.code}`);
          },
        });
      } catch (error) {
        finish(false, String(error));
      }
    });
  }
}

/**
 * The transport choice `connect`'s settings ask for; a probe upgrade carries the token and `sessionId` as
 * every dial does, and `metrics` shows the transport in use.
 */
export function transportChoiceFor(
  settings: ConnectSettings,
  options: { sessionId: string; metrics?: ConnectMetrics },
): TransportChoice {
  const { token, caCert } = settings;
  const { metrics } = options;
  return new TransportChoice({
    setting: settings.transport ?? CONNECT_DEFAULTS.transport,
    url: settings.gatewayUrl,
    retryMs: (settings.websocketRetry ?? CONNECT_DEFAULTS.websocketRetry) * 1000,
    probeHeaders: dialHeaders(options.sessionId, token),
    ...(caCert === undefined ? {} : { caCert }),
    onTransport: (transport) => {
      for (const each of ["websocket", "sse"] as const) {
        metrics?.linkTransport.labels(each).set(each === transport ? 1 : 0);
      }
    },
  });
}
