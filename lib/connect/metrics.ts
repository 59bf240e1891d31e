// The metric set of `connect`, updated on its paths and served at `/metrics` by the health listener.

import {
  buildInfo,
  type ErrorCounter,
  errorCounter,
  memory,
  type MetricSetOptions,
  traffic,
  type TrafficMetrics,
} from "../util/common_metrics.ts";
import { type Counter, type Gauge, type Histogram, MetricsRegistry } from "../util/prometheus.ts";

/** Kinds of error counted by `connect`; other strings are accepted too. */
export type ConnectErrorKind =
  | "dial"
  | "registration"
  | "heartbeat_timeout"
  | "link_lost"
  | "server_start"
  | "server_exit"
  | "frame_too_large"
  | "too_many_sessions"
  | "server_queue_full"
  | "response_dropped";

const CONNECT_ERROR_KINDS: readonly ConnectErrorKind[] = [
  "dial",
  "registration",
  "heartbeat_timeout",
  "link_lost",
  "server_start",
  "server_exit",
  "frame_too_large",
  "too_many_sessions",
  "server_queue_full",
  "response_dropped",
];

/** The metrics of `connect`, each a child to update directly on its path. */
export interface ConnectMetrics extends TrafficMetrics {
  /** The registry; its `render()` serves `/metrics`. */
  registry: MetricsRegistry;
  /** 1 while the link is registered with the gateway, else 0. */
  linkUp: Gauge;
  /** Links that reached registered, the first one included. */
  linkConnects: Counter;
  /** Dial attempts after the link was lost or a dial failed (each retry counts once). */
  linkReconnects: Counter;
  /** Seconds from starting the dial to the registration acknowledgement. */
  registrationDuration: Histogram;
  /** Seconds from sending a heartbeat to its reply. */
  heartbeatRtt: Histogram;
  /** Requests forwarded to the local server that have not been answered yet. */
  callsInFlight: Gauge;
  /** Times the local server was started again after it exited. */
  serverRestarts: Counter;
  /** Errors by kind. */
  errors: ErrorCounter<ConnectErrorKind>;
  /** `render()` of the registry, so the set can be passed as `metrics` to the health server. */
  render(): string;
}

/**
 * The metric set of `connect`.
 *
 * @example
 * ```ts
 * import { createConnectMetrics } from "./metrics.ts";
 * const metrics = createConnectMetrics({ version: "0.1.0" });
 * metrics.framesOut.inc();
 * metrics.bytesOut.inc(42);
 * metrics.errors.inc("dial");
 * metrics.render().includes('mcp_rproxy_frames_total{direction="out"} 1'); // true
 * ```
 */
export function createConnectMetrics(options: MetricSetOptions = {}): ConnectMetrics {
  const registry = new MetricsRegistry();
  buildInfo(registry, options.version);
  memory(registry);
  const linkUp = registry.gauge({
    name: "mcp_rproxy_link_up",
    help: "1 while the link to the gateway is registered, else 0.",
  });
  const linkConnects = registry.counter({
    name: "mcp_rproxy_link_connects_total",
    help: "Links to the gateway that reached registered, the first one included.",
  });
  const linkReconnects = registry.counter({
    name: "mcp_rproxy_link_reconnects_total",
    help: "Dial attempts made after the link was lost or a dial failed.",
  });
  const registrationDuration = registry.histogram({
    name: "mcp_rproxy_registration_duration_seconds",
    help: "Seconds from starting the dial to the gateway's registration acknowledgement.",
  });
  const heartbeatRtt = registry.histogram({
    name: "mcp_rproxy_heartbeat_rtt_seconds",
    help: "Seconds from sending a heartbeat to receiving its reply.",
  });
  const trafficMetrics = traffic(registry);
  const callsInFlight = registry.gauge({
    name: "mcp_rproxy_calls_in_flight",
    help: "Requests forwarded to the local server and not answered yet.",
  });
  const serverRestarts = registry.counter({
    name: "mcp_rproxy_server_restarts_total",
    help: "Times the local MCP server was started again after it exited.",
  });
  const errors = registry.counterVec({
    name: "mcp_rproxy_errors_total",
    help: "Errors by kind.",
    labelNames: ["kind"],
    initial: CONNECT_ERROR_KINDS.map((kind) => [kind]),
  });
  return {
    registry,
    linkUp,
    linkConnects,
    linkReconnects,
    registrationDuration,
    heartbeatRtt,
    ...trafficMetrics,
    callsInFlight,
    serverRestarts,
    errors: errorCounter<ConnectErrorKind>(errors),
    render: () => registry.render(),
  };
}
