// The sessions API: ContextForge's paths, with the response returned and owners kept apart.

import assert from "node:assert/strict";
import { CloseCode } from "../../lib/protocol/frames.ts";
import type { Gateway } from "../../lib/serve/gateway.ts";
import {
  serveTestServer,
  startTestGateway,
  TOKENS,
  TunnelClient,
  within,
} from "../fixtures/test_gateway.ts";

async function api(
  gateway: Gateway,
  path: string,
  options: { method?: string; token?: string | null; body?: unknown } = {},
): Promise<Response> {
  const { method = "GET", token = TOKENS.alice, body } = options;
  return await fetch(`${gateway.url}/reverse-proxy/sessions${path}`, {
    method,
    headers: {
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
      "content-type": "application/json",
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

Deno.test("GET /reverse-proxy/sessions lists the caller's own sessions; admins see all", async () => {
  const gateway = await startTestGateway();
  const alice = await serveTestServer(gateway, "a-svc");
  const bob = await serveTestServer(gateway, "b-svc", TOKENS.bob);
  try {
    const mine = await (await api(gateway, "")).json();
    assert.equal(mine.total, 1);
    const [session] = mine.sessions;
    assert.equal(session.session_id, alice.ack.sessionId);
    assert.equal(session.user, "alice");
    assert.equal(session.server_info.name, "a-svc");
    assert.equal(session.mcp_url, alice.ack.mcpUrl);
    for (const field of ["connected_at", "last_activity"]) {
      assert.ok(!Number.isNaN(Date.parse(session[field])), field);
    }
    assert.ok(session.message_count >= 2 && session.bytes_transferred > 0);
    const bobs = await (await api(gateway, "", { token: TOKENS.bob })).json();
    assert.deepEqual(bobs.sessions.map((s: { user: string }) => s.user), ["bob"]);
    const all = await (await api(gateway, "", { token: TOKENS.admin })).json();
    assert.equal(all.total, 2);
    const anonymous = await api(gateway, "", { token: null });
    assert.equal(anonymous.status, 401);
    await anonymous.body?.cancel();
    const connectOnly = await api(gateway, "", { token: TOKENS.aliceConnectOnly });
    assert.equal(connectOnly.status, 403);
    await connectOnly.body?.cancel();
  } finally {
    await alice.close();
    await bob.close();
    await gateway.close();
  }
});

Deno.test("POST /reverse-proxy/sessions/{id}/request returns the JSON-RPC response itself", async () => {
  const gateway = await startTestGateway();
  const served = await serveTestServer(gateway, "demo");
  try {
    const path = `/${served.ack.sessionId}/request`;
    const response = await api(gateway, path, {
      method: "POST",
      body: {
        jsonrpc: "2.0",
        id: "x-1",
        method: "tools/call",
        params: { name: "echo", arguments: { text: "direct" } },
      },
    });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), {
      jsonrpc: "2.0",
      id: "x-1",
      result: { content: [{ type: "text", text: "direct" }] },
    });
    const init = await (await api(gateway, path, {
      method: "POST",
      body: {
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: { protocolVersion: "2025-06-18" },
      },
    })).json();
    assert.equal(init.result.protocolVersion, "2025-06-18");
    assert.equal(init.result.serverInfo.name, "demo");
    const note = await api(gateway, path, {
      method: "POST",
      body: { jsonrpc: "2.0", method: "notifications/roots/list_changed" },
    });
    assert.equal(note.status, 202);
    assert.equal((await note.json()).status, "sent");
    const bad = await api(gateway, path, { method: "POST", body: { hello: "world" } });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
  } finally {
    await served.close();
    await gateway.close();
  }
});

Deno.test("owners act on their own sessions only: another owner gets 403, unknown ids 404", async () => {
  const gateway = await startTestGateway();
  const served = await serveTestServer(gateway, "demo");
  try {
    const id = String(served.ack.sessionId);
    for (
      const [method, path, body] of [
        ["GET", `/${id}`, undefined],
        ["DELETE", `/${id}`, undefined],
        ["POST", `/${id}/request`, { jsonrpc: "2.0", id: 1, method: "tools/list" }],
      ] as const
    ) {
      const response = await api(gateway, path, { method, token: TOKENS.bob, body });
      assert.equal(response.status, 403, `${method} ${path}`);
      await response.body?.cancel();
    }
    const unknown = await api(gateway, "/no-such-session", { method: "DELETE" });
    assert.equal(unknown.status, 404);
    await unknown.body?.cancel();
    assert.equal(served.tunnel.socket.readyState, WebSocket.OPEN, "bob evicted nothing");
    const own = await api(gateway, `/${id}`);
    assert.equal((await own.json()).session_id, id);
  } finally {
    await served.close();
    await gateway.close();
  }
});

Deno.test("DELETE /reverse-proxy/sessions/{id} evicts the link with close code 4001", async () => {
  const gateway = await startTestGateway();
  const served = await serveTestServer(gateway, "demo");
  const byAdmin = await serveTestServer(gateway, "other");
  try {
    const response = await api(gateway, `/${served.ack.sessionId}`, { method: "DELETE" });
    assert.deepEqual(await response.json(), {
      status: "disconnected",
      session_id: served.ack.sessionId,
    });
    const event = await within(served.tunnel.closed, 5_000, "the eviction close");
    assert.equal(event.code, CloseCode.Evicted);
    assert.equal(event.reason, "evicted by alice");
    const operator = await api(gateway, `/${byAdmin.ack.sessionId}`, {
      method: "DELETE",
      token: TOKENS.admin,
    });
    assert.equal(operator.status, 200);
    await operator.body?.cancel();
    const second = await within(byAdmin.tunnel.closed, 5_000, "the operator's eviction");
    assert.equal(second.code, CloseCode.Evicted);
    assert.equal(second.reason, "evicted by operator ops");
    assert.equal((await (await api(gateway, "")).json()).total, 0);
  } finally {
    await served.close();
    await byAdmin.close();
    await gateway.close();
  }
});

Deno.test("eviction reaches a link that is busy sending: close 4001, and an evicted refusal of its resume", async () => {
  const gateway = await startTestGateway();
  let lost = 0;
  try {
    for (let i = 0; i < 10; i++) {
      const tunnel = await TunnelClient.open(gateway, TOKENS.alice);
      try {
        const ack = await tunnel.register("busy");
        const token = (ack.resume as { token: string }).token;
        for (let k = 0; k < 50; k++) tunnel.send({ type: "heartbeat", sessionId: ack.sessionId });
        const response = await api(gateway, `/${ack.sessionId}`, { method: "DELETE" });
        await response.body?.cancel();
        const closed = await within(tunnel.closed, 5_000, "the eviction");
        // Deno now and then cuts a socket that is busy receiving without its close frame (the peer sees
        // code 0 or 1006). The gateway remembers the eviction, so the client learns it on resuming, which
        // is what connect acts on (exit 4): the refusal must come every time.
        if (closed.code !== CloseCode.Evicted) {
          assert.ok([0, 1006].includes(closed.code), `closed with ${closed.code} ${closed.reason}`);
          lost++;
        }
        const again = await TunnelClient.open(gateway, TOKENS.alice);
        try {
          again.send({
            type: "register",
            sessionId: crypto.randomUUID().replaceAll("-", ""),
            server: { name: "busy", description: "resuming", protocol: "mcp" },
            resume: { sessionId: ack.sessionId, token, ack: 0 },
          });
          const refusal = await again.next((f) => f.type === "register_ack", 5_000, "register_ack");
          assert.equal(refusal.status, "evicted");
          assert.equal((await within(again.closed, 5_000, "the refusal")).code, CloseCode.Evicted);
        } finally {
          await again.close();
        }
      } finally {
        await tunnel.close();
      }
    }
  } finally {
    await gateway.close();
  }
  // Seen about once in 80 evictions: more than a few in ten means the close code itself broke.
  assert.ok(lost <= 3, `${lost} of 10 evictions lost their close code`);
});

Deno.test("a request body over --max-frame-bytes gets 413 naming the size, the limit and the flag", async () => {
  const gateway = await startTestGateway({ maxFrameBytes: 4096 });
  const served = await serveTestServer(gateway, "small");
  try {
    const response = await api(gateway, `/${served.ack.sessionId}/request`, {
      method: "POST",
      body: { jsonrpc: "2.0", id: 1, method: "tools/list", params: { pad: "x".repeat(8192) } },
    });
    assert.equal(response.status, 413);
    assert.match(
      JSON.stringify(await response.json()),
      /Body of \d{4,} bytes exceeds the limit of 4096 bytes \(serve --max-frame-bytes\)/,
    );
  } finally {
    await served.close();
    await gateway.close();
  }
});
