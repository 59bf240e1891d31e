import assert from "node:assert/strict";
import { createConnectMetrics } from "../../lib/connect/metrics.ts";
import { DURATION_BUCKETS } from "../../lib/util/prometheus.ts";
import { createServeMetrics } from "../../lib/serve/metrics.ts";
import { family, parsePrometheus, sampleValue } from "../fixtures/prometheus_parser.ts";

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
  const git = metrics.server("git");
  git.callsInFlight.inc();
  git.restarts.inc();
  git.up.set(1);
  git.error("server_exit");
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
  assert.equal(sampleValue(families, "mcp_rproxy_calls_in_flight", { server: "git" }), 1);
  assert.equal(sampleValue(families, "mcp_rproxy_server_restarts_total", { server: "git" }), 1);
  assert.equal(sampleValue(families, "mcp_rproxy_server_up", { server: "git" }), 1);
  assert.equal(
    sampleValue(families, "mcp_rproxy_errors_total", { kind: "server_exit", server: "git" }),
    1,
  );
  assert.equal(
    sampleValue(families, "mcp_rproxy_errors_total", { kind: "server_exit", server: "" }),
    0,
    "a server's error is its own, not the links'",
  );
  assert.equal(sampleValue(families, "mcp_rproxy_errors_total", { kind: "dial" }), 1);
  assert.equal(sampleValue(families, "mcp_rproxy_errors_total", { kind: "something_new" }), 1);
  assert.equal(metrics.errors.value("dial"), 1);

  git.callsInFlight.dec();
  metrics.linkUp.set(0);
  families = parsePrometheus(metrics.render());
  assert.equal(sampleValue(families, "mcp_rproxy_calls_in_flight", { server: "git" }), 0);
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
