// The gateway (contract C): one HTTP server that accepts tunnel links at /reverse-proxy/ws (or sse), serves
// each registered server at /servers/<name>/mcp, offers the sessions API, and reaps dead links. The listener
// itself (stack, timeouts, WebSocket frames) is lib/serve/http/.

import { type HttpRequest, pathOf } from "./http_request.ts";
import denoJson from "../../deno.json" with { type: "json" };
import { CloseCode } from "../protocol/frames.ts";
import { logger } from "../util/log.ts";
import type { ServeMetrics } from "./metrics.ts";
import type { WebSocketAccept } from "./peer_socket.ts";
import { LinkAdmission } from "./link_admission.ts";
import { bounded, type HttpServer, startHttpServer } from "./http/server.ts";
import { decodeSegment, ownOrigins } from "./gateway_requests.ts";
import { McpEndpoint } from "./mcp_endpoint.ts";
import { MCP_PATHS, type McpRequestContext } from "./mcp_endpoint_contract.ts";
import { Registrar } from "./registration.ts";
import { RequestBodyTimeoutError } from "./request_body.ts";
import { TunnelRegistry } from "./tunnel_registry.ts";
import type { ResumeSettings } from "./session_contract.ts";
import type { TunnelSession } from "./tunnel_session.ts";
import { handleSessionsApi } from "./sessions_api.ts";
import { authorizeRequest, type Identity, type Role, type TokenStore } from "./token_store.ts";
import { METADATA_PREFIX, protectedResourceMetadata } from "./protected_resource.ts";
import { type GatewayLimits, LIMIT_DEFAULTS, resolveLimits } from "./gateway_limits.ts";
import { MemoryBudget } from "./memory_budget.ts";
import { chargedExchange } from "./exchange_charge.ts";
import { rpcError } from "./mcp_http.ts";
import { IdleCollector } from "../util/idle_gc.ts";
import type { ServeState } from "./state/serve_state.ts";
import type { Cluster } from "./cluster/cluster.ts";
import { ClusterRouting } from "./cluster/routing.ts";

const log = logger("serve");

/** Defaults of {@link GatewayOptions}. */
export const GATEWAY_DEFAULTS = {
  hostname: "127.0.0.1",
  port: 8080,
  ...LIMIT_DEFAULTS,
} as const;

/** Options of {@link startGateway}: its limits (each optional, see {@link GatewayLimits}) and the rest. */
export interface GatewayOptions extends Partial<GatewayLimits> {
  /** Verifies bearer tokens of links and clients. */
  tokens: TokenStore;
  /** Address to listen on. Default 127.0.0.1. */
  hostname?: string;
  /** Port; 0 picks a free one. Default 8080. */
  port?: number;
  /** PEM certificate chain and key: serve HTTPS/WSS. */
  tls?: { cert: string; key: string };
  /**
   * Base URL clients use to reach the gateway (behind a proxy); `mcpUrl`s are built from it. With OAuth it
   * is also the base of every resource URL (tokens' audience); without it that base is {@link Gateway.url}.
   */
  publicUrl?: string;
  /** Extra origins allowed on the MCP endpoints (`*` = any). The gateway's own origins are always allowed. */
  allowedOrigins?: string[];
  /** The clock. Default `Date.now`. */
  now?: () => number;
  /** Metrics to keep up to date (see `createServeMetrics`). */
  metrics?: ServeMetrics;
  /**
   * Where sessions are saved (lib/serve/state/): what it holds is restored before listening, and on
   * close sessions are kept there for the next gateway instead of ended. Undefined: memory only.
   */
  state?: ServeState;
  /** This gateway is one replica of many sharing state in Redis (`--redis`). */
  cluster?: Cluster;
}

/** A running gateway. */
export interface Gateway {
  /** Base URL with the actual port, for example `http://127.0.0.1:41234`. */
  readonly url: string;
  /** The actual port. */
  readonly port: number;
  /** Closes every link (1001), ends MCP streams, and stops the server. */
  close(): Promise<void>;
}

/**
 * Starts the gateway.
 *
 * @example
 * ```ts ignore
 * import { startGateway } from "./gateway.ts";
 * import { createTokenStore } from "./token_store.ts";
 * const gateway = await startGateway({ port: 0, tokens: await createTokenStore({ tokensFile: "t: alice" }) });
 * console.log(gateway.url);
 * await gateway.close();
 * ```
 */
export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const {
    tokens,
    hostname = GATEWAY_DEFAULTS.hostname,
    port = GATEWAY_DEFAULTS.port,
    tls,
    allowedOrigins = [],
    now = Date.now,
    metrics,
    state,
  } = options;
  const {
    maxFrameBytes,
    maxSessionsPerOwner,
    maxInflight,
    maxQueued,
    callTimeoutMs,
    heartbeatTimeoutMs,
    wsIdleTimeoutSeconds,
    registerTimeoutMs,
    headersTimeoutMs,
    bodyTimeoutMs,
    bodyMinBytesPerSecond,
    keepAliveTimeoutMs,
    maxBadFrames,
    mcpSessionTtlMs,
    maxMcpSessionsPerOwner,
    resumeWindowMs,
    replayFrames,
    replayBytes,
    maxClientBufferBytes,
    maxStreamsPerToken,
    maxInitializeBytes,
    sseReplayBytes,
    sseReplayEvents,
    sseResumeWindowMs,
    sseRetryMs,
    sseLinkKeepaliveMs,
    memoryBudgetBytes,
    memoryPerOwnerBytes,
  } = resolveLimits(options);
  // Memory held for others comes and goes: once releases add up and stop for a moment, collect.
  const idle = new IdleCollector();
  const budget = new MemoryBudget({
    totalBytes: memoryBudgetBytes,
    perOwnerBytes: memoryPerOwnerBytes,
    onRelease: (bytes) => idle.released(bytes),
  });
  const publicUrl = options.publicUrl === undefined ? undefined : new URL(options.publicUrl);
  const scheme = tls === undefined ? "http" : "https";

  const origins = new Set(allowedOrigins);
  const resume: ResumeSettings | undefined = resumeWindowMs === 0 ? undefined : {
    windowMs: resumeWindowMs,
    limits: { maxFrames: replayFrames, maxBytes: replayBytes },
  };
  const routing = options.cluster === undefined ? undefined : new ClusterRouting({
    cluster: options.cluster,
    callTimeoutMs,
    sessionTtlMs: mcpSessionTtlMs,
    maxMcpSessionsPerOwner,
    maxSessionsPerOwner,
    resumeWindowMs,
    ...(state === undefined ? {} : {
      resumable: (sid) => state.findTunnel(sid).then((found) => found.tunnel !== undefined),
    }),
    metrics,
  });
  const registry = routing?.registry ?? new TunnelRegistry<TunnelSession>();
  const endpoint = new McpEndpoint({
    registry,
    callTimeoutMs,
    maxBodyBytes: maxFrameBytes,
    sessionTtlMs: mcpSessionTtlMs,
    maxSessionsPerOwner: maxMcpSessionsPerOwner,
    allowedOrigins: origins,
    maxClientBufferBytes,
    maxStreamsPerToken,
    maxInitializeBytes,
    streams: {
      replayBytes: sseReplayBytes,
      replayEvents: sseReplayEvents,
      resumeWindowMs: sseResumeWindowMs,
      retryMs: sseRetryMs,
      // Replicas: event ids name this replica, so that a resume landing elsewhere is sent here.
      ...(options.cluster === undefined ? {} : { eventPrefix: `${options.cluster.replicaId}.` }),
    },
    publicPath: publicUrl === undefined ? "" : publicUrl.pathname.replace(/\/+$/, ""),
    now,
    budget,
    ...(metrics === undefined ? {} : { metrics }),
    // Replicas share MCP client sessions through the cluster (`c:` keys), not the state store.
    ...(state === undefined || routing !== undefined ? {} : { state }),
    ...routing?.endpointOptions(),
  });
  routing?.attach(endpoint);
  const registrar = new Registrar({
    registry,
    maxSessionsPerOwner,
    pendingLinks: (owner) => admission.pendingLinks(owner),
    limits: { maxFrameBytes, maxInflight, maxQueued, callTimeoutMs },
    ...(resume === undefined ? {} : { resume }),
    router: routing?.router(endpoint) ?? {
      serverNotification: (session, message, clientSession) =>
        endpoint.router.notification(session, message, clientSession),
      serverRequest: (session, request, signal, clientSession) =>
        endpoint.router.request(session, request, signal, clientSession),
      clientSessionsOf: (owner, name) => endpoint.clientSessionsOf(owner, name),
    },
    version: denoJson.version,
    now,
    budget,
    ...routing?.registrarOptions(),
    ...(metrics === undefined ? {} : { metrics }),
    ...(state === undefined ? {} : { state, sharedState: routing !== undefined }),
  });
  // A replica restores nothing at start: its tunnels are looked up when their clients resume them. When
  // Redis comes back empty, it saves their records again at once.
  if (state !== undefined && routing === undefined) await restore(state);
  options.cluster?.events.addEventListener("lost", () => state?.refresh(true));
  const admission = new LinkAdmission({
    authorize: (request) => authorize(request, "connect"),
    registry,
    maxSessionsPerOwner,
    limits: { maxFrameBytes, maxBadFrames, registerTimeoutMs },
    ...(publicUrl === undefined ? {} : { publicUrl }),
    register: (link, frame) => registrar.register(link, frame),
    livenessChanged(link) {
      if (link.deadlineMs !== undefined) scheduleReap(tickFor(link.deadlineMs));
    },
    sseKeepaliveMs: sseLinkKeepaliveMs,
    now,
    budget,
    ...(metrics === undefined ? {} : { metrics }),
    ...(routing === undefined ? {} : { sseReplica: routing.linkReplica() }),
  });
  routing?.attachLinks(admission);

  /**
   * The base of OAuth resource URLs: fixed (the public URL, else the address listened on), never the
   * request's Host header, which a client chooses and so could make a token for another host pass.
   */
  function oauthBase(): string {
    if (publicUrl !== undefined) return publicUrl.href.replace(/\/+$/, "");
    const host = hostname.includes(":") ? `[${hostname}]` : hostname;
    return `${scheme}://${host}:${server.port}`;
  }

  function authorize(request: HttpRequest, role: Role): Promise<Identity | Response> {
    return authorizeRequest(tokens, request, { role, base: oauthBase() });
  }

  function badPath(path: string): Response {
    log.debug("Malformed path {path}", { event: "bad_request", path: bounded(path) });
    return Response.json({ error: "Malformed percent-encoding in the path" }, { status: 400 });
  }

  async function route(request: HttpRequest): Promise<Response | WebSocketAccept> {
    const pathname = pathOf(request);
    const segments = pathname.split("/").filter((s) => s !== "");
    if (pathname === "/healthz") {
      return Response.json({ status: "ok", links: admission.links.size });
    }
    if (stopped) {
      // Sessions are being handed over to the state store (or ended): a request now could only find
      // none. Retry-After tells clients to try again, which reaches the next gateway.
      const message = "The gateway is shutting down; retry in a moment";
      return rpcError(503, null, -32001, message, { "retry-after": "1" });
    }
    if (pathname.startsWith(`${METADATA_PREFIX}/`) && tokens.oauthIssuers.length > 0) {
      const authorizationServers = tokens.oauthIssuers.map((issuer) => issuer.url);
      return protectedResourceMetadata(request, { base: oauthBase(), authorizationServers });
    }
    if (segments[0] === "reverse-proxy" && (segments[1] === "ws" || segments[1] === "sse")) {
      const refused = routing?.linkRefusal();
      if (refused !== undefined) return refused;
      return await admission.route(request, segments.slice(1));
    }
    if (segments[0] === "reverse-proxy" && segments[1] === "sessions") {
      const identity = await authorize(request, "client");
      if (identity instanceof Response) {
        metrics?.errors.inc("auth");
        return identity;
      }
      const rest = segments.slice(2).map(decodeSegment);
      if (rest.some((segment) => segment === undefined)) return badPath(pathname);
      const api = { registry, maxBodyBytes: maxFrameBytes };
      const who = { budget, owner: identity.owner, maxBodyBytes: maxFrameBytes };
      const handle = () => handleSessionsApi(request, identity, rest as string[], api);
      return await chargedExchange(request, who, handle);
    }
    if (segments[0] === "servers" && MCP_PATHS.has(segments[2]!) && segments.length === 3) {
      const name = decodeSegment(segments[1]!);
      if (name === undefined) return badPath(pathname);
      // A browser's preflight carries no credentials: it is answered before authentication.
      if (request.method === "OPTIONS") return endpoint.preflight(request, name);
      const identity = await authorize(request, "client");
      if (identity instanceof Response) {
        metrics?.errors.inc("auth");
        return endpoint.authRefusal(request, { response: identity, serverName: name });
      }
      return await endpoint.handle(request, {
        identity,
        serverName: name,
        path: segments[2] as NonNullable<McpRequestContext["path"]>,
        // Aborts when the client disconnects before its answer was written (http/server.ts).
        clientGone: request.signal,
      });
    }
    return Response.json({ error: "Not found" }, { status: 404 });
  }

  /** What the gateway before this one saved, before anyone can reach this one. */
  async function restore(state: ServeState): Promise<void> {
    const saved = await state.load();
    const tunnels = registrar.restore(saved);
    const clients = endpoint.restore(saved.clients);
    log.info(
      "Restored {tunnels} tunnel session(s) and {clients} MCP client session(s) from {store}",
      { event: "state_restored", tunnels, clients, store: state.store.location },
    );
  }

  /** Ends what this process holds: kept in the store for the next gateway, or ended for good. */
  async function endSessions(): Promise<void> {
    if (state !== undefined) registrar.releaseAll("gateway shutting down");
    // Sessions end (their calls fail at once) rather than wait to be resumed on a gateway that is going.
    for (const session of registry.list()) {
      session.close(CloseCode.GoingAway, { kind: "shutdown", reason: "gateway shutting down" });
    }
    // Once the failed calls' answers reached their streams (a turn of the event loop), so that a client
    // waiting on an SSE stream gets its error rather than a cut.
    await new Promise((resolve) => setTimeout(resolve, 0));
    endpoint.close();
  }

  let stopped = false;
  let server: HttpServer;
  try {
    server = await startServer();
  } catch (error: unknown) {
    await endSessions();
    await state?.close(2_000);
    throw error;
  }
  function startServer(): Promise<HttpServer> {
    return startHttpServer({
      hostname,
      port,
      ...(tls === undefined ? {} : { tls }),
      timeouts: {
        headersMs: headersTimeoutMs,
        bodyMs: bodyTimeoutMs,
        bodyMinBytesPerSecond,
        keepAliveMs: keepAliveTimeoutMs,
      },
      maxFrameBytes,
      wsIdleTimeoutMs: wsIdleTimeoutSeconds * 1000,
      async handler(request) {
        try {
          return await route(request);
        } catch (error) {
          // The listener answers a body that came too slowly itself (408).
          if (error instanceof RequestBodyTimeoutError) throw error;
          log.error("Request to {path} failed: {error}", {
            event: "internal_error",
            path: bounded(pathOf(request)),
            error: String(error),
          });
          return Response.json({ error: "Internal error" }, { status: 500 });
        }
      },
    });
  }
  if (metrics !== undefined) {
    metrics.listening.set(1);
    metrics.sessions.track(() => registry.list().length);
    metrics.mcpClients.track(() => endpoint.sessionCount);
    metrics.memoryHeld.track(() => budget.used);
    metrics.callsInFlight.track(() => {
      let calls = 0;
      for (const session of registry.list()) calls += session.inflight;
      return calls;
    });
    metrics.callsQueued.track(() => {
      let queued = 0;
      for (const session of registry.list()) queued += session.calls.queued;
      return queued;
    });
  }
  for (const origin of ownOrigins(hostname, server.port, publicUrl)) origins.add(origin);

  /** Checks often enough that a dead link is noticed soon after its deadline. */
  function tickFor(deadlineMs: number): number {
    return Math.max(10, Math.min(deadlineMs / 4, 5_000));
  }
  let reaper: ReturnType<typeof setTimeout> | undefined;
  let reapAt = Infinity;
  /** Runs the reaper in `ms` unless it runs sooner already. */
  function scheduleReap(ms: number): void {
    if (stopped || performance.now() + ms >= reapAt) return;
    clearTimeout(reaper);
    reapAt = performance.now() + ms;
    reaper = setTimeout(reap, ms);
  }
  /** The longest the reaper may wait: often enough for both the link deadline and the MCP session TTL. */
  const idleTick = Math.min(tickFor(heartbeatTimeoutMs), tickFor(mcpSessionTtlMs));
  function reap(): void {
    reapAt = Infinity;
    const at = now();
    let tick = idleTick;
    for (const link of admission.links) {
      if (link.closed) continue;
      const deadlineMs = link.deadlineMs ?? heartbeatTimeoutMs;
      tick = Math.min(tick, tickFor(deadlineMs));
      if (at - link.lastInbound > deadlineMs) {
        log.warning("Link {link} of {owner} sent nothing for {seconds} s: link lost", {
          event: "link_dead",
          link: link.id,
          owner: link.owner,
          seconds: Math.round((at - link.lastInbound) / 100) / 10,
        });
        link.declareDead(`no frames for ${deadlineMs / 1000} s`);
      }
    }
    endpoint.sweep();
    registrar.prune();
    scheduleReap(tick);
  }
  scheduleReap(idleTick);

  const displayHost = hostname.includes(":") ? `[${hostname}]` : hostname;
  const url = `${scheme}://${displayHost}:${server.port}`;
  let closing: Promise<void> | undefined;
  return {
    url,
    port: server.port,
    close() {
      closing ??= (async () => {
        stopped = true;
        clearTimeout(reaper);
        await endSessions();
        routing?.close();
        // Let the 1001 reach the clients before the process goes away; a client that does not answer
        // the close within the wait is dropped by server.close().
        await admission.close(2_000);
        await server.close();
        await state?.close(5_000);
        idle.close();
        metrics?.listening.set(0);
      })();
      return closing;
    },
  };
}
