import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import { type Envelope, EnvelopeSeal } from "../../../lib/serve/cluster/envelope.ts";
import type { EnvelopeRefusal } from "../../../lib/serve/cluster/envelope.ts";
import { Inbox, inboxKey, UndeliverableError } from "../../../lib/serve/cluster/inbox.ts";
import { RedisClient } from "../../../lib/serve/cluster/redis_client.ts";
import { ReplayGuard } from "../../../lib/serve/cluster/replay_guard.ts";
import { setupLogging, shutdownLogging } from "../../../lib/util/log.ts";
import { EventLog } from "../../fixtures/events.ts";
import { type RedisServer, startRedis } from "../../fixtures/redis_server.ts";
import { redisCommand } from "../../fixtures/resp_client.ts";
import { until } from "../../fixtures/resumable_tunnel.ts";

const SECRET = "a-cluster-secret-of-32-characters-or-more";

interface Replica {
  inbox: Inbox;
  commands: RedisClient;
  received: EventLog<Envelope>;
  refused: EventLog<EnvelopeRefusal>;
  close(): Promise<void>;
}

async function replica(
  redis: RedisServer,
  rid: string,
  options: { ttlMs?: number; secret?: string } = {},
): Promise<Replica> {
  const commands = new RedisClient({
    url: redis.url,
    name: "commands",
    backoff: { baseMs: 20, maxMs: 200 },
  });
  const reader = new RedisClient({
    url: redis.url,
    name: "inbox",
    backoff: { baseMs: 20, maxMs: 200 },
    commandTimeoutMs: 10_000,
  });
  const received = new EventLog<Envelope>();
  const refused = new EventLog<EnvelopeRefusal>();
  const seal = EnvelopeSeal.create({
    secret: options.secret ?? SECRET,
    replicaId: rid,
    guard: new ReplayGuard({ maxNonces: 10_000 }),
  });
  const inbox = new Inbox({
    commands,
    reader,
    seal,
    maxEntries: 1_000,
    ...(options.ttlMs === undefined ? {} : { ttlMs: options.ttlMs }),
    onEnvelope: (e) => received.push(e),
    onRefused: (r) => refused.push(r),
  });
  try {
    await commands.ready(AbortSignal.timeout(5_000));
    await reader.ready(AbortSignal.timeout(5_000));
    await inbox.upkeep();
    inbox.start();
  } catch (error) {
    await inbox.close();
    await commands.close();
    throw error;
  }
  return {
    inbox,
    commands,
    received,
    refused,
    async close() {
      await inbox.close();
      await commands.close();
    },
  };
}

function call(target: string, payload: string, id = "a.1") {
  return { kind: "call" as const, target, deadline: 0, generation: 1, sid: "s1", id, payload };
}

Deno.test("Inbox delivers envelopes in order and deletes them once read", async () => {
  const redis = await startRedis();
  const a = await replica(redis, "a");
  const b = await replica(redis, "b");
  try {
    for (let i = 0; i < 50; i++) await a.inbox.send(call("b", `{"n":${i}}`, `a.${i}`));
    await b.received.wait(() => b.received.events.length === 50, {
      ms: 5_000,
      what: "50 envelopes",
    });
    assert.deepEqual(
      b.received.events.map((e) => e.id),
      [...Array(50).keys()].map((i) => `a.${i}`),
    );
    assert.ok(b.received.events.every((e) => e.origin === "a" && e.target === "b"));
    await until(
      "the read entries deleted",
      async () => await redisCommand(redis.port, ["XLEN", "inbox:b"]) === 0,
    );
    assert.equal(a.received.events.length, 0);
  } finally {
    await a.close();
    await b.close();
    await redis.stop();
  }
});

Deno.test("Inbox keeps the order of sends started together: a big envelope is not overtaken by small ones", async () => {
  const redis = await startRedis();
  const a = await replica(redis, "a");
  const b = await replica(redis, "b");
  try {
    // As a holder sends a call's progress and then its answer: started in order, none awaited between.
    const big = JSON.stringify({ text: "x".repeat(4 << 20) });
    const ids = [...Array(21).keys()].map((i) => `a.${i}`);
    await Promise.all(ids.map((id, i) => a.inbox.send(call("b", i === 0 ? big : "{}", id))));
    await b.received.wait(() => b.received.events.length === ids.length, {
      ms: 10_000,
      what: `${ids.length} envelopes`,
    });
    assert.deepEqual(b.received.events.map((e) => e.id), ids);
  } finally {
    await a.close();
    await b.close();
    await redis.stop();
  }
});

Deno.test("an inbox its replica stops reading keeps at most --cluster-inbox-max entries, whatever is sent to it", async () => {
  const redis = await startRedis();
  const a = await replica(redis, "a"); // maxEntries 1,000
  try {
    // Replica b made its inbox, then stopped reading it.
    await redisCommand(redis.port, ["XADD", "inbox:b", "MAXLEN", "0", "*", "x", ""]);
    for (let round = 0; round < 5; round++) {
      await Promise.all(
        [...Array(1_000).keys()].map((i) => a.inbox.send(call("b", "{}", `a.${round}.${i}`))),
      );
    }
    const length = Number(await redisCommand(redis.port, ["XLEN", "inbox:b"]));
    // MAXLEN ~ trims whole radix-tree nodes (100 entries by default), so a node more at most.
    assert.ok(length >= 1_000 && length <= 1_100, `inbox:b holds ${length} entries of 5,000 sent`);
  } finally {
    await a.close();
    await redis.stop();
  }
});

Deno.test("Inbox carries a 16 MiB payload intact between replicas", async () => {
  const redis = await startRedis();
  const a = await replica(redis, "a");
  const b = await replica(redis, "b");
  try {
    const text = "ü".repeat(4 << 20) + "🙂".repeat(2 << 20); // 16 MiB of UTF-8, multi-byte throughout
    const payload = JSON.stringify({
      jsonrpc: "2.0",
      id: "a.1",
      result: { content: [{ type: "text", text }] },
    });
    assert.ok(new TextEncoder().encode(payload).length >= 16 << 20);
    const started = performance.now();
    await a.inbox.send(call("b", payload));
    const got = await b.received.wait(() => true, { ms: 20_000, what: "the 16 MiB envelope" });
    const ms = performance.now() - started;
    assert.ok(got.payload === payload, "the payload arrived byte for byte");
    console.log(`16 MiB envelope a → b through Redis: ${ms.toFixed(0)} ms`);
  } finally {
    await a.close();
    await b.close();
    await redis.stop();
  }
});

Deno.test("Inbox.send() to a replica without an inbox fails at once with UndeliverableError", async () => {
  const redis = await startRedis();
  const a = await replica(redis, "a");
  try {
    const started = performance.now();
    await assert.rejects(a.inbox.send(call("gone", "{}")), (error: unknown) => {
      assert.ok(error instanceof UndeliverableError);
      assert.equal(error.kind, "no-inbox");
      assert.match(error.message, /Replica gone has no inbox in Redis/);
      return true;
    });
    assert.ok(performance.now() - started < 1_000);
    assert.equal(
      await redisCommand(redis.port, ["EXISTS", inboxKey("gone")]),
      0,
      "no stream was made for it",
    );
  } finally {
    await a.close();
    await redis.stop();
  }
});

Deno.test("Inbox refuses a forged, a replayed and a foreign-secret entry, logs it and reads on", async () => {
  const records: LogRecord[] = [];
  await setupLogging({ level: "info", format: "json", sink: (r) => records.push(r) });
  const redis = await startRedis();
  const a = await replica(redis, "a");
  const b = await replica(redis, "b");
  const mallory = EnvelopeSeal.create({
    secret: `${SECRET}-not-ours`,
    replicaId: "a",
    guard: new ReplayGuard({ maxNonces: 10 }),
  });
  try {
    await a.inbox.send(call("b", '{"first":1}'));
    const first = await b.received.wait(() => true, { ms: 5_000, what: "the first envelope" });
    // A replay: the same fields again, straight into b's inbox.
    await redisCommand(redis.port, [
      "XADD",
      "inbox:b",
      "*",
      "h",
      JSON.stringify({ ...first, payload: undefined, mac: undefined }),
      "p",
      first.payload,
      "m",
      first.mac,
    ]);
    const forged = await mallory.seal(call("b", '{"forged":1}'));
    await redisCommand(redis.port, [
      "XADD",
      "inbox:b",
      "*",
      "h",
      forged.header,
      "p",
      forged.payload,
      "m",
      forged.mac,
    ]);
    await redisCommand(redis.port, ["XADD", "inbox:b", "*", "junk", "1"]);
    await a.inbox.send(call("b", '{"after":1}', "a.2"));
    await b.received.wait((e) => e.id === "a.2", {
      ms: 5_000,
      what: "the envelope after the bad ones",
    });
    assert.equal(b.received.events.length, 2);
    assert.deepEqual(b.refused.events, ["replay", "bad_mac", "malformed"]);
    const text = records.map((r) => r.message.join("")).join("\n");
    assert.match(
      text,
      /Refused an envelope in inbox:b \(replay\): its nonce was seen already, from a/,
    );
  } finally {
    await a.close();
    await b.close();
    await redis.stop();
    await shutdownLogging();
  }
});

Deno.test("Inbox comes back after an empty Redis restart: upkeep makes the stream again and reading goes on", async () => {
  const redis = await startRedis();
  const a = await replica(redis, "a");
  const b = await replica(redis, "b");
  try {
    await a.inbox.send(call("b", "{}", "a.1"));
    await b.received.wait((e) => e.id === "a.1", { ms: 5_000, what: "before the restart" });
    await redis.restart();
    await a.commands.ready(AbortSignal.timeout(10_000));
    // Until b renews its inbox, a's send fails visibly rather than vanish.
    await assert.rejects(a.inbox.send(call("b", "{}", "a.x")), UndeliverableError);
    await b.commands.ready(AbortSignal.timeout(10_000));
    await b.inbox.upkeep();
    await a.inbox.send(call("b", "{}", "a.2"));
    await b.received.wait((e) => e.id === "a.2", { ms: 10_000, what: "after the restart" });
  } finally {
    await a.close();
    await b.close();
    await redis.stop();
  }
});

Deno.test("Inbox key expires when its replica stops renewing it", async () => {
  const redis = await startRedis();
  const a = await replica(redis, "a");
  const b = await replica(redis, "b", { ttlMs: 300 });
  try {
    assert.equal(await redisCommand(redis.port, ["EXISTS", "inbox:b"]), 1);
    const ttl = await redisCommand(redis.port, ["PTTL", "inbox:b"]);
    assert.ok(typeof ttl === "number" && ttl > 0 && ttl <= 300, `PTTL ${ttl}`);
    await until(
      "inbox:b expired",
      async () => await redisCommand(redis.port, ["EXISTS", "inbox:b"]) === 0,
    );
    await assert.rejects(a.inbox.send(call("b", "{}")), UndeliverableError);
  } finally {
    await a.close();
    await b.close();
    await redis.stop();
  }
});
