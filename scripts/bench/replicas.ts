// The bench's replica row: two `serve --redis` replicas on one redis-server, connect (demo server) on the
// first; the same calls measured through the replica holding the tunnel (same-replica) and through the
// other (cross-replica: envelopes through Redis both ways), in the same run, so the two compare; and the
// floor under the difference: the same two hops through the same redis-server between two bare processes.

import { startRedis } from "../../tests/fixtures/redis_server.ts";
import { HttpMcpClient } from "./clients.ts";
import { DenoProcess, freePort, PATHS, waitHealthy } from "./children.ts";
import type { ProgramOptions } from "./paths.ts";
import { readCpuNs } from "./procfs.ts";
import { ids, INITIALIZE, START_TIMEOUT_MS, TOKEN } from "./servers.ts";
import { type Figures, mcpMessages, measure, type MeasureOptions } from "./workload.ts";

/**
 * CPU µs per echo call (all echo phases) of each process on the path: less moved by other work on the
 * machine than latency is, so an A/B of a change to our code shows in it first.
 */
export interface ReplicaCpu {
  /** The replica holding the tunnel (it answers the same-replica calls itself). */
  holder: number;
  /** The other replica (idle on the same-replica path). */
  origin: number;
  connect: number;
  redis: number;
}

/** One path's figures and its CPU per call. */
export type PathFigures = Figures & { cpuUsPerCall: ReplicaCpu };

/** Both paths of one run, and the bare Redis round trip of the same run. */
export interface ReplicaFigures {
  same: PathFigures;
  cross: PathFigures;
  floor: FloorFigures;
}

/** The Redis floor's figures, with the CPU µs per round trip of its two processes and of redis-server. */
export type FloorFigures = Figures & {
  cpuUsPerCall: { driver: number; echo: number; redis: number };
};

/** Options of {@link runReplicas}. */
export interface ReplicaRunOptions {
  measure: MeasureOptions;
  program: ProgramOptions;
  tokensFile: string;
  /** Measures cross-replica first (alternate it between repetitions). */
  crossFirst: boolean;
}

/** Runs the replica row once. */
export async function runReplicas(options: ReplicaRunOptions): Promise<ReplicaFigures> {
  const redis = await startRedis();
  const secretFile = await Deno.makeTempFile({ prefix: "mcp-rproxy-bench-", suffix: ".secret" });
  const processes: DenoProcess[] = [];
  const clients: HttpMcpClient[] = [];
  try {
    await Deno.writeTextFile(secretFile, `${crypto.randomUUID()}${crypto.randomUUID()}`);
    const ports = [freePort(), freePort()];
    for (const [i, port] of ports.entries()) {
      processes.push(
        new DenoProcess(options.program.script, [
          "serve",
          "--listen",
          `127.0.0.1:${port}`,
          "--tokens-file",
          options.tokensFile,
          "--redis",
          redis.url,
          "--cluster-secret-file",
          secretFile,
          "--replica-id",
          `bench-${i + 1}`,
          "--log-level",
          "warning",
        ], { denoFlags: options.program.denoFlags }),
      );
    }
    for (const port of ports) {
      await waitHealthy(`http://127.0.0.1:${port}/healthz`, START_TIMEOUT_MS);
    }
    const connect = new DenoProcess(options.program.script, [
      "connect",
      "--gateway",
      `http://127.0.0.1:${ports[0]}`,
      "--log-format",
      "json",
      "--server-name",
      "bench-demo",
      "--",
      Deno.execPath(),
      "run",
      "--quiet",
      PATHS.demoServer,
    ], { env: { REVERSE_PROXY_TOKEN: TOKEN }, denoFlags: options.program.denoFlags });
    processes.push(connect);
    await connect.waitForEvent("registered", START_TIMEOUT_MS);
    const url = (port: number) => `http://127.0.0.1:${port}/servers/bench-demo/mcp`;
    const same = new HttpMcpClient(url(ports[0]!), TOKEN);
    const cross = new HttpMcpClient(url(ports[1]!), TOKEN);
    clients.push(same, cross);
    await same.initialize(INITIALIZE);
    // The registration is claimed in Redis just after it is acknowledged: ask until the other sees it.
    const until = performance.now() + START_TIMEOUT_MS;
    for (;;) {
      try {
        await cross.initialize(INITIALIZE);
        break;
      } catch (error) {
        if (performance.now() > until) throw error;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    const pids = {
      holder: processes[0]!.pid,
      origin: processes[1]!.pid,
      connect: connect.pid,
      redis: redis.pid,
    };
    const run = async (client: HttpMcpClient): Promise<PathFigures> => {
      let at: ReplicaCpu | undefined;
      const cpu = {} as ReplicaCpu;
      const read = () => {
        const now = {} as ReplicaCpu;
        for (const [name, pid] of Object.entries(pids)) {
          now[name as keyof ReplicaCpu] = readCpuNs(pid);
        }
        return now;
      };
      const figures = await measure(client, mcpMessages(true), {
        ...options.measure,
        onStart: () => at = read(),
        onPhaseEnd: (phase) => {
          if (phase !== "load") return;
          const now = read();
          for (const name of Object.keys(pids) as (keyof ReplicaCpu)[]) {
            cpu[name] = now[name] - at![name];
          }
        },
      }, ids());
      for (const name of Object.keys(pids) as (keyof ReplicaCpu)[]) {
        cpu[name] = cpu[name] / 1000 / figures.echoCalls;
      }
      return { ...figures, cpuUsPerCall: cpu };
    };
    if (options.crossFirst) {
      const floor = await runRedisFloor(redis, options.measure);
      const crossFigures = await run(cross);
      return { floor, cross: crossFigures, same: await run(same) };
    }
    const sameFigures = await run(same);
    const crossFigures = await run(cross);
    return {
      same: sameFigures,
      cross: crossFigures,
      floor: await runRedisFloor(redis, options.measure),
    };
  } finally {
    for (const client of clients) await client.close().catch(() => {});
    for (const process of processes.reverse()) await process.stop();
    await redis.stop();
    await Deno.remove(secretFile).catch(() => {});
  }
}

/**
 * The Redis floor of the cross path: two bare processes (scripts/bench/redis_floor_child.ts) passing
 * envelope-sized entries through two streams of `url`, as two replicas' inboxes do, timed as the paths are
 * (sequential round trips, then calls in flight).
 */
export async function runRedisFloor(
  redis: { url: string; pid: number },
  measure: MeasureOptions,
): Promise<FloorFigures> {
  const echo = new DenoProcess(PATHS.redisFloorChild, ["echo", redis.url]);
  let driver: DenoProcess | undefined;
  try {
    await echo.waitForEvent("ready", START_TIMEOUT_MS);
    driver = new DenoProcess(PATHS.redisFloorChild, [
      "driver",
      redis.url,
      String(measure.calls),
      String(measure.warmup),
      String(measure.throughputCalls),
      String(measure.inflight),
      `${echo.pid},${redis.pid}`,
    ]);
    const { json } = await driver.waitForEvent("redis_floor", measure.phaseTimeoutMs);
    const { p50Us, p90Us, p99Us, meanUs, callsPerSecond, echoCalls, cpuUsPerCall } =
      json as unknown as FloorFigures;
    return { p50Us, p90Us, p99Us, meanUs, callsPerSecond, echoCalls, cpuUsPerCall };
  } finally {
    await driver?.stop();
    await echo.stop();
  }
}
