import assert from "node:assert/strict";
import {
  createConnectMetrics,
  createServeMetrics,
  DURATION_BUCKETS,
  MetricsRegistry,
} from "../../lib/util/prometheus.ts";
import { family, parsePrometheus, sampleValue } from "../fixtures/prometheus_parser.ts";

Deno.test("MetricsRegistry.render() writes HELP and TYPE lines a real parser reads", () => {
  const registry = new MetricsRegistry();
  const counter = registry.counter({ name: "demo_events_total", help: "Events." });
  const gauge = registry.gauge({ name: "demo_level", help: "Level." });
  counter.inc();
  counter.inc(2);
  gauge.set(7);
  gauge.dec(2);
  const text = registry.render();
  assert.match(text, /^# HELP demo_events_total Events\.\n# TYPE demo_events_total counter\n/);
  assert.ok(text.endsWith("\n"));
  const families = parsePrometheus(text);
  assert.equal(family(families, "demo_events_total").type, "COUNTER");
  assert.equal(family(families, "demo_level").type, "GAUGE");
  assert.equal(sampleValue(families, "demo_events_total"), 3);
  assert.equal(sampleValue(families, "demo_level"), 5);
});

Deno.test("MetricsRegistry.render() escapes label values and help text", () => {
  const registry = new MetricsRegistry();
  const vec = registry.counterVec({
    name: "demo_weird_total",
    help: "Back\\slash and\nnewline.",
    labelNames: ["path"],
  });
  const awkward = 'C:\\DIR\\FILE.TXT "quoted"\nnext line';
  vec.labels(awkward).inc(4);
  const text = registry.render();
  assert.ok(text.includes("# HELP demo_weird_total Back\\\\slash and\\nnewline."));
  const families = parsePrometheus(text);
  assert.equal(family(families, "demo_weird_total").help, "Back\\slash and\nnewline.");
  assert.equal(sampleValue(families, "demo_weird_total", { path: awkward }), 4);
});

Deno.test("MetricsRegistry.render() is empty with no metrics", () => {
  assert.equal(new MetricsRegistry().render(), "");
});

Deno.test("MetricsRegistry.counter() rejects names without _total, bad names and duplicates", () => {
  const registry = new MetricsRegistry();
  assert.throws(() => registry.counter({ name: "demo_events", help: "x" }), /must end in _total/);
  assert.throws(() => registry.gauge({ name: "9lives", help: "x" }), /name is not valid/);
  assert.throws(
    () => registry.counterVec({ name: "demo_x_total", help: "x", labelNames: ["__reserved"] }),
    /label name is not valid/,
  );
  registry.gauge({ name: "demo_taken", help: "x" });
  assert.throws(() => registry.gauge({ name: "demo_taken", help: "x" }), /name is taken/);
});

Deno.test("Counter.inc() throws RangeError for negative or NaN amounts and keeps its value", () => {
  const counter = new MetricsRegistry().counter({ name: "demo_total", help: "x" });
  counter.inc(2);
  assert.throws(() => counter.inc(-1), RangeError);
  assert.throws(() => counter.inc(NaN), RangeError);
  assert.equal(counter.value, 2);
});

Deno.test("CounterVec.labels() returns the same child for the same values and checks arity", () => {
  const vec = new MetricsRegistry().counterVec({
    name: "demo_calls_total",
    help: "x",
    labelNames: ["method", "code"],
  });
  const child = vec.labels("post", "200");
  assert.equal(vec.labels("post", "200"), child);
  assert.notEqual(vec.labels("post", "500"), child);
  assert.throws(() => vec.labels("post"), /has labels \(method, code\): got 1 values/);
});

Deno.test("Gauge.track() reads the value at render time", () => {
  const registry = new MetricsRegistry();
  const gauge = registry.gauge({ name: "demo_size", help: "x" });
  const items = new Set<number>();
  gauge.track(() => items.size);
  items.add(1).add(2);
  assert.equal(sampleValue(parsePrometheus(registry.render()), "demo_size"), 2);
  items.clear();
  assert.equal(sampleValue(parsePrometheus(registry.render()), "demo_size"), 0);
});

Deno.test("Histogram.observe() fills cumulative buckets, sum and count", () => {
  const registry = new MetricsRegistry();
  const histogram = registry.histogram({
    name: "demo_duration_seconds",
    help: "x",
    buckets: [0.1, 1, 10],
  });
  for (const value of [0.05, 0.1, 0.5, 5, 50]) histogram.observe(value);
  const parsed = family(parsePrometheus(registry.render()), "demo_duration_seconds");
  assert.equal(parsed.type, "HISTOGRAM");
  assert.deepEqual(parsed.metrics[0]?.buckets, { "0.1": "2", "1": "3", "10": "4", "+Inf": "5" });
  assert.equal(Number(parsed.metrics[0]?.count), 5);
  assert.equal(Number(parsed.metrics[0]?.sum), 55.65);
});

Deno.test("MetricsRegistry.histogram() rejects buckets that are not ascending", () => {
  const registry = new MetricsRegistry();
  assert.throws(
    () => registry.histogram({ name: "demo_seconds", help: "x", buckets: [1, 1] }),
    RangeError,
  );
  assert.throws(
    () => registry.histogram({ name: "demo_seconds", help: "x", buckets: [Infinity] }),
    RangeError,
  );
});

Deno.test("createConnectMetrics() starts at zero and its values move as events are counted", () => {
  const metrics = createConnectMetrics({ version: "1.2.3" });
  let families = parsePrometheus(metrics.render());
  assert.equal(sampleValue(families, "mcp_rproxy_build_info", { version: "1.2.3" }), 1);
  assert.equal(sampleValue(families, "mcp_rproxy_link_up"), 0);
  assert.equal(sampleValue(families, "mcp_rproxy_frames_total", { direction: "in" }), 0);
  assert.equal(sampleValue(families, "mcp_rproxy_errors_total", { kind: "dial" }), 0);
  assert.equal(family(families, "mcp_rproxy_heartbeat_rtt_seconds").metrics[0]?.count, "0");

  metrics.linkReconnects.inc();
  metrics.linkConnects.inc();
  metrics.linkUp.set(1);
  metrics.registrationDuration.observe(0.02);
  metrics.heartbeatRtt.observe(0.003);
  metrics.heartbeatRtt.observe(0.004);
  metrics.framesIn.inc();
  metrics.bytesIn.inc(120);
  metrics.framesOut.inc();
  metrics.framesOut.inc();
  metrics.bytesOut.inc(300);
  metrics.callsInFlight.inc();
  metrics.serverRestarts.inc();
  metrics.errors.inc("dial");
  metrics.errors.inc("something_new");

  families = parsePrometheus(metrics.render());
  assert.equal(sampleValue(families, "mcp_rproxy_link_up"), 1);
  assert.equal(sampleValue(families, "mcp_rproxy_link_connects_total"), 1);
  assert.equal(sampleValue(families, "mcp_rproxy_link_reconnects_total"), 1);
  const registration = family(families, "mcp_rproxy_registration_duration_seconds").metrics[0];
  assert.equal(registration?.count, "1");
  assert.equal(Number(registration?.sum), 0.02);
  const rtt = family(families, "mcp_rproxy_heartbeat_rtt_seconds").metrics[0];
  assert.equal(rtt?.count, "2");
  assert.equal(rtt?.buckets?.["0.0025"], "0");
  assert.equal(rtt?.buckets?.["0.005"], "2");
  assert.equal(sampleValue(families, "mcp_rproxy_frames_total", { direction: "in" }), 1);
  assert.equal(sampleValue(families, "mcp_rproxy_frames_total", { direction: "out" }), 2);
  assert.equal(sampleValue(families, "mcp_rproxy_bytes_total", { direction: "in" }), 120);
  assert.equal(sampleValue(families, "mcp_rproxy_bytes_total", { direction: "out" }), 300);
  assert.equal(sampleValue(families, "mcp_rproxy_calls_in_flight"), 1);
  assert.equal(sampleValue(families, "mcp_rproxy_server_restarts_total"), 1);
  assert.equal(sampleValue(families, "mcp_rproxy_errors_total", { kind: "dial" }), 1);
  assert.equal(sampleValue(families, "mcp_rproxy_errors_total", { kind: "something_new" }), 1);
  assert.equal(metrics.errors.value("dial"), 1);

  metrics.callsInFlight.dec();
  metrics.linkUp.set(0);
  families = parsePrometheus(metrics.render());
  assert.equal(sampleValue(families, "mcp_rproxy_calls_in_flight"), 0);
  assert.equal(sampleValue(families, "mcp_rproxy_link_up"), 0);
});

Deno.test("createConnectMetrics() names follow Prometheus conventions", () => {
  const families = parsePrometheus(createConnectMetrics().render());
  for (const f of families) {
    // Ours are namespaced; the process's resident memory keeps the name every exporter uses.
    assert.match(f.name, /^(mcp_rproxy_[a-z_]+|process_resident_memory_bytes)$/);
    assert.ok(f.help.length > 0, `${f.name} has help`);
    if (f.type === "COUNTER") assert.match(f.name, /_total$/);
    if (f.type === "HISTOGRAM") assert.match(f.name, /_seconds$/);
    if (f.name.includes("bytes")) assert.match(f.name, /_bytes(_total)?$/);
  }
  assert.deepEqual(DURATION_BUCKETS, [...DURATION_BUCKETS].sort((a, b) => a - b));
});

Deno.test("createServeMetrics() tracks sessions and clients and counts links", () => {
  const metrics = createServeMetrics();
  const sessions = new Map<string, string>();
  metrics.sessions.track(() => sessions.size);
  metrics.listening.set(1);
  sessions.set("a", "x").set("b", "y");
  metrics.mcpClients.inc();
  metrics.linksAccepted.inc();
  metrics.linksAccepted.inc();
  metrics.linksRefused.inc("auth");
  metrics.framesIn.inc(3);
  metrics.bytesOut.inc(9);
  metrics.callsInFlight.inc(2);
  metrics.errors.inc("call_timeout");

  const families = parsePrometheus(metrics.render());
  assert.equal(sampleValue(families, "mcp_rproxy_listening"), 1);
  assert.equal(sampleValue(families, "mcp_rproxy_sessions"), 2);
  assert.equal(sampleValue(families, "mcp_rproxy_mcp_clients"), 1);
  assert.equal(sampleValue(families, "mcp_rproxy_links_accepted_total"), 2);
  assert.equal(sampleValue(families, "mcp_rproxy_links_refused_total", { reason: "auth" }), 1);
  assert.equal(
    sampleValue(families, "mcp_rproxy_links_refused_total", { reason: "registration" }),
    0,
  );
  assert.equal(sampleValue(families, "mcp_rproxy_frames_total", { direction: "in" }), 3);
  assert.equal(sampleValue(families, "mcp_rproxy_bytes_total", { direction: "out" }), 9);
  assert.equal(sampleValue(families, "mcp_rproxy_calls_in_flight"), 2);
  assert.equal(sampleValue(families, "mcp_rproxy_errors_total", { kind: "call_timeout" }), 1);
  for (const f of families) if (f.type === "COUNTER") assert.match(f.name, /_total$/);
});

Deno.test("Counter.inc() on a bound child is cheap enough for the message path", () => {
  const metrics = createConnectMetrics();
  const start = performance.now();
  for (let i = 0; i < 1_000_000; i++) {
    metrics.framesIn.inc();
    metrics.bytesIn.inc(100);
  }
  const elapsed = performance.now() - start;
  assert.equal(metrics.framesIn.value, 1_000_000);
  // Two million updates; string building per update would take far longer than this bound.
  assert.ok(elapsed < 500, `took ${elapsed} ms`);
});

Deno.test("both metric sets report the process's resident memory and V8 heap at each scrape", () => {
  for (const metrics of [createConnectMetrics(), createServeMetrics()]) {
    const families = parsePrometheus(metrics.render());
    const rss = families.find((f) => f.name === "process_resident_memory_bytes");
    assert.equal(rss?.type, "GAUGE");
    assert.ok(Number(rss?.metrics[0]?.value) > 10 * 1024 * 1024, "RSS above 10 MiB");
    const heap = families.find((f) => f.name === "mcp_rproxy_heap_bytes");
    const byKind = new Map(heap?.metrics.map((m) => [m.labels?.kind, Number(m.value)]));
    assert.deepEqual([...byKind.keys()].sort(), ["external", "total", "used"]);
    assert.ok(byKind.get("used")! > 0 && byKind.get("used")! <= byKind.get("total")!);
    // Read at scrape time: memory held after the first scrape shows in the next one.
    const held = new Array(2_000_000).fill(0).map((_, i) => i);
    const again = parsePrometheus(metrics.render()).find((f) => f.name === "mcp_rproxy_heap_bytes");
    const usedAfter = Number(again?.metrics.find((m) => m.labels?.kind === "used")?.value);
    assert.ok(usedAfter > byKind.get("used")! + 8 * 1024 * 1024, `${usedAfter} after holding more`);
    assert.equal(held.length, 2_000_000);
  }
});
