// serve --redis as a real process against a real redis-server: /readyz follows Redis (503 with the reason
// while it is down), the metric and the log line say so, the password never shows, and an empty Redis
// gets this replica back within a beat. Without --cluster-secret-file it refuses to start.

import assert from "node:assert/strict";
import { parsePrometheus, sampleValue } from "../fixtures/prometheus_parser.ts";
import { type ProxyProcess, startProxy } from "../fixtures/proxy_process.ts";
import { startRedis } from "../fixtures/redis_server.ts";
import { redisCommand } from "../fixtures/resp_client.ts";
import { TOKENS_FILE, within } from "../fixtures/test_gateway.ts";

const PASSWORD = "redis-pass-never-logged";

async function healthUrl(proxy: ProxyProcess): Promise<string> {
  const line = await proxy.waitForLine((l) => /Health and metrics on/.test(l.raw), 30_000);
  return line.raw.match(/http:\/\/127\.0\.0\.1:\d+/)![0];
}

/** GETs /readyz until its status is `status` (each request paces the next), or fails with the last. */
async function readyzUntil(url: string, status: number, ms = 15_000): Promise<string> {
  const end = Date.now() + ms;
  let last = "";
  for (;;) {
    const response = await within(fetch(`${url}/readyz`), 5_000, "GET /readyz");
    last = `${response.status} ${await response.text()}`;
    if (response.status === status) return last;
    if (Date.now() > end) throw new Error(`Timed out waiting for /readyz ${status}; last ${last}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await within(fetch(`${url}/metrics`), 5_000, "GET /metrics")).text();
  return sampleValue(parsePrometheus(text), name);
}

Deno.test("serve --redis: /readyz is 503 with the reason while Redis is down, and 200 again after", async () => {
  const redis = await startRedis({ password: PASSWORD });
  const dir = await Deno.makeTempDir({ prefix: "cluster-readiness-" });
  try {
    await Deno.writeTextFile(`${dir}/tokens.yaml`, TOKENS_FILE);
    await Deno.writeTextFile(`${dir}/cluster.secret`, `${"s".repeat(48)}\n`, { mode: 0o600 });
    await using serve = startProxy([
      "serve",
      "--listen",
      "127.0.0.1:0",
      "--health-listen",
      "127.0.0.1:0",
      "--tokens-file",
      `${dir}/tokens.yaml`,
      "--cluster-secret-file",
      `${dir}/cluster.secret`,
      "--replica-id",
      "r1",
      "--log-format",
      "json",
    ], { env: { MCP_RPROXY_REDIS_URL: redis.url } });
    const url = await healthUrl(serve);
    assert.match(await readyzUntil(url, 200), /redis: up \(1 replica seen\)/);
    assert.equal(await metric(url, "mcp_rproxy_redis_up"), 1);
    assert.ok(
      typeof await redisCommand(redis.port, ["GET", "replica:r1"], { password: PASSWORD }) ===
        "string",
    );

    await redis.kill();
    assert.match(await readyzUntil(url, 503), /not ready\nredis: down \(/);
    assert.equal(await metric(url, "mcp_rproxy_redis_up"), 0);
    assert.ok(await metric(url, "mcp_rproxy_redis_errors_total") >= 1);
    await serve.waitForEvent("redis_down", 5_000);

    await redis.restart();
    assert.match(await readyzUntil(url, 200), /redis: up/);
    await serve.waitForEvent(
      "redis_up",
      5_000,
      serve.lines.findIndex((l) => l.json?.event === "redis_down"),
    );
    // Redis came back empty: the replica is back in it by its next beat.
    for (let i = 0;; i++) {
      const record = await redisCommand(redis.port, ["GET", "replica:r1"], { password: PASSWORD });
      if (typeof record === "string") break;
      if (i > 200) assert.fail("replica:r1 not re-asserted");
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    assert.ok(!serve.text().includes(PASSWORD), "the Redis password is never logged");
    assert.match(serve.text(), /redis:\/\/:\*\*\*@127\.0\.0\.1/);
  } finally {
    await redis.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve --redis without --cluster-secret-file exits 2 and says how to make one", async () => {
  await using serve = startProxy([
    "serve",
    "--tokens-file",
    "/nonexistent",
    "--redis",
    `redis://:${PASSWORD}@127.0.0.1:1`,
  ]);
  assert.equal(await serve.exitCode(30_000), 2);
  assert.match(serve.text(), /--redis needs --cluster-secret-file FILE/);
  assert.ok(!serve.text().includes(PASSWORD));
});
