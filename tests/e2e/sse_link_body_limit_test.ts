// End to end: an SSE link through a proxy that limits request bodies (HAProxy here; nginx's default is
// 1 MiB) answers a result the proxy refuses (413) with a JSON-RPC error instead of losing the link to it.
// Before, the link closed, resumed, replayed the same frame, met the same 413, and so on: the call and
// every later one on the link waited for their timeouts.

import assert from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { startConfiguredDaemon } from "../fixtures/daemon.ts";
import { DEMO_SERVER, startProxy } from "../fixtures/proxy_process.ts";
import { connectClient, startTestGateway, TOKENS, within } from "../fixtures/test_gateway.ts";

/** HAProxy in front of `gatewayPort` that refuses a body of more than `maxBody` bytes with 413. */
function startBodyLimitProxy(gatewayPort: string, maxBody: number) {
  return startConfiguredDaemon({
    program: "haproxy",
    configName: "haproxy.cfg",
    render: (port) =>
      [
        "defaults",
        "  mode http",
        "  timeout connect 5s",
        "  timeout client 60s",
        "  timeout server 60s",
        "frontend front",
        `  bind 127.0.0.1:${port}`,
        `  http-request deny deny_status 413 if { req.hdr_val(content-length) gt ${maxBody} }`,
        "  default_backend gateway",
        "backend gateway",
        `  server gateway 127.0.0.1:${gatewayPort}`,
        "",
      ].join("\n"),
    args: (configPath) => ["-db", "-f", configPath],
  });
}

Deno.test("SSE link through a proxy that refuses large bodies: a result over its limit is answered with -32002, the link stays up, later calls pass", async () => {
  const gateway = await startTestGateway({ callTimeoutMs: 20_000 });
  const proxy = await startBodyLimitProxy(new URL(gateway.url).port, 64 * 1024);
  let client: Client | undefined;
  try {
    await using connect = startProxy([
      "connect",
      "--gateway",
      proxy.url,
      "--transport",
      "sse",
      "--server-name",
      "demo",
      "--log-format",
      "json",
      "--reconnect-delay",
      "0.05",
      "--",
      ...DEMO_SERVER,
    ], { env: { REVERSE_PROXY_TOKEN: TOKENS.alice } });
    await connect.waitForEvent("registered", 30_000);
    client = await connectClient(gateway, "demo", TOKENS.alice);
    // A lost link is the failure this test is about: each step races it.
    const lost = connect.waitForEvent("link_lost", 30_000).then(
      () => "the link was lost",
      () => "",
    );
    const big = await within(
      Promise.race([
        client.callTool({ name: "big", arguments: { bytes: 200_000 } }).then(
          () => "answered",
          (error: Error) => error.message,
        ),
        lost,
      ]),
      10_000,
      "the call whose result the proxy refuses",
    );
    assert.match(big, /-32002/);
    assert.match(big, /HTTP 413/);
    const echo = await within(
      client.callTool({ name: "echo", arguments: { message: "after" } }),
      10_000,
      "a call after it",
    );
    assert.match(JSON.stringify(echo), /after/);
    // A batch the proxy refuses is split: many answers at once still pass, none losing the link.
    const many = Promise.all(
      Array.from(
        { length: 40 },
        (_, i) => client!.callTool({ name: "big", arguments: { bytes: 20_000 + i } }),
      ),
    ).then(() => "answered");
    assert.equal(
      await within(Promise.race([many, lost]), 20_000, "40 answers of 20 kB"),
      "answered",
    );
    assert.deepEqual(connect.lines.filter((l) => l.json?.event === "link_lost"), []);
  } finally {
    await client?.close();
    await proxy.stop();
    await gateway.close();
  }
});
