// The metrics of replicas, registered beside serve's own on its registry: Redis reachability and errors,
// replicas seen, tunnels owned, cross-replica calls and their latency, takeovers, refused envelopes.

import { type ErrorCounter, errorCounter } from "../../util/common_metrics.ts";
import type { ForwardWhat } from "./stream_forwards.ts";
import type { Counter, Gauge, Histogram, MetricsRegistry } from "../../util/prometheus.ts";
import type { EnvelopeRefusal } from "./envelope.ts";

/** Buckets of a cross-replica call's latency, in seconds: the added hop is sub-millisecond to seconds. */
const CROSS_BUCKETS: readonly number[] = [
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  5,
  30,
  300,
];

const REFUSALS: readonly EnvelopeRefusal[] = [
  "malformed",
  "bad_mac",
  "wrong_target",
  "stale",
  "replay",
  "nonce_limit",
];

/** The metrics of one replica. */
export interface ClusterMetrics {
  /** 1 while Redis answers, else 0. */
  redisUp: Gauge;
  /** Redis connection errors and lost connections. */
  redisErrors: Counter;
  /** Replicas alive at the last liveness beat, this one included. */
  replicasSeen: Gauge;
  /** Tunnel sessions this replica holds; `track()` it. */
  tunnelsOwned: Gauge;
  /** Calls this replica sent to the replica holding their tunnel, by outcome. */
  crossCalls: ErrorCounter<"answered" | "failed">;
  /** Calls sent again to the replica their tunnel resumed on (their holder died or lost the link). */
  crossCallsResent: Counter;
  /** Seconds from sending a cross-replica call to its answer arriving back. */
  crossCallSeconds: Histogram;
  /** Tunnel sessions this replica took over from another, or lost to a newer generation. */
  takeovers: ErrorCounter<"taken" | "lost">;
  /** Envelopes refused by reason. */
  envelopesRefused: ErrorCounter<EnvelopeRefusal>;
  /** Requests this replica forwarded to the replica holding their stream, by what they were. */
  streamForwards: ErrorCounter<ForwardWhat>;
}

/**
 * Registers the replica metrics on `registry`.
 *
 * @example
 * ```ts
 * import { MetricsRegistry } from "../../util/prometheus.ts";
 * import { registerClusterMetrics } from "./cluster_metrics.ts";
 * const metrics = registerClusterMetrics(new MetricsRegistry());
 * metrics.redisUp.set(1);
 * ```
 */
export function registerClusterMetrics(registry: MetricsRegistry): ClusterMetrics {
  return {
    redisUp: registry.gauge({
      name: "mcp_rproxy_redis_up",
      help: "1 while Redis answers this replica, else 0 (then /readyz is 503).",
    }),
    redisErrors: registry.counter({
      name: "mcp_rproxy_redis_errors_total",
      help: "Redis connection errors and lost connections.",
    }),
    replicasSeen: registry.gauge({
      name: "mcp_rproxy_replicas_seen",
      help: "Replicas alive at the last liveness beat, this one included.",
    }),
    tunnelsOwned: registry.gauge({
      name: "mcp_rproxy_tunnels_owned",
      help: "Tunnel sessions this replica holds.",
    }),
    crossCalls: errorCounter(registry.counterVec({
      name: "mcp_rproxy_cross_replica_calls_total",
      help: "Calls sent to the replica holding their tunnel, by outcome.",
      labelNames: ["outcome"],
      initial: [["answered"], ["failed"]],
    })),
    crossCallsResent: registry.counter({
      name: "mcp_rproxy_cross_replica_calls_resent_total",
      help:
        "Calls sent again to the replica their tunnel resumed on; connect runs each once (docs/scaling.md).",
    }),
    crossCallSeconds: registry.histogram({
      name: "mcp_rproxy_cross_replica_call_seconds",
      help:
        "Seconds from sending a call to the replica holding its tunnel to its answer coming back.",
      buckets: CROSS_BUCKETS,
    }),
    takeovers: errorCounter(registry.counterVec({
      name: "mcp_rproxy_takeovers_total",
      help:
        "Tunnel sessions taken over from another replica (taken) or lost to a newer one (lost).",
      labelNames: ["direction"],
      initial: [["taken"], ["lost"]],
    })),
    envelopesRefused: errorCounter(registry.counterVec({
      name: "mcp_rproxy_envelopes_refused_total",
      help: "Envelopes from other replicas refused, by reason (bad_mac, replay, stale, …).",
      labelNames: ["reason"],
      initial: REFUSALS.map((reason) => [reason]),
    })),
    streamForwards: errorCounter(registry.counterVec({
      name: "mcp_rproxy_stream_forwards_total",
      help:
        "Requests forwarded to the replica holding their stream (legacy_post, link_post, resume), by what they were.",
      labelNames: ["what"],
      initial: [["legacy_post"], ["link_post"], ["resume"]],
    })),
  };
}
