// Wire-level tests of tunnel links: a raw WebSocket plays the `connect` side and answers requests itself.

import assert from "node:assert/strict";
import { CloseCode } from "../../lib/protocol/frames.ts";
import { ErrorCode, type JsonObject } from "../../lib/protocol/jsonrpc.ts";
import type { Gateway } from "../../lib/serve/gateway.ts";
import { createServeMetrics } from "../../lib/serve/metrics.ts";
import { delay } from "../../lib/util/delay.ts";
import type { WireFrame } from "../fixtures/wire.ts";
import { startTestGateway, TOKENS, TunnelClient, within } from "../fixtures/test_gateway.ts";

const INIT_RESULT = {
  protocolVersion: "2025-11-25",
  capabilities: { tools: {} },
  serverInfo: { name: "raw", version: "1" },
};

/** Registers a raw tunnel and answers the gateway's initialize. */
async function registered(gateway: Gateway, name = "raw", token: string = TOKENS.alice) {
  const tunnel = await TunnelClient.open(gateway, token);
  const ack = await tunnel.register(name);
  const init = await tunnel.next(
    (f) => f.type === "request" && (f.payload as JsonObject).method === "initialize",
    5_000,
    "the gateway's initialize",
  );
  tunnel.send({
    type: "response",
    sessionId: ack.sessionId,
    payload: { jsonrpc: "2.0", id: (init.payload as JsonObject).id, result: INIT_RESULT },
  });
  await tunnel.next(
    (f) => f.type === "request" && (f.payload as JsonObject).method === "notifications/initialized",
    5_000,
    "notifications/initialized",
  );
  return { tunnel, ack, sessionId: String(ack.sessionId) };
}

/** Polls a value held in this process (each round paced by 10 ms) until `check` holds, or fails. */
async function pollUntil(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await delay(10);
  }
}

function api(gateway: Gateway, path: string, init: RequestInit & { token?: string } = {}) {
  const { token = TOKENS.alice, ...rest } = init;
  return fetch(`${gateway.url}${path}`, {
    ...rest,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
  });
}

Deno.test("register is answered with register_ack carrying id, name, mcpUrl, extensions and frame limit", async () => {
  const gateway = await startTestGateway({ maxFrameBytes: 8 * 1024 * 1024 });
  const tunnel = await TunnelClient.open(gateway, TOKENS.alice);
  try {
    const ack = await tunnel.register("My Server", "stdio");
    assert.equal(ack.status, "success");
    assert.match(String(ack.sessionId), /^[0-9a-f-]{36}$/);
    assert.equal(ack.name, "My-Server");
    assert.equal(ack.mcpUrl, `${gateway.url}/servers/My-Server/mcp`);
    assert.deepEqual(ack.extensions, [
      "server-requests",
      "large-frames",
      "evict-close",
      "channels",
      "client-sessions",
      "resume",
    ]);
    assert.equal(ack.maxFrameBytes, 8 * 1024 * 1024);
    const init = await tunnel.next((f) => f.type === "request", 5_000, "initialize");
    const payload = init.payload as JsonObject;
    assert.equal(init.sessionId, ack.sessionId);
    assert.equal(payload.method, "initialize");
    assert.deepEqual((payload.params as JsonObject).protocolVersion, "2025-11-25");
    assert.deepEqual((payload.params as JsonObject).capabilities, {});
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});

Deno.test("a link without a valid token is refused with 401, without the connect role with 403", async () => {
  const gateway = await startTestGateway();
  try {
    await assert.rejects(TunnelClient.open(gateway, undefined), /401/);
    await assert.rejects(TunnelClient.open(gateway, "wrong-token"), /401/);
    await assert.rejects(TunnelClient.open(gateway, TOKENS.aliceClientOnly), /403/);
    const query = new WebSocket(
      `${gateway.url.replace("http", "ws")}/reverse-proxy/ws?token=${TOKENS.alice}`,
    );
    const refused = new Promise<string>((resolve) =>
      query.addEventListener("error", (e) => resolve((e as ErrorEvent).message), { once: true })
    );
    const closed = new Promise((resolve) =>
      query.addEventListener("close", resolve, { once: true })
    );
    assert.match(await within(refused, 5_000, "the query-token refusal"), /401/);
    await within(closed, 5_000, "close");
    const plain = await fetch(`${gateway.url}/reverse-proxy/ws`);
    assert.equal(plain.status, 426);
    await plain.body?.cancel();
  } finally {
    await gateway.close();
  }
});

Deno.test("a second register on one connection closes it with 1008", async () => {
  const gateway = await startTestGateway();
  const tunnel = await TunnelClient.open(gateway, TOKENS.alice);
  try {
    await tunnel.register("one");
    tunnel.send({ type: "register", server: { name: "two" } });
    const event = await within(tunnel.closed, 5_000, "close");
    assert.equal(event.code, CloseCode.Policy);
    assert.match(event.reason, /register sent twice/);
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});

Deno.test("heartbeats are acknowledged exactly once each and never sent unsolicited", async () => {
  const gateway = await startTestGateway();
  const { tunnel, sessionId } = await registered(gateway);
  try {
    for (let i = 0; i < 3; i++) tunnel.send({ type: "heartbeat", sessionId });
    for (let i = 0; i < 3; i++) {
      const ack = await tunnel.next((f) => f.type === "heartbeat", 5_000, "heartbeat ack");
      assert.equal(ack.sessionId, sessionId);
      assert.equal(typeof ack.timestamp, "string");
    }
    // Answering an ack with an ack would start a storm: the gateway must not answer its own kind.
    tunnel.send({ type: "nonsense" });
    await tunnel.next((f) => f.type === "error", 5_000, "error frame as a sentinel");
    assert.equal(tunnel.frames.filter((f) => f.type === "heartbeat").length, 0);
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});

Deno.test("colliding names get a visible suffix; the first holder keeps its name", async () => {
  const gateway = await startTestGateway();
  const first = await registered(gateway, "dup");
  const second = await registered(gateway, "dup");
  const bobs = await registered(gateway, "dup", TOKENS.bob);
  try {
    assert.equal(first.ack.name, "dup");
    assert.equal(second.ack.name, "dup-2");
    assert.match(String(second.ack.mcpUrl), /\/servers\/dup-2\/mcp$/);
    assert.equal(bobs.ack.name, "dup", "names are per owner");
    const list = await (await api(gateway, "/reverse-proxy/sessions")).json();
    assert.deepEqual(
      list.sessions.map((s: { server_info: { name: string; requested_name: string } }) => [
        s.server_info.name,
        s.server_info.requested_name,
      ]),
      [["dup", "dup"], ["dup-2", "dup"]],
    );
  } finally {
    await first.tunnel.close();
    await second.tunnel.close();
    await bobs.tunnel.close();
    await gateway.close();
  }
});

Deno.test("an owner over the session limit is refused with an error frame and 4029, not 1008", async () => {
  const gateway = await startTestGateway({ maxSessionsPerOwner: 1 });
  const first = await registered(gateway, "a");
  const extra = await TunnelClient.open(gateway, TOKENS.alice);
  try {
    const error = await extra.next((f) => f.type === "error", 5_000, "error frame");
    assert.match(String(error.message), /Too many sessions for owner alice \(limit 1;/);
    const closed = await within(extra.closed, 5_000, "close");
    assert.equal(closed.code, CloseCode.TooManySessions);
    assert.equal(closed.reason, "too many sessions for this owner");
  } finally {
    await extra.close();
    await first.tunnel.close();
    await gateway.close();
  }
});

Deno.test("links that have not registered hold their places under the owner's limit", async () => {
  const gateway = await startTestGateway({ maxSessionsPerOwner: 2 });
  const waiting = [
    await TunnelClient.open(gateway, TOKENS.alice),
    await TunnelClient.open(gateway, TOKENS.alice),
  ];
  let third: TunnelClient | undefined;
  const bob = await registered(gateway, "b", TOKENS.bob);
  try {
    third = await TunnelClient.open(gateway, TOKENS.alice);
    assert.equal((await within(third.closed, 5_000, "close")).code, CloseCode.TooManySessions);
    // A waiting link that registers turns its place into a session: both fit, and the limit still holds.
    assert.equal((await waiting[0]!.register("first")).status, "success");
    assert.equal((await waiting[1]!.register("second")).status, "success");
    const fourth = await TunnelClient.open(gateway, TOKENS.alice);
    waiting.push(fourth);
    assert.equal((await within(fourth.closed, 5_000, "close")).code, CloseCode.TooManySessions);
  } finally {
    for (const link of waiting) await link.close();
    await third?.close();
    await bob.tunnel.close();
    await gateway.close();
  }
});

const JUNK: (string | Uint8Array)[] = [
  "not json",
  "[1,2,3]",
  "null",
  '{"no":"type"}',
  '{"type":42}',
  '{"type":"response","payload":"x"}',
  '{"type":"notification","payload":{"jsonrpc":"1.0"}}',
  '{"type":"request","sessionId":7}',
  '{"type":"what"}',
];

Deno.test("200 malformed frames each get an error frame and do not crash the gateway", async () => {
  const gateway = await startTestGateway({ maxBadFrames: 1000 });
  const { tunnel, sessionId } = await registered(gateway, "g");
  try {
    for (let i = 0; i < 200; i++) tunnel.socket.send(JUNK[i % JUNK.length]!);
    for (let i = 0; i < 200; i++) {
      const error = await tunnel.next((f) => f.type === "error", 5_000, `error frame ${i + 1}`);
      assert.equal(typeof error.message, "string");
    }
    tunnel.send({ type: "heartbeat", sessionId });
    await tunnel.next((f) => f.type === "heartbeat", 5_000, "heartbeat ack after the garbage");
    const healthy = await registered(gateway, "after");
    assert.equal(healthy.ack.name, "after");
    await healthy.tunnel.close();
    const health = await fetch(`${gateway.url}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});

Deno.test("a peer that keeps sending garbage is closed with 1008", async () => {
  const gateway = await startTestGateway({ maxBadFrames: 5 });
  const { tunnel } = await registered(gateway, "g");
  try {
    // All at once: the close must still arrive as 1008 while frames are queued behind it.
    for (let i = 0; i < 200 && tunnel.socket.readyState === WebSocket.OPEN; i++) {
      tunnel.socket.send(JUNK[i % JUNK.length]!);
    }
    const event = await within(tunnel.closed, 5_000, "the garbage peer to be closed");
    assert.equal(event.code, CloseCode.Policy);
    assert.match(event.reason, /malformed frames/);
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});

Deno.test("a binary frame closes the link with 1003 and a reason", async () => {
  const gateway = await startTestGateway();
  const { tunnel } = await registered(gateway);
  try {
    tunnel.socket.send(new Uint8Array([1, 2, 3]));
    const event = await within(tunnel.closed, 5_000, "close 1003");
    assert.equal(event.code, CloseCode.UnsupportedData);
    assert.match(event.reason, /binary frames are not supported/);
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});

Deno.test("a frame over the size limit closes the link with 1009", async () => {
  const gateway = await startTestGateway({ maxFrameBytes: 64 * 1024 });
  const { tunnel, sessionId } = await registered(gateway);
  try {
    tunnel.send({ type: "notification", sessionId, payload: { big: "é".repeat(40 * 1024) } });
    const event = await within(tunnel.closed, 5_000, "close 1009");
    assert.equal(event.code, CloseCode.TooBig);
    assert.match(event.reason, /exceeds the limit of 65536/);
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});

Deno.test("an answer for an id never asked counts as a bad frame; a flood of them closes the link with 1008", async () => {
  const gateway = await startTestGateway({ maxBadFrames: 5 });
  const { tunnel, sessionId } = await registered(gateway);
  try {
    const unknown = (id: number) =>
      tunnel.send({ type: "response", sessionId, payload: { jsonrpc: "2.0", id, result: {} } });
    unknown(999);
    const error = await tunnel.next((f) => f.type === "error", 5_000, "the error frame");
    assert.match(String(error.message), /never asked/);
    assert.equal(tunnel.socket.readyState, WebSocket.OPEN);
    for (let id = 1000; id < 1010; id++) unknown(id);
    const closed = await within(tunnel.closed, 5_000, "the close");
    assert.equal(closed.code, 1008);
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});

Deno.test("a late answer for a call that timed out is dropped without counting as a bad frame", async () => {
  const gateway = await startTestGateway({ callTimeoutMs: 100, maxBadFrames: 1 });
  const { tunnel, sessionId } = await registered(gateway);
  try {
    const ids: unknown[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await api(gateway, `/reverse-proxy/sessions/${sessionId}/request`, {
        method: "POST",
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: i,
          method: "tools/call",
          params: { name: "x" },
        }),
      });
      assert.equal(response.status, 504);
      await response.body?.cancel();
      const sent = await tunnel.next((f) => (f.payload as JsonObject)?.method === "tools/call");
      ids.push((sent.payload as JsonObject).id);
    }
    // Three late answers with a bad-frame limit of 1: none of them may count.
    for (const id of ids) {
      tunnel.send({ type: "response", sessionId, payload: { jsonrpc: "2.0", id, result: {} } });
    }
    tunnel.send({ type: "heartbeat", sessionId });
    await tunnel.next((f) => f.type === "heartbeat", 5_000, "heartbeat ack");
    assert.equal(tunnel.socket.readyState, WebSocket.OPEN);
    assert.equal(tunnel.frames.filter((f) => f.type === "error").length, 0);
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});

Deno.test("unregister ends the session with 1000", async () => {
  const gateway = await startTestGateway();
  const { tunnel, sessionId } = await registered(gateway);
  try {
    tunnel.send({ type: "unregister", sessionId });
    assert.equal((await within(tunnel.closed, 5_000, "close")).code, CloseCode.Normal);
    const list = await (await api(gateway, "/reverse-proxy/sessions")).json();
    assert.equal(list.total, 0);
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});

Deno.test("a server-initiated ping is answered by the gateway", async () => {
  const gateway = await startTestGateway();
  const { tunnel, sessionId } = await registered(gateway);
  try {
    tunnel.send({
      type: "request",
      sessionId,
      payload: { jsonrpc: "2.0", id: "p1", method: "ping" },
    });
    const answer = await tunnel.next((f) => f.type === "response", 5_000, "ping answer");
    assert.deepEqual(answer.payload, { jsonrpc: "2.0", id: "p1", result: {} });
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});

Deno.test("a server request no client can answer gets a JSON-RPC error at once", async () => {
  const gateway = await startTestGateway();
  const { tunnel, sessionId } = await registered(gateway);
  try {
    tunnel.send({
      type: "request",
      sessionId,
      payload: { jsonrpc: "2.0", id: 4, method: "roots/list" },
    });
    const answer = await tunnel.next((f) => f.type === "response", 5_000, "error answer");
    const payload = answer.payload as JsonObject;
    assert.equal(payload.id, 4);
    assert.equal((payload.error as JsonObject).code, ErrorCode.MethodNotFound);
    assert.match(String((payload.error as JsonObject).message), /roots/);
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});

Deno.test("a link that goes silent is reaped and its pending callers get JSON-RPC errors", async () => {
  const gateway = await startTestGateway({ heartbeatTimeoutMs: 400, wsIdleTimeoutSeconds: 0 });
  const { tunnel, sessionId } = await registered(gateway);
  try {
    const pending = api(gateway, `/reverse-proxy/sessions/${sessionId}/request`, {
      method: "POST",
      body: JSON.stringify({ jsonrpc: "2.0", id: "c1", method: "tools/list" }),
    });
    await tunnel.next((f) =>
      f.type === "request" && (f.payload as JsonObject).method === "tools/list"
    );
    // From here the tunnel says nothing.
    const event = await within(tunnel.closed, 5_000, "the reaper to close the link");
    assert.equal(event.code, CloseCode.GoingAway);
    assert.match(event.reason, /no frames/);
    const response = await within(pending, 5_000, "the pending call to fail");
    assert.equal(response.status, 502);
    const body = await response.json();
    assert.equal(body.id, "c1");
    assert.equal(body.error.code, ErrorCode.TunnelUnavailable);
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});

Deno.test("a call that times out gets a Timeout error (504) and the server gets notifications/cancelled", async () => {
  const gateway = await startTestGateway({ callTimeoutMs: 200 });
  const { tunnel, sessionId } = await registered(gateway);
  try {
    const response = await api(gateway, `/reverse-proxy/sessions/${sessionId}/request`, {
      method: "POST",
      body: JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "x" } }),
    });
    assert.equal(response.status, 504);
    const body = await response.json();
    assert.equal(body.id, 7);
    assert.equal(body.error.code, ErrorCode.Timeout);
    const sent = await tunnel.next((f) => (f.payload as JsonObject)?.method === "tools/call");
    const cancel = await tunnel.next(
      (f) => (f.payload as JsonObject)?.method === "notifications/cancelled",
      5_000,
      "notifications/cancelled",
    );
    const params = (cancel.payload as JsonObject).params as JsonObject;
    assert.equal(params.requestId, (sent.payload as JsonObject).id);
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});

Deno.test("calls beyond --max-inflight wait in a FIFO queue; past --max-queued they are refused naming both flags", async () => {
  const metrics = createServeMetrics();
  const gateway = await startTestGateway({
    maxInflight: 1,
    maxQueued: 2,
    callTimeoutMs: 5_000,
    metrics,
  });
  const { tunnel, sessionId } = await registered(gateway);
  const path = `/reverse-proxy/sessions/${sessionId}/request`;
  const post = (id: number) =>
    api(gateway, path, {
      method: "POST",
      body: JSON.stringify({ jsonrpc: "2.0", id, method: "tools/list", params: { n: id } }),
    });
  const answer = (frame: WireFrame) =>
    tunnel.send({
      type: "response",
      sessionId,
      payload: {
        jsonrpc: "2.0",
        id: (frame.payload as JsonObject).id,
        result: { n: ((frame.payload as JsonObject).params as JsonObject).n },
      },
    });
  const isList = (f: WireFrame) => (f.payload as JsonObject | undefined)?.method === "tools/list";
  try {
    const first = post(1);
    const sent1 = await tunnel.next(isList, 5_000, "call 1");
    const second = post(2);
    const third = post(3);
    await pollUntil("two calls queued", () => metrics.callsQueued.value === 2);
    const refused = await (await post(4)).json();
    assert.equal(refused.id, 4);
    assert.equal(
      refused.error.message,
      "Too many calls to server 'raw': 1 in flight (limit --max-inflight 1) and 2 queued (limit --max-queued 2); retry later",
    );
    assert.equal(metrics.errors.value("queue_full"), 1);
    // Nothing queued went out while the slot was taken.
    assert.equal(tunnel.frames.filter(isList).length, 0);
    answer(sent1);
    assert.deepEqual(await (await first).json(), { jsonrpc: "2.0", id: 1, result: { n: 1 } });
    // Slots free in order: 2 goes out before 3.
    const sent2 = await tunnel.next(isList, 5_000, "call 2");
    assert.equal(((sent2.payload as JsonObject).params as JsonObject).n, 2);
    answer(sent2);
    const sent3 = await tunnel.next(isList, 5_000, "call 3");
    assert.equal(((sent3.payload as JsonObject).params as JsonObject).n, 3);
    answer(sent3);
    assert.deepEqual(await (await second).json(), { jsonrpc: "2.0", id: 2, result: { n: 2 } });
    assert.deepEqual(await (await third).json(), { jsonrpc: "2.0", id: 3, result: { n: 3 } });
    assert.equal(metrics.callsQueued.value, 0);
    assert.equal(metrics.callQueueSeconds.count, 2, "each queued call's wait is observed");
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});
