// The bench's replica row: two `serve --redis` replicas on one redis-server, connect (demo server) on the
// first; the same calls measured through the replica holding the tunnel (same-replica) and through the
// other (cross-replica: envelopes through Redis both ways), in the same run, so the two compare.

import { startRedis } from "../../tests/fixtures/redis_server.ts";
import { HttpMcpClient } from "./clients.ts";
import { DenoProcess, freePort, PATHS, waitHealthy } from "./children.ts";
import { type Figures, mcpMessages, measure, type MeasureOptions } from "./workload.ts";

/** Both paths of one run. */
export interface ReplicaFigures {
  same: Figures;
  cross: Figures;
}

/** Options of {@link runReplicas}. */
export interface ReplicaRunOptions {
  measure: MeasureOptions;
  /** The program: main.ts or the bundle. */
  script: string;
  tokensFile: string;
  token: string;
  /** `initialize` and `notifications/initialized` as the bench sends them. */
  initialize: string;
  /** Measures cross-replica first (alternate it between repetitions). */
  crossFirst: boolean;
  startTimeoutMs: number;
  denoFlags: string[];
}

function ids(): () => number {
  let next = 1;
  return () => next++;
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
        new DenoProcess(options.script, [
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
        ], { denoFlags: options.denoFlags }),
      );
    }
    for (const port of ports) {
      await waitHealthy(`http://127.0.0.1:${port}/healthz`, options.startTimeoutMs);
    }
    const connect = new DenoProcess(options.script, [
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
    ], { env: { REVERSE_PROXY_TOKEN: options.token }, denoFlags: options.denoFlags });
    processes.push(connect);
    await connect.waitForEvent("registered", options.startTimeoutMs);
    const url = (port: number) => `http://127.0.0.1:${port}/servers/bench-demo/mcp`;
    const same = new HttpMcpClient(url(ports[0]!), options.token);
    const cross = new HttpMcpClient(url(ports[1]!), options.token);
    clients.push(same, cross);
    await same.initialize(options.initialize);
    // The registration is claimed in Redis just after it is acknowledged: ask until the other sees it.
    const until = performance.now() + options.startTimeoutMs;
    for (;;) {
      try {
        await cross.initialize(options.initialize);
        break;
      } catch (error) {
        if (performance.now() > until) throw error;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    const run = (client: HttpMcpClient) =>
      measure(client, mcpMessages(true), options.measure, ids());
    if (options.crossFirst) {
      const crossFigures = await run(cross);
      return { cross: crossFigures, same: await run(same) };
    }
    const sameFigures = await run(same);
    return { same: sameFigures, cross: await run(cross) };
  } finally {
    for (const client of clients) await client.close().catch(() => {});
    for (const process of processes.reverse()) await process.stop();
    await redis.stop();
    await Deno.remove(secretFile).catch(() => {});
  }
}
