// Which tunnel links get in: the upgrade's token (401/403 before the handshake), and the owner's places
// under --max-sessions-per-owner, which a link holds from its upgrade until it registers (refused with
// 4029 past the limit). Keeps every accepted link, registered or not, for the reaper and for shutdown.
// Both link transports come in here: a WebSocket upgrade at /reverse-proxy/ws and an SSE stream at
// /reverse-proxy/sse (sse_link_endpoint.ts), admitted alike.

import type { HttpRequest } from "./http_request.ts";
import { CloseCode, LINK_TRANSPORTS } from "../protocol/frames.ts";
import type { RegisterFrame } from "../protocol/registration.ts";
import { logger } from "../util/log.ts";
import type { MemoryBudget } from "./memory_budget.ts";
import type { ServeMetrics } from "./metrics.ts";
import type { WebSocketAccept } from "./peer_socket.ts";
import { TOO_MANY_SESSIONS_REASON, tooManySessions } from "./registration.ts";
import {
  type LinkGrant,
  type LinkPost,
  type LinkPostAnswer,
  SseLinkEndpoint,
  type SseLinkReplica,
} from "./sse_link_endpoint.ts";
import type { Identity } from "./token_store.ts";
import type { LinkLimits } from "./link_contract.ts";
import { TunnelLink } from "./tunnel_link.ts";
import type { TunnelRegistry } from "./tunnel_registry.ts";
import type { TunnelSession } from "./tunnel_session.ts";

const log = logger("serve");

/** Options of {@link LinkAdmission}. */
export interface LinkAdmissionOptions {
  /** The identity of the upgrade's token if it may connect, else the 401/403 to send. */
  authorize(request: HttpRequest): Promise<Identity | Response>;
  /** Live sessions: those holding a link take a place each. */
  registry: TunnelRegistry<TunnelSession>;
  maxSessionsPerOwner: number;
  limits: LinkLimits;
  /** Base URL clients use, when set (`--public-url`); else the upgrade's own origin. */
  publicUrl?: URL;
  /** A link sent `register`. */
  register(link: TunnelLink, frame: RegisterFrame): void;
  /** A link announced its keepalive: its dead-link deadline changed. */
  livenessChanged(link: TunnelLink): void;
  /** Comment line interval of SSE links, in milliseconds (default in sse_link_endpoint.ts). */
  sseKeepaliveMs?: number;
  now: () => number;
  metrics?: ServeMetrics;
  /** Where frames being received are charged, against each owner's memory share. */
  budget?: MemoryBudget;
  /** Replicas: SSE link ids name this replica, and POSTs for others' links are forwarded to them. */
  sseReplica?: SseLinkReplica;
}

/**
 * Admits tunnel links and keeps them until they close.
 *
 * @example
 * ```ts ignore
 * const admission = new LinkAdmission({ tokens, registry, maxSessionsPerOwner: 32, limits, ... });
 * const answer = await admission.accept(request); // a Response (refused) or a WebSocketAccept
 * ```
 */
export class LinkAdmission {
  #options: LinkAdmissionOptions;
  #links = new Set<TunnelLink>();
  /** Links accepted and not registered yet, by owner. */
  #pending = new Map<string, Set<TunnelLink>>();
  #closing = false;
  #sse: SseLinkEndpoint;

  constructor(options: LinkAdmissionOptions) {
    this.#options = options;
    const { metrics, sseKeepaliveMs, budget, sseReplica } = options;
    this.#sse = new SseLinkEndpoint({
      grant: (request) => this.grant(request),
      authorize: options.authorize,
      maxFrameBytes: options.limits.maxFrameBytes,
      ...(sseKeepaliveMs === undefined ? {} : { keepaliveMs: sseKeepaliveMs }),
      ...(metrics === undefined ? {} : { metrics }),
      ...(budget === undefined ? {} : { budget }),
      ...(sseReplica === undefined ? {} : { replica: sseReplica }),
    });
    for (const transport of LINK_TRANSPORTS) {
      metrics?.links.labels(transport).track(() => {
        let count = 0;
        for (const link of this.#links) if (link.transport === transport) count++;
        return count;
      });
    }
  }

  /** Accepted links that are still open, registered or not. */
  get links(): ReadonlySet<TunnelLink> {
    return this.#links;
  }

  /** Links of `owner` accepted and not registered yet. */
  pendingLinks(owner: string): number {
    return this.#pending.get(owner)?.size ?? 0;
  }

  /** A POST another replica took for an SSE link whose stream is here (lib/serve/cluster/). */
  forwardedPost(post: LinkPost): LinkPostAnswer {
    return this.#sse.forwarded(post);
  }

  /** Answers a request whose path continues with `rest` after `/reverse-proxy/` (`ws`, or `sse`…). */
  async route(request: HttpRequest, rest: readonly string[]): Promise<Response | WebSocketAccept> {
    if (rest[0] === "ws" && rest.length === 1) return await this.accept(request);
    if (rest[0] === "sse") return await this.#sse.handle(request, rest.slice(1));
    return Response.json({ error: "Not found" }, { status: 404 });
  }

  /**
   * Answers an upgrade to `/reverse-proxy/ws`: 426 without an upgrade, 401/403 without a token that may
   * connect, else the handshake, after which the link is admitted or refused with 4029.
   */
  async accept(request: HttpRequest): Promise<Response | WebSocketAccept> {
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return Response.json({ error: "Expected a WebSocket upgrade" }, {
        status: 426,
        headers: { upgrade: "websocket" },
      });
    }
    return await this.grant(request);
  }

  /**
   * Checks the token of a link's first request (a WebSocket upgrade, or an SSE stream): the 401/403 to
   * send, or the grant whose `accept` admits the link's socket (or refuses it with 4029).
   */
  async grant(request: HttpRequest): Promise<Response | LinkGrant> {
    const { authorize, metrics, publicUrl } = this.#options;
    const identity = await authorize(request);
    if (identity instanceof Response) {
      // Nobody is known yet: debug only, so that refused upgrades cost no log volume.
      log.debug("Refused a link with HTTP {status}", {
        event: "link_refused",
        status: identity.status,
      });
      metrics?.linksRefused.inc("auth");
      metrics?.errors.inc("auth");
      return identity;
    }
    const baseUrl = publicUrl !== undefined
      ? publicUrl.href.replace(/\/+$/, "")
      : new URL(request.url).origin;
    return {
      identity,
      accept: (socket) => this.#admit(new TunnelLink(socket, this.#linkOptions(identity, baseUrl))),
    };
  }

  /**
   * Closes every link with 1001 and waits (at most `ms`) for their sockets to close; links that arrive
   * from now on are closed at once.
   */
  async close(ms: number): Promise<void> {
    this.#closing = true;
    const links = [...this.#links];
    for (const link of links) link.close(CloseCode.GoingAway, "gateway shutting down");
    await Promise.all(links.map((link) => link.waitClosed(ms)));
  }

  #linkOptions(identity: TunnelLink["identity"], baseUrl: string) {
    const { limits, now, metrics, budget } = this.#options;
    return {
      identity,
      baseUrl,
      limits,
      now,
      ...(metrics === undefined ? {} : { metrics }),
      ...(budget === undefined ? {} : { budget }),
      host: {
        register: (link: TunnelLink, frame: RegisterFrame) => this.#options.register(link, frame),
        registered: (link: TunnelLink) => this.#settle(link),
        closed: (link: TunnelLink) => {
          this.#links.delete(link);
          this.#settle(link);
        },
        livenessChanged: (link: TunnelLink) => this.#options.livenessChanged(link),
      },
    };
  }

  #admit(link: TunnelLink): void {
    const { maxSessionsPerOwner, metrics } = this.#options;
    if (this.#closing) {
      link.close(CloseCode.GoingAway, "gateway shutting down");
      return;
    }
    // A link holds a place under its owner's limit from its upgrade: refused here with 4029 (a code
    // connect retries with backoff), counted now (the handshake and the check are one step).
    if (this.#placesTaken(link.owner) >= maxSessionsPerOwner) {
      metrics?.linksRefused.inc("registration");
      link.refuse(tooManySessions(link.owner, maxSessionsPerOwner), {
        code: CloseCode.TooManySessions,
        reason: TOO_MANY_SESSIONS_REASON,
      });
      return;
    }
    this.#links.add(link);
    let waiting = this.#pending.get(link.owner);
    if (waiting === undefined) this.#pending.set(link.owner, waiting = new Set());
    waiting.add(link);
    log.debug("Accepted link {link} from {owner}", {
      event: "link_accepted",
      owner: link.owner,
      link: link.id,
    });
  }

  /**
   * Sessions of `owner` that hold a link, plus its links waiting to register. A session waiting to be
   * resumed is left out here: the link that comes to resume it must get in. It still counts when a
   * `register` asks for a fresh session (registration.ts).
   */
  #placesTaken(owner: string): number {
    let attached = 0;
    for (const session of this.#options.registry.list(owner)) if (!session.detached) attached++;
    return attached + this.pendingLinks(owner);
  }

  #settle(link: TunnelLink): void {
    const waiting = this.#pending.get(link.owner);
    if (waiting?.delete(link) && waiting.size === 0) this.#pending.delete(link.owner);
  }
}
