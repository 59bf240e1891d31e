// End to end: connect spawns its server before it loads the rest of itself (lib/connect/early_servers.ts),
// and that process is the one it runs and registers: the server starts once, and stops with connect.

import assert from "node:assert/strict";
import { startContractGateway } from "../fixtures/contract_gateway.ts";
import { DEMO_SERVER, processAlive, startProxy } from "../fixtures/proxy_process.ts";

const TOKEN = "early-start-token-0123456789";

Deno.test("connect starts its server once: the early start's process is the one it registers", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-early-" });
  const starts = `${dir}/starts`;
  const gateway = await startContractGateway({ contract: "A", tokens: [TOKEN] });
  try {
    // Each start of the server appends its pid, then becomes the demo server (same pid).
    const script = `echo $$ >> '${starts}'; exec ${DEMO_SERVER.map((w) => `'${w}'`).join(" ")}`;
    await using proxy = startProxy([
      "connect",
      "--gateway",
      gateway.url,
      "--log-format",
      "json",
      "--",
      "sh",
      "-c",
      script,
    ], { env: { REVERSE_PROXY_TOKEN: TOKEN } });
    const started = await proxy.waitForEvent("server_started", 20_000);
    await gateway.waitForRegistered(20_000);
    const pids = (await Deno.readTextFile(starts)).trim().split("\n").map(Number);
    assert.deepEqual(pids, [Number(started.pid)], "one start, and it is the server connect runs");
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(15_000), 0);
    assert.equal(processAlive(pids[0]!), false, "the server outlived connect");
  } finally {
    await gateway.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the early start writes initialize once: the handshake only waits for its answer", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-early-" });
  const input = `${dir}/stdin`;
  const gateway = await startContractGateway({ contract: "A", tokens: [TOKEN] });
  try {
    // Everything connect writes to the server is kept in a file on its way.
    const script = `tee -a '${input}' | ${DEMO_SERVER.map((w) => `'${w}'`).join(" ")}`;
    await using proxy = startProxy([
      "connect",
      "--gateway",
      gateway.url,
      "--log-format",
      "json",
      "--",
      "sh",
      "-c",
      script,
    ], { env: { REVERSE_PROXY_TOKEN: TOKEN } });
    await proxy.waitForEvent("server_started", 20_000);
    await gateway.waitForRegistered(20_000);
    // tee may still be copying the last line: wait for both (bounded), then read what came.
    const deadline = Date.now() + 5_000;
    let lines: string[] = [];
    while (Date.now() < deadline) {
      lines = (await Deno.readTextFile(input)).trim().split("\n");
      if (lines.length >= 2) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const methods = lines.map((line) => (JSON.parse(line) as { method?: string }).method);
    assert.deepEqual(methods, ["initialize", "notifications/initialized"]);
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(15_000), 0);
  } finally {
    await gateway.close();
    await Deno.remove(dir, { recursive: true });
  }
});
