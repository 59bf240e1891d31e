// The legacy HTTP+SSE transport (MCP 2024-11-05) beside Streamable HTTP: the SDK's SSEClientTransport runs
// tools, progress and sampling through /servers/<name>/sse while a Streamable HTTP client uses the same
// tunnel; the `endpoint` event, auth, owner isolation and limits over raw HTTP; and a closed connection
// ends its session and cancels its calls at once.

import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { CreateMessageRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import type { Gateway } from "../../lib/serve/gateway.ts";
import { readSse, rpc, type SseReading } from "../fixtures/mcp_http.ts";
import {
  connectClient,
  serveTestServer,
  startTestGateway,
  TOKENS,
  within,
} from "../fixtures/test_gateway.ts";

function textOf(result: unknown): string {
  return (result as { content: { text: string }[] }).content[0]!.text;
}

/** An SDK client over the legacy transport, answering sampling requests. */
async function legacyClient(gateway: Gateway, name: string): Promise<Client> {
  const client = new Client({ name: "legacy", version: "1" }, { capabilities: { sampling: {} } });
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
  const transport = new SSEClientTransport(new URL(`${gateway.url}/servers/${name}/sse`), {
    requestInit: { headers: { Authorization: `Bearer ${TOKENS.alice}` } },
  });
  await within(client.connect(transport), 10_000, "the legacy client to connect");
  return client;
}

/** Opens a raw legacy stream; returns it with the URL its `endpoint` event names. */
async function openLegacy(
  gateway: Gateway,
  name: string,
  token: string = TOKENS.alice,
): Promise<{ status: number; reading: SseReading; endpoint?: string }> {
  const response = await fetch(`${gateway.url}/servers/${name}/sse`, {
    headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
  });
  if (response.status !== 200) {
    await response.body?.cancel();
    return { status: response.status, reading: readSse(new Response(null)) };
  }
  const reading = readSse(response);
  const event = await reading.events.waitFor(() => true, 5_000, "the endpoint event");
  assert.equal(event.event, "endpoint");
  return { status: 200, reading, endpoint: event.data };
}

function postTo(
  gateway: Gateway,
  endpoint: string,
  body: unknown,
  token: string | null = TOKENS.alice,
): Promise<Response> {
  return fetch(new URL(endpoint, gateway.url), {
    method: "POST",
    headers: {
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
      "content-type": "application/json",
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

Deno.test("the SDK's SSEClientTransport runs tools, progress and sampling while a Streamable HTTP client shares the tunnel", async () => {
  const gateway = await startTestGateway();
  const served = await serveTestServer(gateway, "both");
  const clients: Client[] = [];
  try {
    const legacy = await legacyClient(gateway, "both");
    clients.push(legacy);
    const modern = await connectClient(gateway, "both", TOKENS.alice);
    clients.push(modern);
    const tools = await legacy.listTools();
    assert.ok(tools.tools.some((t: { name: string }) => t.name === "slow"));
    const progress: number[] = [];
    const [echoed, slowed, sampled, modernEcho] = await within(
      Promise.all([
        legacy.callTool({ name: "echo", arguments: { text: "old", delayMs: 20 } }),
        // The SDK handles a result at once and a notification a microtask later: progress that comes in
        // the same read as the result would be dropped by the client, so the result comes a little later.
        legacy.callTool(
          { name: "slow", arguments: { steps: 4, stepMs: 20, tailMs: 30 } },
          undefined,
          {
            onprogress: (p: { progress: number }) => progress.push(p.progress),
          },
        ),
        legacy.callTool({ name: "sample", arguments: { prompt: "via sse" } }),
        modern.callTool({ name: "echo", arguments: { text: "new", delayMs: 20 } }),
      ]),
      10_000,
      "calls over both transports",
    );
    assert.equal(textOf(echoed), "old");
    assert.equal(textOf(slowed), "done 4");
    assert.deepEqual(progress, [1, 2, 3, 4]);
    assert.equal(textOf(sampled), "sampled: via sse");
    assert.equal(textOf(modernEcho), "new");
    // The Streamable HTTP caller without sampling: the request goes to the legacy client that declared it.
    const viaLegacy = await within(
      modern.callTool({ name: "sample", arguments: { prompt: "for modern" } }),
      5_000,
      "sampling through the legacy client",
    );
    assert.equal(textOf(viaLegacy), "sampled: for modern");
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await served.close();
    await gateway.close();
  }
});

Deno.test("the legacy transport: the endpoint event, the same auth, owner isolation, body limit and stream limit", async () => {
  const gateway = await startTestGateway({ maxFrameBytes: 64 * 1024, maxStreamsPerToken: 1 });
  const served = await serveTestServer(gateway, "raw");
  const open: SseReading[] = [];
  try {
    const noToken = await fetch(`${gateway.url}/servers/raw/sse`, {
      headers: { accept: "text/event-stream" },
    });
    assert.equal(noToken.status, 401);
    await noToken.body?.cancel();
    assert.equal(
      (await openLegacy(gateway, "raw", TOKENS.bob)).status,
      404,
      "bob has no server 'raw'",
    );
    const { reading, endpoint } = await openLegacy(gateway, "raw");
    open.push(reading);
    assert.match(endpoint!, /^\/servers\/raw\/messages\?sessionId=[0-9a-f-]{36}$/);
    assert.equal(
      (await openLegacy(gateway, "raw")).status,
      429,
      "--max-streams-per-token counts it",
    );
    const init = {
      jsonrpc: "2.0",
      id: 0,
      method: "initialize",
      params: { protocolVersion: "2024-11-05", capabilities: {}, clientInfo: { name: "raw" } },
    };
    const accepted = await postTo(gateway, endpoint!, init);
    assert.equal(accepted.status, 202);
    await accepted.body?.cancel();
    const answer = await reading.events.waitFor((e) => e.data.includes('"id":0'), 5_000, "init");
    assert.equal(answer.event, "message");
    assert.equal(JSON.parse(answer.data).result.protocolVersion, "2024-11-05");
    for (
      const [token, status] of [[null, 401], [TOKENS.bob, 404], [
        TOKENS.aliceConnectOnly,
        403,
      ]] as const
    ) {
      const refused = await postTo(gateway, endpoint!, rpc(1, "tools/list"), token);
      assert.equal(refused.status, status, `POST as ${token}`);
      await refused.body?.cancel();
    }
    const unknown = await postTo(
      gateway,
      "/servers/raw/messages?sessionId=nope",
      rpc(1, "tools/list"),
    );
    assert.equal(unknown.status, 404);
    await unknown.body?.cancel();
    const tooBig = await postTo(
      gateway,
      endpoint!,
      rpc(2, "tools/call", { pad: "x".repeat(70_000) }),
    );
    assert.equal(tooBig.status, 413);
    assert.match(
      (await tooBig.json()).error.message,
      /limit of 65536 bytes \(serve --max-frame-bytes\)/,
    );
    const listed = await postTo(gateway, endpoint!, rpc(3, "tools/list"));
    assert.equal(listed.status, 202);
    await listed.body?.cancel();
    const tools = await reading.events.waitFor(
      (e) => e.data.includes('"id":3'),
      5_000,
      "tools/list",
    );
    assert.equal(JSON.parse(tools.data).result.tools.length, 7);
    assert.equal(served.log.calls.length, 0, "tools/list is not a tool call");
    // On the wire every progress comes before its result, in order, on the one connection.
    const from = reading.events.items.length;
    const slow = await postTo(
      gateway,
      endpoint!,
      rpc(4, "tools/call", {
        name: "slow",
        arguments: { steps: 3, stepMs: 5 },
        _meta: { progressToken: "t" },
      }),
    );
    await slow.body?.cancel();
    await reading.events.waitFor((e) => e.data.includes('"id":4'), 5_000, "the slow result");
    const messages = reading.events.items.slice(from).map((e) => JSON.parse(e.data));
    assert.deepEqual(
      messages.map((m) => m.params?.progress ?? m.result?.content[0].text),
      [1, 2, 3, "done 3"],
    );
    assert.ok(messages.slice(0, 3).every((m) => m.params.progressToken === "t"));
  } finally {
    for (const reading of open) await reading.close();
    await served.close();
    await gateway.close();
  }
});

Deno.test("closing a legacy SSE connection ends its session and cancels its calls at once", async () => {
  const gateway = await startTestGateway({ sseResumeWindowMs: 60_000 });
  const served = await serveTestServer(gateway, "gone");
  try {
    const { reading, endpoint } = await openLegacy(gateway, "gone");
    const call = await postTo(
      gateway,
      endpoint!,
      rpc(1, "tools/call", {
        name: "slow",
        arguments: { steps: 100_000, stepMs: 10, tag: "legacy" },
      }),
    );
    await call.body?.cancel();
    const deadline = Date.now() + 5_000;
    while (!served.log.calls.includes("slow") && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const left = performance.now();
    await reading.close();
    await served.log.waitCancelled("legacy", 5_000);
    assert.ok(performance.now() - left < 2_000, "cancelled at once, not after a window");
    const after = await postTo(gateway, endpoint!, rpc(2, "tools/list"));
    assert.equal(after.status, 404, "the session is gone");
    await after.body?.cancel();
  } finally {
    await served.close();
    await gateway.close();
  }
});

Deno.test("the legacy endpoint event names the messages path under --public-url's path", async () => {
  const gateway = await startTestGateway({ publicUrl: "https://gw.example.com/mcp-gw/" });
  const served = await serveTestServer(gateway, "prefixed");
  try {
    const { reading, endpoint } = await openLegacy(gateway, "prefixed");
    assert.match(endpoint!, /^\/mcp-gw\/servers\/prefixed\/messages\?sessionId=[0-9a-f-]{36}$/);
    await reading.close();
  } finally {
    await served.close();
    await gateway.close();
  }
});
