// `--max-initialize-bytes`: a session keeps its client's `initialize` params (capabilities, client info) for
// as long as it lives, in memory, in the state store and with replicas in Redis, so a token holder must not
// make each session hold megabytes. An initialize over the limit is refused with a JSON-RPC error naming
// the flag, over Streamable HTTP and legacy SSE alike, and no session is opened for it.

import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { Gateway } from "../../lib/serve/gateway.ts";
import { createServeMetrics } from "../../lib/serve/metrics.ts";
import { serveTestServer, startTestGateway, TOKENS, within } from "../fixtures/test_gateway.ts";

const LIMIT = 4 * 1024;

/** A client declaring an experimental capability whose value is `padding` characters long. */
function paddedClient(padding: number): Client {
  return new Client({ name: "padded", version: "1" }, {
    capabilities: { experimental: { padding: { text: "x".repeat(padding) } } },
  });
}

function transports(gateway: Gateway): Record<string, () => Transport> {
  const requestInit = { headers: { Authorization: `Bearer ${TOKENS.alice}` } };
  return {
    "Streamable HTTP": () =>
      new StreamableHTTPClientTransport(new URL(`${gateway.url}/servers/limited/mcp`), {
        requestInit,
      }),
    "legacy SSE": () =>
      new SSEClientTransport(new URL(`${gateway.url}/servers/limited/sse`), { requestInit }),
  };
}

Deno.test("an initialize whose params pass --max-initialize-bytes is refused naming the flag, over both transports; one within it is served", async () => {
  const metrics = createServeMetrics();
  const gateway = await startTestGateway({ maxInitializeBytes: LIMIT, metrics });
  const served = await serveTestServer(gateway, "limited");
  try {
    for (const [transport, open] of Object.entries(transports(gateway))) {
      const big = paddedClient(LIMIT);
      const refused = await within(
        big.connect(open()).then(() => undefined, (error: unknown) => error),
        10_000,
        `the ${transport} initialize over the limit`,
      );
      await big.close();
      assert.ok(refused instanceof Error, `${transport}: the large initialize was answered`);
      assert.match(refused.message, /--max-initialize-bytes/, transport);
      assert.match(refused.message, new RegExp(`limit of ${LIMIT}`), transport);
      if (transport === "Streamable HTTP") {
        assert.equal(metrics.mcpClients.value, 0, "a refused initialize opened no session");
      }

      const small = paddedClient(LIMIT / 2);
      await within(small.connect(open()), 10_000, `the ${transport} initialize within the limit`);
      const tools = await small.listTools();
      assert.ok(tools.tools.length > 0, `${transport}: a session within the limit works`);
      await small.close();
    }
  } finally {
    await served.close();
    await gateway.close();
  }
});
