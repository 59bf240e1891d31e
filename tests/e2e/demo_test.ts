// The one-command demo: runs to its first result with nothing else installed, and stops cleanly on SIGINT.

import assert from "node:assert/strict";
import { processAlive, processGroupMembers, startProxy } from "../fixtures/proxy_process.ts";

Deno.test("mcp-rproxy demo prints a tool result through the tunnel and exits 0 on SIGINT", async () => {
  await using demo = startProxy(["demo"]);
  const echo = await demo.waitForLine((l) => l.raw.includes("tools/call echo →"), 30_000);
  assert.match(echo.raw, /Echo: hello through the tunnel/);
  const tunneled = await demo.waitForLine((l) => /\(pid \d+\)/.test(l.raw));
  const pid = Number(/\(pid (\d+)\)/.exec(tunneled.raw)![1]);
  const url = await demo.waitForLine((l) => l.raw.includes("URL "));
  assert.match(url.raw, /http:\/\/127\.0\.0\.1:\d+\/servers\/mcp-rproxy-demo\/mcp/);
  await demo.waitForLine((l) => l.raw.includes("Press Ctrl-C"));
  demo.signal("SIGINT");
  assert.equal(await demo.exitCode(15_000), 0);
  assert.ok(demo.text().includes("demo stopped"));
  assert.equal(processAlive(pid), false, "the demo's MCP server outlived it");
  assert.deepEqual(processGroupMembers(pid), []);
});
