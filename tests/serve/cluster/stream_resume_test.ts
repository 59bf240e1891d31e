// Streamable HTTP streams resumed on another replica, in process against a real Redis: a call streaming
// progress from the replica that took its POST, its client gone mid-stream and back with Last-Event-ID on
// another replica, which the event id sends to the first: the missed events, the rest and the answer
// arrive once each, in order.

import assert from "node:assert/strict";
import type { JsonObject } from "../../../lib/protocol/jsonrpc.ts";
import { parsePrometheus, sampleValue } from "../../fixtures/prometheus_parser.ts";
import { getSse, initializeMcp, postMcp, readSse, rpc } from "../../fixtures/mcp_http.ts";
import type { SseEvent } from "../../fixtures/mcp_http.ts";
import {
  claimed,
  closeReplicas,
  startReplicas,
  type TestReplica,
} from "../../fixtures/replicas.ts";
import { startRedis } from "../../fixtures/redis_server.ts";
import { serveTestServer, TOKENS, within } from "../../fixtures/test_gateway.ts";

function resumes(replica: TestReplica): number {
  const families = parsePrometheus(replica.metrics.registry.render());
  return sampleValue(families, "mcp_rproxy_stream_forwards_total", { what: "resume" });
}

function messages(events: readonly SseEvent[]): { id: string; message: JsonObject }[] {
  return events.filter((e) => e.data !== "").map((e) => ({
    id: e.id ?? "",
    message: JSON.parse(e.data) as JsonObject,
  }));
}

function progressOf(message: JsonObject): number | undefined {
  if (message.method !== "notifications/progress") return undefined;
  return (message.params as { progress: number }).progress;
}

Deno.test("a stream resumed on another replica: the missed progress, the rest and the answer, once each", async () => {
  const redis = await startRedis();
  const replicas = await startReplicas(redis.url, 3);
  const [holder, first, second] = replicas as [TestReplica, TestReplica, TestReplica];
  const served = await serveTestServer(holder.gateway, "srv");
  const readings: { close(): Promise<void> }[] = [];
  try {
    await claimed(holder, String(served.ack.sessionId));
    const session = await initializeMcp(first.gateway, "srv");
    const initialized = await postMcp(first.gateway, "srv", {
      jsonrpc: "2.0",
      method: "notifications/initialized",
    }, { session });
    await initialized.body?.cancel();
    const steps = 12;
    const call = await postMcp(
      first.gateway,
      "srv",
      rpc(7, "tools/call", {
        name: "slow",
        arguments: { steps, stepMs: 100, tailMs: 50 },
        _meta: { progressToken: "p" },
      }),
      { session },
    );
    assert.equal(call.status, 200);
    const before = readSse(call);
    readings.push(before);
    await before.events.waitFor(
      (e) => e.data !== "" && progressOf(JSON.parse(e.data)) === 3,
      10_000,
      "progress 3 on the first replica",
    );
    await before.close();
    const seen = messages(before.events.items);
    const last = seen.at(-1)!;
    assert.match(last.id, /^r2\.\d+:\d+$/, "event ids name the replica holding the stream");
    const seenProgress = seen.map((m) => progressOf(m.message)).filter((p) => p !== undefined);

    // Back on another replica, from the last event seen; gone again mid-stream.
    const middle = await getSse(second.gateway, "srv", session, { lastEventId: last.id });
    readings.push(middle.reading);
    assert.equal(middle.status, 200);
    await middle.reading.events.waitFor(
      (e) => e.data !== "" && progressOf(JSON.parse(e.data)) === 6,
      10_000,
      "progress 6 on the second replica",
    );
    await middle.reading.close();
    const between = messages(middle.reading.events.items);
    const betweenProgress = between.map((m) => progressOf(m.message)).filter((p) =>
      p !== undefined
    );
    // And back on a third replica, from the last event seen there.
    const resumed = await getSse(holder.gateway, "srv", session, {
      lastEventId: between.at(-1)!.id,
    });
    readings.push(resumed.reading);
    assert.equal(resumed.status, 200);
    const answer = await resumed.reading.events.waitFor(
      (e) => e.data !== "" && JSON.parse(e.data).id === 7,
      20_000,
      "the call's answer on the third replica",
    );
    assert.equal(JSON.parse(answer.data).result.content[0].text, `done ${steps}`);
    await resumed.reading.ended; // the stream is done: its connection ends
    const after = messages(resumed.reading.events.items);
    const afterProgress = after.map((m) => progressOf(m.message)).filter((p) => p !== undefined);
    // Nothing twice, nothing missing: the progress of the three connections together is 1..steps.
    assert.deepEqual(
      [...seenProgress, ...betweenProgress, ...afterProgress],
      Array.from({ length: steps }, (_, i) => i + 1),
    );
    assert.ok(betweenProgress.length > 0 && afterProgress.length > 0, "each connection had some");
    assert.ok([...between, ...after].every((m) => m.id.startsWith("r2.")), "the holder's events");
    assert.deepEqual([resumes(first), resumes(second), resumes(holder)], [0, 1, 1]);

    // From its last event, a finished stream has nothing more: 204, also through the other replica.
    const lastId = after.at(-1)!.id;
    const done = await getSse(second.gateway, "srv", session, { lastEventId: lastId });
    assert.equal(done.status, 204);
    await done.response.body?.cancel();
    // Another owner is refused by the session check, before anything is forwarded.
    const stranger = await getSse(second.gateway, "srv", session, {
      lastEventId: lastId,
      token: TOKENS.bob,
    });
    assert.equal(stranger.status, 404);
    await stranger.response.body?.cancel();
    // A stream the holder does not have: 410 from it, through the other replica.
    const unknown = await getSse(second.gateway, "srv", session, { lastEventId: "r2.999:1" });
    assert.equal(unknown.status, 410);
    assert.match(await unknown.response.text(), /cannot be resumed/);
  } finally {
    for (const reading of readings) await reading.close().catch(() => {});
    await served.close();
    await closeReplicas(replicas);
    await redis.stop();
  }
});

Deno.test("a stream relayed from a replica that dies: the client's connection on the other ends at a beat", async () => {
  const redis = await startRedis();
  // Short liveness, so that a replica gone is seen gone within a few seconds.
  const replicas = await startReplicas(redis.url, 3, { ttlMs: 1_500, beatMs: 300 });
  const [holder, first, second] = replicas as [TestReplica, TestReplica, TestReplica];
  const served = await serveTestServer(holder.gateway, "srv");
  const readings: { close(): Promise<void> }[] = [];
  try {
    await claimed(holder, String(served.ack.sessionId));
    const session = await initializeMcp(first.gateway, "srv");
    const call = await postMcp(
      first.gateway,
      "srv",
      rpc(8, "tools/call", {
        name: "slow",
        arguments: { steps: 200, stepMs: 50 },
        _meta: { progressToken: "q" },
      }),
      { session },
    );
    assert.equal(call.status, 200);
    const before = readSse(call);
    readings.push(before);
    await before.events.waitFor(
      (e) => e.data !== "" && progressOf(JSON.parse(e.data)) === 2,
      10_000,
      "progress 2 on the first replica",
    );
    await before.close();
    const last = messages(before.events.items).at(-1)!;
    const resumed = await getSse(second.gateway, "srv", session, { lastEventId: last.id });
    readings.push(resumed.reading);
    assert.equal(resumed.status, 200);
    await resumed.reading.events.waitFor(
      (e) => e.data !== "" && progressOf(JSON.parse(e.data)) === 4,
      10_000,
      "progress relayed to the second replica",
    );
    // The first replica drops out of the cluster (as a process that died would): it sends nothing more.
    await first.cluster.close();
    await within(resumed.reading.ended, 10_000, "the relayed connection to end");
  } finally {
    for (const reading of readings) await reading.close().catch(() => {});
    await served.close();
    await closeReplicas(replicas);
    await redis.stop();
  }
});
