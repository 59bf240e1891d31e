// SSE link POSTs across replicas, in process against a real Redis: the link's stream on one replica, its
// POSTs on another, forwarded to the first and answered with its status after the same checks as a local
// POST (owner, number, one at a time), and counted.

import assert from "node:assert/strict";
import { parsePrometheus, sampleValue } from "../../fixtures/prometheus_parser.ts";
import { RawSseLink, register } from "../../fixtures/raw_sse_link.ts";
import { closeReplicas, startReplicas, type TestReplica } from "../../fixtures/replicas.ts";
import { startRedis } from "../../fixtures/redis_server.ts";
import { TOKENS } from "../../fixtures/test_gateway.ts";

function forwards(replica: TestReplica): number {
  const families = parsePrometheus(replica.metrics.registry.render());
  return sampleValue(families, "mcp_rproxy_stream_forwards_total", { what: "link_post" });
}

Deno.test("SSE link across replicas: POSTs landing on another replica reach the link, in order, from its owner only", async () => {
  const redis = await startRedis();
  const replicas = await startReplicas(redis.url, 2);
  const [holder, other] = replicas as [TestReplica, TestReplica];
  const link = await RawSseLink.open(holder.gateway, TOKENS.alice);
  try {
    assert.ok(link instanceof RawSseLink, "the stream opened");
    assert.match(link.postUrl.pathname, /\/reverse-proxy\/sse\/r1\.[0-9a-f-]{36}$/);
    const via = other.gateway.url;
    // Refused as on the holder itself: another owner, no number.
    const stranger = await link.post(0, register("raw-across"), TOKENS.bob, via);
    assert.equal(stranger.status, 403, stranger.text);
    assert.equal(
      (await link.post(undefined, register("raw-across"), TOKENS.alice, via)).status,
      400,
    );
    const sent = await link.post(0, register("raw-across"), TOKENS.alice, via);
    assert.equal(sent.status, 202, sent.text);
    const ack = await link.frame("register_ack");
    assert.equal(ack.status, "success");
    // The same number again (a retry): taken once. Were it taken again, a second register on a link
    // without channels would close it.
    assert.equal((await link.post(0, register("raw-across"), TOKENS.alice, via)).status, 202);
    assert.equal(
      (await link.post(1, JSON.stringify({ type: "heartbeat" }), TOKENS.alice, via)).status,
      202,
    );
    await link.frame("heartbeat");
    // The holder takes the next number on its own as well.
    assert.equal((await link.post(2, JSON.stringify({ type: "heartbeat" }))).status, 202);
    await link.frame("heartbeat");
    assert.equal(link.events.some((e) => e.event === "close"), false);
    assert.ok(forwards(other) >= 4, `forwarded ${forwards(other)}`);
    assert.equal(forwards(holder), 0, "the holder takes its own link's POSTs");
    // A gap closes the link, whichever replica the POST reached.
    const gap = await link.post(5, JSON.stringify({ type: "heartbeat" }), TOKENS.alice, via);
    assert.equal(gap.status, 409, gap.text);
    assert.equal((await link.closed()).code, 1002);
    // The link is gone: its holder says so through the other replica.
    const gone = await link.post(6, JSON.stringify({ type: "heartbeat" }), TOKENS.alice, via);
    assert.equal(gone.status, 404, gone.text);
  } finally {
    if (link instanceof RawSseLink) await link.close();
    await closeReplicas(replicas);
    await redis.stop();
  }
});

Deno.test("SSE link across replicas: a POST for a link whose replica is gone gets 404", async () => {
  const redis = await startRedis();
  const replicas = await startReplicas(redis.url, 1);
  const [only] = replicas as [TestReplica];
  try {
    const response = await fetch(
      `${only.gateway.url}/reverse-proxy/sse/gone-replica.${crypto.randomUUID()}`,
      {
        method: "POST",
        headers: { authorization: `Bearer ${TOKENS.alice}`, "x-post-seq": "0" },
        body: register("raw-gone"),
      },
    );
    assert.equal(response.status, 404);
    assert.match(await response.text(), /replica gone-replica holding it is gone/);
  } finally {
    await closeReplicas(replicas);
    await redis.stop();
  }
});

Deno.test("SSE link across replicas: a POST the owner's share cannot hold is refused 503 where it landed, before it is read", async () => {
  const share = 256 * 1024;
  const redis = await startRedis();
  const replicas = await startReplicas(redis.url, 2, {
    gateway: { memoryPerOwnerBytes: share, memoryBudgetBytes: 4 * share },
  });
  const [holder, other] = replicas as [TestReplica, TestReplica];
  const link = await RawSseLink.open(holder.gateway, TOKENS.alice);
  try {
    assert.ok(link instanceof RawSseLink, "the stream opened");
    const via = other.gateway.url;
    assert.equal((await link.post(0, register("raw-share"), TOKENS.alice, via)).status, 202);
    await link.frame("register_ack");
    const big = JSON.stringify({ type: "notification", payload: { pad: "x".repeat(share) } });
    const refused = await link.post(1, big, TOKENS.alice, via);
    assert.equal(refused.status, 503, refused.text);
    assert.match(refused.text, /memory share/);
    // Refused before it was read or sent on: the holder never saw it, and the link goes on.
    const next = await link.post(1, JSON.stringify({ type: "heartbeat" }), TOKENS.alice, via);
    assert.equal(next.status, 202, next.text);
    await link.frame("heartbeat");
  } finally {
    if (link instanceof RawSseLink) await link.close();
    await closeReplicas(replicas);
    await redis.stop();
  }
});
