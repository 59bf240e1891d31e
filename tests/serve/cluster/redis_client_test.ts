import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import { RedisClient, type RedisState } from "../../../lib/serve/cluster/redis_client.ts";
import { setupLogging, shutdownLogging } from "../../../lib/util/log.ts";
import { EventLog } from "../../fixtures/events.ts";
import { startRedis } from "../../fixtures/redis_server.ts";

const PASSWORD = "pw-that-must-not-leak";

Deno.test("RedisClient reports down on a Redis crash, reconnects with backoff and reports up", async () => {
  const records: LogRecord[] = [];
  await setupLogging({ level: "info", format: "json", sink: (r) => records.push(r) });
  const redis = await startRedis({ password: PASSWORD });
  const states = new EventLog<RedisState>();
  let errors = 0;
  const client = new RedisClient({
    url: redis.url,
    name: "commands",
    backoff: { baseMs: 20, maxMs: 200 },
    onState: (s) => states.push(s),
    onError: () => errors++,
  });
  try {
    await client.ready(AbortSignal.timeout(5_000));
    assert.deepEqual(client.state, { up: true });
    assert.equal(await client.redis.set("k", "v"), "OK");
    const mark = states.events.length;
    await redis.kill();
    const down = await states.wait((s) => !s.up, { ms: 5_000, what: "down", from: mark });
    assert.ok(!down.up);
    // Without an offline queue a command fails at once rather than wait for Redis.
    const started = performance.now();
    await assert.rejects(client.redis.get("k"));
    assert.ok(performance.now() - started < 500, "failed fast");
    await redis.restart();
    await states.wait((s) => s.up, { ms: 10_000, what: "up again", from: mark });
    assert.equal(await client.redis.get("k"), null, "an empty Redis came back");
    assert.ok(errors >= 1, "errors counted");
    const text = records.map((r) => `${r.message.join("")} ${JSON.stringify(r.properties)}`).join(
      "\n",
    );
    assert.match(text, /Redis unreachable at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ \(commands\)/);
    assert.match(text, /Redis reachable at .* \(commands\) after [\d.]+ s/);
    assert.ok(!text.includes(PASSWORD), "the password is never logged");
  } finally {
    await client.close();
    await redis.stop();
    await shutdownLogging();
  }
});

Deno.test("RedisClient with a wrong password stays down and says why", async () => {
  const redis = await startRedis({ password: PASSWORD });
  const states = new EventLog<RedisState>();
  const url = redis.url.replace(encodeURIComponent(PASSWORD), "wrong");
  const client = new RedisClient({ url, name: "commands", onState: (s) => states.push(s) });
  try {
    await states.wait((s) => !s.up, { ms: 5_000, what: "down" });
    const state = client.state;
    assert.ok(
      !state.up && /WRONGPASS|invalid (username-)?password/i.test(state.reason),
      JSON.stringify(state),
    );
    await assert.rejects(client.ready(AbortSignal.timeout(300)));
  } finally {
    await client.close();
    await redis.stop();
  }
});

Deno.test("RedisClient fails a command Redis does not answer within commandTimeoutMs, and only then", async () => {
  const redis = await startRedis();
  const client = new RedisClient({ url: redis.url, name: "commands", commandTimeoutMs: 400 });
  let stopped = false;
  try {
    await client.ready(AbortSignal.timeout(5_000));
    // Slower than a watchdog pass (200 ms), quicker than the timeout: answered, not failed.
    assert.equal(await client.redis.xread("BLOCK", 250, "STREAMS", "none", "$"), null);
    Deno.kill(redis.pid, "SIGSTOP");
    stopped = true;
    const started = performance.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<"hung">((resolve) => timer = setTimeout(resolve, 3_000, "hung"));
    const outcome = await Promise.race([
      client.redis.get("k").then(() => "answered", (error: Error) => error.message),
      deadline,
    ]).finally(() => clearTimeout(timer));
    const waited = performance.now() - started;
    assert.equal(outcome, "Command timed out");
    assert.ok(waited >= 400 && waited < 1_500, `failed after ${waited.toFixed(0)} ms`);
  } finally {
    if (stopped) Deno.kill(redis.pid, "SIGCONT");
    await client.close();
    await redis.stop();
  }
});
