// The printed report of `deno task bench`: one table of the paths (each tunnel figure beside its floor),
// then re-registration, the feature rows, and what the layers under connect and serve cost in memory.

import { FEATURE_ROWS, type FeatureFigures } from "./features.ts";
import type { ReplicaCpu } from "./replicas.ts";
import { MEMORY_PROBES } from "./memory.ts";
import type { Repetition } from "./results.ts";
import type { ServerKind } from "./servers.ts";
import type { Figures } from "./workload.ts";

const MIB = 1024 * 1024;

export function mib(bytes: number | undefined): string {
  return bytes === undefined || !Number.isFinite(bytes) ? "-" : (bytes / MIB).toFixed(1);
}

export function n(value: number | undefined, digits = 0): string {
  return value === undefined || !Number.isFinite(value) ? "-" : value.toFixed(digits);
}

function pad(text: string, width: number, left = false): string {
  return left ? text.padEnd(width) : text.padStart(width);
}

const COLUMNS: [string, number][] = [
  ["path", 27],
  ["p50 µs", 7],
  ["p90 µs", 7],
  ["p99 µs", 7],
  ["+p50 µs", 8],
  ["calls/s", 8],
  ["/floor", 6],
  ["start ms", 8],
  ["RSS idle", 8],
  ["RSS load", 8],
  ["RSS big", 8],
  ["big ms", 7],
  ["CPU µs/call", 12],
  ["in flight", 10],
];

/** One table row; cells beyond those given are blank. */
function line(cells: string[]): string {
  return COLUMNS.map(([, width], i) => pad(cells[i] ?? "", width, i === 0)).join(" ");
}

/** The paths table. */
export function pathsTable(m: Repetition): string {
  const rows = [line(COLUMNS.map(([name]) => name))];
  const hop = m.hop;
  rows.push(line([
    "raw WebSocket hop",
    n(hop.p50Us),
    n(hop.p90Us),
    n(hop.p99Us),
    "",
    n(hop.callsPerSecond),
    "",
    "",
    mib(hop.peerRss.idleHwm),
    mib(hop.peerRss.loadHwm),
    mib(hop.peerRss.bigHwm),
    n(hop.bigMs, 1),
  ]));
  const http = m.httpHop;
  rows.push(line([
    "bare HTTP echo hop",
    n(http.p50Us),
    n(http.p90Us),
    n(http.p99Us),
    "",
    n(http.callsPerSecond),
    "",
    "",
    "",
    "",
    "",
    n(http.bigMs, 1),
  ]));
  rows.push(line(["baseline: Deno+WS+child", "", "", "", "", "", "", "", mib(m.baseline.hwm)]));
  for (
    const [kind, s] of Object.entries(m.servers) as [ServerKind, Repetition["servers"]["demo"]][]
  ) {
    if (!s) continue;
    const floor = s.stdio;
    rows.push(line([
      `stdio floor (${kind})`,
      n(floor.p50Us),
      n(floor.p90Us),
      n(floor.p99Us),
      "0",
      n(floor.callsPerSecond),
      "1.00",
      n(floor.spawnToInitializedMs, 1),
      "",
      "",
      "",
      n(floor.bigMs, 1),
    ]));
    const paths = [["bare relay A", s.relay], ["tunnel A", s.tunnelA], [
      "serve+connect",
      s.serve,
    ]] as const;
    for (const [label, t] of paths) {
      rows.push(line([
        `${label} (${kind})`,
        n(t.p50Us),
        n(t.p90Us),
        n(t.p99Us),
        n(t.p50Us - floor.p50Us),
        n(t.callsPerSecond),
        n(t.callsPerSecond / floor.callsPerSecond, 2),
        n(t.launchToRegisteredMs, 1),
        mib(t.rss.idleHwm),
        mib(t.rss.loadHwm),
        mib(t.rss.bigHwm),
        n(t.bigMs, 1),
        n(t.connectCpuUsPerCall, 1) +
        (t.serveCpuUsPerCall === undefined ? "" : ` +${n(t.serveCpuUsPerCall, 0)}`),
        n(t.connectInflightCpuUsPerCall, 1) +
        (t.serveInflightCpuUsPerCall === undefined ? "" : ` +${n(t.serveInflightCpuUsPerCall, 0)}`),
      ]));
      if (t.serveRss !== undefined) {
        rows.push(line([
          "  serve process itself",
          "",
          "",
          "",
          "",
          "",
          "",
          "",
          mib(t.serveRss.idleHwm),
          mib(t.serveRss.loadHwm),
          mib(t.serveRss.bigHwm),
          "",
          "",
          `${n(t.serveInflightWritesPerCall, 2)} wr/call`,
        ]));
      }
    }
  }
  return rows.join("\n");
}

/** What a feature row measured beside its own path: the floor or the other path of the same run. */
function beside(f: FeatureFigures): string {
  const parts: string[] = [];
  const path = (label: string, g: Figures | undefined) => {
    if (g !== undefined) {
      parts.push(`${label}: p50 ${n(g.p50Us)} µs, ${n(g.callsPerSecond)} calls/s`);
    }
  };
  path("same replica", f.sameReplica);
  const cpu = (c: ReplicaCpu | undefined) =>
    c === undefined
      ? "-"
      : `holder ${n(c.holder, 1)} + origin ${n(c.origin, 1)} + connect ${n(c.connect, 1)} + redis ${
        n(c.redis, 1)
      }`;
  if (f.cpuUsPerCall !== undefined) {
    parts.push(
      `CPU µs/call ${cpu(f.cpuUsPerCall)} (same replica: ${cpu(f.sameReplica?.cpuUsPerCall)})`,
    );
  }
  if (f.redisFloor !== undefined) {
    parts.push(
      `Redis floor: p50 ${n(f.redisFloor.p50Us)} µs round trip, ${
        n(f.redisFloor.callsPerSecond)
      } round trips/s in flight, CPU µs per round trip ${
        n(f.redisFloor.cpuUsPerCall.driver, 1)
      } + ${n(f.redisFloor.cpuUsPerCall.echo, 1)} + redis ${
        n(f.redisFloor.cpuUsPerCall.redis, 1)
      } (two bare processes, XADD → XREAD → XADD → XREAD)`,
    );
  }
  path("WebSocket link", f.webSocketLink);
  path("stdio floor", f.stdioFloor);
  path("8 clients on one shared instance", f.sharedInstance);
  if (f.firstCallMs !== undefined) {
    parts.push(
      `a new session's initialize + first call ${n(f.firstCallMs, 1)} ms (samples ${
        (f.firstCallSamples ?? []).map((x) => n(x)).join(", ")
      }), the server's own start ${n(f.serverStartMs, 1)} ms`,
    );
  }
  return parts.length === 0 ? "" : ` (${parts.join("; ")})`;
}

/** Re-registration, the feature rows and the memory layers, as far as the run measured them. */
export function sectionsReport(m: Repetition, reps: number): string {
  const out: string[] = [];
  if (m.reconnect) {
    const rc = m.reconnect;
    out.push(
      `Re-registration (demo server, contract-A gateway in this process; medians of ${reps} repetition(s)):`,
      `  dropped healthy link, gateway up → re-registered: ${n(rc.droppedMs, 1)} ms (all drops: ${
        rc.droppedSamples.map((x) => n(x)).join(", ")
      } ms)`,
      `  gateway down ${n(rc.downMs / 1000, 1)} s → re-registered after it listens again: ${
        n(rc.restartMs, 1)
      } ms`,
      "",
    );
  }
  if (m.features) {
    out.push("Feature rows (issue 17, target 6):");
    for (const row of FEATURE_ROWS) {
      const f = m.features[row.id];
      if (f === undefined) {
        out.push(
          `  ${row.title} (issue ${row.issue}): ${
            row.run ? "not run" : "not measured yet (the feature is being built)"
          }; target: ${row.target}`,
        );
        continue;
      }
      out.push(
        `  ${row.title} (issue ${row.issue}): p50 ${n(f.p50Us)} µs, p90 ${n(f.p90Us)} µs, ${
          n(f.callsPerSecond)
        } calls/s, CPU µs/call connect ${n(f.connectCpuUsPerCall, 1)} + serve ${
          n(f.serveCpuUsPerCall, 1)
        }, connect RSS under load ${mib(f.connectLoadHwm)} MiB, launch → all registered ${
          n(f.launchToRegisteredMs, 1)
        } ms${beside(f)}; target: ${row.target}`,
      );
    }
    out.push("");
  }
  if (m.memory) {
    const probes = m.memory;
    const parts = MEMORY_PROBES.map((mode) => `${mode} ${mib(probes[mode])}`);
    out.push(
      `Memory layers (VmHWM of idle bare Deno programs, MiB): ${parts.join(", ")}.`,
      `  npm compatibility layer (LogTape) +${
        mib(probes.npm - probes.empty)
      } MiB; node:http listening +${mib(probes["node-http"] - probes.empty)}; node:http + ws +${
        mib(probes["node-http-ws"] - probes.empty)
      }.`,
      "",
    );
  }
  return out.join("\n");
}
