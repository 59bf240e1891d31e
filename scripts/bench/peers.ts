// `deno task bench --peers` (issue 17, target 5): supergateway 4.0 (`--outputTransport streamableHttp
// --stateful`, the usual way to put a stdio server on HTTP) installed from npm into a temporary folder and
// run in front of the same stdio server, driven by the same node:http driver as serve + connect, in the
// same run. Target: serve + connect ≥ 3× its throughput and a lower p50.

import { HttpMcpClient, stopProcess, within } from "./clients.ts";
import { freePort, ROOT } from "./children.ts";
import { readCpuNs } from "./procfs.ts";
import { type ProgramOptions, runServe, runStdio, type TunnelFigures } from "./paths.ts";
import { ids, INITIALIZE, type ServerKind, SERVERS, START_TIMEOUT_MS } from "./servers.ts";
import type { Target } from "./targets.ts";
import { type Figures, mcpMessages, measure, type MeasureOptions } from "./workload.ts";

export const SUPERGATEWAY = "supergateway@4.0.0";

/** How to run supergateway once installed. */
export interface Supergateway {
  node: string;
  entry: string;
  nodeVersion: string;
}

async function run(command: string, args: string[], cwd: string): Promise<string> {
  const output = await new Deno.Command(command, { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!output.success) {
    throw new Error(
      `${command} ${args.join(" ")} failed: ${new TextDecoder().decode(output.stderr).slice(-800)}`,
    );
  }
  return new TextDecoder().decode(output.stdout).trim();
}

/**
 * Installs supergateway into `dir` with npm. It runs on the machine's Node when that is 20 or newer
 * (its `engines`), else on Node 22 installed beside it (`npm install node@22`).
 */
export async function installSupergateway(dir: string): Promise<Supergateway> {
  const npm = ["install", "--prefix", dir, "--no-audit", "--no-fund", "--silent"];
  await run("npm", [...npm, SUPERGATEWAY], dir);
  const entry = `${dir}/node_modules/supergateway/dist/index.js`;
  const system = await run("node", ["--version"], dir).catch(() => "");
  if (Number(/^v(\d+)/.exec(system)?.[1] ?? 0) >= 20) {
    return { node: "node", entry, nodeVersion: system };
  }
  await run("npm", [...npm, "node@22"], dir);
  const node = `${dir}/node_modules/.bin/node`;
  return { node, entry, nodeVersion: await run(node, ["--version"], dir) };
}

/** Waits until something accepts TCP connections on 127.0.0.1:`port`. */
async function waitListening(port: number, child: Deno.ChildProcess, timeoutMs: number) {
  let exited = false;
  child.status.then(() => exited = true);
  const until = performance.now() + timeoutMs;
  while (performance.now() < until && !exited) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`supergateway ${exited ? "exited" : "did not listen"} on port ${port}`);
}

/** What supergateway measured, with its process's CPU per call (its server child not counted). */
export interface PeerFigures extends Figures {
  cpuUsPerCall: number;
}

/** supergateway in front of `kind`, one stateful session, the bench's workload without the large result. */
export async function runSupergateway(
  gateway: Supergateway,
  kind: ServerKind,
  options: MeasureOptions,
): Promise<PeerFigures> {
  const port = freePort();
  const child = new Deno.Command(gateway.node, {
    args: [
      gateway.entry,
      "--stdio",
      SERVERS[kind].command.join(" "),
      "--outputTransport",
      "streamableHttp",
      "--stateful",
      "--port",
      String(port),
      "--logLevel",
      "none",
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "null",
    // Its own process group: the server it spawns goes with it.
    detached: true,
  }).spawn();
  const client = new HttpMcpClient(`http://127.0.0.1:${port}/mcp`, undefined);
  try {
    await waitListening(port, child, START_TIMEOUT_MS);
    await within(client.initialize(INITIALIZE), START_TIMEOUT_MS, "supergateway's initialize");
    let cpu = 0;
    const figures = await measure(client, mcpMessages(false), {
      ...options,
      bigBytes: 0,
      onStart: () => cpu = readCpuNs(child.pid),
      onPhaseEnd: () => cpu = readCpuNs(child.pid) - cpu,
    }, ids());
    return { ...figures, cpuUsPerCall: cpu / 1000 / figures.echoCalls };
  } finally {
    await client.close();
    await stopProcess(child, { group: true });
  }
}

/** One repetition of the peers mode, per server. */
export interface PeersRepetition {
  servers: Partial<
    Record<ServerKind, { stdio: Figures; supergateway: PeerFigures; serve: TunnelFigures }>
  >;
}

/** Measures the stdio floor, supergateway and serve + connect, alternating which goes first. */
export async function runPeers(
  gateway: Supergateway,
  kinds: ServerKind[],
  options: MeasureOptions,
  program: ProgramOptions,
  tokensFile: string,
  rep: number,
  log: (what: string) => void,
): Promise<PeersRepetition> {
  const noBig = { ...options, bigBytes: 0 };
  const out: PeersRepetition = { servers: {} };
  for (const kind of kinds) {
    log(`stdio floor (${kind})`);
    const stdio = await runStdio(kind, noBig);
    let supergateway: PeerFigures | undefined;
    let serve: TunnelFigures | undefined;
    for (const which of rep % 2 === 1 ? ["sg", "serve"] : ["serve", "sg"]) {
      if (which === "sg") {
        log(`supergateway (${kind})`);
        supergateway = await runSupergateway(gateway, kind, noBig);
      } else {
        log(`serve+connect (${kind})`);
        serve = await runServe(kind, noBig, program, tokensFile);
      }
    }
    out.servers[kind] = { stdio, supergateway: supergateway!, serve: serve! };
  }
  return out;
}

/** Target 5 on the medians. */
export function evaluatePeers(m: PeersRepetition): Target[] {
  const targets: Target[] = [];
  for (const [kind, s] of Object.entries(m.servers)) {
    if (!s) continue;
    const ratio = s.serve.callsPerSecond / s.supergateway.callsPerSecond;
    targets.push({
      path: `serve+connect vs supergateway (${kind})`,
      name: "5. throughput ≥ 3 × supergateway's",
      pass: ratio >= 3,
      detail: `${s.serve.callsPerSecond.toFixed(0)} vs ${
        s.supergateway.callsPerSecond.toFixed(0)
      } calls/s = ${ratio.toFixed(2)} × (CPU per call: serve + connect ${
        ((s.serve.serveCpuUsPerCall ?? 0) + s.serve.connectCpuUsPerCall).toFixed(0)
      } µs, supergateway ${s.supergateway.cpuUsPerCall.toFixed(0)} µs)`,
    });
    targets.push({
      path: `serve+connect vs supergateway (${kind})`,
      name: "5. p50 below supergateway's",
      pass: s.serve.p50Us < s.supergateway.p50Us,
      detail: `${s.serve.p50Us.toFixed(0)} vs ${s.supergateway.p50Us.toFixed(0)} µs (stdio floor ${
        s.stdio.p50Us.toFixed(0)
      })`,
    });
  }
  return targets;
}

/** The peers table. */
export function peersTable(m: PeersRepetition): string {
  const rows = [
    `${"path".padEnd(30)} ${"p50 µs".padStart(8)} ${"p90 µs".padStart(8)} ${
      "+p50 µs".padStart(8)
    } ${"calls/s".padStart(8)} ${"CPU µs/call".padStart(16)}`,
  ];
  for (const [kind, s] of Object.entries(m.servers)) {
    if (!s) continue;
    const row = (label: string, f: Figures, cpu: string) =>
      rows.push(
        `${label.padEnd(30)} ${f.p50Us.toFixed(0).padStart(8)} ${f.p90Us.toFixed(0).padStart(8)} ${
          (f.p50Us - s.stdio.p50Us).toFixed(0).padStart(8)
        } ${f.callsPerSecond.toFixed(0).padStart(8)} ${cpu.padStart(16)}`,
      );
    row(`stdio floor (${kind})`, s.stdio, "");
    row(`supergateway (${kind})`, s.supergateway, s.supergateway.cpuUsPerCall.toFixed(1));
    row(
      `serve+connect (${kind})`,
      s.serve,
      `${s.serve.serveCpuUsPerCall?.toFixed(1)} + ${s.serve.connectCpuUsPerCall.toFixed(1)}`,
    );
  }
  return rows.join("\n");
}
