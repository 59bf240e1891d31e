// End to end with the real program: `mcp-rproxy connect` (main.ts, a subprocess) tunnels a real MCP stdio
// server to our gateway, and official MCP SDK clients use it through /servers/<name>/mcp.

import assert from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { ExitCode } from "../../main.ts";
import type { Gateway } from "../../lib/serve/gateway.ts";
import { MAX_BIG_BYTES } from "../../lib/demo/server.ts";
import { DEMO_SERVER, EVERYTHING_SERVER, startProxy } from "../fixtures/proxy_process.ts";
import { connectClient, startTestGateway, TOKENS, within } from "../fixtures/test_gateway.ts";

function connectArgs(gateway: Gateway, name: string, server: string[]): string[] {
  return [
    "connect",
    "--gateway",
    gateway.url,
    "--server-name",
    name,
    "--log-format",
    "json",
    "--reconnect-delay",
    "0.05",
    "--",
    ...server,
  ];
}

function textOf(result: unknown): string {
  const content = (result as { content: { type: string; text: string }[] }).content;
  return content[0]!.text;
}

Deno.test("connect tunnels the demo server to serve; SDK clients call tools, get progress, big results (the largest advertised) and roots", async () => {
  const gateway = await startTestGateway();
  const clients: Client[] = [];
  try {
    await using proxy = startProxy(connectArgs(gateway, "demo", DEMO_SERVER), {
      env: { REVERSE_PROXY_TOKEN: TOKENS.alice },
    });
    const registered = await proxy.waitForEvent("registered", 30_000);
    assert.equal(registered.contract, "C");
    assert.equal(registered.mcpUrl, `${gateway.url}/servers/demo/mcp`);
    const a = await connectClient(gateway, "demo", TOKENS.alice);
    clients.push(a);
    const b = await connectClient(gateway, "demo", TOKENS.alice, { roots: ["file:///srv/b"] });
    clients.push(b);
    const [echoA, echoB] = await within(
      Promise.all([
        a.callTool({ name: "echo", arguments: { message: "from a" } }),
        b.callTool({ name: "echo", arguments: { message: "from b" } }),
      ]),
      10_000,
      "two echoes",
    );
    assert.match(textOf(echoA), /from a/);
    assert.match(textOf(echoB), /from b/);
    const progress: number[] = [];
    await within(
      a.callTool({ name: "long-running", arguments: { steps: 3, stepMs: 10 } }, undefined, {
        onprogress: (p: { progress: number }) => progress.push(p.progress),
      }),
      10_000,
      "long-running",
    );
    assert.deepEqual(progress, [1, 2, 3]);
    const big = await within(
      b.callTool({ name: "big", arguments: { bytes: 5 * 1024 * 1024 } }),
      30_000,
      "5 MiB",
    );
    assert.equal(textOf(big).length, 5 * 1024 * 1024);
    // The largest text `big` advertises passes through connect and serve with their defaults.
    const tools = await a.listTools();
    const schema = tools.tools.find((t: { name: string }) => t.name === "big")!.inputSchema as {
      properties: { bytes: { maximum: number } };
    };
    const maximum = schema.properties.bytes.maximum;
    assert.equal(maximum, MAX_BIG_BYTES);
    const biggest = await within(
      b.callTool({ name: "big", arguments: { bytes: maximum } }, undefined, { timeout: 60_000 }),
      60_000,
      "the advertised maximum",
    );
    assert.equal(textOf(biggest).length, maximum);
    const roots = await within(a.callTool({ name: "roots" }), 10_000, "roots via b");
    assert.match(textOf(roots), /file:\/\/\/srv\/b/);
    const stats = JSON.parse(textOf(await a.callTool({ name: "stats" })));
    assert.equal(stats.initializeCount, 1, "the server was initialized exactly once");
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await gateway.close();
  }
});

Deno.test("DELETE of a session evicts connect: it exits with code 4 and does not reconnect", async () => {
  const gateway = await startTestGateway();
  try {
    await using proxy = startProxy(connectArgs(gateway, "evictee", DEMO_SERVER), {
      env: { REVERSE_PROXY_TOKEN: TOKENS.alice },
    });
    const registered = await proxy.waitForEvent("registered", 30_000);
    const response = await fetch(`${gateway.url}/reverse-proxy/sessions/${registered.session}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${TOKENS.alice}` },
    });
    assert.equal((await response.json()).status, "disconnected");
    assert.equal(await proxy.exitCode(20_000), ExitCode.Evicted);
    // "evicted by alice" from the 4001 close, or, if that close was lost, from the refused resume.
    assert.match(proxy.text(), /evicted/);
    const list = await fetch(`${gateway.url}/reverse-proxy/sessions`, {
      headers: { authorization: `Bearer ${TOKENS.alice}` },
    });
    assert.equal((await list.json()).total, 0, "no reconnect after eviction");
  } finally {
    await gateway.close();
  }
});

Deno.test("connect tunnels server-everything from npm to serve for an SDK client", async () => {
  const gateway = await startTestGateway();
  let client: Client | undefined;
  try {
    await using proxy = startProxy(connectArgs(gateway, "everything", EVERYTHING_SERVER), {
      env: { REVERSE_PROXY_TOKEN: TOKENS.alice },
    });
    await proxy.waitForEvent("registered", 60_000);
    client = await connectClient(gateway, "everything", TOKENS.alice);
    const tools: { tools: { name: string }[] } = await within(
      client.listTools(),
      10_000,
      "tools/list",
    );
    assert.ok(tools.tools.some((tool) => tool.name === "echo"));
    const echo = await within(
      client.callTool({ name: "echo", arguments: { message: "hello everything" } }),
      10_000,
      "echo",
    );
    assert.match(textOf(echo), /hello everything/);
  } finally {
    await client?.close();
    await gateway.close();
  }
});
