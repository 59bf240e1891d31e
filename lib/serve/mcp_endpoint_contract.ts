// What the MCP endpoint is built from and what each request brings to it: its options (limits, stores,
// budget) and the request context the HTTP server supplies (identity, server name, path, disconnect).

import type { MemoryBudget } from "./memory_budget.ts";
import type { ServeMetrics } from "./metrics.ts";
import type { StreamSettings } from "./resumable_stream.ts";
import type { TunnelSession } from "./tunnel_session.ts";
import type { TunnelRegistry } from "./tunnel_registry.ts";
import type { Identity } from "./token_store.ts";
import type { ServeState } from "./state/serve_state.ts";
import type { CallTarget } from "./call_contract.ts";
import type { SharedSessionHooks } from "./shared_session_hooks.ts";
import type { LegacyReplica } from "./legacy_sse.ts";
import type { StreamReplica } from "./mcp_streams.ts";

/** Options of `McpEndpoint`. */
export interface McpEndpointOptions {
  /** Live tunnel sessions. */
  registry: TunnelRegistry<TunnelSession>;
  /** Deadline of a call and of a server-initiated request, in milliseconds. */
  callTimeoutMs: number;
  /** Largest POST body, in bytes. */
  maxBodyBytes: number;
  /** An MCP session idle this long (no request, no open stream) is forgotten, in milliseconds. */
  sessionTtlMs: number;
  /** MCP client sessions one owner may hold (default 1,024). */
  maxSessionsPerOwner?: number;
  /** Open GET streams one token may hold at once, so that one client cannot take its owner's share. */
  maxStreamsPerToken?: number;
  /** UTF-8 bytes of an `initialize` request's params at most (default 64 KiB). */
  maxInitializeBytes?: number;
  /** Origins allowed in an `Origin` header (`*` allows any); requests without `Origin` pass. */
  allowedOrigins: ReadonlySet<string>;
  /**
   * Bytes one SSE connection (a GET stream or a POST's answer) may hold that its client has not read; past
   * it the connection is cut (`slow_client`). Default unbounded.
   */
  maxClientBufferBytes?: number;
  /** Replay buffer bounds, resume window and `retry:` of each session's streams. Default `STREAM_DEFAULTS`. */
  streams?: StreamSettings;
  /** Path prefix clients see before `/servers/…` (from `--public-url`), for the legacy `endpoint` event. */
  publicPath?: string;
  /** The clock. Default `Date.now`. */
  now?: () => number;
  /** Counts requests for unknown sessions (`no_session`) and streams closed on slow clients (`slow_client`). */
  metrics?: ServeMetrics;
  /** Where SSE replay and what clients have not read are charged, against each owner's memory share. */
  budget?: MemoryBudget;
  /** Where MCP client sessions are saved, so that a restarted gateway knows them. */
  state?: ServeState;
  /** Replicas: a server another replica holds (lib/serve/cluster/routing.ts). */
  remote?: (owner: string, name: string) => Promise<CallTarget | undefined>;
  /** Replicas: MCP client sessions shared with the others. */
  shared?: SharedSessionHooks;
  /** Replicas: this replica, for the legacy sessions it holds and those of the others. */
  replica?: LegacyReplica;
  /** Replicas: this replica, for the streams it holds and those of the others. */
  streamReplica?: StreamReplica;
  /**
   * Replicas: an MCP client session ended here (`byClient`: its DELETE; else idleness or room). Stops a
   * per-client server's instance wherever its tunnel is held (lib/serve/cluster/per_client.ts); without
   * it, the instance of a server held here stops.
   */
  endClient?: (
    session: { id: string; owner: string; serverName: string; legacy: boolean },
    reason: string,
    byClient: boolean,
  ) => void;
}

/** Which MCP path a request is for, and what the HTTP server knows of its client. */
export interface McpRequestContext {
  identity: Identity;
  serverName: string;
  /** `mcp` (Streamable HTTP, the default), or the legacy HTTP+SSE `sse` and `messages`. */
  path?: "mcp" | "sse" | "messages";
  /**
   * Aborts when the client disconnects before its answer was written. A call answered as plain JSON is
   * cancelled at once when it aborts (nothing could resume it). Listened to only until the answer is given.
   */
  clientGone?: AbortSignal;
}

/** The last path segments the MCP endpoint serves under `/servers/<name>/`. */
export const MCP_PATHS: ReadonlySet<string> = new Set(["mcp", "sse", "messages"]);
