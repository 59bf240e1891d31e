// What the gateway asks of the cluster, in one place: the call target of a server held by another replica
// (found through the directory, cached briefly), the routing of foreign answers on links held here, and
// ownership of the tunnel sessions registered here (claimed, renewed, closed with 4002 once superseded).

import { CloseCode } from "../../protocol/frames.ts";
import { ErrorCode, errorResponse } from "../../protocol/jsonrpc.ts";
import type { JsonRpcNotification, JsonRpcResponse } from "../../protocol/jsonrpc.ts";
import type { Payload } from "../../protocol/payload.ts";
import { MAX_NAME_LENGTH } from "../../protocol/registration.ts";
import type { CallTarget } from "../call_contract.ts";
import { RawResponse } from "../call_table.ts";
import type { ServeMetrics } from "../metrics.ts";
import type { TunnelSession } from "../tunnel_session.ts";
import type { LinkPost, LinkPostAnswer, SseLinkReplica } from "../sse_link_endpoint.ts";
import type { McpEndpoint } from "../mcp_endpoint.ts";
import type { McpEndpointOptions } from "../mcp_endpoint_contract.ts";
import type { RegistrarOptions, ServerMessageRouter } from "../registration.ts";
import type { Cluster } from "./cluster.ts";
import { type CallRoute, CrossCalls } from "./cross_calls.ts";
import { Holder, redisDownError } from "./holder.ts";
import { SharedSessions } from "./shared_sessions.ts";
import { PerClientSessions } from "./per_client.ts";
import { StaleCalls } from "./stale_calls.ts";
import { StreamForwards } from "./stream_forwards.ts";
import { StreamRelays } from "./stream_relays.ts";
import { type LocalClients, ServerMessages } from "./server_messages.ts";
import { TunnelRegistry } from "../tunnel_registry.ts";
import { OwnerTunnels } from "./owner_tunnels.ts";
import { logger } from "../../util/log.ts";

const log = logger("serve", "cluster");

/** How long a directory answer is trusted before it is asked again, in ms. */
const LOOKUP_CACHE_MS = 1_000;

/** Options of {@link ClusterRouting}. */
export interface ClusterRoutingOptions {
  cluster: Cluster;
  /** Default deadline of a call, in ms. */
  callTimeoutMs: number;
  /** MCP client sessions unused this long are forgotten, in ms. */
  sessionTtlMs: number;
  /** MCP client sessions one owner keeps in Redis, for all replicas together. */
  maxMcpSessionsPerOwner?: number;
  /** Tunnel sessions one owner may hold on all replicas together (`--max-sessions-per-owner`). */
  maxSessionsPerOwner?: number;
  /** How long calls wait on a tunnel whose holder is gone (`StaleCallsOptions`). */
  resumeWindowMs: number;
  /** Whether a tunnel session can still be resumed (`StaleCallsOptions`). */
  resumable?: (sid: string) => Promise<boolean>;
  metrics?: ServeMetrics | undefined;
}

/** A server another replica holds, as the MCP endpoint calls it. */
class RemoteTunnel implements CallTarget {
  /** As its directory entry says: a per-client server's calls name their client session. */
  readonly perClient: boolean;
  readonly #route: CallRoute;
  readonly #routing: ClusterRouting;
  readonly calls: CallTarget["calls"];

  constructor(route: CallRoute, routing: ClusterRouting, crossCalls: CrossCalls) {
    this.#route = route;
    this.#routing = routing;
    this.perClient = route.perClient === true;
    this.calls = {
      call: (request, options) => crossCalls.call(route, request, options),
      notify: (notification, client) => routing.notify(route, notification, client),
    };
  }

  initializeResult(): Promise<JsonRpcResponse> {
    return this.#routing.initializeResult(this.#route);
  }
}

/** A server whose holder cannot be asked now (Redis down): every call gets the same clear error. */
class UnreachableTunnel implements CallTarget {
  readonly perClient = false;
  readonly #why: string;
  readonly calls: CallTarget["calls"];

  constructor(why: string) {
    this.#why = why;
    this.calls = {
      call: (request) => Promise.resolve(redisDownError(request.id, why)),
      notify: () => false,
    };
  }

  initializeResult(): Promise<JsonRpcResponse> {
    return Promise.resolve(redisDownError(0, this.#why));
  }
}

/**
 * The gateway's view of the cluster.
 *
 * @example
 * ```ts ignore
 * const routing = new ClusterRouting({ cluster, session: (id) => registry.get(id), callTimeoutMs });
 * const target = registry.find(owner, name) ?? await routing.remote(owner, name);
 * ```
 */
export class ClusterRouting {
  readonly cluster: Cluster;
  readonly crossCalls: CrossCalls;
  /** MCP client sessions shared with the other replicas. */
  readonly shared: SharedSessions;
  readonly #holder: Holder;
  /** The gateway's registry: sessions ending here are released in Redis. */
  readonly registry = new ClusterRegistry();
  readonly #lookups = new Map<string, { at: number; route: Promise<CallRoute | undefined> }>();
  /** By tunnel session: the generation asked, and its answer. */
  readonly #initialized = new Map<string, { gen: number; result: Promise<JsonRpcResponse> }>();
  /** Requests for streams other replicas hold, and those forwarded here. */
  readonly forwards: StreamForwards;
  /** Streams resumed on another replica than the one holding them. */
  readonly relays: StreamRelays;
  /** Each owner's tunnel sessions on all replicas, when limited. */
  readonly #places: OwnerTunnels | undefined;
  readonly #metrics: ServeMetrics | undefined;
  /** Ends and lists the client sessions of per-client servers across replicas. */
  readonly perClient: PerClientSessions;

  constructor(options: ClusterRoutingOptions) {
    const { cluster, metrics } = options;
    this.cluster = cluster;
    this.#metrics = metrics;
    this.#places = options.maxSessionsPerOwner === undefined ? undefined : new OwnerTunnels({
      commands: cluster.commands,
      maxPerOwner: options.maxSessionsPerOwner,
      ttlMs: cluster.liveness.ttlMs,
    });
    const send = cluster.inbox.send.bind(cluster.inbox);
    let lostAt = -Infinity;
    this.crossCalls = new CrossCalls({
      replicaId: cluster.replicaId,
      send,
      callTimeoutMs: options.callTimeoutMs,
      metrics: cluster.metrics,
      reroute: (route) => this.#lookup(route.owner, route.name, { fresh: true }),
    });
    this.#holder = new Holder({
      replicaId: cluster.replicaId,
      session: (sid) => this.registry.get(sid),
      send,
      crossCalls: this.crossCalls,
      clientSeen: (session, client) => this.perClient.seen(session, client),
      late: () => metrics?.errors.inc("late_response"),
      // Just after Redis came back empty, a live origin is missing from the last beat and has no inbox
      // until its own next beat: its answers are retried, not dropped as for a replica gone.
      alive: (rid) =>
        cluster.liveness.alive(rid) || performance.now() - lostAt < cluster.liveness.recoveringMs,
    });
    cluster.on("call", (envelope) => this.#holder.onCall(envelope));
    cluster.on("cancel", (envelope) => this.#holder.onCancel(envelope));
    for (const kind of ["answer", "progress", "undeliverable"] as const) {
      cluster.on(kind, (envelope) => {
        if (!this.crossCalls.onEnvelope(envelope) && kind === "answer") {
          metrics?.errors.inc("late_response");
        }
      });
    }
    cluster.on("supersede", (e) => cluster.superseded(e.sid, e.generation, e.origin));
    this.forwards = new StreamForwards(cluster);
    this.relays = new StreamRelays(cluster, this.forwards);
    this.shared = new SharedSessions({
      commands: cluster.commands,
      ttlMs: options.sessionTtlMs,
      recoveringMs: cluster.liveness.recoveringMs,
      ...(options.maxMcpSessionsPerOwner === undefined
        ? {}
        : { maxPerOwner: options.maxMcpSessionsPerOwner }),
      onEvicted: (owner, count) =>
        log.info(
          "Forgot {count} MCP session(s) of {owner} least recently used on any replica: past --max-mcp-sessions-per-owner",
          { event: "mcp_sessions_evicted", owner, count },
        ),
    });
    this.registry.bind(this);
    this.perClient = new PerClientSessions({
      cluster,
      shared: this.shared,
      registry: this.registry,
      lookup: (owner, name) => this.#lookup(owner, name),
    });
    let downAt = Infinity;
    cluster.events.addEventListener("readiness", () => {
      if (!cluster.commands.state.up) downAt = Math.min(downAt, performance.now());
    });
    cluster.events.addEventListener("lost", () => {
      lostAt = performance.now();
      this.shared.reassert();
      // Envelopes on their way when Redis lost its data are gone with it: their calls cannot be
      // answered. (A call the holder had passed on before still gets its answer, unless failed here.)
      this.crossCalls.failSentBefore(
        downAt,
        "Redis restarted empty while the call was on its way; the call may or may not have run",
      );
      downAt = Infinity;
    });
    const stale = new StaleCalls({
      crossCalls: this.crossCalls,
      lookup: (server) => cluster.ownership.lookup(server),
      alive: () => cluster.liveness.replicas,
      resumeWindowMs: options.resumeWindowMs,
      ...(options.resumable === undefined ? {} : { resumable: options.resumable }),
    });
    cluster.events.addEventListener("beat", () => {
      void stale.check();
      // Sessions held here keep their owners' places (put back after an empty Redis).
      this.#places?.renewHeld(this.registry.list(), (sid) => cluster.generation(sid) !== undefined);
    });
  }

  /**
   * The server `name` of `owner` when another replica holds it; undefined when no replica does. While
   * Redis is down, a target whose every call is refused with the reason.
   */
  async remote(owner: string, name: string): Promise<CallTarget | undefined> {
    const readiness = this.cluster.readiness;
    if (!readiness.ready) return new UnreachableTunnel(readiness.detail);
    // No tunnel registers such a name: not asked of Redis, nor kept in the lookup cache (a URL's name
    // can run to the header limit, and the cache holds 10,000).
    if (name.length > MAX_NAME_LENGTH) return undefined;
    const route = await this.#lookup(owner, name);
    if (route === undefined || route.rid === this.cluster.replicaId) return undefined;
    return new RemoteTunnel(route, this, this.crossCalls);
  }

  /**
   * The held `initialize` result of a remote server, asked of its holder once per generation of its
   * tunnel session (a newer one replaces it); at most `--cluster-max-initialized` sessions are remembered.
   */
  initializeResult(route: CallRoute): Promise<JsonRpcResponse> {
    const key = route.sid;
    const known = this.#initialized.get(key);
    let result = known?.gen === route.gen ? known.result : undefined;
    if (result === undefined) {
      result = this.crossCalls.call(route, {
        jsonrpc: "2.0",
        id: 0,
        method: "initialize",
        params: {},
      }, {}).then((answer) => {
        const response = answer === undefined
          ? errorResponse(0, ErrorCode.TunnelUnavailable, "Initialize was cancelled")
          : answer instanceof RawResponse
          ? answer.parse()
          : answer;
        if (response.error !== undefined && this.#initialized.get(key)?.result === result) {
          this.#initialized.delete(key);
        }
        return response;
      });
      this.#initialized.delete(key);
      this.#initialized.set(key, { gen: route.gen, result });
      if (this.#initialized.size > this.cluster.settings.maxInitialized) {
        this.#initialized.delete(this.#initialized.keys().next().value!);
      }
    }
    return result;
  }

  /** Sends a client notification to the server of `route` (to `client`'s own instance, when given). */
  notify(route: CallRoute, notification: JsonRpcNotification, client?: string): boolean {
    this.cluster.inbox.send({
      kind: "call",
      target: route.rid,
      deadline: 0,
      generation: route.gen,
      sid: route.sid,
      id: "",
      client: client ?? "",
      payload: JSON.stringify(notification),
    }).catch(() => {});
    return true;
  }

  /** Replicas: SSE link ids name this replica; a POST for another's link is forwarded there. */
  linkReplica(): SseLinkReplica {
    return this.forwards.linkReplica();
  }

  /** Binds the link endpoint: POSTs forwarded here for SSE links whose streams are here reach them. */
  attachLinks(links: { forwardedPost(post: LinkPost): LinkPostAnswer }): void {
    this.forwards.serveLinks((post) => links.forwardedPost(post));
  }

  /** What the MCP endpoint of a replica adds: remote servers, shared sessions, forwarded streams. */
  endpointOptions(): Pick<
    McpEndpointOptions,
    "remote" | "shared" | "replica" | "streamReplica" | "endClient"
  > {
    return {
      remote: (owner, name) => this.remote(owner, name),
      endClient: (session, reason, byClient) => this.perClient.ended(session, reason, byClient),
      shared: this.shared,
      replica: this.forwards.legacyReplica(),
      streamReplica: this.relays.replica(),
    };
  }

  /** Binds the endpoint: forwarded legacy POSTs and server-initiated messages reach its clients. */
  attach(endpoint: McpEndpoint): void {
    this.forwards.serveLegacy((post) => endpoint.forwarded(post));
    this.relays.serve((request) => endpoint.resumed(request));
    this.attachClients(endpoint.router);
  }

  /**
   * The registrar's router on a replica: server messages reach clients on every replica (a per-client
   * instance's, its own client's, wherever its streams are); foreign answers go home; a per-client
   * server's `register_ack` lists the client sessions of every replica (or none, when not known lately).
   */
  router(endpoint: McpEndpoint): ServerMessageRouter {
    const local = endpoint.router;
    return {
      serverNotification: (session, message, clientSession) =>
        this.messages === undefined
          ? local.notification(session, message, clientSession)
          : this.messages.notification(session, message, clientSession),
      serverRequest: (session, request, signal, clientSession) =>
        this.messages === undefined
          ? local.request(session, request, signal, clientSession)
          : this.messages.request(session, request, signal, clientSession),
      clientSessionsOf: (owner, name) =>
        this.perClient.list(owner, name, endpoint.clientSessionsOf(owner, name)),
      foreign: (session, _type, payload) => this.foreign(session, payload),
    };
  }

  /** What the registrar adds on a replica: a registration is acknowledged once claimed. */
  registrarOptions(): Pick<RegistrarOptions, "claim"> {
    return { claim: (session) => this.registered(session) };
  }

  /** A 503 for a new link while Redis is unusable (fail closed), else undefined. */
  linkRefusal(): Response | undefined {
    const readiness = this.cluster.readiness;
    if (readiness.ready) return undefined;
    // A session registered now could not be claimed or found by the other replicas.
    return Response.json({
      error:
        `Registrations are refused while this replica cannot use Redis (${readiness.detail}); retry later`,
    }, { status: 503, headers: { "retry-after": "5" } });
  }

  /** Server notifications and requests across replicas, once the local clients are known. */
  messages: ServerMessages | undefined;

  /** Binds this replica's MCP clients (the endpoint's router), for server-initiated messages. */
  attachClients(local: LocalClients): ServerMessages {
    this.messages = new ServerMessages(this.cluster, local);
    return this.messages;
  }

  /** A message on a link held here for a call another replica sent (`ServerMessageRouter.foreign`). */
  foreign(session: TunnelSession, payload: Payload): boolean {
    return this.#holder.foreign(session, payload);
  }

  /**
   * A tunnel session registered here: refused with 4029 when its owner's sessions on all replicas fill
   * `--max-sessions-per-owner`, else claimed (resolves once the claim landed or failed: a failed one is
   * made again at the next beat); closed with 4002 once superseded. A place that cannot be asked for
   * (Redis failed this once) is not refused: this replica's own count held, and the next beat takes it.
   */
  async registered(session: TunnelSession): Promise<void> {
    if (await this.#places?.refuses(session, this.#metrics)) return;
    const { owner, name, perClient } = session;
    const held = this.cluster.hold(session.id, { owner, name, perClient }, (by) => {
      session.close(CloseCode.Superseded, {
        kind: "superseded",
        reason: by === undefined
          ? "superseded by a newer registration"
          : `superseded by a registration on replica ${by.rid}`,
      });
    });
    // A per-client server's `register_ack` lists the client sessions of every replica: read them first.
    await (perClient ? Promise.all([held, this.perClient.refresh(owner, name)]) : held);
  }

  /** A tunnel session held here ended: release it, and its owner's place (not if taken over). */
  closed(session: TunnelSession): void {
    if (this.cluster.generation(session.id) !== undefined) {
      this.#places?.release(session.owner, session.id);
    }
    this.perClient.forgetServer(session.owner, session.name);
    void this.cluster.drop(session.id);
  }

  /** Fails every cross-replica call waiting (shutdown). */
  close(): void {
    this.#holder.close();
    this.crossCalls.failAll("the gateway is shutting down");
  }

  async #lookup(
    owner: string,
    name: string,
    options: { fresh?: boolean } = {},
  ): Promise<CallRoute | undefined> {
    const key = `${owner}\u0000${name}`;
    const now = performance.now();
    const cached = this.#lookups.get(key);
    if (cached !== undefined && now - cached.at < LOOKUP_CACHE_MS && !options.fresh) {
      return await cached.route;
    }
    const route = this.cluster.ownership.lookup({ owner, name }).then((found) => {
      if (found?.owner === undefined) return undefined;
      const { sid, perClient } = found;
      return { sid, rid: found.owner.rid, gen: found.owner.gen, owner, name, perClient };
    });
    this.#lookups.set(key, { at: now, route });
    if (this.#lookups.size > 10_000) this.#lookups.delete(this.#lookups.keys().next().value!);
    try {
      return await route;
    } catch (error) {
      this.#lookups.delete(key);
      throw error;
    }
  }
}

/**
 * The registry of a replica: a session removed (ended here) is released in Redis. (A registered one is
 * claimed through the registrar's `claim`, before its `register_ack`.)
 */
export class ClusterRegistry extends TunnelRegistry<TunnelSession> {
  #routing: ClusterRouting | undefined;

  /** Binds the routing once both exist (each needs the other). */
  bind(routing: ClusterRouting): void {
    this.#routing = routing;
  }

  override remove(session: TunnelSession): boolean {
    const removed = super.remove(session);
    if (removed) this.#routing?.closed(session);
    return removed;
  }
}
