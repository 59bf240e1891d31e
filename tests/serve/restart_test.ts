// A gateway that stops with its state kept and the next one that starts from it (lib/serve/state/), in
// one process with one store between them: the MCP client keeps its Mcp-Session-Id, the tunnel resumes
// its session (no second initialize, sequence numbers go on), answers for the old process's calls are
// counted as late, and the store never holds a resume secret.

import assert from "node:assert/strict";
import type { Gateway } from "../../lib/serve/gateway.ts";
import { createServeMetrics, type ServeMetrics } from "../../lib/serve/metrics.ts";
import { hashToken } from "../../lib/serve/resume_credentials.ts";
import { MemoryStore } from "../../lib/serve/state/memory_store.ts";
import { readTunnelRecord } from "../../lib/serve/state/records.ts";
import { ServeState } from "../../lib/serve/state/serve_state.ts";
import type { StateStore } from "../../lib/serve/state/store.ts";
import { getSse, initializeMcp, parseSse, postMcp, rpc } from "../fixtures/mcp_http.ts";
import {
  isRequest,
  payloadOf,
  RAW_INIT_RESULT,
  registerResumable,
  resumeAs,
  sessionInfo,
  until,
} from "../fixtures/resumable_tunnel.ts";
import { startTestGateway, TOKENS, type TunnelClient, within } from "../fixtures/test_gateway.ts";

/** A gateway on `store`, as serve runs one with --state-dir. */
async function gatewayOn(
  store: StateStore,
  options: { metrics?: ServeMetrics; resumeWindowMs?: number } = {},
): Promise<Gateway> {
  const state = new ServeState(store, { clientTtlMs: 3_600_000, endedKeepMs: 60_000 });
  return await startTestGateway({ state, ...options });
}

/** Every value in the store, as text. */
async function storeText(store: StateStore): Promise<string> {
  const spaces = ["tunnel", "client", "ended"];
  const entries = (await Promise.all(spaces.map((space) => store.list(space)))).flat();
  return entries.map((entry) => entry.value).join("\n");
}

function respond(
  tunnel: TunnelClient,
  sessionId: string,
  seq: number,
  id: unknown,
  result: unknown,
) {
  tunnel.send({ type: "response", sessionId, seq, payload: { jsonrpc: "2.0", id, result } });
}

Deno.test("after a restart the MCP client keeps its session and the tunnel resumes: no initialize, numbers go on, old answers are late", async () => {
  const store = new MemoryStore();
  const metrics = createServeMetrics();
  let first: Gateway | undefined = await gatewayOn(store);
  let second: Gateway | undefined;
  const tunnels: TunnelClient[] = [];
  try {
    const raw = await registerResumable(first, "svc");
    tunnels.push(raw.tunnel);
    const mcpSession = await initializeMcp(first, "svc");
    // A call answered in the first process (gateway seq 3, tunnel seq 2)...
    const listing = postMcp(first, "svc", rpc(1, "tools/list"), { session: mcpSession });
    const list = await raw.tunnel.next(isRequest("tools/list"));
    assert.equal(list.seq, 3);
    respond(raw.tunnel, raw.sessionId, 2, payloadOf(list).id, { tools: [] });
    assert.deepEqual((await (await listing).json()).result, { tools: [] });
    // ...and one still in flight when it stops (gateway seq 4).
    const pending = postMcp(first, "svc", rpc(2, "tools/call", { name: "slow" }), {
      session: mcpSession,
      accept: "application/json",
    });
    const slow = await raw.tunnel.next(isRequest("tools/call"));
    assert.equal(slow.seq, 4);
    await first.close();
    first = undefined;
    const lost = await (await pending).json();
    assert.equal(
      lost.error?.code,
      -32001,
      "the call in flight failed at once with the old process",
    );
    await within(raw.tunnel.closed, 5_000, "the first link to close");

    const saved = await storeText(store);
    assert.ok(!saved.includes(raw.token), "the resume secret is never stored");
    const record = readTunnelRecord((await store.get({ space: "tunnel", id: raw.sessionId }))!);
    assert.equal(record?.tokenHash, hashToken(raw.token));
    assert.deepEqual(record?.initializeResult, RAW_INIT_RESULT);

    second = await gatewayOn(store, { metrics });
    assert.equal((await sessionInfo(second, raw.sessionId))?.detached, true, "restored, detached");
    // The MCP client goes on with its session id while the tunnel has not resumed yet: the call waits.
    const waiting = postMcp(second, "svc", rpc(3, "tools/list"), { session: mcpSession });
    // connect received up to 4, and had 2 of its own acknowledged (seq 4 carried ack 2).
    const { tunnel, ack } = await resumeAs(second, TOKENS.alice, {
      sessionId: raw.sessionId,
      token: raw.token,
      ack: 4,
      acked: 2,
    }, "svc");
    tunnels.push(tunnel);
    assert.equal(ack.status, "success");
    assert.equal(ack.resumed, true);
    assert.equal(ack.sessionId, raw.sessionId);
    assert.equal(ack.name, "svc");
    assert.equal(ack.ack, 2, "what the first process had received");
    // The call held while detached goes out numbered after what connect had: 5.
    const again = await tunnel.next(isRequest("tools/list"));
    assert.equal(again.seq, 5);
    assert.ok(
      Number(payloadOf(again).id) > Number(payloadOf(slow).id),
      "the new process's tunnel ids start past the old one's: a late answer cannot reach a new call",
    );
    respond(tunnel, raw.sessionId, 3, payloadOf(again).id, { tools: [{ name: "t" }] });
    const answer = await (await waiting).json();
    assert.deepEqual(answer.result, { tools: [{ name: "t" }] });
    // The answer to the first process's call arrives late: dropped and counted, not a bad frame.
    respond(tunnel, raw.sessionId, 4, payloadOf(slow).id, { content: [] });
    const next = postMcp(second, "svc", rpc(4, "tools/list"), { session: mcpSession });
    const fourth = await tunnel.next(isRequest("tools/list"));
    assert.equal(fourth.seq, 6);
    respond(tunnel, raw.sessionId, 5, payloadOf(fourth).id, { tools: [] });
    assert.deepEqual((await (await next).json()).result, { tools: [] });
    assert.equal(metrics.errors.value("late_response"), 1);
    assert.equal(metrics.errors.value("protocol"), 0);
    assert.equal(
      tunnel.frames.filter(isRequest("initialize")).length,
      0,
      "the restored session did not initialize the server again",
    );
    // A client initializing afresh on the restored session gets the held result.
    await initializeMcp(second, "svc");
    assert.equal(tunnel.frames.filter(isRequest("initialize")).length, 0);
  } finally {
    for (const tunnel of tunnels) tunnel.socket.close();
    await first?.close();
    await second?.close();
    await store.close();
  }
});

Deno.test("a GET stream resumed with an event id of the earlier process gets what the new one holds", async () => {
  const store = new MemoryStore();
  let first: Gateway | undefined = await gatewayOn(store);
  let second: Gateway | undefined;
  const tunnels: TunnelClient[] = [];
  try {
    const raw = await registerResumable(first, "svc");
    tunnels.push(raw.tunnel);
    const mcpSession = await initializeMcp(first, "svc");
    await first.close();
    first = undefined;
    second = await gatewayOn(store);
    const { tunnel } = await resumeAs(second, TOKENS.alice, {
      sessionId: raw.sessionId,
      token: raw.token,
      ack: 2,
    }, "svc");
    tunnels.push(tunnel);
    // The first process had sent 7 events on the GET stream; the new one sent none.
    const get = await getSse(second, "svc", mcpSession, { lastEventId: "0:7" });
    assert.equal(get.status, 200);
    try {
      const priming = await get.reading.events.waitFor((e) => e.id !== undefined, 5_000, "priming");
      assert.equal(priming.id, "0:7");
      tunnel.send({
        type: "notification",
        sessionId: raw.sessionId,
        seq: 2,
        payload: { jsonrpc: "2.0", method: "notifications/tools/list_changed" },
      });
      const event = await get.reading.events.waitFor(
        (e) => e.data !== "",
        5_000,
        "the notification",
      );
      assert.equal(event.id, "0:8", "numbers go on after the earlier process's");
    } finally {
      await get.reading.close();
    }
    // The new process numbers POST streams past the earlier one's, so an old event id names none of them.
    const streamed = await postMcp(
      second,
      "svc",
      rpc(9, "tools/list", { _meta: { progressToken: "p" } }),
      { session: mcpSession, accept: "text/event-stream" },
    );
    const call = await tunnel.next(isRequest("tools/list"));
    respond(tunnel, raw.sessionId, 3, payloadOf(call).id, { tools: [] });
    const events = parseSse(await streamed.text());
    const stream = Number(events[0]?.id?.split(":")[0]);
    assert.ok(stream > 1_000_000_000, `a stream number of the second life: ${events[0]?.id}`);
    // Of a POST stream of the earlier process the new one holds nothing: no events, and no error that
    // would make the client try again and again.
    const old = await getSse(second, "svc", mcpSession, { lastEventId: "3:2" });
    assert.equal(old.status, 204);
    assert.equal(await old.response.text(), "");
  } finally {
    for (const tunnel of tunnels) tunnel.socket.close();
    await first?.close();
    await second?.close();
    await store.close();
  }
});

Deno.test("an eviction outlives a restart, and a restored session its client never resumes expires and is forgotten", async () => {
  const store = new MemoryStore();
  let first: Gateway | undefined = await gatewayOn(store);
  let second: Gateway | undefined;
  const tunnels: TunnelClient[] = [];
  try {
    const evicted = await registerResumable(first, "gone");
    const idle = await registerResumable(first, "idle");
    tunnels.push(evicted.tunnel, idle.tunnel);
    const removed = await fetch(`${first.url}/reverse-proxy/sessions/${evicted.sessionId}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${TOKENS.alice}` },
    });
    assert.equal(removed.status, 200);
    await removed.body?.cancel();
    await first.close();
    first = undefined;

    second = await gatewayOn(store, { resumeWindowMs: 300 });
    const { tunnel, ack } = await resumeAs(second, TOKENS.alice, {
      sessionId: evicted.sessionId,
      token: evicted.token,
      ack: 2,
    }, "gone");
    tunnels.push(tunnel);
    assert.equal(ack.resumeError, "evicted", "the operator's decision stands after the restart");
    assert.equal((await within(tunnel.closed, 5_000, "the 4001 close")).code, 4001);

    // Not resumed within its window (starting at the restart): ended, and a late resume learns why.
    const gateway = second;
    await until(
      "the restored session to expire",
      async () => (await sessionInfo(gateway, idle.sessionId)) === undefined,
    );
    const late = await resumeAs(second, TOKENS.alice, {
      sessionId: idle.sessionId,
      token: idle.token,
      ack: 2,
    }, "idle");
    tunnels.push(late.tunnel);
    assert.equal(late.ack.resumeError, "expired");
    await second.close();
    second = undefined;
    assert.equal(await store.get({ space: "tunnel", id: idle.sessionId }), undefined);
    assert.match(String(await store.get({ space: "ended", id: idle.sessionId })), /"expired"/);
  } finally {
    for (const tunnel of tunnels) tunnel.socket.close();
    await first?.close();
    await second?.close();
    await store.close();
  }
});

Deno.test("without a state store a restarted gateway knows no MCP session: 404", async () => {
  let first: Gateway | undefined = await startTestGateway();
  let second: Gateway | undefined;
  const tunnels: TunnelClient[] = [];
  try {
    const raw = await registerResumable(first, "svc");
    tunnels.push(raw.tunnel);
    const mcpSession = await initializeMcp(first, "svc");
    await first.close();
    first = undefined;
    second = await startTestGateway();
    const response = await postMcp(second, "svc", rpc(1, "tools/list"), { session: mcpSession });
    assert.equal(response.status, 404);
    await response.body?.cancel();
  } finally {
    for (const tunnel of tunnels) tunnel.socket.close();
    await first?.close();
    await second?.close();
  }
});

Deno.test("a record saved before the last acknowledgements (a crash) is corrected by the client's 'acked'", async () => {
  const store = new MemoryStore();
  let first: Gateway | undefined = await gatewayOn(store);
  let second: Gateway | undefined;
  const tunnels: TunnelClient[] = [];
  try {
    const raw = await registerResumable(first, "svc");
    tunnels.push(raw.tunnel);
    await first.close();
    first = undefined;
    // As if the process died before saving what it had acknowledged: the record says nothing received.
    const key = { space: "tunnel", id: raw.sessionId };
    const record = JSON.parse((await store.get(key))!);
    await store.write([{ op: "set", key, value: JSON.stringify({ ...record, seqIn: 0 }) }]);
    second = await gatewayOn(store);
    // connect no longer keeps its frame 1 (acknowledged): it says so, and is not asked to replay it.
    const { tunnel, ack } = await resumeAs(second, TOKENS.alice, {
      sessionId: raw.sessionId,
      token: raw.token,
      ack: 2,
      acked: 1,
    }, "svc");
    tunnels.push(tunnel);
    assert.equal(ack.resumed, true);
    assert.equal(ack.ack, 1);
    // Its next frame, 2, is taken as new (not a gap, not a duplicate).
    tunnel.send({
      type: "notification",
      sessionId: raw.sessionId,
      seq: 2,
      payload: { jsonrpc: "2.0", method: "notifications/tools/list_changed" },
    });
    const mcpSession = await initializeMcp(second, "svc");
    const list = postMcp(second, "svc", rpc(1, "tools/list"), { session: mcpSession });
    const request = await tunnel.next(isRequest("tools/list"));
    assert.equal(request.ack, 2, "frame 2 was received in order");
    respond(tunnel, raw.sessionId, 3, payloadOf(request).id, { tools: [] });
    assert.deepEqual((await (await list).json()).result, { tools: [] });
  } finally {
    for (const tunnel of tunnels) tunnel.socket.close();
    await first?.close();
    await second?.close();
    await store.close();
  }
});

Deno.test("a request that arrives while serve stops gets 503 with Retry-After, never a 404 for a session being saved", async () => {
  const store = new MemoryStore();
  const gateway = await gatewayOn(store);
  const tunnels: TunnelClient[] = [];
  let closing: Promise<void> | undefined;
  try {
    const raw = await registerResumable(gateway, "svc");
    tunnels.push(raw.tunnel);
    const mcpSession = await initializeMcp(gateway, "svc");
    // The stop begins; the listener still accepts while sessions are handed to the store and the
    // link is told 1001 (which this tunnel does not answer, so the stop waits for it).
    closing = gateway.close();
    const response = await postMcp(gateway, "svc", rpc(1, "tools/list"), { session: mcpSession });
    assert.equal(response.status, 503);
    assert.equal(response.headers.get("retry-after"), "1");
    assert.match(JSON.stringify(await response.json()), /shutting down; retry/);
  } finally {
    for (const tunnel of tunnels) tunnel.socket.close();
    await (closing ?? gateway.close());
  }
});
