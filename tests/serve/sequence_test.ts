// serve's receive side of the `resume` extension, made visible to MCP clients: a frame replayed with a `seq`
// the gateway already received is dropped (an SDK client hears a notification or a server request once), a
// frame after a gap drops the link so that the client resumes, and a resume whose ack lies beyond what the
// gateway sent ends the session ('bad-ack'). The tunnel is a raw WebSocket that numbers its frames by hand.

import assert from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import {
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { ErrorCode, type JsonObject } from "../../lib/protocol/jsonrpc.ts";
import type { Gateway } from "../../lib/serve/gateway.ts";
import { Collector } from "../fixtures/collector.ts";
import {
  connectClient,
  startTestGateway,
  TOKENS,
  type TunnelClient,
  within,
} from "../fixtures/test_gateway.ts";
import {
  isRequest,
  payloadOf,
  registerResumable,
  type ResumableTunnel,
  resumeAs,
  sessionInfo,
  until,
} from "../fixtures/resumable_tunnel.ts";

/** A `notifications/message` frame whose `data` names it, numbered `seq`. */
function logFrame(sessionId: string, seq: number, data: string, ack = 2): JsonObject {
  return {
    type: "notification",
    sessionId,
    seq,
    ack,
    payload: {
      jsonrpc: "2.0",
      method: "notifications/message",
      params: { level: "info", data },
    },
  };
}

/** An SDK client of `name` that records the `data` of every log notification it hears. */
async function listeningClient(
  gateway: Gateway,
  name: string,
  options: { roots?: string[] } = {},
): Promise<{ client: Client; heard: Collector<string> }> {
  const client = await connectClient(gateway, name, TOKENS.alice, options);
  const heard = new Collector<string>();
  client.setNotificationHandler(
    LoggingMessageNotificationSchema,
    (notification: { params: { data?: unknown } }) => heard.push(String(notification.params.data)),
  );
  return { client, heard };
}

/**
 * The SDK opens its GET stream in the background: sends numbered probes (from `seq`) until the client
 * hears one. Returns the next free seq.
 */
async function untilListening(
  tunnel: ResumableTunnel,
  heard: Collector<string>,
  seq: number,
): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    tunnel.tunnel.send(logFrame(tunnel.sessionId, seq++, `probe-${attempt}`));
    const ok = await heard.waitFor((d) => d.startsWith("probe-"), 200, "a probe").then(
      () => true,
      () => false,
    );
    if (ok) return seq;
  }
  throw new Error("The MCP client's GET stream never delivered a notification");
}

/** Drops the link and waits until the gateway holds the session detached. */
async function dropLink(gateway: Gateway, tunnel: ResumableTunnel): Promise<void> {
  await tunnel.tunnel.close();
  await until("the session to detach", async () => {
    return (await sessionInfo(gateway, tunnel.sessionId))?.detached === true;
  });
}

function count(items: readonly string[], value: string): number {
  return items.filter((item) => item === value).length;
}

Deno.test("a notification replayed with a seq serve already received reaches the MCP client once", async () => {
  const gateway = await startTestGateway();
  const tunnels: TunnelClient[] = [];
  let client: Client | undefined;
  try {
    const first = await registerResumable(gateway, "dup");
    tunnels.push(first.tunnel);
    const listener = await listeningClient(gateway, "dup");
    client = listener.client;
    let seq = await untilListening(first, listener.heard, 2);
    const once = seq++;
    first.tunnel.send(logFrame(first.sessionId, once, "once"));
    await listener.heard.waitFor((d) => d === "once", 5_000, "the notification");
    // The link drops; the client resumes and, not trusting the gateway's ack, replays from an older point.
    await dropLink(gateway, first);
    const { tunnel, ack } = await resumeAs(gateway, TOKENS.alice, {
      sessionId: first.sessionId,
      token: first.token,
      ack: 2,
    }, "dup");
    tunnels.push(tunnel);
    assert.equal(ack.resumed, true);
    assert.equal(ack.ack, once, "the gateway says what it received");
    tunnel.send(logFrame(first.sessionId, once, "once"));
    tunnel.send(logFrame(first.sessionId, seq++, "marker"));
    // The GET stream keeps order: once the marker is here, a duplicate would be too.
    await listener.heard.waitFor((d) => d === "marker", 5_000, "the marker");
    assert.equal(count(listener.heard.items, "once"), 1, `heard ${listener.heard.items}`);
    assert.equal(count(listener.heard.items, "marker"), 1);
    assert.ok(!tunnel.frames.some((f) => f.type === "error"), "a duplicate is dropped silently");
  } finally {
    await client?.close();
    for (const tunnel of tunnels) await tunnel.close();
    await gateway.close();
  }
});

Deno.test("a server request replayed with a seq serve already received reaches the MCP client once", async () => {
  const gateway = await startTestGateway();
  const tunnels: TunnelClient[] = [];
  let client: Client | undefined;
  try {
    const first = await registerResumable(gateway, "dup");
    tunnels.push(first.tunnel);
    const listener = await listeningClient(gateway, "dup", { roots: ["file:///dup"] });
    client = listener.client;
    const asked = new Collector<string>();
    client.setRequestHandler(ListRootsRequestSchema, () => {
      asked.push("roots/list");
      return { roots: [{ uri: "file:///dup", name: "dup" }] };
    });
    let seq = await untilListening(first, listener.heard, 2);
    const rootsSeq = seq++;
    const roots = {
      type: "request",
      sessionId: first.sessionId,
      seq: rootsSeq,
      ack: 2,
      payload: { jsonrpc: "2.0", id: "srv-roots-1", method: "roots/list" },
    };
    first.tunnel.send(roots);
    const answer = await first.tunnel.next(
      (f) => f.type === "response" && payloadOf(f).id === "srv-roots-1",
      5_000,
      "the client's answer to roots/list",
    );
    assert.deepEqual(payloadOf(answer).result, {
      roots: [{ uri: "file:///dup", name: "dup" }],
    });
    await dropLink(gateway, first);
    const { tunnel, ack } = await resumeAs(gateway, TOKENS.alice, {
      sessionId: first.sessionId,
      token: first.token,
      ack: Number(answer.seq),
    }, "dup");
    tunnels.push(tunnel);
    assert.equal(ack.resumed, true);
    tunnel.send(roots);
    tunnel.send(logFrame(first.sessionId, seq++, "marker"));
    await listener.heard.waitFor((d) => d === "marker", 5_000, "the marker");
    // A new request after the marker: by the time it is answered, a duplicate would have been answered too.
    tunnel.send({
      type: "request",
      sessionId: first.sessionId,
      seq: seq++,
      ack: Number(answer.seq),
      payload: { jsonrpc: "2.0", id: "srv-roots-2", method: "roots/list" },
    });
    await tunnel.next(
      (f) => f.type === "response" && payloadOf(f).id === "srv-roots-2",
      5_000,
      "the answer to the second, new roots/list",
    );
    assert.equal(asked.items.length, 2, "the client was asked once per distinct request");
    assert.ok(
      !tunnel.frames.some((f) => f.type === "response" && payloadOf(f).id === "srv-roots-1"),
      "no second answer to the replayed request",
    );
  } finally {
    await client?.close();
    for (const tunnel of tunnels) await tunnel.close();
    await gateway.close();
  }
});

Deno.test("a frame after a sequence gap is not processed: serve drops the link, the client resumes and fills the gap", async () => {
  const gateway = await startTestGateway();
  const tunnels: TunnelClient[] = [];
  let client: Client | undefined;
  try {
    const first = await registerResumable(gateway, "gap");
    tunnels.push(first.tunnel);
    const listener = await listeningClient(gateway, "gap");
    client = listener.client;
    const next = await untilListening(first, listener.heard, 2);
    // Frame `next` is lost on the way; `next + 1` arrives.
    first.tunnel.send(logFrame(first.sessionId, next + 1, "after-gap"));
    const closed = await within(first.tunnel.closed, 5_000, "serve to drop the link");
    assert.equal(closed.code, 1001);
    assert.match(closed.reason, /sequence gap/);
    await until("the session to detach", async () => {
      return (await sessionInfo(gateway, first.sessionId))?.detached === true;
    });
    const { tunnel, ack } = await resumeAs(gateway, TOKENS.alice, {
      sessionId: first.sessionId,
      token: first.token,
      ack: 2,
    }, "gap");
    tunnels.push(tunnel);
    assert.equal(ack.resumed, true);
    assert.equal(ack.ack, next - 1, "the frame after the gap was not taken as received");
    tunnel.send(logFrame(first.sessionId, next, "missing"));
    tunnel.send(logFrame(first.sessionId, next + 1, "after-gap"));
    tunnel.send(logFrame(first.sessionId, next + 2, "marker"));
    await listener.heard.waitFor((d) => d === "marker", 5_000, "the marker");
    const tail = listener.heard.items.filter((d) => !d.startsWith("probe-"));
    assert.deepEqual(tail, ["missing", "after-gap", "marker"], "in order, each once");
  } finally {
    await client?.close();
    for (const tunnel of tunnels) await tunnel.close();
    await gateway.close();
  }
});

Deno.test("a resume that acknowledges frames serve never sent is refused 'bad-ack' and ends the session", async () => {
  const gateway = await startTestGateway();
  const tunnels: TunnelClient[] = [];
  try {
    const first = await registerResumable(gateway, "badack");
    tunnels.push(first.tunnel);
    const answered = fetch(`${gateway.url}/reverse-proxy/sessions/${first.sessionId}/request`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKENS.alice}`, "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: "pending", method: "tools/list" }),
    }).then((response) => response.json() as Promise<JsonObject>);
    const call = await first.tunnel.next(isRequest("tools/list"), 5_000, "the call");
    assert.equal(call.seq, 3, "the gateway sent seq 1..3");
    await dropLink(gateway, first);
    const refused = await resumeAs(gateway, TOKENS.alice, {
      sessionId: first.sessionId,
      token: first.token,
      ack: 99,
    }, "badack");
    tunnels.push(refused.tunnel);
    assert.equal(refused.ack.resumed, false);
    assert.equal(refused.ack.resumeError, "bad-ack");
    assert.notEqual(refused.ack.sessionId, first.sessionId, "registered afresh");
    assert.equal(refused.ack.name, "badack", "the old session's name was freed");
    // The old session ended: its call failed, it is gone, and it cannot be resumed any more.
    const response = await within(answered, 5_000, "the pending call to fail");
    const error = response.error as JsonObject;
    assert.equal(error.code, ErrorCode.TunnelUnavailable);
    assert.match(String(error.message), /acknowledged 99/);
    assert.equal(await sessionInfo(gateway, first.sessionId), undefined);
    const again = await resumeAs(gateway, TOKENS.alice, {
      sessionId: first.sessionId,
      token: first.token,
      ack: 3,
    }, "badack-again");
    tunnels.push(again.tunnel);
    assert.equal(again.ack.resumed, false);
    assert.equal(again.ack.resumeError, "bad-ack", "the end is remembered with its reason");
  } finally {
    for (const tunnel of tunnels) await tunnel.close();
    await gateway.close();
  }
});

Deno.test("a heartbeat's ack frees serve's replay buffer, so a quiet session stays resumable", async () => {
  // Room for 6 frames: initialize, initialized, and 4 calls. Without the heartbeat's ack being taken,
  // 4 more calls overflow the buffer and the session cannot be resumed.
  const gateway = await startTestGateway({ replayFrames: 6, callTimeoutMs: 30_000 });
  const first = await registerResumable(gateway);
  const calls: Promise<Response | undefined>[] = [];
  // Pending until the end: the gateway's shutdown fails them, which is expected here.
  const call = (id: number) =>
    fetch(`${gateway.url}/reverse-proxy/sessions/${first.sessionId}/request`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKENS.alice}`, "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id, method: "tools/list" }),
    }).catch(() => undefined);
  let resumed: Awaited<ReturnType<typeof resumeAs>> | undefined;
  try {
    for (let id = 1; id <= 4; id++) {
      calls.push(call(id));
      await first.tunnel.next(isRequest("tools/list"), 5_000, `call ${id}`);
    }
    // Everything received so far (seq 6) acknowledged by a heartbeat only.
    first.tunnel.send({ type: "heartbeat", sessionId: first.sessionId, ack: 6 });
    await first.tunnel.next((f) => f.type === "heartbeat", 5_000, "the heartbeat reply");
    for (let id = 5; id <= 8; id++) {
      calls.push(call(id));
      await first.tunnel.next(isRequest("tools/list"), 5_000, `call ${id}`);
    }
    await first.tunnel.close();
    await until("the session to detach", async () => {
      return (await sessionInfo(gateway, first.sessionId))?.detached === true;
    });
    resumed = await resumeAs(gateway, TOKENS.alice, {
      sessionId: first.sessionId,
      token: first.token,
      ack: 6,
    });
    assert.equal(resumed.ack.resumed, true, `resume refused: ${resumed.ack.resumeError}`);
  } finally {
    await resumed?.tunnel.close();
    await gateway.close();
    for (const pending of calls) await (await pending)?.body?.cancel();
  }
});
