// End to end with the official MCP SDK client: Streamable HTTP clients sharing one tunneled SDK server.

import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { ErrorCode, type JsonObject } from "../../lib/protocol/jsonrpc.ts";
import type { Gateway } from "../../lib/serve/gateway.ts";
import {
  connectClient,
  serveTestServer,
  startTestGateway,
  TOKENS,
  TunnelClient,
  within,
} from "../fixtures/test_gateway.ts";
import { parseSse } from "../fixtures/mcp_http.ts";
import { setupLogging, shutdownLogging } from "../../lib/util/log.ts";

function textOf(result: unknown): string {
  const content = (result as { content: { type: string; text: string }[] }).content;
  return content[0]!.text;
}

async function closeAll(clients: Client[]): Promise<void> {
  await Promise.all(clients.map((client) => client.close()));
}

/** A raw Streamable HTTP POST. */
async function post(
  gateway: Gateway,
  name: string,
  body: unknown,
  options: { token?: string; session?: string; accept?: string; headers?: Record<string, string> } =
    {},
): Promise<Response> {
  const {
    token = TOKENS.alice,
    session,
    accept = "application/json, text/event-stream",
    headers = {},
  } = options;
  return await fetch(`${gateway.url}/servers/${name}/mcp`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
      accept,
      ...(session ? { "mcp-session-id": session, "mcp-protocol-version": "2025-11-25" } : {}),
      ...headers,
    },
    body: JSON.stringify(body),
  });
}

async function rawInitialize(
  gateway: Gateway,
  name: string,
  protocolVersion = "2025-11-25",
  token: string = TOKENS.alice,
): Promise<{ session: string; result: JsonObject }> {
  const response = await post(gateway, name, {
    jsonrpc: "2.0",
    id: 0,
    method: "initialize",
    params: { protocolVersion, capabilities: {}, clientInfo: { name: "raw", version: "1" } },
  }, { accept: "application/json", token });
  assert.equal(response.status, 200);
  const session = response.headers.get("mcp-session-id");
  assert.ok(session);
  const body = await response.json();
  return { session, result: body.result };
}

Deno.test("three MCP clients at once with overlapping ids each get only their own answers", async () => {
  const gateway = await startTestGateway();
  const served = await serveTestServer(gateway, "demo");
  const clients: Client[] = [];
  try {
    for (let c = 0; c < 3; c++) clients.push(await connectClient(gateway, "demo", TOKENS.alice));
    const results = await within(
      Promise.all(clients.flatMap((client, c) =>
        Array.from({ length: 8 }, async (_, i) => {
          // Later calls finish first, so answers come back out of order across clients.
          const text = `client${c}-call${i}`;
          const result = await client.callTool({
            name: "echo",
            arguments: { text, delayMs: (8 - i) * 5 + c },
          });
          return [text, textOf(result)];
        })
      )),
      20_000,
      "24 calls",
    );
    for (const [sent, got] of results) assert.equal(got, sent);
    assert.equal(served.log.calls.length, 24, "every call reached the server once");
  } finally {
    await closeAll(clients);
    await served.close();
    await gateway.close();
  }
});

Deno.test("string and number ids with the same value are kept apart and returned as sent", async () => {
  const gateway = await startTestGateway();
  const served = await serveTestServer(gateway, "demo");
  try {
    const a = await rawInitialize(gateway, "demo");
    const b = await rawInitialize(gateway, "demo");
    const call = (id: string | number, text: string, delayMs: number) => ({
      jsonrpc: "2.0",
      id,
      method: "tools/call",
      params: { name: "echo", arguments: { text, delayMs } },
    });
    const [r1, r2, r3] = await within(
      Promise.all([
        post(gateway, "demo", call("7", "a-string", 40), {
          session: a.session,
          accept: "application/json",
        }),
        post(gateway, "demo", call(7, "b-number", 20), {
          session: b.session,
          accept: "application/json",
        }),
        post(gateway, "demo", call(7, "a-number", 1), {
          session: a.session,
          accept: "application/json",
        }),
      ]),
      10_000,
      "three calls",
    );
    const [j1, j2, j3] = [await r1.json(), await r2.json(), await r3.json()];
    assert.equal(j1.id, "7");
    assert.equal(textOf(j1.result), "a-string");
    assert.equal(j2.id, 7);
    assert.equal(textOf(j2.result), "b-number");
    assert.equal(j3.id, 7);
    assert.equal(textOf(j3.result), "a-number");
  } finally {
    await served.close();
    await gateway.close();
  }
});

Deno.test("initialize is answered from the held result with a negotiated protocol version", async () => {
  const gateway = await startTestGateway();
  const served = await serveTestServer(gateway, "demo");
  try {
    const old = await rawInitialize(gateway, "demo", "2025-06-18");
    assert.equal(old.result.protocolVersion, "2025-06-18");
    assert.equal((old.result.serverInfo as JsonObject).name, "demo");
    const future = await rawInitialize(gateway, "demo", "2099-01-01");
    assert.equal(future.result.protocolVersion, "2025-11-25");
    const initializes = served.tunnel.frames.filter((f) =>
      (f.payload as JsonObject | undefined)?.method === "initialize"
    );
    assert.equal(initializes.length, 1, "one initialize through the tunnel for all clients");
    const swallowed = await post(gateway, "demo", {
      jsonrpc: "2.0",
      method: "notifications/initialized",
    }, { session: old.session });
    assert.equal(swallowed.status, 202);
    await swallowed.body?.cancel();
  } finally {
    await served.close();
    await gateway.close();
  }
});

Deno.test("progress for a long-running tool reaches only its caller", async () => {
  const gateway = await startTestGateway();
  const served = await serveTestServer(gateway, "demo");
  const clients: Client[] = [];
  try {
    for (let c = 0; c < 2; c++) clients.push(await connectClient(gateway, "demo", TOKENS.alice));
    const seen: number[][] = [[], []];
    const runs = clients.map((client, c) =>
      client.callTool(
        { name: "slow", arguments: { steps: 3 + c * 2, stepMs: 10 } },
        undefined,
        { onprogress: (p: { progress: number }) => seen[c]!.push(p.progress) },
      )
    );
    const results = await within(Promise.all(runs), 10_000, "two slow calls");
    assert.equal(textOf(results[0]), "done 3");
    assert.equal(textOf(results[1]), "done 5");
    assert.deepEqual(seen[0], [1, 2, 3]);
    assert.deepEqual(seen[1], [1, 2, 3, 4, 5]);
  } finally {
    await closeAll(clients);
    await served.close();
    await gateway.close();
  }
});

Deno.test("cancellation by an MCP client reaches the server", async () => {
  const gateway = await startTestGateway();
  const served = await serveTestServer(gateway, "demo");
  const client = await connectClient(gateway, "demo", TOKENS.alice);
  try {
    const controller = new AbortController();
    const call = client.callTool(
      { name: "slow", arguments: { steps: 1000, stepMs: 10, tag: "to-cancel" } },
      undefined,
      { signal: controller.signal, onprogress: () => controller.abort("user gave up") },
    );
    await assert.rejects(within(call, 5_000, "the cancelled call"));
    await served.log.waitCancelled("to-cancel");
    // The session still works.
    assert.equal(
      textOf(await client.callTool({ name: "echo", arguments: { text: "still" } })),
      "still",
    );
  } finally {
    await client.close();
    await served.close();
    await gateway.close();
  }
});

Deno.test("roots/list from the server is answered by a client that declared roots", async () => {
  const gateway = await startTestGateway();
  const served = await serveTestServer(gateway, "demo");
  const plain = await connectClient(gateway, "demo", TOKENS.alice);
  const withRoots = await connectClient(gateway, "demo", TOKENS.alice, {
    roots: ["file:///work/b"],
  });
  try {
    const own = await within(withRoots.callTool({ name: "roots" }), 5_000, "roots from its caller");
    assert.equal(textOf(own), "file:///work/b");
    const viaOther = await within(
      plain.callTool({ name: "roots" }),
      5_000,
      "roots via another client",
    );
    assert.equal(textOf(viaOther), "file:///work/b");
  } finally {
    await plain.close();
    await withRoots.close();
    await served.close();
    await gateway.close();
  }
});

Deno.test("roots/list with no client that declared roots fails at once", async () => {
  const gateway = await startTestGateway({ callTimeoutMs: 30_000 });
  const served = await serveTestServer(gateway, "demo");
  const plain = await connectClient(gateway, "demo", TOKENS.alice);
  try {
    await assert.rejects(
      within(plain.callTool({ name: "roots" }), 5_000, "the roots tool to fail"),
      /declared the 'roots' capability/,
    );
  } finally {
    await plain.close();
    await served.close();
    await gateway.close();
  }
});

Deno.test("a 5 MiB tool result reaches the MCP client", async () => {
  const gateway = await startTestGateway();
  const served = await serveTestServer(gateway, "demo");
  const client = await connectClient(gateway, "demo", TOKENS.alice);
  try {
    const bytes = 5 * 1024 * 1024;
    const result = await within(
      client.callTool({ name: "big", arguments: { bytes } }),
      20_000,
      "the 5 MiB result",
    );
    assert.equal(textOf(result).length, bytes);
  } finally {
    await client.close();
    await served.close();
    await gateway.close();
  }
});

Deno.test("server notifications reach every client of that server", async () => {
  const gateway = await startTestGateway();
  const served = await serveTestServer(gateway, "demo");
  const clients: Client[] = [];
  try {
    const { ToolListChangedNotificationSchema } = await import(
      "@modelcontextprotocol/sdk/types.js"
    );
    const heard: Promise<void>[] = [];
    for (let c = 0; c < 2; c++) {
      const client = await connectClient(gateway, "demo", TOKENS.alice);
      heard.push(
        new Promise((resolve) =>
          client.setNotificationHandler(ToolListChangedNotificationSchema, () => resolve())
        ),
      );
      clients.push(client);
    }
    const all = Promise.all(heard);
    // The SDK opens its GET stream in the background: repeat the change until both heard one.
    let done = false;
    for (let attempt = 0; attempt < 25 && !done; attempt++) {
      served.tunnel.send({
        type: "notification",
        sessionId: served.ack.sessionId,
        payload: { jsonrpc: "2.0", method: "notifications/tools/list_changed" },
      });
      done = await within(all, 200, "list_changed").then(() => true, () => false);
    }
    assert.ok(done, "both clients heard notifications/tools/list_changed");
  } finally {
    await closeAll(clients);
    await served.close();
    await gateway.close();
  }
});

Deno.test("MCP clients without a valid token get 401, without the client role 403", async () => {
  const gateway = await startTestGateway();
  const served = await serveTestServer(gateway, "demo");
  try {
    const body = { jsonrpc: "2.0", id: 1, method: "initialize", params: {} };
    const none = await fetch(`${gateway.url}/servers/demo/mcp`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    assert.equal(none.status, 401);
    await none.body?.cancel();
    const bad = await post(gateway, "demo", body, { token: "nope" });
    assert.equal(bad.status, 401);
    await bad.body?.cancel();
    const connectOnly = await post(gateway, "demo", body, { token: TOKENS.aliceConnectOnly });
    assert.equal(connectOnly.status, 403);
    await connectOnly.body?.cancel();
    const clientOnly = await rawInitialize(gateway, "demo", "2025-11-25", TOKENS.aliceClientOnly);
    assert.ok(clientOnly.session);
  } finally {
    await served.close();
    await gateway.close();
  }
});

Deno.test("an MCP client reaches only servers and sessions of its own owner", async () => {
  const gateway = await startTestGateway();
  const served = await serveTestServer(gateway, "demo");
  try {
    const init = { jsonrpc: "2.0", id: 1, method: "initialize", params: {} };
    const bobInit = await post(gateway, "demo", init, { token: TOKENS.bob });
    assert.equal(bobInit.status, 404);
    await bobInit.body?.cancel();
    const alice = await rawInitialize(gateway, "demo");
    const stolen = await post(gateway, "demo", { jsonrpc: "2.0", id: 2, method: "tools/list" }, {
      token: TOKENS.bob,
      session: alice.session,
    });
    assert.equal(stolen.status, 404);
    await stolen.body?.cancel();
    const bobServed = await serveTestServer(gateway, "demo", TOKENS.bob);
    try {
      const bob = await rawInitialize(gateway, "demo", "2025-11-25", TOKENS.bob);
      const cross = await post(gateway, "demo", { jsonrpc: "2.0", id: 3, method: "tools/list" }, {
        token: TOKENS.bob,
        session: alice.session,
      });
      assert.equal(cross.status, 404, "bob's own 'demo' does not accept alice's session");
      await cross.body?.cancel();
      assert.notEqual(bob.session, alice.session);
    } finally {
      await bobServed.close();
    }
  } finally {
    await served.close();
    await gateway.close();
  }
});

Deno.test("the MCP endpoint checks Origin, session id, protocol version and ends sessions on DELETE", async () => {
  const gateway = await startTestGateway({ allowedOrigins: ["https://app.example"] });
  const served = await serveTestServer(gateway, "demo");
  try {
    const list = { jsonrpc: "2.0", id: 1, method: "tools/list" };
    const evil = await post(gateway, "demo", list, { headers: { origin: "http://evil.example" } });
    assert.equal(evil.status, 403);
    await evil.body?.cancel();
    const { session } = await rawInitialize(gateway, "demo");
    for (const origin of ["https://app.example", gateway.url]) {
      const allowed = await post(gateway, "demo", list, { session, headers: { origin } });
      assert.equal(allowed.status, 200, origin);
      await allowed.body?.cancel();
    }
    const missing = await post(gateway, "demo", list);
    assert.equal(missing.status, 400);
    await missing.body?.cancel();
    const unknown = await post(gateway, "demo", list, { session: "nope" });
    assert.equal(unknown.status, 404);
    await unknown.body?.cancel();
    const version = await post(gateway, "demo", list, {
      session,
      headers: { "mcp-protocol-version": "1999-01-01" },
    });
    assert.equal(version.status, 400);
    await version.body?.cancel();
    const batch = await post(gateway, "demo", [list], { session });
    assert.equal(batch.status, 400);
    await batch.body?.cancel();
    const sse = await post(gateway, "demo", list, { session, accept: "text/event-stream" });
    assert.equal(sse.headers.get("content-type"), "text/event-stream");
    const events = parseSse(await sse.text());
    // A priming event (an id, empty data, the retry interval), then the answer with the next id.
    assert.equal(events.length, 2);
    assert.match(events[0]!.id!, /^\d+:0$/);
    assert.equal(events[0]!.data, "");
    assert.equal(events[0]!.retry, "1000");
    assert.equal(events[1]!.id, events[0]!.id!.replace(/:0$/, ":1"));
    assert.equal(events[1]!.event, "message");
    const data = JSON.parse(events[1]!.data);
    assert.equal(data.id, 1);
    assert.equal(data.result.tools.length, 7);
    const ended = await fetch(`${gateway.url}/servers/demo/mcp`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${TOKENS.alice}`, "mcp-session-id": session },
    });
    assert.equal(ended.status, 204);
    const after = await post(gateway, "demo", list, { session });
    assert.equal(after.status, 404);
    await after.body?.cancel();
    const nothing = await post(gateway, "nothing-here", {
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: {},
    });
    assert.equal(nothing.status, 404);
    await nothing.body?.cancel();
  } finally {
    await served.close();
    await gateway.close();
  }
});

Deno.test("a refused Origin gets 403, never the token's 401 or 403, on every MCP path", async () => {
  // MCP 2025-11-25 transports: an invalid Origin MUST get 403. A 401 instead would hand a page at that
  // origin a WWW-Authenticate challenge (with OAuth on, where to get a token).
  const gateway = await startTestGateway({ allowedOrigins: ["https://app.example"] });
  const served = await serveTestServer(gateway, "demo");
  try {
    const evil = "http://evil.example";
    const cases: { what: string; path: string; init: RequestInit }[] = [
      { what: "POST without a token", path: "mcp", init: { method: "POST" } },
      {
        what: "POST with an unknown token",
        path: "mcp",
        init: { method: "POST", headers: { authorization: "Bearer tok-unknown-0123456789" } },
      },
      {
        what: "POST with a token lacking the client role",
        path: "mcp",
        init: { method: "POST", headers: { authorization: `Bearer ${TOKENS.aliceConnectOnly}` } },
      },
      { what: "GET without a token", path: "mcp", init: { method: "GET" } },
      { what: "DELETE without a token", path: "mcp", init: { method: "DELETE" } },
      { what: "legacy SSE without a token", path: "sse", init: { method: "GET" } },
      { what: "legacy POST without a token", path: "messages", init: { method: "POST" } },
    ];
    for (const { what, path, init } of cases) {
      const response = await fetch(`${gateway.url}/servers/demo/${path}`, {
        ...init,
        headers: {
          origin: evil,
          accept: "application/json, text/event-stream",
          "content-type": "application/json",
          ...init.headers as Record<string, string>,
        },
        ...(init.method === "POST" ? { body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' } : {}),
      });
      assert.equal(response.status, 403, what);
      assert.equal(response.headers.get("www-authenticate"), null, what);
      assert.equal(response.headers.get("access-control-allow-origin"), null, what);
      const body = await response.json();
      assert.equal(body.error.message, `Origin ${evil} is not allowed`, what);
    }
    // An allowed origin without a token still gets the 401 challenge, readable by the page.
    const allowed = await fetch(`${gateway.url}/servers/demo/mcp`, {
      method: "POST",
      headers: { origin: "https://app.example", "content-type": "application/json" },
      body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
    });
    assert.equal(allowed.status, 401);
    assert.equal(allowed.headers.get("access-control-allow-origin"), "https://app.example");
    await allowed.body?.cancel();
  } finally {
    await served.close();
    await gateway.close();
  }
});

Deno.test("a call in flight when its tunnel dies fails with a JSON-RPC error", async () => {
  const gateway = await startTestGateway();
  const served = await serveTestServer(gateway, "demo");
  const client = await connectClient(gateway, "demo", TOKENS.alice);
  try {
    const call = client.callTool(
      { name: "slow", arguments: { steps: 1000, stepMs: 10 } },
      undefined,
      { onprogress: () => served.tunnel.socket.close() },
    );
    await assert.rejects(
      within(call, 5_000, "the call to fail"),
      (error: Error & { code?: number }) =>
        error.code === ErrorCode.TunnelUnavailable &&
        /closed before it answered/.test(error.message),
    );
  } finally {
    await client.close();
    await served.close();
    await gateway.close();
  }
});

Deno.test("a chunked body over the limit is refused with 413 without being read to its end", async () => {
  const gateway = await startTestGateway({ maxFrameBytes: 64 * 1024 });
  const served = await serveTestServer(gateway, "demo");
  try {
    const { session } = await rawInitialize(gateway, "demo");
    let pulled = 0;
    const chunks = 100_000; // 100 MiB if it were read whole
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (pulled === chunks) return controller.close();
        pulled++;
        controller.enqueue(new Uint8Array(1024).fill(0x20));
      },
    });
    const response = await fetch(`${gateway.url}/servers/demo/mcp`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${TOKENS.alice}`,
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-session-id": session,
        "mcp-protocol-version": "2025-11-25",
      },
      body,
    });
    assert.equal(response.status, 413);
    const answer = await response.json();
    assert.equal(answer.error.code, -32600);
    assert.match(
      answer.error.message,
      /exceeds the limit of 65536 bytes \(serve --max-frame-bytes\)/,
    );
    assert.ok(pulled < chunks / 2, `the client sent ${pulled} of ${chunks} KiB`);
  } finally {
    await served.close();
    await gateway.close();
  }
});

Deno.test("a long answer reaches the MCP client as the tunnel wrote it with the client's id, as JSON and as SSE", async () => {
  const gateway = await startTestGateway();
  const tunnel = await TunnelClient.open(gateway, TOKENS.alice);
  try {
    const ack = await tunnel.register("raw");
    const init = await tunnel.next((f) => (f.payload as JsonObject)?.method === "initialize");
    tunnel.send({
      type: "response",
      sessionId: ack.sessionId,
      payload: {
        jsonrpc: "2.0",
        id: (init.payload as JsonObject).id,
        result: {
          protocolVersion: "2025-11-25",
          capabilities: { tools: {} },
          serverInfo: { name: "raw", version: "1" },
        },
      },
    });
    const { session } = await rawInitialize(gateway, "raw");
    const text = "é".repeat(100_000);
    const cases = [
      { id: "client-7", accept: "application/json", pretty: false },
      { id: 42, accept: "text/event-stream", pretty: false },
      { id: "client-8", accept: "application/json", pretty: true },
    ];
    for (const { id, accept, pretty } of cases) {
      const answer = post(
        gateway,
        "raw",
        { jsonrpc: "2.0", id, method: "tools/call", params: {} },
        {
          session,
          accept,
        },
      );
      const call = await tunnel.next((f) => (f.payload as JsonObject)?.method === "tools/call");
      const tunnelId = JSON.stringify((call.payload as JsonObject).id);
      // The tunnel's own formatting (spaces after colons; the SDK's key order) shows whether the answer
      // passed through as text; a pretty-printed one (line breaks) cannot, and is parsed instead.
      const payload = pretty
        ? JSON.stringify({ result: { text }, jsonrpc: "2.0", id: JSON.parse(tunnelId) }, null, 1)
        : `{"result": {"text": "${text}"}, "jsonrpc": "2.0", "id": ${tunnelId}}`;
      tunnel.socket.send(
        `{"type":"response","sessionId":${JSON.stringify(ack.sessionId)},"payload":${payload}}`,
      );
      const response = await answer;
      assert.equal(response.status, 200);
      const body = await response.text();
      const json = accept === "text/event-stream"
        ? parseSse(body).find((event) => event.data !== "")!.data
        : body;
      if (pretty) {
        assert.equal(json, JSON.stringify({ result: { text }, jsonrpc: "2.0", id }));
      } else {
        assert.equal(
          json,
          `{"result": {"text": "${text}"}, "jsonrpc": "2.0", "id": ${JSON.stringify(id)}}`,
        );
      }
    }
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});

Deno.test("answers a client POSTs for server requests never asked are warned about once per interval, not once each", async () => {
  const records: LogRecord[] = [];
  await setupLogging({ level: "warning", format: "json", sink: (r) => records.push(r) });
  const gateway = await startTestGateway();
  const served = await serveTestServer(gateway, "demo");
  try {
    const { session } = await rawInitialize(gateway, "demo");
    for (let id = 0; id < 50; id++) {
      const answered = await within(
        post(gateway, "demo", { jsonrpc: "2.0", id: `never-${id}`, result: {} }, { session }),
        5_000,
        `the unknown answer ${id}`,
      );
      await answered.body?.cancel();
      assert.equal(answered.status, 202);
    }
    const warnings = records.filter((r) => r.properties.event === "unknown_client_response");
    assert.equal(warnings.length, 1, "one warning line for 50 unknown answers");
    assert.equal(warnings[0]!.properties.name, "demo");
  } finally {
    await served.close();
    await gateway.close();
    await shutdownLogging();
  }
});
