// RedisStore keeps the StateStore contract (store_contract.ts) against a real redis-server, one fresh
// server per case; and what Redis adds: the records outlive the store's connection, and a store's
// writes fail at once (to be retried) while Redis is down.

import assert from "node:assert/strict";
import { RedisClient } from "../../../lib/serve/cluster/redis_client.ts";
import { RedisStore } from "../../../lib/serve/state/redis_store.ts";
import { type RedisServer, startRedis } from "../../fixtures/redis_server.ts";
import { stateStoreContract } from "./store_contract.ts";

let current: RedisServer | undefined;

async function open(redis: RedisServer): Promise<RedisStore> {
  const client = new RedisClient({
    url: redis.url,
    name: "state",
    backoff: { baseMs: 20, maxMs: 200 },
  });
  try {
    await client.ready(AbortSignal.timeout(5_000));
  } catch (error) {
    await client.close();
    throw error;
  }
  return new RedisStore({ client, location: redis.url, ownsClient: true });
}

stateStoreContract({
  name: "RedisStore",
  realTime: true,
  async open() {
    current = await startRedis();
    return await open(current);
  },
  async cleanup() {
    await current?.stop();
    current = undefined;
  },
});

Deno.test("RedisStore: records outlive the store, in keys st:<space>:<id> with Redis's TTL", async () => {
  const redis = await startRedis();
  try {
    const first = await open(redis);
    await first.write([
      { op: "set", key: { space: "client", id: "a:b" }, value: "1", ttlMs: 60_000 },
      { op: "set", key: { space: "tunnel", id: "t" }, value: "2" },
    ]);
    await first.close();
    const second = await open(redis);
    try {
      assert.equal(second.durable, true);
      assert.equal(await second.get({ space: "client", id: "a:b" }), "1");
      assert.deepEqual(await second.list("client"), [{
        key: { space: "client", id: "a:b" },
        value: "1",
      }]);
    } finally {
      await second.close();
    }
  } finally {
    await redis.stop();
  }
});

Deno.test("RedisStore: a write while Redis is down rejects at once", async () => {
  const redis = await startRedis();
  const store = await open(redis);
  try {
    await redis.kill();
    const started = performance.now();
    await assert.rejects(
      store.write([{ op: "set", key: { space: "client", id: "x" }, value: "1" }]),
    );
    assert.ok(performance.now() - started < 1_000);
  } finally {
    await store.close();
    await redis.stop();
  }
});
