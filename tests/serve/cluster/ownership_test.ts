import assert from "node:assert/strict";
import { Liveness } from "../../../lib/serve/cluster/liveness.ts";
import {
  Ownership,
  parseOwner,
  StaleGenerationError,
} from "../../../lib/serve/cluster/ownership.ts";
import { RedisClient } from "../../../lib/serve/cluster/redis_client.ts";
import { EventLog } from "../../fixtures/events.ts";
import { startRedis } from "../../fixtures/redis_server.ts";
import { redisCommand } from "../../fixtures/resp_client.ts";

const EV = { owner: "alice", name: "everything" };

function client(url: string): RedisClient {
  return new RedisClient({ url, name: "commands", backoff: { baseMs: 20, maxMs: 200 } });
}

Deno.test("Ownership: newest wins, the old holder's renewal and fenced writes are refused by generation", async () => {
  const redis = await startRedis();
  const ca = client(redis.url);
  const cb = client(redis.url);
  try {
    await ca.ready(AbortSignal.timeout(5_000));
    await cb.ready(AbortSignal.timeout(5_000));
    const a = new Ownership({ commands: ca, replicaId: "a" });
    const b = new Ownership({ commands: cb, replicaId: "b" });
    const { gen: genA, previous } = await a.claim("s1", EV);
    assert.equal(genA, 1);
    assert.equal(previous, undefined);
    assert.deepEqual(await a.renew("s1", genA, EV), { kind: "renewed" });
    assert.deepEqual(await b.owner("s1"), { rid: "a", gen: 1 });
    assert.deepEqual(await b.lookup(EV), {
      sid: "s1",
      owner: { rid: "a", gen: 1 },
      perClient: false,
    });
    assert.equal(await b.lookup({ owner: "bob", name: "everything" }), undefined);
    await a.fencedSet({ sid: "s1", gen: genA }, { key: "t:s1", value: "from a" });

    const { gen: genB, previous: before } = await b.claim("s1", EV);
    assert.equal(genB, 2);
    assert.deepEqual(before, { rid: "a", gen: 1 }, "the claim says whom it took over from");
    assert.deepEqual(await a.renew("s1", genA, EV), {
      kind: "superseded",
      by: { rid: "b", gen: 2 },
    });
    await assert.rejects(
      a.fencedSet({ sid: "s1", gen: genA }, { key: "t:s1", value: "stale" }),
      (error: unknown) =>
        error instanceof StaleGenerationError &&
        /generation 1: replica b holds generation 2/.test(error.message),
    );
    assert.equal(
      await redisCommand(redis.port, ["GET", "t:s1"]),
      "from a",
      "the stale write was not made",
    );
    await b.fencedSet({ sid: "s1", gen: genB }, { key: "t:s1", value: "from b", ttlMs: 5_000 });
    assert.equal(await redisCommand(redis.port, ["GET", "t:s1"]), "from b");
    // The old holder cannot release what it no longer holds; the new one can.
    assert.equal(await a.release("s1", genA, EV), false);
    assert.equal(await b.release("s1", genB, EV), true);
    assert.equal(await a.owner("s1"), undefined);
    assert.equal(await a.lookup(EV), undefined, "the directory entry went with it");
    // Released, but the counter remembers: a renewal under the old generation is still refused.
    assert.deepEqual(await a.renew("s1", genA, EV), { kind: "superseded", by: undefined });
  } finally {
    await ca.close();
    await cb.close();
    await redis.stop();
  }
});

Deno.test("Ownership: after an empty Redis restart the holder re-asserts, and the next claim is newer", async () => {
  const redis = await startRedis();
  const ca = client(redis.url);
  const cb = client(redis.url);
  try {
    await ca.ready(AbortSignal.timeout(5_000));
    const a = new Ownership({ commands: ca, replicaId: "a", ttlMs: 5_000 });
    const b = new Ownership({ commands: cb, replicaId: "b" });
    await a.claim("s1", EV);
    const { gen } = await a.claim("s1", EV); // 2
    await redis.restart();
    await ca.ready(AbortSignal.timeout(10_000));
    await cb.ready(AbortSignal.timeout(10_000));
    assert.equal(await a.owner("s1"), undefined, "Redis came back empty");
    assert.deepEqual(await a.renew("s1", gen, EV), { kind: "reasserted" });
    assert.deepEqual(
      await b.lookup(EV),
      { sid: "s1", owner: { rid: "a", gen: 2 }, perClient: false },
      "directory back",
    );
    assert.deepEqual(await b.owner("s1"), { rid: "a", gen: 2 });
    const pttl = await redisCommand(redis.port, ["PTTL", "o:s1"]);
    assert.ok(typeof pttl === "number" && pttl > 0 && pttl <= 5_000, `PTTL ${pttl}`);
    assert.equal(
      (await b.claim("s1", EV)).gen,
      3,
      "the counter was raised to the holder's generation",
    );
    assert.equal((await a.renew("s1", gen, EV)).kind, "superseded");
  } finally {
    await ca.close();
    await cb.close();
    await redis.stop();
  }
});

Deno.test("Ownership: a per-client server's directory entry says so through claim, renewal and release", async () => {
  const redis = await startRedis();
  const ca = client(redis.url);
  try {
    await ca.ready(AbortSignal.timeout(5_000));
    const a = new Ownership({ commands: ca, replicaId: "a" });
    const pc = { ...EV, perClient: true };
    const { gen } = await a.claim("s1", pc);
    assert.deepEqual(await a.lookup(EV), { sid: "s1", owner: { rid: "a", gen }, perClient: true });
    // Redis lost the entry: the renewal writes it again, per-client still.
    await redisCommand(redis.port, ["DEL", "n:alice:everything"]);
    assert.deepEqual(await a.renew("s1", gen, pc), { kind: "renewed" });
    assert.equal((await a.lookup(EV))?.perClient, true);
    // A shared server's claim of the same name says shared.
    const { gen: next } = await a.claim("s2", EV);
    assert.deepEqual(await a.lookup(EV), {
      sid: "s2",
      owner: { rid: "a", gen: next },
      perClient: false,
    });
    assert.equal(await a.release("s2", next, EV), true);
    assert.equal(await a.lookup(EV), undefined, "released with its entry");
  } finally {
    await ca.close();
    await redis.stop();
  }
});

Deno.test("parseOwner() reads <rid>:<gen> and nothing else", () => {
  assert.deepEqual(parseOwner("gw-1:12"), { rid: "gw-1", gen: 12 });
  assert.equal(parseOwner(""), undefined);
  assert.equal(parseOwner(null), undefined);
  assert.equal(parseOwner("a:b:1"), undefined);
});

Deno.test("Liveness: replicas see each other, a closed one leaves at once, a dead one after its TTL", async () => {
  const redis = await startRedis();
  const ca = client(redis.url);
  const cb = client(redis.url);
  const seenA = new EventLog<string[]>();
  let upkeeps = 0;
  const a = new Liveness({
    commands: ca,
    replicaId: "a",
    ttlMs: 400,
    beatMs: 100,
    onSeen: (s) => seenA.push([...s].sort()),
    upkeep: () => {
      upkeeps++;
      return Promise.resolve();
    },
  });
  const b = new Liveness({ commands: cb, replicaId: "b", ttlMs: 400, beatMs: 100 });
  try {
    await ca.ready(AbortSignal.timeout(5_000));
    await cb.ready(AbortSignal.timeout(5_000));
    a.start();
    b.start();
    await seenA.wait((s) => s.join() === "a,b", { ms: 5_000, what: "a sees a and b" });
    assert.ok(a.alive("b"));
    assert.ok(upkeeps >= 1, "the upkeep runs with each beat");
    const info = JSON.parse(String(await redisCommand(redis.port, ["GET", "replica:b"])));
    assert.equal(typeof info.beat, "number");
    await b.close();
    let mark = seenA.events.length;
    await seenA.wait((s) => s.join() === "a", {
      ms: 5_000,
      what: "b gone after close",
      from: mark,
    });
    assert.equal(await redisCommand(redis.port, ["EXISTS", "replica:b"]), 0);

    // A replica that dies does not say goodbye: its entry runs out.
    const c = new Liveness({ commands: cb, replicaId: "c", ttlMs: 400, beatMs: 100 });
    await c.beat();
    mark = seenA.events.length;
    await seenA.wait((s) => s.includes("c"), { ms: 5_000, what: "c seen", from: mark });
    mark = seenA.events.length;
    await seenA.wait((s) => !s.includes("c"), { ms: 5_000, what: "c expired", from: mark });

    // An empty Redis: the next beat puts this replica back.
    await redis.restart();
    mark = seenA.events.length;
    await seenA.wait((s) => s.join() === "a", {
      ms: 10_000,
      what: "a back after restart",
      from: mark,
    });
    assert.equal(await redisCommand(redis.port, ["EXISTS", "replica:a"]), 1);
  } finally {
    await a.close();
    await b.close();
    await ca.close();
    await cb.close();
    await redis.stop();
  }
});
