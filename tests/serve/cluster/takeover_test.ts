// Newest wins: when another replica claims a tunnel session (a register or resume there takes a newer
// generation), the old holder learns it at once (a `supersede` envelope), closes the link with 4002, and
// releases nothing that is no longer its own.

import assert from "node:assert/strict";
import { claimed, closeReplicas, startReplicas } from "../../fixtures/replicas.ts";
import { startRedis } from "../../fixtures/redis_server.ts";
import { serveTestServer, within } from "../../fixtures/test_gateway.ts";

Deno.test("a newer claim on another replica closes the holder's link with 4002 and counts a takeover on each", async () => {
  const redis = await startRedis();
  // A beat far longer than the wait below: only the supersede envelope can close the link in time, not
  // the holder's next renewal finding the newer claim.
  const replicas = await startReplicas(redis.url, 2, { ttlMs: 120_000, beatMs: 60_000 });
  const [holder, taker] = replicas as [typeof replicas[0], typeof replicas[0]];
  const served = await serveTestServer(holder.gateway, "srv");
  try {
    const sid = String(served.ack.sessionId);
    await claimed(holder, sid);
    const before = holder.cluster.generation(sid)!;
    // What a resume of this session on the other replica does first: claim it with a newer generation.
    let lost = false;
    await taker.cluster.hold(sid, { owner: "alice", name: "srv" }, () => lost = true);
    // Long before the next beat: the envelope, not a renewal, closes it.
    const closed = await within(served.tunnel.closed, 2_500, "the old link to close");
    assert.equal(closed.code, 4002);
    assert.match(closed.reason, /superseded by a registration on replica r2/);
    assert.equal(lost, false, "the new holder keeps it");
    assert.ok(taker.cluster.generation(sid)! > before);
    assert.deepEqual(await holder.cluster.ownership.owner(sid), {
      rid: "r2",
      gen: taker.cluster.generation(sid),
    });
    assert.equal(taker.cluster.metrics!.takeovers.value("taken"), 1);
    assert.equal(holder.cluster.metrics!.takeovers.value("lost"), 1);
    // The old holder's session ended: its release did not touch the new owner's claim.
    assert.deepEqual(await holder.cluster.ownership.lookup({ owner: "alice", name: "srv" }), {
      sid,
      owner: { rid: "r2", gen: taker.cluster.generation(sid) },
      perClient: false,
    });
  } finally {
    await served.close();
    await closeReplicas(replicas);
    await redis.stop();
  }
});
