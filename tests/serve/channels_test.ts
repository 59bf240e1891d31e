// Many servers on one link (the `channels` extension): each registers on its own channel, frames name
// their channel, and ending one server ends only that server's session.

import assert from "node:assert/strict";
import type { JsonObject } from "../../lib/protocol/jsonrpc.ts";
import type { Gateway } from "../../lib/serve/gateway.ts";
import { startTestGateway, TOKENS, TunnelClient, within } from "../fixtures/test_gateway.ts";
import type { WireFrame } from "../fixtures/wire.ts";

function payloadOf(frame: WireFrame): JsonObject {
  return frame.payload as JsonObject;
}

/**
 * Registers `name` on `channel` and answers the gateway's initialize on that channel. With `resume`, the
 * `resume` extension is in use too (the answer carries `seq` and `ack`), and `last` is the last `seq`
 * received, once `notifications/initialized` came.
 */
async function registerChannel(
  tunnel: TunnelClient,
  channel: string,
  name: string,
  options: { resume?: boolean } = {},
): Promise<{ ack: WireFrame; last: number }> {
  const resume = options.resume === true;
  tunnel.send({
    type: "register",
    sessionId: "client",
    channel,
    extensions: resume ? ["channels", "resume"] : ["channels"],
    server: { name, description: resume ? "" : `${name} on ${channel}`, protocol: "mcp" },
  });
  const ack = await tunnel.next(
    (f) => f.type === "register_ack" && f.channel === channel,
    5_000,
    `register_ack of ${channel}`,
  );
  const init = await tunnel.next(
    (f) => f.channel === channel && payloadOf(f)?.method === "initialize",
    5_000,
    `initialize on ${channel}`,
  );
  tunnel.send({
    type: "response",
    sessionId: ack.sessionId,
    channel,
    ...(resume ? { seq: 1, ack: init.seq } : {}),
    payload: {
      jsonrpc: "2.0",
      id: payloadOf(init).id,
      result: { protocolVersion: "2025-11-25", capabilities: {}, serverInfo: { name } },
    },
  });
  if (!resume) return { ack, last: 0 };
  const initialized = await tunnel.next(
    (f) => f.channel === channel && payloadOf(f)?.method === "notifications/initialized",
    5_000,
    `notifications/initialized on ${channel}`,
  );
  return { ack, last: Number(initialized.seq) };
}

function callThroughApi(gateway: Gateway, sessionId: unknown, id: number): Promise<Response> {
  return fetch(`${gateway.url}/reverse-proxy/sessions/${sessionId}/request`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKENS.alice}`, "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id, method: "tools/list" }),
  });
}

Deno.test("two servers register on one link, each on its channel, and their calls are routed by channel", async () => {
  const gateway = await startTestGateway({ callTimeoutMs: 3_000 });
  const tunnel = await TunnelClient.open(gateway, TOKENS.alice);
  try {
    const { ack: git } = await registerChannel(tunnel, "c-git", "git");
    const { ack: docs } = await registerChannel(tunnel, "c-docs", "docs");
    assert.ok((git.extensions as string[]).includes("channels"));
    assert.notEqual(git.sessionId, docs.sessionId);
    assert.equal(docs.mcpUrl, `${gateway.url}/servers/docs/mcp`);
    for (const [ack, channel] of [[git, "c-git"], [docs, "c-docs"]] as const) {
      const pending = callThroughApi(gateway, ack.sessionId, 7);
      const request = await tunnel.next(
        (f) => f.type === "request" && payloadOf(f)?.method === "tools/list",
        5_000,
        "the call",
      );
      assert.equal(request.channel, channel, "the call names its server's channel");
      tunnel.send({
        type: "response",
        sessionId: ack.sessionId,
        channel,
        payload: { jsonrpc: "2.0", id: payloadOf(request).id, result: { tools: [], channel } },
      });
      const answer = await (await pending).json();
      assert.deepEqual(answer.result, { tools: [], channel });
    }
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});

Deno.test("evicting one server of a link sends a close frame for its channel; the other server goes on", async () => {
  const gateway = await startTestGateway({ callTimeoutMs: 3_000 });
  const tunnel = await TunnelClient.open(gateway, TOKENS.alice);
  try {
    const { ack: git } = await registerChannel(tunnel, "c-git", "git");
    const { ack: docs } = await registerChannel(tunnel, "c-docs", "docs");
    const evicted = await fetch(`${gateway.url}/reverse-proxy/sessions/${git.sessionId}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${TOKENS.alice}` },
    });
    assert.equal(evicted.status, 200);
    await evicted.body?.cancel();
    const close = await tunnel.next((f) => f.type === "close", 5_000, "the close frame");
    assert.equal(close.channel, "c-git");
    assert.equal(close.code, 4001);
    assert.equal(tunnel.socket.readyState, WebSocket.OPEN, "the link stays up");
    const pending = callThroughApi(gateway, docs.sessionId, 8);
    const request = await tunnel.next((f) =>
      f.channel === "c-docs" && payloadOf(f)?.method === "tools/list"
    );
    tunnel.send({
      type: "response",
      sessionId: docs.sessionId,
      channel: "c-docs",
      payload: { jsonrpc: "2.0", id: payloadOf(request).id, result: { ok: true } },
    });
    assert.deepEqual((await (await pending).json()).result, { ok: true });
    const gone = await callThroughApi(gateway, git.sessionId, 9);
    assert.equal(gone.status, 404);
    await gone.body?.cancel();
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});

Deno.test("a second register on a link without channels still closes it with 1008", async () => {
  const gateway = await startTestGateway({ callTimeoutMs: 3_000 });
  const tunnel = await TunnelClient.open(gateway, TOKENS.alice);
  try {
    await tunnel.register("first");
    tunnel.send({
      type: "register",
      sessionId: "x",
      channel: "late",
      extensions: ["channels"],
      server: { name: "second", description: "", protocol: "mcp" },
    });
    const closed = await within(tunnel.closed, 5_000, "the close");
    assert.equal(closed.code, 1008);
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});

Deno.test("a register that reuses a channel of the link is refused and the first server keeps it", async () => {
  const gateway = await startTestGateway({ callTimeoutMs: 3_000 });
  const tunnel = await TunnelClient.open(gateway, TOKENS.alice);
  try {
    await registerChannel(tunnel, "c1", "one");
    tunnel.send({
      type: "register",
      sessionId: "x",
      channel: "c1",
      extensions: ["channels"],
      server: { name: "two", description: "", protocol: "mcp" },
    });
    const error = await tunnel.next((f) => f.type === "error", 5_000, "the error frame");
    assert.match(String(error.message), /already registered/);
    const list = await fetch(`${gateway.url}/reverse-proxy/sessions`, {
      headers: { authorization: `Bearer ${TOKENS.alice}` },
    });
    const names = (await list.json()).sessions.map((s: { server_info: { name: string } }) =>
      s.server_info.name
    );
    assert.deepEqual(names, ["one"]);
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});

Deno.test("a register past the owner's limit on a link with channels is refused with a close frame for its channel; the link goes on", async () => {
  const gateway = await startTestGateway({ callTimeoutMs: 3_000, maxSessionsPerOwner: 1 });
  const tunnel = await TunnelClient.open(gateway, TOKENS.alice);
  try {
    const { ack: one } = await registerChannel(tunnel, "c1", "one");
    tunnel.send({
      type: "register",
      sessionId: "x",
      channel: "c2",
      extensions: ["channels"],
      server: { name: "two", description: "", protocol: "mcp" },
    });
    const close = await tunnel.next((f) => f.type === "close", 5_000, "the close frame");
    assert.equal(close.channel, "c2");
    assert.equal(close.code, 4029);
    assert.equal(tunnel.socket.readyState, WebSocket.OPEN, "the link stays up");
    const pending = callThroughApi(gateway, one.sessionId, 10);
    const request = await tunnel.next((f) =>
      f.channel === "c1" && payloadOf(f)?.method === "tools/list"
    );
    tunnel.send({
      type: "response",
      sessionId: one.sessionId,
      channel: "c1",
      payload: { jsonrpc: "2.0", id: payloadOf(request).id, result: { ok: true } },
    });
    assert.deepEqual((await (await pending).json()).result, { ok: true });
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});

/** Sends a `register` on `channel` that resumes the session of `ack`, having received up to `last`. */
function resumeOn(
  tunnel: TunnelClient,
  channel: string,
  resumed: { ack: WireFrame; last: number },
): Promise<WireFrame> {
  const { ack, last } = resumed;
  tunnel.send({
    type: "register",
    sessionId: "client",
    channel,
    extensions: ["channels", "resume"],
    server: { name: "srv", description: "", protocol: "mcp" },
    resume: { sessionId: ack.sessionId, token: (ack.resume as JsonObject).token, ack: last },
  });
  return tunnel.next(
    (f) => f.type === "register_ack" && f.channel === channel,
    5_000,
    `register_ack of ${channel}`,
  );
}

Deno.test("a link with channels that resumes its own session on another channel keeps the link, and calls reach the session there", async () => {
  const gateway = await startTestGateway({ callTimeoutMs: 3_000 });
  const tunnel = await TunnelClient.open(gateway, TOKENS.alice);
  try {
    const { ack, last } = await registerChannel(tunnel, "c-a", "srv", { resume: true });
    const resumed = await resumeOn(tunnel, "c-b", { ack, last });
    assert.equal(resumed.resumeError, undefined);
    assert.equal(resumed.sessionId, ack.sessionId);
    assert.equal(resumed.resumed, true);
    assert.equal(tunnel.socket.readyState, WebSocket.OPEN, "the link stays open");
    const pending = callThroughApi(gateway, ack.sessionId, 7);
    const request = await tunnel.next(
      (f) => f.type === "request" && payloadOf(f)?.method === "tools/list",
      5_000,
      "the call",
    );
    assert.equal(request.channel, "c-b");
    tunnel.send({
      type: "response",
      sessionId: ack.sessionId,
      channel: "c-b",
      seq: 2,
      payload: { jsonrpc: "2.0", id: payloadOf(request).id, result: { tools: [] } },
    });
    const answer = await within(pending, 5_000, "the answer");
    assert.equal(answer.status, 200);
    assert.deepEqual((await answer.json()).result, { tools: [] });
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});

Deno.test("a link with channels that resumes its own session that cannot be resumed gets a fresh session on the new channel and stays open", async () => {
  const gateway = await startTestGateway({ callTimeoutMs: 3_000 });
  const tunnel = await TunnelClient.open(gateway, TOKENS.alice);
  try {
    // Answered without `seq`: the client showed it does not resume, so the session cannot be.
    const { ack } = await registerChannel(tunnel, "c-a", "srv");
    const fresh = await resumeOn(tunnel, "c-b", { ack, last: 0 });
    assert.notEqual(fresh.sessionId, ack.sessionId);
    assert.equal(fresh.resumed, false);
    assert.equal(tunnel.socket.readyState, WebSocket.OPEN, "the link stays open");
    const old = await callThroughApi(gateway, ack.sessionId, 7);
    assert.equal(old.status, 404, "the old session ended");
    await old.body?.cancel();
    const pending = callThroughApi(gateway, fresh.sessionId, 8);
    const request = await tunnel.next(
      (f) => f.type === "request" && f.channel === "c-b" && payloadOf(f)?.method === "tools/list",
      5_000,
      "the call on the fresh session",
    );
    tunnel.send({
      type: "response",
      sessionId: fresh.sessionId,
      channel: "c-b",
      payload: { jsonrpc: "2.0", id: payloadOf(request).id, result: { tools: [] } },
    });
    const answer = await within(pending, 5_000, "the answer");
    assert.equal(answer.status, 200);
    await answer.body?.cancel();
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});

Deno.test("a register whose channel is over 256 characters is refused naming its length and the limit, and nothing is kept", async () => {
  const gateway = await startTestGateway();
  const tunnel = await TunnelClient.open(gateway, TOKENS.alice);
  try {
    tunnel.send({
      type: "register",
      sessionId: "client",
      channel: "c".repeat(257),
      extensions: ["channels"],
      server: { name: "srv", description: "", protocol: "mcp" },
    });
    const refusal = await tunnel.next(
      (f) => f.type === "error" || f.type === "register_ack",
      5_000,
      "the answer",
    );
    assert.equal(refusal.type, "error");
    assert.match(String(refusal.message), /Channel is 257 characters long; at most 256/);
    const listed = await fetch(`${gateway.url}/reverse-proxy/sessions`, {
      headers: { authorization: `Bearer ${TOKENS.alice}` },
    });
    assert.equal((await listed.json()).total, 0);
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});
