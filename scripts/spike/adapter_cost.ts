// What serve's Web Request/Response adapter (lib/serve/http/) costs per call on top of node:http: the
// server's CPU per POST (a ~150 B JSON body read whole, a JSON answer) with a handler written directly
// against IncomingMessage/ServerResponse, and with the same handler behind startHttpServer.
//
//   deno run -A scripts/spike/adapter_cost.ts [--calls 20000] [--warmup 2000] [--inflight 16] [--reps 3]

import { Buffer } from "node:buffer";
import http from "node:http";
import { parseArgs } from "node:util";
import { startHttpServer } from "../../lib/serve/http/server.ts";

const SCRIPT = new URL(import.meta.url).pathname;
const BODY = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "tools/call",
  params: { name: "echo", arguments: { message: "x".repeat(64) } },
});

/** The work both handlers do: parse the call, answer with its id. */
function answer(text: string): string {
  const call = JSON.parse(text) as { id: number };
  return JSON.stringify({ jsonrpc: "2.0", id: call.id, result: { content: [] } });
}

function direct(port: number): Promise<number> {
  const server = http.createServer((req, res) => {
    const chunks: Uint8Array[] = [];
    req.on("data", (chunk: Uint8Array) => chunks.push(chunk));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const body = answer(text);
      res.writeHead(200, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
      });
      res.end(body);
    });
  });
  return new Promise((resolve) =>
    server.listen(port, "127.0.0.1", () => resolve((server.address() as { port: number }).port))
  );
}

async function adapter(port: number): Promise<number> {
  const server = await startHttpServer({
    hostname: "127.0.0.1",
    port,
    timeouts: {
      headersMs: 10_000,
      bodyMs: 10_000,
      bodyMinBytesPerSecond: 1024,
      keepAliveMs: 5_000,
    },
    maxFrameBytes: 1024 * 1024,
    wsIdleTimeoutMs: 0,
    handler: async (request) =>
      new Response(answer(new TextDecoder().decode(await request.arrayBuffer())), {
        headers: { "content-type": "application/json" },
      }),
  });
  return server.port;
}

async function serverRole(kind: string): Promise<void> {
  const port = kind === "direct" ? await direct(0) : await adapter(0);
  console.log(JSON.stringify({ port }));
}

function cpuTicks(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

async function drive(port: number, calls: number, inflight: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: inflight });
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const req = http.request({
        host: "127.0.0.1",
        port,
        method: "POST",
        path: "/mcp",
        agent,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(BODY) },
      }, (res) => {
        res.resume();
        res.on("end", () => resolve());
      });
      req.on("error", reject);
      req.end(BODY);
    });
  const started = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: inflight }, async () => {
    while (next++ < calls) await one();
  }));
  agent.destroy();
  return performance.now() - started;
}

async function measure(kind: string, options: { calls: number; warmup: number; inflight: number }) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SCRIPT, "--role", kind],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const { value } = await reader.read();
    reader.releaseLock();
    const { port } = JSON.parse(value!.split("\n")[0]!) as { port: number };
    await drive(port, options.warmup, options.inflight);
    const before = cpuTicks(child.pid);
    const ms = await drive(port, options.calls, options.inflight);
    const ticks = cpuTicks(child.pid) - before;
    // CLK_TCK is 100 on Linux: a tick is 10 ms.
    return {
      cpuUsPerCall: (ticks * 10_000) / options.calls,
      callsPerSecond: options.calls / ms * 1000,
    };
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await child.stdout.cancel().catch(() => {});
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      role: { type: "string" },
      calls: { type: "string", default: "20000" },
      warmup: { type: "string", default: "2000" },
      inflight: { type: "string", default: "16" },
      reps: { type: "string", default: "3" },
    },
  });
  if (values.role !== undefined) {
    await serverRole(values.role);
  } else {
    const options = {
      calls: Number(values.calls),
      warmup: Number(values.warmup),
      inflight: Number(values.inflight),
    };
    const runs: Record<string, { cpuUsPerCall: number; callsPerSecond: number }[]> = {
      direct: [],
      adapter: [],
    };
    for (let rep = 0; rep < Number(values.reps); rep++) {
      // Alternate the order, so that neither kind always runs on a warmer machine.
      for (const kind of rep % 2 === 0 ? ["direct", "adapter"] : ["adapter", "direct"]) {
        runs[kind]!.push(await measure(kind, options));
      }
    }
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    for (const [kind, list] of Object.entries(runs)) {
      console.log(
        `${kind.padEnd(8)} server CPU µs/call median ${
          median(list.map((r) => r.cpuUsPerCall)).toFixed(1)
        } (${list.map((r) => r.cpuUsPerCall.toFixed(1)).join(" / ")}); calls/s ${
          median(list.map((r) => r.callsPerSecond)).toFixed(0)
        }`,
      );
    }
  }
}
