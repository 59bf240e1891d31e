// `deno task bench --reconnect-distribution`: 100 simulated drops of healthy links at the same instant,
// each client's attempts drawn from the real schedule (lib/util/backoff.ts) with a seeded random: when the
// first attempts go out, how the fleet's attempts spread over time, and how soon after a gateway that was
// down comes back each client is dialing it again. No network: the schedule alone.

import { QUICK_RECONNECT, reconnectDelay } from "../../lib/util/backoff.ts";
import { percentile } from "./stats.ts";

/** mulberry32: a small seeded PRNG, so that a distribution can be printed again identically. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Options of {@link simulateDrops}. */
export interface DropSimulation {
  clients: number;
  /** The user's `--reconnect-delay`, in milliseconds. */
  baseMs: number;
  /** How long the gateway stays down after the drop; 0 = it never went down (only the link dropped). */
  downMs: number;
  /** What a refused dial costs before the next wait starts, in milliseconds. */
  dialMs: number;
  /** The drop was of a healthy link. */
  afterHealthy: boolean;
  seed: number;
}

/** Per client: the time of each attempt after the drop (ms), up to and including the one that succeeded. */
export function simulateDrops(options: DropSimulation): number[][] {
  const random = seeded(options.seed);
  const clients: number[][] = [];
  for (let c = 0; c < options.clients; c++) {
    const attempts: number[] = [];
    let at = 0;
    for (let attempt = 1; attempt < 1000; attempt++) {
      at += reconnectDelay(attempt, {
        baseMs: options.baseMs,
        afterHealthy: options.afterHealthy,
        random,
      });
      attempts.push(at);
      if (at >= options.downMs) break;
      at += options.dialMs;
    }
    clients.push(attempts);
  }
  return clients;
}

function histogram(times: number[], bucketMs: number, untilMs: number): string[] {
  const counts = new Array(Math.ceil(untilMs / bucketMs)).fill(0) as number[];
  for (const t of times) if (t < untilMs) counts[Math.floor(t / bucketMs)]!++;
  const scale = Math.max(1, Math.max(...counts) / 60);
  return counts.map((count, i) => {
    const from = i * bucketMs;
    const label = `${String(from).padStart(5)}-${String(from + bucketMs).padEnd(5)} ms`;
    return `  ${label} ${String(count).padStart(4)} ${"#".repeat(Math.ceil(count / scale))}`;
  });
}

function stats(values: number[]): string {
  const p = (q: number) => percentile(values, q).toFixed(0);
  return `min ${Math.min(...values).toFixed(0)}, p50 ${p(50)}, p90 ${p(90)}, max ${
    Math.max(...values).toFixed(0)
  } ms`;
}

/** The printout of `--reconnect-distribution`. */
export function reconnectDistributionReport(
  options: { clients?: number; baseMs?: number; seed?: number } = {},
): string {
  const { clients = 100, baseMs = 1000, seed = 17 } = options;
  const lines: string[] = [];
  const common = { clients, baseMs, dialMs: 1, seed };
  lines.push(
    `Reconnect schedule (lib/util/backoff.ts), ${clients} healthy links dropped at t = 0, --reconnect-delay ${
      baseMs / 1000
    } s, seed ${seed}. Quick schedule: first attempt within ${QUICK_RECONNECT.firstJitterMs} ms, then ceilings from ${QUICK_RECONNECT.baseMs} ms doubling up to the base, ${QUICK_RECONNECT.attempts} attempts, then the normal backoff.`,
  );
  const up = simulateDrops({ ...common, downMs: 0, afterHealthy: true });
  const first = up.map((a) => a[0]!);
  lines.push("", `Gateway up: first attempt after the drop (${stats(first)}), per 5 ms:`);
  lines.push(...histogram(first, 5, QUICK_RECONNECT.firstJitterMs));
  const before = simulateDrops({ ...common, downMs: 0, afterHealthy: false }).map((a) => a[0]!);
  lines.push(`  (the normal backoff's first attempt, as before issue 17: ${stats(before)})`);

  const down = simulateDrops({ ...common, downMs: 2000, afterHealthy: true });
  const all = down.flat();
  lines.push(
    "",
    `Gateway down 2 s: every attempt of the fleet (${all.length} in all, ${
      (all.length / clients).toFixed(1)
    } per client), per 250 ms:`,
  );
  lines.push(...histogram(all, 250, 3500));
  const back = down.map((a) => a.at(-1)! - 2000);
  lines.push(`  back → first attempt after it listens again: ${stats(back)}`);

  const refused = simulateDrops({ ...common, downMs: 30_000, afterHealthy: false });
  const spaced = refused.map((a) => a.length);
  lines.push(
    "",
    `Never healthy (refused from the start, normal backoff): attempts in the first 30 s per client: ${
      stats(spaced).replaceAll(" ms", "")
    }; first attempt ${stats(refused.map((a) => a[0]!))}.`,
  );
  return lines.join("\n");
}

if (import.meta.main) console.log(reconnectDistributionReport());
