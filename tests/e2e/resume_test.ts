// End to end with the real `connect` through a TCP relay to our gateway: what happens when resumption is
// impossible (the link stayed dead past the resume window). Explicit errors, a fresh registration that says
// why, and the same server process, never re-initialized.

import assert from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { DEMO_SERVER, startProxy } from "../fixtures/proxy_process.ts";
import { startTcpRelay } from "../fixtures/tcp_relay.ts";
import { connectClient, startTestGateway, TOKENS, within } from "../fixtures/test_gateway.ts";

function textOf(result: unknown): string {
  const content = (result as { content?: { type: string; text: string }[] }).content;
  return content?.[0]?.text ?? "";
}

Deno.test("past the resume window a pending call fails with a JSON-RPC error, connect registers afresh and logs why", async () => {
  const gateway = await startTestGateway({ resumeWindowMs: 400 });
  const relay = await startTcpRelay({ targetPort: gateway.port });
  let client: Client | undefined;
  try {
    await using proxy = startProxy([
      "connect",
      "--gateway",
      `http://127.0.0.1:${relay.port}`,
      "--server-name",
      "expiring",
      "--log-format",
      "json",
      "--keepalive",
      "0.1",
      "--reconnect-delay",
      "0.05",
      "--",
      ...DEMO_SERVER,
    ], { env: { REVERSE_PROXY_TOKEN: TOKENS.alice } });
    const first = await proxy.waitForEvent("registered", 30_000);
    client = await connectClient(gateway, "expiring", TOKENS.alice);
    let stepSeen: () => void = () => {};
    const firstStep = new Promise<void>((resolve) => stepSeen = resolve);
    const pending = client.callTool(
      { name: "long-running", arguments: { steps: 20, stepMs: 50 } },
      undefined,
      {
        timeout: 20_000,
        onprogress: () => stepSeen(),
      },
    ).then(() => undefined, (error: unknown) => error as Error);
    await within(firstStep, 10_000, "the call to be running");
    const from = proxy.lines.length;
    // Silent with sockets open, until well past the window: the gateway gives up on the session.
    relay.blackhole();
    const error = await within(pending, 10_000, "the pending call to fail");
    relay.restore();
    assert.ok(error instanceof Error, "the call failed instead of hanging");
    assert.match(error.message, /not resumed within 0.4 s/);
    const refused = await proxy.waitForEvent("resume_refused", 10_000, from);
    assert.equal(refused.why, "expired");
    assert.equal(refused.session, first.session);
    const again = await proxy.waitForLine(
      (l) => l.json?.event === "registered" && l.json.session !== first.session,
      10_000,
      from,
    );
    assert.equal(again.json?.name, "expiring", "the name was free again");
    // The MCP client keeps its session; the same server answers, initialized once.
    const echo = await within(
      client.callTool({ name: "echo", arguments: { message: "after" } }),
      10_000,
      "echo after the new registration",
    );
    assert.equal(textOf(echo), "Echo: after");
    const stats = JSON.parse(
      textOf(await within(client.callTool({ name: "stats" }), 10_000, "stats")),
    );
    assert.equal(stats.initializeCount, 1, "the server was not initialized again");
    assert.equal(proxy.lines.filter((l) => l.json?.event === "server_started").length, 1);
  } finally {
    relay.restore();
    await client?.close();
    await relay.close();
    await gateway.close();
  }
});
