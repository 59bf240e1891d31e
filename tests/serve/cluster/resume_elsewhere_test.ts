// A tunnel resumed on another replica (serve's state shared in Redis): the new holder restores the session
// from its record and claims it, the old holder closes its link with 4002, the answers the client replays
// reach the callers on whichever replica they wait, and an answer for a call from a replica that is gone
// is dropped and counted at once (no caller is left for it), not retried for seconds.

import assert from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import {
  type CallRoute,
  CrossCalls,
  encodeAnswer,
  firstCallNumber,
  originOf,
} from "../../../lib/serve/cluster/cross_calls.ts";
import type { EnvelopeDraft } from "../../../lib/serve/cluster/envelope.ts";
import { Payload } from "../../../lib/protocol/payload.ts";
import { claimed, type TestReplica, waitReadiness } from "../../fixtures/replicas.ts";
import { startResumableCluster } from "../../fixtures/resumable_cluster.ts";
import { isRequest, payloadOf, resumeAs } from "../../fixtures/resumable_tunnel.ts";
import { connectClient, TOKENS, within } from "../../fixtures/test_gateway.ts";

/** Polls `check`, each Redis round trip of a beat pacing the next, until it holds or `ms` ran out. */
async function untilBeat(replica: TestReplica, what: string, check: () => Promise<boolean>) {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await replica.cluster.liveness.beat();
  }
}

Deno.test("a tunnel resumed on another replica: answers reach live callers, one for a gone replica is dropped and counted at once", async () => {
  await using cluster = await startResumableCluster(3, {
    ttlMs: 1_000,
    beatMs: 100,
    sharedState: true,
  });
  const { res } = cluster;
  const [holder, taker, gone] = cluster.replicas as [TestReplica, TestReplica, TestReplica];
  const clients: Client[] = [];
  // The gateway's last frame received (its initialize and notifications/initialized were 1 and 2).
  let lastSeq = 2;
  res.tunnel.onFrame = (frame) => lastSeq = Math.max(lastSeq, Number(frame.seq ?? 0));
  try {
    await claimed(holder, res.sessionId);
    const redisKey = `st:tunnel:${res.sessionId}`;
    await untilBeat(
      holder,
      "the tunnel record",
      async () => (await holder.cluster.commands.redis.exists(redisKey)) === 1,
    );
    // One caller on the replica the tunnel will move to, one on a replica that will die.
    for (const replica of [taker, gone]) {
      clients.push(await connectClient(replica.gateway, "res", TOKENS.alice));
    }
    const calls = clients.map((client, i) =>
      client.callTool({ name: "echo", arguments: { text: `c${i}` } }).catch((error: unknown) =>
        error
      )
    );
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const request = await res.tunnel.next(isRequest("tools/call"), 5_000, "a call via r1");
      ids.push(String(payloadOf(request).id));
    }
    const idOf = (rid: string) => ids.find((id) => id.startsWith(`${rid}.`))!;
    assert.ok(idOf("r2") && idOf("r3"), "each call names its origin replica");

    // r3 dies: no more beats, its inbox goes with its liveness.
    await gone.cluster.liveness.close({ leave: false });
    await gone.cluster.inbox.close();
    await untilBeat(taker, "r3 to be gone", async () =>
      !taker.cluster.liveness.alive("r3") &&
      (await taker.cluster.commands.redis.exists("inbox:r3")) === 0);

    // The link to r1 drops; the client resumes on r2, which has never held the session.
    res.tunnel.socket.close();
    const resumed = await resumeAs(taker.gateway, TOKENS.alice, {
      sessionId: res.sessionId,
      token: res.token,
      ack: lastSeq,
      acked: 1,
    });
    assert.equal(resumed.ack.resumed, true, JSON.stringify(resumed.ack));
    assert.equal(resumed.ack.sessionId, res.sessionId);
    await claimed(taker, res.sessionId);
    await untilBeat(
      holder,
      "r1 to let the session go",
      () => Promise.resolve(holder.cluster.generation(res.sessionId) === undefined),
    );

    const late = () => taker.metrics.errors.value("late_response");
    const lateBefore = late();
    let seq = 2;
    for (const rid of ["r3", "r2"]) {
      resumed.tunnel.send({
        type: "response",
        sessionId: res.sessionId,
        seq: seq++,
        ack: lastSeq,
        payload: {
          jsonrpc: "2.0",
          id: idOf(rid),
          result: { content: [{ type: "text", text: `answer for ${rid}` }] },
        },
      });
    }
    const first = await within(calls[0]!, 5_000, "the call on r2 to be answered");
    assert.deepEqual(
      (first as { content: { text: string }[] }).content[0]!.text,
      "answer for r2",
    );
    // Dropped at once: well within the second an answer for a live origin without an inbox waits.
    const started = performance.now();
    while (late() === lateBefore) {
      if (performance.now() - started > 900) {
        assert.fail("the answer for r3 was not dropped at once");
      }
      await taker.cluster.commands.redis.ping();
    }
    assert.equal(late(), lateBefore + 1);
    // r1 let the session go as superseded: the record stays the new holder's, with no ended mark.
    assert.equal(await taker.cluster.commands.redis.exists(redisKey), 1, "the record is kept");
    assert.equal(await taker.cluster.commands.redis.exists(`st:ended:${res.sessionId}`), 0);
    resumed.tunnel.socket.close();
  } finally {
    for (const client of clients) await client.close().catch(() => {});
  }
});

Deno.test("a call whose holder dies waits for the resume window, then gets a JSON-RPC error saying so", async () => {
  const windowMs = 1_500;
  await using cluster = await startResumableCluster(2, {
    ttlMs: 1_000,
    beatMs: 100,
    sharedState: true,
    gateway: { resumeWindowMs: windowMs },
  });
  const { res } = cluster;
  const [holder, origin] = cluster.replicas as [TestReplica, TestReplica];
  const client = await connectClient(origin.gateway, "res", TOKENS.alice);
  try {
    await claimed(holder, res.sessionId);
    await untilBeat(
      holder,
      "the tunnel record",
      async () => (await holder.cluster.commands.redis.exists(`st:tunnel:${res.sessionId}`)) === 1,
    );
    const call = client.callTool({ name: "echo", arguments: { text: "x" } }).catch((
      error: unknown,
    ) => error as Error);
    await res.tunnel.next(isRequest("tools/call"), 5_000, "the call via r1");
    // r1 dies: no more beats or renewals; nobody resumes its tunnel.
    await holder.cluster.liveness.close({ leave: false });
    await holder.cluster.inbox.close();
    const died = performance.now();
    const failed = await within(call, 10_000, "the call to fail");
    const waited = performance.now() - died;
    assert.match(
      String((failed as Error).message),
      /replica r1 holding its tunnel is gone and the tunnel was not resumed within 1.5 s/,
    );
    assert.ok(waited >= windowMs, `failed after ${waited.toFixed(0)} ms, before the window`);
  } finally {
    await client.close().catch(() => {});
  }
});

Deno.test("a call whose holder dies follows its tunnel to the replica it resumed on, and completes past the resume window", async () => {
  const windowMs = 1_000;
  await using cluster = await startResumableCluster(3, {
    ttlMs: 1_000,
    beatMs: 100,
    sharedState: true,
    gateway: { resumeWindowMs: windowMs },
  });
  const { res } = cluster;
  const [holder, taker, origin] = cluster.replicas as [TestReplica, TestReplica, TestReplica];
  let lastSeq = 2;
  res.tunnel.onFrame = (frame) => lastSeq = Math.max(lastSeq, Number(frame.seq ?? 0));
  const client = await connectClient(origin.gateway, "res", TOKENS.alice);
  let resumed: Awaited<ReturnType<typeof resumeAs>> | undefined;
  try {
    await claimed(holder, res.sessionId);
    await untilBeat(
      holder,
      "the tunnel record",
      async () => (await holder.cluster.commands.redis.exists(`st:tunnel:${res.sessionId}`)) === 1,
    );
    const call = client.callTool({ name: "echo", arguments: { text: "x" } }).catch((
      error: unknown,
    ) => error as Error);
    const request = await res.tunnel.next(isRequest("tools/call"), 5_000, "the call via r1");
    // r1 dies with its link; the client resumes on r2.
    await holder.cluster.liveness.close({ leave: false });
    await holder.cluster.inbox.close();
    res.tunnel.socket.close();
    resumed = await resumeAs(taker.gateway, TOKENS.alice, {
      sessionId: res.sessionId,
      token: res.token,
      ack: lastSeq,
      acked: 1,
    });
    assert.equal(resumed.ack.resumed, true, JSON.stringify(resumed.ack));
    await claimed(taker, res.sessionId);
    // Past r1's liveness and twice the window, beat by beat on the origin, the call still waits...
    const started = performance.now();
    while (performance.now() - started < 2 * windowMs + 1_000) await origin.cluster.liveness.beat();
    assert.equal(origin.cluster.liveness.alive("r1"), false);
    // ...and the answer the server gives on the resumed link reaches it.
    resumed.tunnel.send({
      type: "response",
      sessionId: res.sessionId,
      seq: 2,
      ack: lastSeq,
      payload: {
        jsonrpc: "2.0",
        id: payloadOf(request).id,
        result: { content: [{ type: "text", text: "late but whole" }] },
      },
    });
    const answer = await within(call, 5_000, "the call to be answered");
    assert.equal(
      (answer as { content?: { text: string }[] }).content?.[0]?.text,
      "late but whole",
      String(answer),
    );
  } finally {
    await client.close().catch(() => {});
    resumed?.tunnel.socket.close();
  }
});

Deno.test("cross-replica call numbers of a replica started again under its id start past its earlier process's", () => {
  const earlier = firstCallNumber(1_796_152_033_101);
  const later = firstCallNumber(1_796_152_033_102);
  assert.ok(later >= earlier + 1_000, "a millisecond later leaves room for 1000 calls");
  assert.ok(Number.isSafeInteger(firstCallNumber(4_102_444_800_000)), "safe until 2100");
  assert.equal(originOf(`r1.${firstCallNumber()}`), "r1");
});

Deno.test("a call whose holder died with a tunnel that ended (no record left) gets its JSON-RPC error at once, not after the window", async () => {
  await using cluster = await startResumableCluster(2, {
    ttlMs: 1_000,
    beatMs: 100,
    sharedState: true,
    gateway: { resumeWindowMs: 60_000 },
  });
  const { res } = cluster;
  const [holder, origin] = cluster.replicas as [TestReplica, TestReplica];
  const client = await connectClient(origin.gateway, "res", TOKENS.alice);
  try {
    await claimed(holder, res.sessionId);
    const key = `st:tunnel:${res.sessionId}`;
    await untilBeat(
      holder,
      "the tunnel record",
      async () => (await holder.cluster.commands.redis.exists(key)) === 1,
    );
    const call = client.callTool({ name: "echo", arguments: { text: "x" } }).catch((
      error: unknown,
    ) => error as Error);
    await res.tunnel.next(isRequest("tools/call"), 5_000, "the call via r1");
    await holder.cluster.liveness.close({ leave: false });
    await holder.cluster.inbox.close();
    // What the holder's end of the session leaves: no record (its window ran out, or it was evicted).
    await origin.cluster.commands.redis.del(key);
    const failed = await within(call, 10_000, "the call to fail before the 60 s window");
    assert.match(
      String((failed as Error).message),
      /replica r1 holding its tunnel is gone and the tunnel ended before answering/,
    );
  } finally {
    await client.close().catch(() => {});
  }
});

Deno.test("after Redis restarts empty the holder saves its tunnel records again: the tunnel still resumes on another replica", async () => {
  await using cluster = await startResumableCluster(2, {
    ttlMs: 2_000,
    beatMs: 100,
    sharedState: true,
  });
  const { redis, res } = cluster;
  const [holder, taker] = cluster.replicas as [TestReplica, TestReplica];
  let resumed: Awaited<ReturnType<typeof resumeAs>> | undefined;
  try {
    await claimed(holder, res.sessionId);
    const key = `st:tunnel:${res.sessionId}`;
    await untilBeat(
      holder,
      "the tunnel record",
      async () => (await holder.cluster.commands.redis.exists(key)) === 1,
    );
    await redis.restart();
    for (const replica of cluster.replicas) await waitReadiness(replica.cluster, true);
    await claimed(holder, res.sessionId);
    await untilBeat(
      holder,
      "the tunnel record again",
      async () => (await holder.cluster.commands.redis.exists(key)) === 1,
    );
    res.tunnel.socket.close();
    resumed = await resumeAs(taker.gateway, TOKENS.alice, {
      sessionId: res.sessionId,
      token: res.token,
      ack: 2,
      acked: 1,
    });
    assert.equal(resumed.ack.resumed, true, JSON.stringify(resumed.ack));
  } finally {
    resumed?.tunnel.socket.close();
  }
});

Deno.test("a call that waited unread in a dead holder's inbox while its tunnel moved goes to the new holder when refused", async () => {
  const sent: EnvelopeDraft[] = [];
  const old: CallRoute = { sid: "s", rid: "r1", gen: 1, owner: "alice", name: "srv" };
  const moved: CallRoute = { ...old, rid: "r2", gen: 2 };
  const calls = new CrossCalls({
    replicaId: "r3",
    send: (draft) => {
      sent.push(draft);
      return Promise.resolve();
    },
    callTimeoutMs: 5_000,
    reroute: () => Promise.resolve(moved),
  });
  const answer = calls.call(old, { jsonrpc: "2.0", id: 7, method: "tools/call" }, {});
  assert.deepEqual(sent.map((d) => d.target), ["r1"]);
  // The tunnel resumed on r2 (a beat moved the call there and sent it again) while the envelope sat
  // in r1's inbox...
  calls.moveRoute(old, moved);
  // ...and r1, started again under its id, read it and refused it: it never reached the server, and
  // it went to r2 already.
  calls.onEnvelope({
    kind: "undeliverable",
    origin: "r1",
    target: "r3",
    deadline: 0,
    generation: 1,
    sid: "s",
    id: sent[0]!.id,
    payload: JSON.stringify({ elsewhere: true, message: "not held by replica r1 any more" }),
    nonce: "n",
    ts: Date.now(),
    mac: "",
  });
  for (let i = 0; i < 100 && sent.length < 2; i++) await Promise.resolve();
  assert.deepEqual(sent.map((d) => d.target), ["r1", "r2"], "sent to the new holder, once");
  assert.equal(sent[1]!.generation, 2);
  calls.answer(sent[1]!.id, encodeAnswer(Payload.fromValue({ jsonrpc: "2.0", id: 0, result: {} })));
  assert.deepEqual(await answer, { jsonrpc: "2.0", id: 7, result: {} });
});
