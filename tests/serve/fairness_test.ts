// Fairness between the clients of one owner: one token cannot hold all of its owner's GET streams.

import assert from "node:assert/strict";
import type { Gateway } from "../../lib/serve/gateway.ts";
import { serveTestServer, startTestGateway, TOKENS, within } from "../fixtures/test_gateway.ts";

/** Opens an MCP session on `name` as `token` and returns its id. */
async function initialize(gateway: Gateway, name: string, token: string): Promise<string> {
  const response = await fetch(`${gateway.url}/servers/${name}/mcp`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
      accept: "application/json",
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 0,
      method: "initialize",
      params: {
        protocolVersion: "2025-11-25",
        capabilities: {},
        clientInfo: { name: "t", version: "1" },
      },
    }),
  });
  assert.equal(response.status, 200);
  await response.body?.cancel();
  return response.headers.get("mcp-session-id")!;
}

/** Opens a GET stream; the response is returned with its body unread (the stream stays open). */
function openStream(gateway: Gateway, name: string, token: string, session: string) {
  return fetch(`${gateway.url}/servers/${name}/mcp`, {
    headers: {
      authorization: `Bearer ${token}`,
      accept: "text/event-stream",
      "mcp-session-id": session,
      "mcp-protocol-version": "2025-11-25",
    },
  });
}

Deno.test("one token may hold --max-streams-per-token GET streams; another token of the owner is not affected", async () => {
  const gateway = await startTestGateway({ maxStreamsPerToken: 3 });
  const served = await serveTestServer(gateway, "fair");
  const open: Response[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const session = await initialize(gateway, "fair", TOKENS.alice);
      const stream = await openStream(gateway, "fair", TOKENS.alice, session);
      assert.equal(stream.status, 200);
      open.push(stream);
    }
    const fourth = await initialize(gateway, "fair", TOKENS.alice);
    const refused = await openStream(gateway, "fair", TOKENS.alice, fourth);
    assert.equal(refused.status, 429);
    const body = await refused.json();
    assert.match(body.error.message, /limit 3, --max-streams-per-token/);
    // The same owner's other token still gets its streams.
    const other = await initialize(gateway, "fair", TOKENS.aliceClientOnly);
    const allowed = await openStream(gateway, "fair", TOKENS.aliceClientOnly, other);
    assert.equal(allowed.status, 200);
    open.push(allowed);
    // Closing one of the first token's streams gives it a slot back.
    await open.shift()!.body?.cancel();
    const deadline = performance.now() + 5_000;
    let again: Response;
    for (;;) {
      again = await openStream(gateway, "fair", TOKENS.alice, fourth);
      if (again.status === 200 || performance.now() > deadline) break;
      await again.body?.cancel();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(again.status, 200, "the closed stream's slot was not given back");
    open.push(again);
  } finally {
    for (const response of open) await response.body?.cancel().catch(() => {});
    await within(served.close(), 5_000, "the tunnel to close");
    await gateway.close();
  }
});
