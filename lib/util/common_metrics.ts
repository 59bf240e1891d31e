// What the metric sets of `connect` and `serve` share: errors by kind, tunnel traffic, build info and the
// process's memory.

import type { Counter, CounterVec, MetricsRegistry } from "./prometheus.ts";

/** Counts errors by kind; known kinds show 0 from the start. */
export interface ErrorCounter<K extends string> {
  /** Counts one error of `kind` (or `amount` of them). */
  inc(kind: K | (string & Record<never, never>), amount?: number): void;
  /** The count of `kind`, for tests and logs. */
  value(kind: K | (string & Record<never, never>)): number;
}

export function errorCounter<K extends string>(vec: CounterVec): ErrorCounter<K> {
  return {
    inc: (kind, amount = 1) => vec.labels(kind).inc(amount),
    value: (kind) => vec.labels(kind).value,
  };
}

/** Frames and bytes over the tunnel, each way, as children bound once. */
export interface TrafficMetrics {
  /** Frames received from the peer over the WebSocket. */
  framesIn: Counter;
  /** Frames sent to the peer over the WebSocket. */
  framesOut: Counter;
  /** Payload bytes received (UTF-8 length of the text message). */
  bytesIn: Counter;
  /** Payload bytes sent. */
  bytesOut: Counter;
}

export function traffic(registry: MetricsRegistry): TrafficMetrics {
  const frames = registry.counterVec({
    name: "mcp_rproxy_frames_total",
    help: "WebSocket frames over the tunnel, by direction (in = received, out = sent).",
    labelNames: ["direction"],
    initial: [["in"], ["out"]],
  });
  const bytes = registry.counterVec({
    name: "mcp_rproxy_bytes_total",
    help: "WebSocket payload bytes over the tunnel, by direction (in = received, out = sent).",
    labelNames: ["direction"],
    initial: [["in"], ["out"]],
  });
  return {
    framesIn: frames.labels("in"),
    framesOut: frames.labels("out"),
    bytesIn: bytes.labels("in"),
    bytesOut: bytes.labels("out"),
  };
}

export function buildInfo(registry: MetricsRegistry, version: string | undefined): void {
  if (version === undefined) return;
  registry.gaugeVec({
    name: "mcp_rproxy_build_info",
    help: "Always 1; the label carries the version of mcp-rproxy.",
    labelNames: ["version"],
  }).labels(version).set(1);
}

/**
 * The process's memory, read at every scrape: resident set (the Prometheus standard
 * `process_resident_memory_bytes`), and V8's heap and the memory it accounts outside the heap.
 */
export function memory(registry: MetricsRegistry): void {
  registry.gauge({
    name: "process_resident_memory_bytes",
    help: "Resident memory size in bytes.",
  }).track(() => Deno.memoryUsage().rss);
  const heap = registry.gaugeVec({
    name: "mcp_rproxy_heap_bytes",
    help:
      "JavaScript memory in bytes: V8 heap used and reserved (used, total), and memory V8 accounts outside its heap such as buffers (external).",
    labelNames: ["kind"],
  });
  heap.labels("used").track(() => Deno.memoryUsage().heapUsed);
  heap.labels("total").track(() => Deno.memoryUsage().heapTotal);
  heap.labels("external").track(() => Deno.memoryUsage().external);
}

/** Options of {@link createConnectMetrics} and {@link createServeMetrics}. */
export interface MetricSetOptions {
  /** Version for `mcp_rproxy_build_info`; omitted means no such metric. */
  version?: string;
}
