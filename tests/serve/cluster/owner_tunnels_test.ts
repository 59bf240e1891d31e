// --max-sessions-per-owner across replicas, against a real Redis: an owner's tunnel sessions on every
// replica count together (`ts:<owner>`), so a token holder cannot register the limit once per replica.
// A registration past it is closed with 4029 on whichever replica it lands, another owner is not
// affected, and a session that ends frees its place.

import assert from "node:assert/strict";
import { CloseCode } from "../../../lib/protocol/frames.ts";
import { closeReplicas, startReplicas } from "../../fixtures/replicas.ts";
import { startRedis } from "../../fixtures/redis_server.ts";
import { serveTestServer, TOKENS, TunnelClient, within } from "../../fixtures/test_gateway.ts";

Deno.test("replicas: an owner's tunnel sessions on all replicas count against --max-sessions-per-owner; past it 4029, another owner unaffected, an ended one frees its place", async () => {
  await using redis = await startRedis();
  // Places live a minute without renewal here: only a release can free one within the test.
  const replicas = await startReplicas(redis.url, 2, {
    gateway: { maxSessionsPerOwner: 2 },
    ttlMs: 60_000,
    beatMs: 20_000,
  });
  const [first, second] = replicas as [typeof replicas[0], typeof replicas[0]];
  const links: TunnelClient[] = [];
  try {
    const a = await serveTestServer(first.gateway, "a");
    const b = await serveTestServer(second.gateway, "b");
    links.push(a.tunnel, b.tunnel);
    assert.equal(a.ack.status, "success");
    assert.equal(b.ack.status, "success");

    // `first` holds one of alice's sessions, within its own count; with `second`'s she has two.
    const third = await TunnelClient.open(first.gateway, TOKENS.alice);
    links.push(third);
    third.send({
      type: "register",
      sessionId: crypto.randomUUID().replaceAll("-", ""),
      server: { name: "c", description: "one too many", protocol: "mcp" },
    });
    const closed = await within(third.closed, 10_000, "the third registration to be refused");
    assert.equal(closed.code, CloseCode.TooManySessions);

    const bob = await serveTestServer(first.gateway, "x", TOKENS.bob);
    links.push(bob.tunnel);
    assert.equal(bob.ack.status, "success", "another owner has places of its own");

    // Alice's session on `second` ends: its place is free for a registration on `first` (once the
    // release has reached Redis: a refusal before it is retried, within a deadline).
    await b.close();
    const until = performance.now() + 10_000;
    let status: unknown;
    while (status !== "success" && performance.now() < until) {
      const fourth = await TunnelClient.open(first.gateway, TOKENS.alice);
      links.push(fourth);
      status = await fourth.register("c").then((ack) => ack.status, () => "refused");
    }
    assert.equal(status, "success");
    await a.close();
    await bob.close();
  } finally {
    for (const link of links) await link.close();
    await closeReplicas(replicas);
  }
});
