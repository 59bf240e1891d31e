// The metric set of `serve`, updated on its paths and served at `/metrics` by the health listener.

import {
  buildInfo,
  type ErrorCounter,
  errorCounter,
  memory,
  type MetricSetOptions,
  traffic,
  type TrafficMetrics,
} from "../util/common_metrics.ts";
import {
  type Counter,
  type Gauge,
  type GaugeVec,
  type Histogram,
  MetricsRegistry,
} from "../util/prometheus.ts";

/** Kinds of error counted by `serve`; other strings are accepted too. */
export type ServeErrorKind =
  | "auth"
  | "registration"
  | "protocol"
  | "link_lost"
  | "heartbeat_timeout"
  | "call_timeout"
  | "no_session"
  | "slow_client"
  | "late_response"
  | "too_many_streams"
  | "memory"
  | "queue_full"
  | "replay_gap"
  | "state_store"
  | "state_dropped";

const SERVE_ERROR_KINDS: readonly ServeErrorKind[] = [
  "auth",
  "registration",
  "protocol",
  "link_lost",
  "heartbeat_timeout",
  "call_timeout",
  "no_session",
  "slow_client",
  "late_response",
  "too_many_streams",
  "memory",
  "queue_full",
  "replay_gap",
  "state_store",
  "state_dropped",
];

/** Buckets of the time a call waits for a slot, in seconds: from a few milliseconds to the call timeout. */
const QUEUE_BUCKETS: readonly number[] = [
  0.001,
  0.005,
  0.025,
  0.1,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
  300,
];

/** The metrics of `serve`, each a child to update directly on its path. */
export interface ServeMetrics extends TrafficMetrics {
  /** The registry; its `render()` serves `/metrics`. */
  registry: MetricsRegistry;
  /** 1 while the gateway listens, else 0. */
  listening: Gauge;
  /** Registered `connect` sessions; set it, or `track()` the size of the session map. */
  sessions: Gauge;
  /** Connected MCP clients; set it, or `track()` the size of the client map. */
  mcpClients: Gauge;
  /** Links open now, registered or not, by transport (`websocket`, `sse`); `track()` each label. */
  links: GaugeVec;
  /** Links whose registration was accepted. */
  linksAccepted: Counter;
  /** Links refused, by reason (`auth`, `registration`, or another short word). */
  linksRefused: ErrorCounter<"auth" | "registration">;
  /** MCP requests forwarded to a session and not answered yet. */
  callsInFlight: Gauge;
  /** Calls waiting for a slot (past `--max-inflight`); `track()` the sum over sessions. */
  callsQueued: Gauge;
  /** Seconds each call spent waiting for a slot, observed when it leaves the queue (sent, timed out or cancelled). */
  callQueueSeconds: Histogram;
  /** Bytes held for others under the memory budget (frames being received, replay and SSE buffers). */
  memoryHeld: Gauge;
  /** Errors by kind. */
  errors: ErrorCounter<ServeErrorKind>;
  /** `render()` of the registry, so the set can be passed as `metrics` to the health server. */
  render(): string;
}

/**
 * The metric set of `serve`.
 *
 * @example
 * ```ts
 * import { createServeMetrics } from "./metrics.ts";
 * const metrics = createServeMetrics();
 * const sessions = new Map<string, unknown>();
 * metrics.sessions.track(() => sessions.size);
 * metrics.linksRefused.inc("auth");
 * ```
 */
export function createServeMetrics(options: MetricSetOptions = {}): ServeMetrics {
  const registry = new MetricsRegistry();
  buildInfo(registry, options.version);
  memory(registry);
  const listening = registry.gauge({
    name: "mcp_rproxy_listening",
    help: "1 while the gateway listens for links and MCP clients, else 0.",
  });
  const sessions = registry.gauge({
    name: "mcp_rproxy_sessions",
    help: "Registered connect sessions.",
  });
  const mcpClients = registry.gauge({
    name: "mcp_rproxy_mcp_clients",
    help: "Connected MCP clients.",
  });
  const links = registry.gaugeVec({
    name: "mcp_rproxy_links",
    help: "Links from connect open now, registered or not, by transport.",
    labelNames: ["transport"],
    initial: [["websocket"], ["sse"]],
  });
  const linksAccepted = registry.counter({
    name: "mcp_rproxy_links_accepted_total",
    help: "Links from connect whose registration was accepted.",
  });
  const linksRefused = registry.counterVec({
    name: "mcp_rproxy_links_refused_total",
    help: "Links from connect that were refused, by reason.",
    labelNames: ["reason"],
    initial: [["auth"], ["registration"]],
  });
  const trafficMetrics = traffic(registry);
  const memoryHeld = registry.gauge({
    name: "mcp_rproxy_memory_held_bytes",
    help:
      "Bytes held for others under the memory budget: frames being received, replay and SSE buffers, queues.",
  });
  const callsInFlight = registry.gauge({
    name: "mcp_rproxy_calls_in_flight",
    help: "MCP requests forwarded to a session and not answered yet.",
  });
  const callsQueued = registry.gauge({
    name: "mcp_rproxy_calls_queued",
    help: "Calls waiting for a slot because --max-inflight calls are in flight to their server.",
  });
  const callQueueSeconds = registry.histogram({
    name: "mcp_rproxy_call_queue_seconds",
    help: "Time calls spent waiting for a slot, in seconds (observed when they leave the queue).",
    buckets: QUEUE_BUCKETS,
  });
  const errors = registry.counterVec({
    name: "mcp_rproxy_errors_total",
    help: "Errors by kind.",
    labelNames: ["kind"],
    initial: SERVE_ERROR_KINDS.map((kind) => [kind]),
  });
  return {
    registry,
    listening,
    sessions,
    mcpClients,
    links,
    linksAccepted,
    linksRefused: errorCounter<"auth" | "registration">(linksRefused),
    ...trafficMetrics,
    callsInFlight,
    callsQueued,
    callQueueSeconds,
    memoryHeld,
    errors: errorCounter<ServeErrorKind>(errors),
    render: () => registry.render(),
  };
}
