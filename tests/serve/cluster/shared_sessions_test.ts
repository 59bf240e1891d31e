// MCP client sessions shared by replicas, against a real Redis: a session is "not found" (404, initialize
// again) only when Redis can say so. While Redis is unreachable, or just after it came back empty (the
// replicas publish their sessions again at their next beat), the answer is 503 with Retry-After.

import assert from "node:assert/strict";
import { RedisClient } from "../../../lib/serve/cluster/redis_client.ts";
import { SharedSessions } from "../../../lib/serve/cluster/shared_sessions.ts";
import { SessionsUnavailableError } from "../../../lib/serve/shared_session_hooks.ts";
import { closeReplicas, startReplicas } from "../../fixtures/replicas.ts";
import { freePort } from "../../fixtures/daemon.ts";
import { initializeMcp, openGetStream, postMcp, rpc } from "../../fixtures/mcp_http.ts";
import { startRedis } from "../../fixtures/redis_server.ts";
import { serveTestServer } from "../../fixtures/test_gateway.ts";

const RECORD = {
  owner: "alice",
  serverName: "srv",
  capabilities: {},
  protocolVersion: "2025-11-25",
};

function client(url: string): RedisClient {
  return new RedisClient({ url, name: "commands", backoff: { baseMs: 20, maxMs: 200 } });
}

Deno.test("SharedSessions.find() while Redis is unreachable: a session seen here is taken as it was, any other cannot be told from a gone one", async () => {
  // Nothing listens there: the connection never comes up.
  const commands = client(`redis://127.0.0.1:${freePort()}`);
  try {
    const shared = new SharedSessions({ commands, ttlMs: 60_000 });
    shared.opened({ id: "seen", ...RECORD });
    assert.deepEqual(await shared.find("seen"), { id: "seen", ...RECORD });
    await assert.rejects(shared.find("other"), SessionsUnavailableError);
  } finally {
    await commands.close();
  }
});

Deno.test("SharedSessions.find() just after Redis came back empty says it cannot tell; past the recovery time a missing session is gone", async () => {
  await using redis = await startRedis();
  const commands = client(redis.url);
  try {
    await commands.ready(AbortSignal.timeout(5_000));
    const shared = new SharedSessions({ commands, ttlMs: 60_000, recoveringMs: 300 });
    await redis.restart();
    await commands.ready(AbortSignal.timeout(10_000));
    await assert.rejects(shared.find("lost"), SessionsUnavailableError);
    // The recovery time is a duration: ask again until it has passed (bounded).
    const until = performance.now() + 5_000;
    let found: unknown = "unavailable";
    while (found === "unavailable" && performance.now() < until) {
      found = await shared.find("lost").catch((error: unknown) => {
        if (error instanceof SessionsUnavailableError) return "unavailable";
        throw error;
      });
    }
    assert.equal(found, undefined);
  } finally {
    await commands.close();
  }
});

Deno.test("a request of a session Redis just lost gets 503 with Retry-After on a replica that never saw it, not 404", async () => {
  await using redis = await startRedis();
  const replicas = await startReplicas(redis.url, 2);
  const [opener, other] = replicas as [typeof replicas[0], typeof replicas[0]];
  const served = await serveTestServer(other.gateway, "srv");
  try {
    const session = await initializeMcp(opener.gateway, "srv");
    // The replica that opened the session stops (its clients went elsewhere): nobody publishes the
    // session again after Redis comes back empty, and `other` never saw it.
    await opener.close();
    await redis.restart();
    await other.cluster.commands.ready(AbortSignal.timeout(10_000));
    const response = await postMcp(other.gateway, "srv", rpc(1, "tools/list"), { session });
    assert.equal(response.status, 503);
    assert.equal(response.headers.get("retry-after"), "1");
    assert.match(JSON.stringify(await response.json()), /Redis came back a moment ago/);
  } finally {
    await served.close();
    await closeReplicas(replicas);
  }
});

Deno.test("Redis keeps at most maxPerOwner MCP sessions per owner for the whole cluster: the least recently used go, other owners keep theirs", async () => {
  await using redis = await startRedis();
  const commands = client(redis.url);
  try {
    await commands.ready(AbortSignal.timeout(5_000));
    const evicted: [string, number][] = [];
    const shared = new SharedSessions({
      commands,
      ttlMs: 60_000,
      maxPerOwner: 3,
      onEvicted: (owner, count) => evicted.push([owner, count]),
    });
    for (const id of ["a1", "a2", "a3", "a4", "a5"]) {
      shared.opened({ id, ...RECORD });
      await shared.published(id);
    }
    for (const id of ["b1", "b2"]) {
      shared.opened({ id, ...RECORD, owner: "bob" });
      await shared.published(id);
    }
    const keys = (await commands.redis.keys("c:*")).sort();
    assert.deepEqual(keys, ["c:a3", "c:a4", "c:a5", "c:b1", "c:b2"]);
    assert.equal(await commands.redis.zcard("cs:alice"), 3);
    assert.deepEqual(evicted, [["alice", 1], ["alice", 1]]);
    // A client's DELETE takes its session out of the ranking too: the owner has room again.
    shared.deleted("a5");
    const until = performance.now() + 5_000;
    while (await commands.redis.zcard("cs:alice") !== 2 && performance.now() < until) {
      await commands.redis.ping();
    }
    assert.equal(await commands.redis.zcard("cs:alice"), 2);
    assert.equal(await commands.redis.exists("c:a5"), 0);
  } finally {
    await commands.close();
  }
});

Deno.test("replicas: an owner opening sessions on two replicas is held to --max-mcp-sessions-per-owner in Redis; a forgotten session gets 404 on a replica that does not hold it", async () => {
  await using redis = await startRedis();
  const replicas = await startReplicas(redis.url, 2, {
    gateway: { maxMcpSessionsPerOwner: 4 },
    ttlMs: 1_000,
    beatMs: 200,
  });
  const [first, second] = replicas as [typeof replicas[0], typeof replicas[0]];
  const served = await serveTestServer(first.gateway, "srv");
  try {
    const sessions: string[] = [];
    for (let i = 0; i < 6; i++) {
      // Alternate replicas: each one alone holds 3, within its own cap of 4.
      const replica = i % 2 === 0 ? first : second;
      sessions.push(await initializeMcp(replica.gateway, "srv"));
    }
    const keys = await first.cluster.commands.redis.keys("c:*");
    assert.equal(keys.length, 4, "Redis holds the owner's newest 4 sessions of 6");
    // The oldest, opened on `first`, is gone for `second`: initialize again.
    // (Just after a replica's Redis connection came up, a missing record may be one Redis lost: 503
    // until the recovery time of two beats has passed.)
    let status = 503;
    const until = performance.now() + 10_000;
    while (status === 503 && performance.now() < until) {
      const response = await postMcp(second.gateway, "srv", rpc(1, "tools/list"), {
        session: sessions[0]!,
      });
      status = response.status;
      await response.body?.cancel();
    }
    assert.equal(status, 404);
    const newest = await postMcp(first.gateway, "srv", rpc(2, "tools/list"), {
      session: sessions[5]!,
    });
    assert.equal(newest.status, 200);
    await newest.body?.cancel();
  } finally {
    await served.close();
    await closeReplicas(replicas);
  }
});

Deno.test("SharedSessions lists a per-client server's open sessions in p:<owner>:<name>: listed when opened, gone with DELETE or past their TTL, the set bounded in time", async () => {
  await using redis = await startRedis();
  const commands = client(redis.url);
  try {
    await commands.ready(AbortSignal.timeout(5_000));
    const shared = new SharedSessions({ commands, ttlMs: 60_000 });
    shared.opened({ id: "s1", ...RECORD, perClient: true });
    shared.opened({ id: "s2", ...RECORD, perClient: true });
    shared.opened({ id: "shared", ...RECORD }); // a shared server's session: not listed
    await shared.published("s1");
    await shared.published("s2");
    await shared.published("shared");
    assert.deepEqual((await shared.openOf("alice", "srv")).sort(), ["s1", "s2"]);
    assert.equal(await shared.alive("s1"), true);
    // Another replica takes the session without `perClient`: only the opener holds early messages.
    const other = new SharedSessions({ commands, ttlMs: 60_000 });
    assert.deepEqual(await other.find("s1"), { id: "s1", ...RECORD });
    // A DELETE on that replica takes it off the list (it knows the record as per-client).
    other.deleted("s1");
    await commands.redis.ping();
    assert.deepEqual(await shared.openOf("alice", "srv"), ["s2"]);
    assert.equal(await shared.alive("s1"), false);
    // An entry past its score is not listed, and the next write trims it; the set expires with its TTL.
    await commands.redis.zadd("p:alice:srv", Date.now() - 1, "stale");
    assert.deepEqual(await shared.openOf("alice", "srv"), ["s2"]);
    shared.opened({ id: "s3", ...RECORD, perClient: true });
    await shared.published("s3");
    assert.equal(await commands.redis.zscore("p:alice:srv", "stale"), null, "trimmed");
    const pttl = await commands.redis.pttl("p:alice:srv");
    assert.ok(pttl > 0 && pttl <= 60_000, `PTTL ${pttl}`);
  } finally {
    await commands.close();
  }
});

Deno.test("replicas: a session whose only traffic is its open GET stream stays shared past --mcp-session-ttl, so another replica still serves it", async () => {
  await using redis = await startRedis();
  const ttlMs = 1_200;
  const replicas = await startReplicas(redis.url, 2, {
    gateway: { mcpSessionTtlMs: ttlMs },
    ttlMs: 1_000,
    beatMs: 200,
  });
  const [holder, other] = replicas as [typeof replicas[0], typeof replicas[0]];
  const served = await serveTestServer(holder.gateway, "srv");
  let stream: Awaited<ReturnType<typeof openGetStream>> | undefined;
  try {
    const session = await initializeMcp(holder.gateway, "srv");
    stream = await openGetStream(holder.gateway, "srv", session);
    assert.equal(stream.status, 200);
    // Three TTLs with nothing but the open stream: the record must be there at every look.
    const commands = holder.cluster.commands;
    const until = performance.now() + 3 * ttlMs;
    let looks = 0;
    while (performance.now() < until) {
      assert.equal(await commands.redis.exists(`c:${session}`), 1, `look ${looks}: record gone`);
      looks++;
    }
    const response = await postMcp(other.gateway, "srv", rpc(1, "tools/list"), { session });
    assert.equal(response.status, 200, "the other replica still serves the session");
    await response.body?.cancel();
  } finally {
    await stream?.close();
    await served.close();
    await closeReplicas(replicas);
  }
});
