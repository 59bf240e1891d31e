// The metric set of `connect`, updated on its paths and served at `/metrics` by the health listener. What
// belongs to one local server carries a `server` label; what belongs to the links does not.

import {
  buildInfo,
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

/** Kinds of error counted by `connect`; other strings are accepted too. */
export type ConnectErrorKind =
  | "dial"
  | "registration"
  | "heartbeat_timeout"
  | "link_lost"
  | "server_start"
  | "server_exit"
  | "frame_too_large"
  | "message_too_large"
  | "too_many_sessions"
  | "server_queue_full"
  | "response_dropped"
  | "repeated_request";

const CONNECT_ERROR_KINDS: readonly ConnectErrorKind[] = [
  "dial",
  "registration",
  "heartbeat_timeout",
  "link_lost",
  "server_start",
  "server_exit",
  "frame_too_large",
  "message_too_large",
  "too_many_sessions",
  "server_queue_full",
  "response_dropped",
  "repeated_request",
];

/** Errors by kind, and by server for the kinds that belong to one. */
export interface ConnectErrors {
  /** Counts one error of `kind`; `server` for a server's own (its start, its queue, its answers). */
  inc(kind: ConnectErrorKind | (string & Record<never, never>), server?: string): void;
  /** The count of `kind` (of `server`, or of the links), for tests and logs. */
  value(kind: ConnectErrorKind | (string & Record<never, never>), server?: string): number;
}

/** The metrics of one local server. */
export interface ServerMetrics {
  /** Requests forwarded to it that have not been answered yet. */
  callsInFlight: Gauge;
  /** Times it was started again (or reconnected to) after it exited (or went away). */
  restarts: Counter;
  /** 1 while it runs and is registered with the gateway, else 0. */
  up: Gauge;
  /** Its `list_changed` notifications from before a registration, whose own discovery made them moot. */
  notificationsSuperseded: Counter;
  /** Per-client: instances running now. */
  instances: Gauge;
  /** Per-client: instances started (each start and restart). */
  instanceStarts: Counter;
  /** Per-client: instances stopped, by reason (`session_end`, `idle`, `shutdown`, `exited`). */
  instanceStops: { inc(reason: string): void };
  /** Per-client: new instances refused at `max_instances`. */
  instanceRefusals: Counter;
  /** Counts one of its errors. */
  error(kind: ConnectErrorKind | (string & Record<never, never>)): void;
}

/** The metrics of `connect`, each a child to update directly on its path. */
export interface ConnectMetrics extends TrafficMetrics {
  /** The registry; its `render()` serves `/metrics`. */
  registry: MetricsRegistry;
  /** Links registered with the gateway now (one with channels; one per server without). */
  linkUp: Gauge;
  /** 1 for the link transport in use (`websocket` or `sse`), 0 for the other. */
  linkTransport: GaugeVec;
  /** Links that reached registered, the first one included. */
  linkConnects: Counter;
  /** Dial attempts after the link was lost or a dial failed (each retry counts once). */
  linkReconnects: Counter;
  /** Seconds from starting the dial to the registration acknowledgement. */
  registrationDuration: Histogram;
  /** Seconds from sending a heartbeat to its reply. */
  heartbeatRtt: Histogram;
  /** Errors by kind (and server). */
  errors: ConnectErrors;
  /** The metrics of the server named `name` (bound once, kept). */
  server(name: string): ServerMetrics;
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
 * metrics.server("git").callsInFlight.set(2);
 * metrics.render().includes('mcp_rproxy_frames_total{direction="out"} 1'); // true
 * ```
 */
export function createConnectMetrics(options: MetricSetOptions = {}): ConnectMetrics {
  const registry = new MetricsRegistry();
  buildInfo(registry, options.version);
  memory(registry);
  const linkUp = registry.gauge({
    name: "mcp_rproxy_link_up",
    help:
      "Links to the gateway registered now: 1 with one server, or many on one link; one per server otherwise.",
  });
  const linkTransport = registry.gaugeVec({
    name: "mcp_rproxy_link_transport",
    help: "1 for the link transport in use (websocket or sse), 0 for the other.",
    labelNames: ["transport"],
    initial: [["websocket"], ["sse"]],
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
  const callsInFlight = registry.gaugeVec({
    name: "mcp_rproxy_calls_in_flight",
    help: "Requests forwarded to a local server and not answered yet, by server.",
    labelNames: ["server"],
  });
  const restarts = registry.counterVec({
    name: "mcp_rproxy_server_restarts_total",
    help: "Times a local server was started again (or reconnected to) after it exited, by server.",
    labelNames: ["server"],
  });
  const up = registry.gaugeVec({
    name: "mcp_rproxy_server_up",
    help: "1 while a local server runs and is registered with the gateway, else 0, by server.",
    labelNames: ["server"],
  });
  const superseded = registry.counterVec({
    name: "mcp_rproxy_notifications_superseded_total",
    help:
      "list_changed notifications a local server sent before its registration, not forwarded (the registration's discovery lists afresh), by server.",
    labelNames: ["server"],
  });
  const instances = registry.gaugeVec({
    name: "mcp_rproxy_server_instances",
    help: "Instances of a per-client server running now (one per MCP client session), by server.",
    labelNames: ["server"],
  });
  const instanceStarts = registry.counterVec({
    name: "mcp_rproxy_server_instance_starts_total",
    help: "Instances of a per-client server started, restarts included, by server.",
    labelNames: ["server"],
  });
  const instanceStops = registry.counterVec({
    name: "mcp_rproxy_server_instance_stops_total",
    help:
      "Instances of a per-client server stopped, by server and reason (session_end, idle, shutdown, exited).",
    labelNames: ["server", "reason"],
  });
  const instanceRefusals = registry.counterVec({
    name: "mcp_rproxy_server_instance_refusals_total",
    help: "New MCP client sessions of a per-client server refused at max_instances, by server.",
    labelNames: ["server"],
  });
  const errorVec = registry.counterVec({
    name: "mcp_rproxy_errors_total",
    help: "Errors by kind; a server's own carry its name in server, the links' an empty server.",
    labelNames: ["kind", "server"],
    initial: CONNECT_ERROR_KINDS.map((kind) => [kind, ""]),
  });
  const errors: ConnectErrors = {
    inc: (kind, server = "") => errorVec.labels(kind, server).inc(),
    value: (kind, server = "") => errorVec.labels(kind, server).value,
  };
  const servers = new Map<string, ServerMetrics>();
  const server = (name: string): ServerMetrics => {
    let bound = servers.get(name);
    if (bound === undefined) {
      bound = {
        callsInFlight: callsInFlight.labels(name),
        restarts: restarts.labels(name),
        up: up.labels(name),
        notificationsSuperseded: superseded.labels(name),
        instances: instances.labels(name),
        instanceStarts: instanceStarts.labels(name),
        instanceStops: { inc: (reason) => instanceStops.labels(name, reason).inc() },
        instanceRefusals: instanceRefusals.labels(name),
        error: (kind) => errors.inc(kind, name),
      };
      servers.set(name, bound);
    }
    return bound;
  };
  return {
    registry,
    linkUp,
    linkTransport,
    linkConnects,
    linkReconnects,
    registrationDuration,
    heartbeatRtt,
    ...trafficMetrics,
    errors,
    server,
    render: () => registry.render(),
  };
}
