// temp harness: serve + connect + demo, node:http driver; prints pids; runs load phases; reports CPU/call
import { DenoProcess, PATHS } from "./bench/children.ts";
import { HttpMcpClient } from "./bench/clients.ts";
import { startServe } from "./bench/paths.ts";
import { connectArgs, ids, INITIALIZE, TOKEN } from "./bench/servers.ts";
import { readCpuNs } from "./bench/procfs.ts";
import { mcpMessages, measure } from "./bench/workload.ts";
const tokensFile = await Deno.makeTempFile();
await Deno.writeTextFile(tokensFile, `${TOKEN} bench\n`);
const flags = Deno.args.includes("--perf")
  ? ["--v8-flags=--perf-basic-prof"]
  : Deno.args.includes("--prof")
  ? ["--cpu-prof", "--cpu-prof-dir=/tmp/sprof2"]
  : [];
const serve = await startServe({ script: PATHS.main, denoFlags: flags }, tokensFile);
const connect = new DenoProcess(PATHS.main, connectArgs(serve.url, "demo"), {
  env: { REVERSE_PROXY_TOKEN: TOKEN },
});
const reg = await connect.waitForEvent("registered", 60000);
const client = new HttpMcpClient(String(reg.json.mcpUrl), TOKEN);
await client.initialize(INITIALIZE);
console.log(JSON.stringify({ serve: serve.process.pid, connect: connect.pid }));
await Deno.writeTextFile("/tmp/serve.pid", String(serve.process.pid));
const rounds = Number(Deno.args.find((a) => /^\d+$/.test(a)) ?? 3);
for (let r = 0; r < rounds; r++) {
  let s0 = 0, c0 = 0, w0 = 0, r0 = 0;
  const io = (pid: number) => {
    const t = Deno.readTextFileSync(`/proc/${pid}/io`);
    return { r: Number(/syscr: (\d+)/.exec(t)![1]), w: Number(/syscw: (\d+)/.exec(t)![1]) };
  };
  const f = await measure(client, mcpMessages(false), {
    warmup: 200,
    calls: 1000,
    throughputCalls: 20000,
    inflight: 16,
    bigBytes: 0,
    phaseTimeoutMs: 120000,
    onStart: () => {
      s0 = readCpuNs(serve.process.pid);
      c0 = readCpuNs(connect.pid);
      const x = io(serve.process.pid);
      w0 = x.w;
      r0 = x.r;
    },
    onPhaseEnd: () => {
      s0 = readCpuNs(serve.process.pid) - s0;
      const x = io(serve.process.pid);
      w0 = x.w - w0;
      r0 = x.r - r0;
      c0 = readCpuNs(connect.pid) - c0;
    },
  }, ids());
  console.log(
    `p50 ${f.p50Us.toFixed(0)} us, ${f.callsPerSecond.toFixed(0)} calls/s, serve ${
      (s0 / 1000 / f.echoCalls).toFixed(1)
    } us/call, connect ${(c0 / 1000 / f.echoCalls).toFixed(1)} us/call, serve writes/call ${
      (w0 / f.echoCalls).toFixed(2)
    } reads/call ${(r0 / f.echoCalls).toFixed(2)}`,
  );
}
await client.close();
await connect.stop();
await serve.process.stop();
await Deno.remove(tokensFile);
