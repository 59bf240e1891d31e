// mcp-remote (the bridge desktop clients use) with `--transport sse-only` against serve's legacy HTTP+SSE
// endpoint: tools, progress and sampling through a tunneled test server, from the pinned npm install on
// Node 22 (tests/fixtures/mcp_clients.ts).

import assert from "node:assert/strict";
import { dirname } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { CreateMessageRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { ensureMcpClients } from "../fixtures/mcp_clients.ts";
import { serveTestServer, startTestGateway, TOKENS, within } from "../fixtures/test_gateway.ts";

function textOf(result: unknown): string {
  return (result as { content: { text: string }[] }).content[0]!.text;
}

Deno.test("mcp-remote --transport sse-only runs tools, progress and sampling through serve's /sse", async () => {
  const clients = await ensureMcpClients();
  const gateway = await startTestGateway();
  const served = await serveTestServer(gateway, "files");
  const home = await Deno.makeTempDir({ prefix: "mcp-remote-sse-home-" });
  const transport = new StdioClientTransport({
    command: clients.mcpRemote[0]!,
    args: [
      ...clients.mcpRemote.slice(1),
      `${gateway.url}/servers/files/sse`,
      "--transport",
      "sse-only",
      "--header",
      `Authorization: Bearer ${TOKENS.alice}`,
    ],
    env: {
      HOME: home,
      PATH: `${dirname(clients.node)}:/usr/bin:/bin`,
      BROWSER: "/bin/true",
      NO_COLOR: "1",
      MCP_REMOTE_CONFIG_DIR: `${home}/.mcp-auth`,
    },
    stderr: "pipe",
  });
  let log = "";
  transport.stderr?.on("data", (chunk: Uint8Array) => log += new TextDecoder().decode(chunk));
  const client = new Client({ name: "via-mcp-remote", version: "1" }, {
    capabilities: { sampling: {} },
  });
  client.setRequestHandler(
    CreateMessageRequestSchema,
    (request: { params: { messages: { content: { text?: string } }[] } }) => ({
      model: "test-model",
      role: "assistant" as const,
      content: {
        type: "text" as const,
        text: `sampled: ${request.params.messages[0]?.content.text}`,
      },
    }),
  );
  try {
    await within(client.connect(transport), 30_000, "mcp-remote to connect").catch((error) => {
      throw new Error(`${error}\nmcp-remote said:\n${log.slice(-3000)}`);
    });
    assert.match(log, /Connected to remote server using SSEClientTransport/);
    const echoed = await client.callTool(
      { name: "echo", arguments: { text: "bridged" } },
      undefined,
      {
        timeout: 10_000,
      },
    );
    assert.equal(textOf(echoed), "bridged");
    const progress: number[] = [];
    const slowed = await client.callTool(
      { name: "slow", arguments: { steps: 3, stepMs: 20, tailMs: 30 } },
      undefined,
      { timeout: 10_000, onprogress: (p: { progress: number }) => progress.push(p.progress) },
    );
    assert.equal(textOf(slowed), "done 3");
    assert.deepEqual(progress, [1, 2, 3]);
    const sampled = await client.callTool(
      { name: "sample", arguments: { prompt: "bridge" } },
      undefined,
      {
        timeout: 10_000,
      },
    );
    assert.equal(textOf(sampled), "sampled: bridge");
  } finally {
    if (transport.pid !== null) {
      const exited = new Promise<void>((resolve) => {
        const previous = transport.onclose;
        transport.onclose = () => {
          previous?.();
          resolve();
        };
      });
      try {
        Deno.kill(transport.pid, "SIGTERM");
      } catch {
        // Already gone.
      }
      await within(exited, 10_000, "mcp-remote to exit").catch(() => {});
    }
    await client.close();
    await served.close();
    await gateway.close();
    await Deno.remove(home, { recursive: true });
  }
});
