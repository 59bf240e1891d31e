// No cross-replica call is lost with its holder: a call the dying holder wrote to its link, which the link
// lost, is sent again by its origin to the replica the tunnel resumed on, and answered once; a refusal from
// the old holder after that changes nothing, and a second answer never reaches the caller.

import assert from "node:assert/strict";
import {
  type CallRoute,
  CrossCalls,
  encodeAnswer,
} from "../../../lib/serve/cluster/cross_calls.ts";
import type { EnvelopeDraft } from "../../../lib/serve/cluster/envelope.ts";
import { Payload } from "../../../lib/protocol/payload.ts";
import { claimed, type TestReplica } from "../../fixtures/replicas.ts";
import { startResumableCluster } from "../../fixtures/resumable_cluster.ts";
import { isRequest, payloadOf, resumeAs } from "../../fixtures/resumable_tunnel.ts";
import { connectClient, TOKENS, within } from "../../fixtures/test_gateway.ts";

Deno.test("a call the dead holder wrote to a link that lost it is sent again to the replica the tunnel resumed on, and answered once", async () => {
  await using cluster = await startResumableCluster(3, {
    ttlMs: 1_000,
    beatMs: 100,
    sharedState: true,
    gateway: { resumeWindowMs: 10_000 },
  });
  const { res } = cluster;
  const [holder, taker, origin] = cluster.replicas as [TestReplica, TestReplica, TestReplica];
  const client = await connectClient(origin.gateway, "res", TOKENS.alice);
  let resumed: Awaited<ReturnType<typeof resumeAs>> | undefined;
  try {
    await claimed(holder, res.sessionId);
    const key = `st:tunnel:${res.sessionId}`;
    const deadline = Date.now() + 10_000;
    while ((await holder.cluster.commands.redis.exists(key)) !== 1) {
      if (Date.now() > deadline) throw new Error("Timed out waiting for the tunnel record");
      await holder.cluster.liveness.beat();
    }
    const call = client.callTool({ name: "echo", arguments: { text: "x" } }).catch((
      error: unknown,
    ) => error as Error);
    // r1 wrote the call to its link; the link loses it with r1 (connect never saw it: it resumes with
    // the frames before it).
    const lost = await res.tunnel.next(isRequest("tools/call"), 5_000, "the call via r1");
    const id = payloadOf(lost).id;
    await holder.cluster.liveness.close({ leave: false });
    await holder.cluster.inbox.close();
    res.tunnel.socket.close();
    resumed = await resumeAs(taker.gateway, TOKENS.alice, {
      sessionId: res.sessionId,
      token: res.token,
      ack: Number(lost.seq) - 1,
      acked: 1,
    });
    assert.equal(resumed.ack.resumed, true, JSON.stringify(resumed.ack));
    await claimed(taker, res.sessionId);
    // The origin's beat finds the tunnel on r2 and sends the call there again, as it was.
    const again = await resumed.tunnel.next(isRequest("tools/call"), 10_000, "the call via r2");
    assert.deepEqual(payloadOf(again), payloadOf(lost));
    assert.equal(origin.cluster.metrics?.crossCallsResent.value, 1);
    resumed.tunnel.send({
      type: "response",
      sessionId: res.sessionId,
      seq: 2,
      ack: Number(again.seq),
      payload: { jsonrpc: "2.0", id, result: { content: [{ type: "text", text: "ran once" }] } },
    });
    const answer = await within(call, 5_000, "the call to be answered");
    assert.equal(
      (answer as { content?: { text: string }[] }).content?.[0]?.text,
      "ran once",
      String(answer),
    );
  } finally {
    await client.close().catch(() => {});
    resumed?.tunnel.socket.close();
  }
});

/** Cross calls of replica r3 whose envelopes are recorded, not sent. */
function recorded(): { calls: CrossCalls; sent: EnvelopeDraft[] } {
  const sent: EnvelopeDraft[] = [];
  const calls = new CrossCalls({
    replicaId: "r3",
    send: (draft) => {
      sent.push(draft);
      return Promise.resolve();
    },
    callTimeoutMs: 5_000,
    reroute: () => Promise.resolve(undefined),
  });
  return { calls, sent };
}

const OLD: CallRoute = { sid: "s", rid: "r1", gen: 1, owner: "alice", name: "srv" };
const MOVED: CallRoute = { ...OLD, rid: "r2", gen: 2 };

function answerOf(id: string, text: string): string {
  return encodeAnswer(Payload.fromValue({ jsonrpc: "2.0", id, result: { text } }));
}

Deno.test("CrossCalls.moveRoute() sends each waiting call again to the new holder; the first answer is the caller's, a later one is late", async () => {
  const { calls, sent } = recorded();
  const answer = calls.call(OLD, { jsonrpc: "2.0", id: 7, method: "tools/call" }, {});
  const other = calls.call(
    { ...OLD, sid: "t" },
    { jsonrpc: "2.0", id: 8, method: "tools/call" },
    {},
  );
  calls.moveRoute(OLD, MOVED);
  assert.deepEqual(sent.map((d) => [d.target, d.generation]), [["r1", 1], ["r1", 1], ["r2", 2]]);
  assert.equal(sent[2]!.id, sent[0]!.id, "the same tunnel id");
  assert.equal(sent[2]!.payload, sent[0]!.payload, "the same payload");
  // The old holder's refusal comes after the call went on: it changes nothing.
  calls.onEnvelope({
    kind: "undeliverable",
    origin: "r1",
    target: "r3",
    deadline: 0,
    generation: 1,
    sid: "s",
    id: sent[0]!.id,
    payload: JSON.stringify({ elsewhere: false, message: "its deadline passed" }),
    nonce: "n",
    ts: Date.now(),
    mac: "",
  });
  for (let i = 0; i < 100; i++) await Promise.resolve();
  assert.equal(calls.size, 2, "the call still waits");
  assert.equal(calls.answer(sent[0]!.id, answerOf(sent[0]!.id, "first")), true);
  assert.equal(calls.answer(sent[0]!.id, answerOf(sent[0]!.id, "second")), false, "late");
  assert.deepEqual(await answer, { jsonrpc: "2.0", id: 7, result: { text: "first" } });
  calls.failAll("done");
  await other;
});

/** How many XADDs Redis has run: the envelopes sent, answers included. */
async function xadds(replica: TestReplica): Promise<number> {
  const info = String(await replica.cluster.commands.redis.info("commandstats"));
  return Number(/cmdstat_xadd:calls=(\d+)/.exec(info)?.[1] ?? 0);
}

Deno.test("just after Redis came back empty, an answer for an origin that has not beaten again yet is retried, not dropped as for a replica gone", async () => {
  // No beats but those the test makes.
  await using cluster = await startResumableCluster(2, { ttlMs: 120_000, beatMs: 60_000 });
  const { res } = cluster;
  const [holder, origin] = cluster.replicas as [TestReplica, TestReplica];
  const client = await connectClient(origin.gateway, "res", TOKENS.alice);
  try {
    await claimed(holder, res.sessionId);
    // The moment after Redis came back empty: the holder noticed (and published its records again);
    // r2 has not yet, so it has no inbox and the holder's last beat did not see it.
    const redisNow = holder.cluster.commands.redis;
    const deadline = Date.now() + 5_000;
    do {
      if (Date.now() > deadline) throw new Error("Timed out waiting for r2 to be unseen");
      await redisNow.multi().del("inbox:r2").zrem("replicas", "r2").exec();
      await holder.cluster.liveness.beat();
    } while (holder.cluster.liveness.alive("r2"));
    holder.cluster.events.dispatchEvent(new Event("lost"));
    const call = client.callTool({ name: "echo", arguments: { text: "x" } }).catch((
      error: unknown,
    ) => error as Error);
    const request = await res.tunnel.next(isRequest("tools/call"), 5_000, "the call via r1");
    const before = await xadds(holder);
    res.tunnel.send({
      type: "response",
      sessionId: res.sessionId,
      seq: 2,
      ack: Number(request.seq),
      payload: {
        jsonrpc: "2.0",
        id: payloadOf(request).id,
        result: { content: [{ type: "text", text: "kept" }] },
      },
    });
    // The holder tried r2's inbox, which is not there...
    while ((await xadds(holder)) === before) {
      if (Date.now() > deadline) {
        throw new Error("Timed out waiting for the holder to send the answer");
      }
    }
    assert.equal(await redisNow.exists("inbox:r2"), 0);
    // ...then r2 makes its inbox again (as at its next beat): the answer, tried again, arrives.
    await origin.cluster.inbox.upkeep();
    const answer = await within(call, 5_000, "the call to be answered");
    assert.equal(
      (answer as { content?: { text: string }[] }).content?.[0]?.text,
      "kept",
      String(answer),
    );
    assert.equal(holder.metrics.errors.value("late_response"), 0);
  } finally {
    await client.close().catch(() => {});
  }
});
