import assert from "node:assert/strict";
import { MetricsRegistry } from "../../lib/util/prometheus.ts";
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

Deno.test("Counter.inc() on a bound child is cheap enough for the message path", () => {
  const registry = new MetricsRegistry();
  const frames = registry.counterVec({ name: "demo_frames_total", help: "x", labelNames: ["d"] });
  const framesIn = frames.labels("in");
  const bytesIn = registry.counter({ name: "demo_bytes_total", help: "x" });
  const start = performance.now();
  for (let i = 0; i < 1_000_000; i++) {
    framesIn.inc();
    bytesIn.inc(100);
  }
  const elapsed = performance.now() - start;
  assert.equal(framesIn.value, 1_000_000);
  // Two million updates; string building per update would take far longer than this bound.
  assert.ok(elapsed < 500, `took ${elapsed} ms`);
});
