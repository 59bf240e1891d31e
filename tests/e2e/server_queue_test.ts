// A local server that stops reading its stdin costs connect a fixed amount of memory, and never holds up
// shutdown; and connect's own SIGKILL does not leave the server's process group behind (issue 11).

import assert from "node:assert/strict";
import { startContractGateway } from "../fixtures/contract_gateway.ts";
import {
  processAlive,
  processGroupMembers,
  type ProxyProcess,
  startProxy,
} from "../fixtures/proxy_process.ts";
import type { JsonObject } from "../../lib/protocol/jsonrpc.ts";

const STALLED_SERVER = [
  Deno.execPath(),
  "run",
  "-A",
  new URL("../fixtures/fault_server.ts", import.meta.url).pathname,
  "--stall",
];
const QUEUE_BYTES = 64 * 1024 * 1024;
const GRACE_MS = 5_000;

/** Resident set size of a process, in bytes (Linux /proc). */
function rssOf(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)![1]) * 1024;
}

/** Waits (bounded) until no live process is left in the group: a killed process is reaped a moment later. */
async function groupGone(pgid: number, ms: number): Promise<void> {
  const until = performance.now() + ms;
  while (processGroupMembers(pgid).length > 0) {
    if (performance.now() > until) {
      assert.fail(`process group ${pgid} still has ${processGroupMembers(pgid)} after ${ms} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Pids of the live children of `pid` (Linux /proc). */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] !== "Z" && Number(fields[1]) === pid) children.push(Number(entry.name));
    } catch {
      // Gone in between.
    }
  }
  return children;
}

/** The stalled server's pid and its grandchild's, from connect's log. */
async function stalledServer(proxy: ProxyProcess): Promise<{ server: number; grandchild: number }> {
  const started = await proxy.waitForEvent("server_started", 30_000);
  const line = await proxy.waitForLine(
    (l) => l.json?.event === "server_stderr" && String(l.json.line).startsWith("grandchild "),
    10_000,
  );
  return { server: Number(started.pid), grandchild: Number(String(line.json!.line).slice(11)) };
}

Deno.test("10,000 × 10 KB requests to a server that stopped reading: the queue holds 64 MiB, the rest are refused at once, and SIGTERM still exits within the grace period", async () => {
  const gateway = await startContractGateway({ contract: "A" });
  try {
    await using proxy = startProxy([
      "connect",
      "--gateway",
      gateway.url,
      "--log-format",
      "json",
      "--health-listen",
      "127.0.0.1:0",
      "--",
      ...STALLED_SERVER,
    ]);
    const { server, grandchild } = await stalledServer(proxy);
    const sessionId = await gateway.waitForRegistered(20_000);
    const health = String((await proxy.waitForEvent("health_listening")).url);
    const rssBefore = rssOf(proxy.pid);
    const message = "m".repeat(10_000);
    let lineBytes = 0;
    const sentAt = performance.now();
    for (let id = 1; id <= 10_000; id++) {
      const payload = {
        jsonrpc: "2.0",
        id,
        method: "tools/call",
        params: { name: "echo", arguments: { message } },
      };
      lineBytes = JSON.stringify(payload).length + 1;
      gateway.send({ type: "request", sessionId, payload });
    }
    // The queue counts each line from acceptance until the pipe took it: this many fit in the queue,
    // plus what the pipe took before it filled (64 KiB on Linux).
    const accepted = Math.floor(QUEUE_BYTES / lineBytes);
    const inPipe = Math.ceil(65_536 / lineBytes);
    const refusedAtLeast = 10_000 - accepted - inPipe;
    const responses = () =>
      gateway.frames.filter((f) => f.direction === "in" && f.frame?.type === "response");
    await gateway.waitUntil(
      () => responses().length >= refusedAtLeast,
      30_000,
      `${refusedAtLeast} refusals`,
    );
    const refusedIn = performance.now() - sentAt;
    const rssAfter = rssOf(proxy.pid);
    // A few more may be refused still: settle when the gateway has every refusal connect counted.
    const refusedCount = async () =>
      Number(
        /^mcp_rproxy_errors_total\{kind="server_queue_full",server="[^"]+"\} (\d+)$/m.exec(
          await (await fetch(`${health}/metrics`)).text(),
        )?.[1],
      );
    let counted = await refusedCount();
    for (;;) {
      await gateway.waitUntil(() => responses().length >= counted, 10_000, "counted refusals");
      const again = await refusedCount();
      if (again === counted) break;
      counted = again;
    }
    const refusals = responses().map((f) => f.frame!.payload as JsonObject);
    for (const refusal of refusals) {
      const error = refusal.error as { code: number; message: string };
      assert.equal(error.code, -32000);
      assert.match(
        error.message,
        /^The local MCP server is not reading its input: \d+ message\(s\) \(\d+\.\d MiB\) already wait for it, the bound set by --max-server-queue-bytes \(64\.0 MiB\); try again later$/,
      );
    }
    // The earliest requests fit; every refused one is a later one.
    const refusedIds = refusals.map((r) => Number(r.id));
    assert.ok(Math.min(...refusedIds) > accepted - 10, `refused ${Math.min(...refusedIds)} early`);
    assert.ok(
      refusals.length <= 10_000 - accepted,
      `${refusals.length} refused, at most ${10_000 - accepted} expected`,
    );
    // Memory: the bound plus room for the frames in transit, never the whole 100 MB sent.
    const grown = rssAfter - rssBefore;
    // Unbounded, the queue took 100 MB of lines and RSS grew ~270 MiB; bounded, it holds 64 MiB and RSS
    // grows 108-163 MiB (frames received and refusals sent come and go with the garbage collector).
    assert.ok(grown < QUEUE_BYTES + 128 * 1024 * 1024, `connect grew by ${grown >> 20} MiB`);
    assert.equal(counted, refusals.length, "every refusal counted in the metrics");
    // One warning a second, not one per refusal.
    const warnings = proxy.lines.filter((l) => l.json?.event === "server_queue_full");
    assert.ok(warnings.length >= 1);
    assert.ok(
      warnings.length <= Math.ceil(refusedIn / 1000) + 1,
      `${warnings.length} warnings in ${Math.round(refusedIn)} ms`,
    );
    assert.match(String(warnings[0]!.json!.message), /--max-server-queue-bytes/);

    // The server reads nothing and ignores SIGTERM, and a write into its full pipe is pending.
    const stopAt = performance.now();
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(GRACE_MS + 5_000), 0);
    const stopMs = performance.now() - stopAt;
    assert.ok(stopMs < GRACE_MS + 1_500, `shutdown took ${Math.round(stopMs)} ms`);
    await groupGone(server, 2_000);
    assert.equal(processAlive(grandchild), false, "the grandchild outlived connect");
  } finally {
    await gateway.close();
  }
});

Deno.test("SIGKILL of connect: a watchdog stops the server's whole process group, grandchild included", async () => {
  const gateway = await startContractGateway({ contract: "A" });
  try {
    await using proxy = startProxy([
      "connect",
      "--gateway",
      gateway.url,
      "--log-format",
      "json",
      "--shutdown-grace",
      "1",
      "--",
      ...STALLED_SERVER,
    ]);
    const { server, grandchild } = await stalledServer(proxy);
    await gateway.waitForRegistered(20_000);
    const watchdogs = childrenOf(proxy.pid).filter((pid) => pid !== server);
    assert.equal(watchdogs.length, 1, `children of connect besides the server: ${watchdogs}`);
    const watchdog = watchdogs[0]!;
    assert.deepEqual(processGroupMembers(server).sort(), [server, grandchild].sort());
    const killedAt = performance.now();
    proxy.signal("SIGKILL");
    await proxy.status;
    // The server ignores SIGTERM: the watchdog's SIGKILL comes after the grace period (1 s).
    await groupGone(server, 1_000 + 3_000);
    const goneMs = performance.now() - killedAt;
    assert.ok(goneMs >= 900, `the group was killed before its grace (${Math.round(goneMs)} ms)`);
    assert.ok(goneMs < 1_000 + 2_000, `the group lived ${Math.round(goneMs)} ms on`);
    assert.equal(processAlive(grandchild), false);
    const until = performance.now() + 2_000;
    while (processAlive(watchdog) && performance.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(processAlive(watchdog), false, "the watchdog outlived its job");
  } finally {
    await gateway.close();
  }
});

Deno.test("a clean shutdown leaves no watchdog behind", async () => {
  const gateway = await startContractGateway({ contract: "A" });
  try {
    await using proxy = startProxy([
      "connect",
      "--gateway",
      gateway.url,
      "--log-format",
      "json",
      "--shutdown-grace",
      "1",
      "--",
      ...STALLED_SERVER,
    ]);
    const { server } = await stalledServer(proxy);
    await gateway.waitForRegistered(20_000);
    const watchdog = childrenOf(proxy.pid).find((pid) => pid !== server)!;
    assert.ok(watchdog !== undefined);
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(1_000 + 5_000), 0);
    assert.equal(processAlive(watchdog), false, "the watchdog outlived connect's clean exit");
    await groupGone(server, 2_000);
  } finally {
    await gateway.close();
  }
});

Deno.test("--max-server-queue-messages and --shutdown-grace reach the queue and the stop", async () => {
  const gateway = await startContractGateway({ contract: "A" });
  try {
    await using proxy = startProxy([
      "connect",
      "--gateway",
      gateway.url,
      "--log-format",
      "json",
      "--max-server-queue-messages",
      "5",
      "--shutdown-grace",
      "1",
      "--",
      ...STALLED_SERVER,
    ]);
    const { server } = await stalledServer(proxy);
    const sessionId = await gateway.waitForRegistered(20_000);
    // Each bigger than the pipe takes at once: all but the first stay in the queue.
    const message = "q".repeat(100_000);
    for (let id = 1; id <= 20; id++) {
      gateway.send({
        type: "request",
        sessionId,
        payload: {
          jsonrpc: "2.0",
          id,
          method: "tools/call",
          params: { name: "echo", arguments: { message } },
        },
      });
    }
    const responses = () =>
      gateway.frames.filter((f) => f.direction === "in" && f.frame?.type === "response");
    await gateway.waitUntil(() => responses().length >= 14, 10_000, "14 refusals");
    const error = (responses()[0]!.frame!.payload as JsonObject).error as { message: string };
    assert.match(
      error.message,
      /the bound set by --max-server-queue-messages \(5\); try again later$/,
    );
    const stopAt = performance.now();
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(10_000), 0);
    const stopMs = performance.now() - stopAt;
    assert.ok(stopMs < 1_000 + 1_500, `shutdown took ${Math.round(stopMs)} ms with a grace of 1 s`);
    await groupGone(server, 2_000);
  } finally {
    await gateway.close();
  }
});
