// Tests of the benchmark's arithmetic (scripts/bench/): each target of issue 17 is computed as the issue
// words it, on the boundary and just past it; medians keep samples; --compare reports changes and flipped
// targets; the reconnect distribution is reproducible and spreads the fleet.

import assert from "node:assert/strict";
import { compareReport } from "../scripts/bench/compare.ts";
import type { PeakRss, ServerFigures, TunnelFigures } from "../scripts/bench/paths.ts";
import {
  reconnectDistributionReport,
  simulateDrops,
} from "../scripts/bench/reconnect_distribution.ts";
import { medianOf, type Repetition } from "../scripts/bench/results.ts";
import { evaluate, type Target } from "../scripts/bench/targets.ts";
import type { Figures } from "../scripts/bench/workload.ts";

const MIB = 1024 * 1024;

function figures(p50Us: number, callsPerSecond: number): Figures {
  return { p50Us, p90Us: p50Us, p99Us: p50Us, meanUs: p50Us, callsPerSecond, echoCalls: 1000 };
}

function tunnel(
  p50Us: number,
  callsPerSecond: number,
  cpu: number,
  rss: Partial<PeakRss> = {},
  serveCpu?: number,
): TunnelFigures {
  return {
    ...figures(p50Us, callsPerSecond),
    launchToRegisteredMs: 100,
    startup: { registered: 100 },
    connectCpuUsPerCall: cpu,
    connectInflightCpuUsPerCall: cpu,
    ...(serveCpu === undefined
      ? {}
      : { serveCpuUsPerCall: serveCpu, serveInflightCpuUsPerCall: serveCpu }),
    rss: { idleHwm: 50 * MIB, loadHwm: 60 * MIB, bigHwm: 120 * MIB, endRss: 50 * MIB, ...rss },
  };
}

/** A run whose every target sits exactly on its bound. */
function onTheBounds(): Repetition {
  const demo: ServerFigures = {
    stdio: { ...figures(100, 10_000), spawnToInitializedMs: 60 },
    // The relay adds 100 µs, uses 50 µs of CPU per call, idles at 40 MiB, peaks at 100 MiB.
    relay: tunnel(200, 5000, 50, { idleHwm: 40 * MIB, bigHwm: 100 * MIB }),
    tunnelA: tunnel(210, 5000, 55, { idleHwm: 56 * MIB, bigHwm: 132 * MIB }),
    serve: tunnel(400, 4500, 60, { idleHwm: 56 * MIB, bigHwm: 132 * MIB }, 50),
  };
  demo.tunnelA.launchToRegisteredMs = 110;
  demo.serve.launchToRegisteredMs = 110;
  return {
    hop: { ...figures(50, 20_000), peerRss: { idleHwm: 0, loadHwm: 0 } },
    httpHop: figures(100, 5000),
    baseline: { hwm: 38 * MIB, rss: 38 * MIB },
    servers: { demo },
    reconnect: { droppedSamples: [250], droppedMs: 250, restartMs: 1000, downMs: 2000 },
  };
}

function outcome(targets: Target[], prefix: string): boolean {
  const found = targets.filter((t) => t.name.startsWith(prefix));
  assert.ok(found.length > 0, `no target named '${prefix}…'`);
  return found.every((t) => t.pass);
}

Deno.test("evaluate() passes every issue-17 target exactly on its bound", () => {
  const targets = evaluate(onTheBounds());
  const failed = targets.filter((t) => !t.pass).map((t) => `${t.path}: ${t.name}: ${t.detail}`);
  assert.deepEqual(failed, []);
  assert.equal(targets.length, 14);
});

Deno.test("evaluate() fails each issue-17 target just past its bound", () => {
  const cases: [string, (r: Repetition) => void][] = [
    // 1. p50 added (110 µs) ≤ 1.1 × the relay's added (100 µs), not the total p50s' ratio.
    ["1. p50 added", (r) => r.servers.demo!.tunnelA.p50Us = 211],
    ["1. throughput", (r) => r.servers.demo!.tunnelA.callsPerSecond = 4999],
    ["1. CPU per call", (r) => r.servers.demo!.tunnelA.connectCpuUsPerCall = 55.1],
    ["2. dropped link", (r) => r.reconnect!.droppedMs = 251],
    ["2. gateway down", (r) => r.reconnect!.restartMs = 1001],
    ["3. launch", (r) => r.servers.demo!.tunnelA.launchToRegisteredMs = 110.1],
    ["4. p50 added over stdio", (r) => r.servers.demo!.serve.p50Us = 401],
    ["4. throughput", (r) => r.servers.demo!.serve.callsPerSecond = 4499],
    ["4. serve's CPU", (r) => r.servers.demo!.serve.serveInflightCpuUsPerCall = 50.1],
    ["7. connect's idle RSS", (r) => r.servers.demo!.tunnelA.rss.idleHwm = 56 * MIB + 1],
    ["7. connect's RSS after", (r) => r.servers.demo!.tunnelA.rss.bigHwm = 132 * MIB + 1],
  ];
  for (const [prefix, change] of cases) {
    const run = onTheBounds();
    assert.equal(outcome(evaluate(run), prefix), true, `${prefix} on its bound`);
    change(run);
    assert.equal(outcome(evaluate(run), prefix), false, `${prefix} past its bound`);
  }
});

Deno.test("evaluate() holds the 4-servers row to 80 % of one server's throughput in the same run", () => {
  const run = onTheBounds();
  run.features = { "four-servers": figures(500, 0.8 * 4500) };
  assert.equal(outcome(evaluate(run), "aggregate throughput"), true);
  run.features["four-servers"]!.callsPerSecond = 0.79 * 4500;
  assert.equal(outcome(evaluate(run), "aggregate throughput"), false);
});

Deno.test("medianOf() takes the median of every figure and joins sample arrays", () => {
  const reps = [
    { a: 1, b: { c: 10 }, s: [1, 2] },
    { a: 3, b: { c: 30 }, s: [3] },
    { a: 2, b: { c: 20 }, s: [4] },
  ];
  assert.deepEqual(medianOf(reps), { a: 2, b: { c: 20 }, s: [1, 2, 3, 4] });
});

Deno.test("compareReport() shows each figure's change and the targets that flipped", () => {
  const before = { medians: { x: { p50Us: 100, callsPerSecond: 1000 } }, targets: [] as Target[] };
  before.targets.push({ path: "p", name: "n", pass: true, detail: "" });
  const text = compareReport(
    {
      medians: { x: { p50Us: 80, callsPerSecond: 900 } },
      targets: [{ path: "p", name: "n", pass: false, detail: "" }],
    },
    before,
    "old.json",
  );
  assert.match(text, /x\.p50Us +100\.0 µs → +80\.0 µs +-20\.0 % \+/);
  assert.match(text, /x\.callsPerSecond +1000 → +900 +-10\.0 % −/);
  assert.match(text, /target PASS → FAIL: p: n/);
});

Deno.test("the reconnect distribution is the same for the same seed and spreads the fleet", () => {
  assert.equal(reconnectDistributionReport({ seed: 5 }), reconnectDistributionReport({ seed: 5 }));
  const common = { clients: 100, baseMs: 1000, dialMs: 1, seed: 5 };
  const first = simulateDrops({ ...common, downMs: 0, afterHealthy: true }).map((a) => a[0]!);
  assert.ok(first.every((t) => t >= 0 && t < 50), "every first attempt within 50 ms");
  assert.ok(new Set(first).size >= 30, "first attempts spread over the window, not in lockstep");
  const back = simulateDrops({ ...common, downMs: 2000, afterHealthy: true }).map((a) =>
    a.at(-1)! - 2000
  );
  assert.ok(back.every((t) => t < 1000), "each client dials within 1 s of the gateway's return");
});
