// The cluster's bounds as set by their flags, in process against a real Redis: a Redis command that gets
// no answer fails after --cluster-command-timeout (Redis frozen by SIGSTOP), and the held `initialize`
// results of servers other replicas hold are at most --cluster-max-initialized; and --max-streams-per-token
// holds for legacy /sse GETs sent at once to a replica that must look the server up.

import assert from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import {
  claimed,
  closeReplicas,
  startReplicas,
  type TestReplica,
} from "../../fixtures/replicas.ts";
import { startRedis } from "../../fixtures/redis_server.ts";
import { registerResumable, type ResumableTunnel } from "../../fixtures/resumable_tunnel.ts";
import { connectClient, TOKENS } from "../../fixtures/test_gateway.ts";

Deno.test("--cluster-command-timeout: a Redis command without an answer fails after it, not after the default 10 s", async () => {
  const redis = await startRedis();
  const replicas = await startReplicas(redis.url, 1, { cluster: { commandTimeoutMs: 300 } });
  const [replica] = replicas as [TestReplica];
  let frozen = false;
  try {
    assert.equal(replica.cluster.settings.commandTimeoutMs, 300);
    await replica.cluster.commands.redis.set("probe", "1");
    // A hung Redis: the process is there and its sockets open, but nothing answers.
    Deno.kill(redis.pid, "SIGSTOP");
    frozen = true;
    const started = performance.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      replica.cluster.commands.redis.get("probe").then(
        () => "answered",
        (error: unknown) => String(error),
      ),
      new Promise<string>((resolve) => {
        timer = setTimeout(() => resolve("still waiting after 5 s"), 5_000);
      }),
    ]).finally(() => clearTimeout(timer));
    const elapsed = performance.now() - started;
    assert.match(outcome, /timed out/i);
    assert.ok(elapsed >= 250 && elapsed < 3_000, `failed after ${Math.round(elapsed)} ms`);
  } finally {
    if (frozen) Deno.kill(redis.pid, "SIGCONT");
    await closeReplicas(replicas);
    await redis.stop();
  }
});

Deno.test("--cluster-max-initialized: an origin keeps that many held initialize results of remote servers, the oldest asked again", async () => {
  const redis = await startRedis();
  const replicas = await startReplicas(redis.url, 2, { cluster: { maxInitialized: 1 } });
  const [holder, origin] = replicas as [TestReplica, TestReplica];
  const tunnels: ResumableTunnel[] = [];
  const clients: Client[] = [];
  try {
    for (const name of ["a", "b"]) {
      const tunnel = await registerResumable(holder.gateway, name);
      tunnels.push(tunnel);
      await claimed(holder, tunnel.sessionId);
    }
    const asked = () => origin.cluster.metrics!.crossCalls.value("answered");
    // Each MCP client's initialize needs the server's held result: asked of its holder unless kept.
    for (const name of ["a", "b", "a"]) {
      clients.push(await connectClient(origin.gateway, name, TOKENS.alice));
    }
    assert.equal(
      asked(),
      3,
      "with room for one, a's result went when b's came, and was asked again",
    );
    clients.push(await connectClient(origin.gateway, "a", TOKENS.alice));
    assert.equal(asked(), 3, "a's result, kept again, is not asked for");
  } finally {
    for (const client of clients) await client.close().catch(() => {});
    for (const { tunnel } of tunnels) tunnel.socket.close();
    await closeReplicas(replicas);
    await redis.stop();
  }
});

Deno.test("--max-streams-per-token: legacy /sse GETs of one token sent at once to a replica that does not hold the server open no more than the limit", async () => {
  const redis = await startRedis();
  const replicas = await startReplicas(redis.url, 2, { gateway: { maxStreamsPerToken: 2 } });
  const [holder, origin] = replicas as [TestReplica, TestReplica];
  let tunnel: ResumableTunnel | undefined;
  const controller = new AbortController();
  try {
    tunnel = await registerResumable(holder.gateway, "files");
    await claimed(holder, tunnel.sessionId);
    // All at once: each waits for the lookup of a server another replica holds.
    const answers = await Promise.all(Array.from({ length: 8 }, async () => {
      const response = await fetch(`${origin.gateway.url}/servers/files/sse`, {
        signal: controller.signal,
        headers: { accept: "text/event-stream", authorization: `Bearer ${TOKENS.alice}` },
      });
      const text = response.status === 200 ? "" : await response.text();
      return { status: response.status, text };
    }));
    assert.deepEqual(
      answers.map((a) => a.status).sort(),
      [200, 200, 429, 429, 429, 429, 429, 429],
    );
    assert.match(answers.find((a) => a.status === 429)!.text, /--max-streams-per-token/);
  } finally {
    controller.abort();
    tunnel?.tunnel.socket.close();
    await closeReplicas(replicas);
    await redis.stop();
  }
});
