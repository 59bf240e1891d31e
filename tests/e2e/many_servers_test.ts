// End to end: one `connect` (the real program) carrying four real MCP servers through a real serve, over
// every local transport: server-everything on stdio and in its Streamable HTTP mode, server-memory on
// stdio, server-everything in its legacy SSE mode. Official SDK clients use each at its own
// /servers/<name>/mcp; a crash of one server and an outage of another leave the others answering.

import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CreateMessageRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import type { Gateway } from "../../lib/serve/gateway.ts";
import { joinCommand } from "../../lib/util/shell_words.ts";
import { HttpEverything } from "../fixtures/http_mcp_servers.ts";
import {
  EVERYTHING_SERVER,
  processAlive,
  type ProxyProcess,
  startProxy,
} from "../fixtures/proxy_process.ts";
import { startTestGateway, TOKENS, within } from "../fixtures/test_gateway.ts";

const MEMORY_SERVER = [
  Deno.execPath(),
  "run",
  "-A",
  "npm:@modelcontextprotocol/server-memory@2026.8.31",
];

/** An SDK client of `/servers/<name>/mcp` that answers sampling requests. */
async function clientOf(gateway: Gateway, name: string): Promise<Client> {
  const client = new Client(
    { name: "many-servers-test", version: "1.0.0" },
    { capabilities: { sampling: {} } },
  );
  client.setRequestHandler(CreateMessageRequestSchema, () => ({
    role: "assistant",
    content: { type: "text", text: "sampled by the test client" },
    model: "test-model",
  }));
  const transport = new StreamableHTTPClientTransport(
    new URL(`${gateway.url}/servers/${name}/mcp`),
    { requestInit: { headers: { Authorization: `Bearer ${TOKENS.alice}` } } },
  );
  await within(client.connect(transport), 15_000, `the client of ${name} to connect`);
  return client;
}

function textOf(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? [];
  return content.map((c) => c.text ?? "").join("\n");
}

/** The JSON log events of `event` for server `server`, from index `from` on. */
function eventsOf(proxy: ProxyProcess, event: string, server: string, from = 0) {
  return proxy.lines.slice(from).flatMap((line) =>
    line.json?.event === event && line.json.server === server ? [line.json] : []
  );
}

async function waitRegistered(proxy: ProxyProcess, names: string[], from = 0): Promise<void> {
  for (const name of names) {
    await proxy.waitForLine(
      (l) => l.json?.event === "registered" && l.json.server === name,
      90_000,
      from,
    );
  }
}

async function readyz(proxy: ProxyProcess): Promise<{ status: number; body: string }> {
  const url = String((await proxy.waitForEvent("health_listening")).url);
  const response = await fetch(`${url}/readyz`);
  return { status: response.status, body: await response.text() };
}

/** Every server-everything feature the test checks, through the tunnel. */
async function exerciseEverything(client: Client, name: string): Promise<void> {
  const { tools }: { tools: { name: string }[] } = await within(
    client.listTools(),
    10_000,
    `${name} tools/list`,
  );
  const names = tools.map((t) => t.name);
  for (const tool of ["echo", "trigger-long-running-operation", "trigger-sampling-request"]) {
    assert.ok(names.includes(tool), `${name} lacks ${tool}: ${names.join(", ")}`);
  }
  const echo = await within(
    client.callTool({ name: "echo", arguments: { message: `hello ${name}` } }),
    10_000,
    `${name} echo`,
  );
  assert.equal(textOf(echo), `Echo: hello ${name}`);
  const { resources }: { resources: { uri: string }[] } = await within(
    client.listResources(),
    10_000,
    `${name} resources/list`,
  );
  assert.ok(resources.length > 0, `${name} lists no resources`);
  const read: { contents: { uri: string }[] } = await within(
    client.readResource({ uri: resources[0]!.uri }),
    10_000,
    `${name} resources/read`,
  );
  assert.equal(read.contents[0]?.uri, resources[0]!.uri);
  const { prompts }: { prompts: { name: string }[] } = await within(
    client.listPrompts(),
    10_000,
    `${name} prompts/list`,
  );
  assert.ok(prompts.some((p) => p.name === "simple-prompt"), `${name} lacks simple-prompt`);
  const prompt: { messages: unknown[] } = await within(
    client.getPrompt({ name: "simple-prompt" }),
    10_000,
    `${name} prompts/get`,
  );
  assert.ok(prompt.messages.length > 0);
  const progress: number[] = [];
  await within(
    client.callTool(
      { name: "trigger-long-running-operation", arguments: { duration: 0.3, steps: 3 } },
      undefined,
      { onprogress: (p: { progress: number }) => progress.push(p.progress) },
    ),
    15_000,
    `${name} progress`,
  );
  assert.deepEqual(progress, [1, 2, 3], `${name} progress notifications`);
  const sampled = await within(
    client.callTool({
      name: "trigger-sampling-request",
      arguments: { prompt: "say hi", maxTokens: 10 },
    }),
    15_000,
    `${name} sampling`,
  );
  assert.match(textOf(sampled), /sampled by the test client/);
}

async function memoryWorks(client: Client, entity: string): Promise<void> {
  await within(
    client.callTool({
      name: "create_entities",
      arguments: {
        entities: [{ name: entity, entityType: "test", observations: ["made through the tunnel"] }],
      },
    }),
    10_000,
    "memory create_entities",
  );
  const graph = await within(
    client.callTool({ name: "read_graph", arguments: {} }),
    10_000,
    "memory read_graph",
  );
  assert.match(JSON.stringify(graph), new RegExp(entity));
}

Deno.test("one connect carries four real servers over stdio, Streamable HTTP and SSE through serve on one link; a crash and an outage touch no other server", async () => {
  const gateway = await startTestGateway({ callTimeoutMs: 20_000 });
  const clients: Client[] = [];
  const dir = await Deno.makeTempDir({ prefix: "many_servers_" });
  try {
    await using http = await HttpEverything.start("streamableHttp");
    await using sse = await HttpEverything.start("sse");
    await using proxy = startProxy([
      "connect",
      "--gateway",
      gateway.url,
      "--log-format",
      "json",
      "--reconnect-delay",
      "0.05",
      "--health-listen",
      "127.0.0.1:0",
      "--server",
      `name=every,stdio=${JSON.stringify(joinCommand(EVERYTHING_SERVER))}`,
      "--server",
      `name=everyhttp,http=${http.url},timeout=10`,
      "--server",
      `name=memory,stdio=${
        JSON.stringify(joinCommand(MEMORY_SERVER))
      },env=MEMORY_FILE_PATH=${dir}/memory.jsonl`,
      "--server",
      `name=legacy,sse=${sse.url}`,
    ], { env: { REVERSE_PROXY_TOKEN: TOKENS.alice } });
    const names = ["every", "everyhttp", "memory", "legacy"];
    await waitRegistered(proxy, names);
    for (const name of names) {
      const [registered] = eventsOf(proxy, "registered", name);
      assert.equal(registered?.contract, "C");
      assert.equal(registered?.mcpUrl, `${gateway.url}/servers/${name}/mcp`);
      assert.equal(registered?.channel, name, `${name} is a channel of the shared link`);
    }
    // All four on one link: one link dialed and registered, never more.
    assert.equal(proxy.lines.filter((l) => l.json?.event === "connecting").length, 1);
    assert.equal((await readyz(proxy)).status, 200);

    const every = await clientOf(gateway, "every");
    const everyHttp = await clientOf(gateway, "everyhttp");
    const memory = await clientOf(gateway, "memory");
    const legacy = await clientOf(gateway, "legacy");
    clients.push(every, everyHttp, memory, legacy);
    await exerciseEverything(every, "every");
    await exerciseEverything(everyHttp, "everyhttp");
    await exerciseEverything(legacy, "legacy");
    await memoryWorks(memory, "before-the-outage");

    // Crash one stdio server and stop the HTTP one: the others keep answering meanwhile.
    const everyPid = Number(eventsOf(proxy, "server_started", "every")[0]?.pid);
    const memoryPid = Number(eventsOf(proxy, "server_started", "memory")[0]?.pid);
    const from = proxy.lines.length;
    Deno.kill(everyPid, "SIGKILL");
    await http.stop();
    await proxy.waitForLine(
      (l) => l.json?.event === "server_exited" && l.json.server === "everyhttp",
      20_000,
      from,
    );
    const down = await readyz(proxy);
    assert.equal(down.status, 503);
    assert.match(down.body, /^memory: ready at /m);
    await memoryWorks(memory, "during-the-outage");
    const echo = await within(
      legacy.callTool({ name: "echo", arguments: { message: "still here" } }),
      10_000,
      "legacy during the outage",
    );
    assert.equal(textOf(echo), "Echo: still here");
    const refused = await within(
      everyHttp.callTool({ name: "echo", arguments: { message: "x" } }).then(
        () => "answered",
        (error: Error) => error.message,
      ),
      10_000,
      "a call to the server that is down",
    );
    assert.notEqual(refused, "answered", "a call to a server that is down gets an error");

    // Both come back: the stdio server restarted, the HTTP one reconnected and registered again.
    await http.start();
    await waitRegistered(proxy, ["every", "everyhttp"], from);
    const everyAgain = await clientOf(gateway, "every");
    const httpAgain = await clientOf(gateway, "everyhttp");
    clients.push(everyAgain, httpAgain);
    for (const [client, name] of [[everyAgain, "every"], [httpAgain, "everyhttp"]] as const) {
      const back = await within(
        client.callTool({ name: "echo", arguments: { message: "back" } }),
        10_000,
        `${name} after the outage`,
      );
      assert.equal(textOf(back), "Echo: back");
    }
    // The others were not touched: same process, no new registration.
    assert.equal(eventsOf(proxy, "server_started", "memory").length, 1);
    assert.ok(processAlive(memoryPid));
    assert.equal(eventsOf(proxy, "registered", "memory").length, 1);
    assert.equal(eventsOf(proxy, "registered", "legacy").length, 1);
    assert.equal((await readyz(proxy)).status, 200);

    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(30_000), 0);
    const pids = eventsOf(proxy, "server_started", "every").map((e) => Number(e.pid));
    for (const pid of [...pids, memoryPid]) assert.equal(processAlive(pid), false);
  } finally {
    await Promise.all(clients.map((client) => client.close().catch(() => {})));
    await gateway.close();
    await Deno.remove(dir, { recursive: true });
  }
});
