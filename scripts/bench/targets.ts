// The targets of issue 17, each a ratio or a difference to floors measured in the same run, evaluated on
// the medians of the repetitions: PASS or FAIL with the figures that decided it.

import { FEATURE_ROWS } from "./features.ts";
import type { Repetition } from "./results.ts";
import type { ServerKind } from "./servers.ts";

/** One target's outcome. */
export interface Target {
  path: string;
  name: string;
  pass: boolean;
  detail: string;
}

const MIB = 1024 * 1024;

/** The bounds of issue 17, in one place. */
export const LIMITS = {
  /** Target 1: tunnel A's p50 added and CPU per call, as a multiple of the bare relay's. */
  relayRatio: 1.1,
  /** Target 2: dropped link (gateway up) → re-registered, ms. */
  droppedMs: 250,
  /** Target 2: gateway back after being down → re-registered, ms after it listens. */
  restartMs: 1000,
  /** Target 3: launch → registered may exceed the server's own start by this much, ms. */
  launchSlackMs: 50,
  /** Target 4: serve + connect p50 added over the stdio floor, µs. */
  serveAddedUs: 300,
  /** Target 4: serve + connect throughput as a share of the bare HTTP echo hop's. */
  serveShareOfHttpHop: 0.9,
  /** Target 4: serve's CPU per call, µs. */
  serveCpuUs: 50,
  /** Target 7: idle RSS over the bare relay's, bytes. */
  idleOverRelay: 16 * MIB,
  /** Target 7: RSS after the large result over the bare relay's, bytes. */
  bigOverRelay: 32 * MIB,
} as const;

function n(value: number | undefined, digits = 0): string {
  return value === undefined || !Number.isFinite(value) ? "-" : value.toFixed(digits);
}

function mib(bytes: number | undefined): string {
  return bytes === undefined ? "-" : (bytes / MIB).toFixed(1);
}

/** Every target the medians allow to evaluate (a skipped section has none). */
export function evaluate(m: Repetition): Target[] {
  const targets: Target[] = [];
  const add = (path: string, name: string, pass: boolean, detail: string) =>
    targets.push({ path, name, pass, detail });
  for (
    const [kind, s] of Object.entries(m.servers) as [ServerKind, Repetition["servers"]["demo"]][]
  ) {
    if (!s) continue;
    const floor = s.stdio;
    // 1. The contract-A path stays on the relay floor.
    const path = `tunnel A (${kind})`;
    const relayAdded = s.relay.p50Us - floor.p50Us;
    const added = s.tunnelA.p50Us - floor.p50Us;
    const r = LIMITS.relayRatio;
    add(
      path,
      `1. p50 added ≤ ${r} × the bare relay's`,
      added <= r * relayAdded,
      `${n(added)} µs vs ${n(r * relayAdded)} µs (${r} × ${n(relayAdded)}); ratio ${
        n(added / relayAdded, 2)
      }`,
    );
    add(
      path,
      "1. throughput ≥ the bare relay's",
      s.tunnelA.callsPerSecond >= s.relay.callsPerSecond,
      `${n(s.tunnelA.callsPerSecond)} vs ${n(s.relay.callsPerSecond)} calls/s; ratio ${
        n(s.tunnelA.callsPerSecond / s.relay.callsPerSecond, 2)
      }`,
    );
    add(
      path,
      `1. CPU per call ≤ ${r} × the bare relay's`,
      s.tunnelA.connectCpuUsPerCall <= r * s.relay.connectCpuUsPerCall,
      `${n(s.tunnelA.connectCpuUsPerCall, 1)} µs vs ${
        n(r * s.relay.connectCpuUsPerCall, 1)
      } µs (${r} × ${n(s.relay.connectCpuUsPerCall, 1)}); ratio ${
        n(s.tunnelA.connectCpuUsPerCall / s.relay.connectCpuUsPerCall, 2)
      }`,
    );
    // 3. Launch → registered, on both paths.
    const budget = floor.spawnToInitializedMs + LIMITS.launchSlackMs;
    for (const [label, t] of [["tunnel A", s.tunnelA], ["serve+connect", s.serve]] as const) {
      const st = t.startup;
      add(
        `${label} (${kind})`,
        `3. launch → registered ≤ server's start → initialize + ${LIMITS.launchSlackMs} ms`,
        t.launchToRegisteredMs <= budget,
        `${n(t.launchToRegisteredMs, 1)} ms vs ${n(budget, 1)} ms (${
          n(floor.spawnToInitializedMs, 1)
        } + ${LIMITS.launchSlackMs}); connect spawned its server at ${
          n(st.serverStarting, 1)
        } ms, server initialized at ${n(st.serverStarted, 1)}, dialed at ${n(st.connecting, 1)}`,
      );
    }
    // 4. The MCP-client path.
    const serve = s.serve;
    const serveAdded = serve.p50Us - floor.p50Us;
    const sp = `serve+connect (${kind})`;
    add(
      sp,
      `4. p50 added over stdio ≤ ${LIMITS.serveAddedUs / 1000} ms`,
      serveAdded <= LIMITS.serveAddedUs,
      `${n(serveAdded)} µs (${n(serve.p50Us)} − ${n(floor.p50Us)})`,
    );
    const share = serve.callsPerSecond / m.httpHop.callsPerSecond;
    add(
      sp,
      `4. throughput ≥ ${LIMITS.serveShareOfHttpHop * 100} % of the bare HTTP echo hop`,
      share >= LIMITS.serveShareOfHttpHop,
      `${n(serve.callsPerSecond)} vs ${n(m.httpHop.callsPerSecond)} calls/s = ${
        n(share * 100, 1)
      } %`,
    );
    add(
      sp,
      `4. serve's CPU per call with calls in flight ≤ ${LIMITS.serveCpuUs} µs`,
      (serve.serveInflightCpuUsPerCall ?? Infinity) <= LIMITS.serveCpuUs,
      `${n(serve.serveInflightCpuUsPerCall, 1)} µs (connect: ${
        n(serve.connectInflightCpuUsPerCall, 1)
      } µs; over all echo calls, sequential ones included: serve ${
        n(serve.serveCpuUsPerCall, 1)
      }, connect ${n(serve.connectCpuUsPerCall, 1)})`,
    );
    // 7. Memory against the bare relay of the same run.
    for (const [label, t] of [["tunnel A", s.tunnelA], ["serve+connect", s.serve]] as const) {
      const idleBudget = s.relay.rss.idleHwm + LIMITS.idleOverRelay;
      add(
        `${label} (${kind})`,
        "7. connect's idle RSS ≤ bare relay + 16 MiB",
        t.rss.idleHwm <= idleBudget,
        `${mib(t.rss.idleHwm)} MiB vs ${mib(idleBudget)} MiB (${mib(s.relay.rss.idleHwm)} + 16)`,
      );
      if (t.rss.bigHwm !== undefined && s.relay.rss.bigHwm !== undefined) {
        const bigBudget = s.relay.rss.bigHwm + LIMITS.bigOverRelay;
        add(
          `${label} (${kind})`,
          "7. connect's RSS after the large result ≤ bare relay's + 32 MiB",
          t.rss.bigHwm <= bigBudget,
          `${mib(t.rss.bigHwm)} MiB vs ${mib(bigBudget)} MiB (${mib(s.relay.rss.bigHwm)} + 32)`,
        );
      }
    }
  }
  // 2. Re-registration.
  const rc = m.reconnect;
  if (rc !== undefined) {
    add(
      "re-registration (demo)",
      `2. dropped link, gateway up → re-registered ≤ ${LIMITS.droppedMs} ms`,
      rc.droppedMs <= LIMITS.droppedMs,
      `${n(rc.droppedMs, 1)} ms (median; samples ${
        rc.droppedSamples.map((x) => n(x, 0)).join(", ")
      })`,
    );
    add(
      "re-registration (demo)",
      `2. gateway down ${
        n(rc.downMs / 1000, 0)
      } s → re-registered ≤ ${LIMITS.restartMs} ms after it listens`,
      rc.restartMs <= LIMITS.restartMs,
      `${n(rc.restartMs, 1)} ms`,
    );
  }
  // 6. Feature rows.
  if (m.features !== undefined) {
    const baseline = {
      ...(m.servers.demo
        ? { serveDemo: m.servers.demo.serve, tunnelADemo: m.servers.demo.tunnelA }
        : {}),
    };
    for (const row of FEATURE_ROWS) {
      const figures = m.features[row.id];
      if (figures !== undefined && row.evaluate) targets.push(...row.evaluate(figures, baseline));
    }
  }
  return targets;
}
