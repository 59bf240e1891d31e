import assert from "node:assert/strict";
import { createServeMetrics } from "../../lib/serve/metrics.ts";
import { parsePrometheus, sampleValue } from "../fixtures/prometheus_parser.ts";

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
