// Calls between replicas, in process against a real Redis: an MCP client on one replica, the tunnel on
// another. Answers, progress, 16 MiB results, cancellation and sessions cross; a Redis outage refuses
// cross-replica calls with a clear error while calls on the holder itself go on.

import assert from "node:assert/strict";
import { ErrorCode } from "../../../lib/protocol/jsonrpc.ts";
import { claimed, closeReplicas, startReplicas, waitReadiness } from "../../fixtures/replicas.ts";
import { startRedis } from "../../fixtures/redis_server.ts";
import {
  bridge,
  connectClient,
  createTestServer,
  serveTestServer,
  TOKENS,
  TunnelClient,
  within,
} from "../../fixtures/test_gateway.ts";
import { delay } from "../../../lib/util/delay.ts";
import { readSse } from "../../fixtures/mcp_http.ts";

function text(result: unknown): string {
  const content = (result as { content?: { text?: string }[] }).content;
  return String(content?.[0]?.text);
}

Deno.test("a call on a replica that does not hold the tunnel is answered through the one that does", async () => {
  const redis = await startRedis();
  const replicas = await startReplicas(redis.url, 2);
  const [holder, origin] = replicas as [typeof replicas[0], typeof replicas[0]];
  const served = await serveTestServer(holder.gateway, "srv");
  await claimed(holder, String(served.ack.sessionId));
  const client = await connectClient(origin.gateway, "srv", TOKENS.alice);
  try {
    const listed = await within(client.listTools(), 5_000, "tools/list") as {
      tools: { name: string }[];
    };
    assert.ok(listed.tools.some((tool: { name: string }) => tool.name === "echo"));
    const echo = await within(
      client.callTool({ name: "echo", arguments: { text: "across" } }),
      5_000,
      "echo",
    );
    assert.equal(text(echo), "across");
    // Progress crosses with the call's own token.
    const progress: number[] = [];
    const slow = await within(
      client.callTool({ name: "slow", arguments: { steps: 3, stepMs: 5, tailMs: 20 } }, undefined, {
        onprogress: (p: { progress: number }) => progress.push(p.progress),
      }),
      5_000,
      "slow",
    );
    assert.equal(text(slow), "done 3");
    assert.deepEqual(progress, [1, 2, 3]);
    // 16 MiB cross back whole.
    const started = performance.now();
    const big = await within(
      client.callTool({ name: "big", arguments: { bytes: 16 << 20 } }),
      60_000,
      "big",
    );
    assert.equal(text(big).length, 16 << 20);
    console.log(`16 MiB result across replicas: ${(performance.now() - started).toFixed(0)} ms`);
    const cross = origin.cluster.metrics!.crossCalls;
    assert.ok(cross.value("answered") >= 4, `answered ${cross.value("answered")}`);
    assert.equal(
      holder.cluster.metrics!.crossCalls.value("answered"),
      0,
      "the holder called locally",
    );
  } finally {
    await client.close();
    await served.close();
    await closeReplicas(replicas);
    await redis.stop();
  }
});

Deno.test("an MCP session opened on one replica goes on when its next request lands on another", async () => {
  const redis = await startRedis();
  const replicas = await startReplicas(redis.url, 3);
  const [holder, first, second] = replicas as [
    typeof replicas[0],
    typeof replicas[0],
    typeof replicas[0],
  ];
  const served = await serveTestServer(holder.gateway, "srv");
  await claimed(holder, String(served.ack.sessionId));
  const client = await connectClient(first.gateway, "srv", TOKENS.alice);
  try {
    const sessionId = (client.transport as { sessionId?: string }).sessionId!;
    assert.ok(sessionId);
    for (const replica of [second, holder]) {
      const response = await fetch(`${replica.gateway.url}/servers/srv/mcp`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${TOKENS.alice}`,
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          "mcp-session-id": sessionId,
          "mcp-protocol-version": "2025-11-25",
        },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 7,
          method: "tools/call",
          params: { name: "echo", arguments: { text: `on ${replica.rid}` } },
        }),
      });
      assert.equal(response.status, 200, await response.clone().text());
      const body = await response.json();
      assert.equal(body.id, 7);
      assert.equal(body.result.content[0].text, `on ${replica.rid}`);
    }
    // Another owner's token does not get the session anywhere.
    const stranger = await fetch(`${second.gateway.url}/servers/srv/mcp`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${TOKENS.bob}`,
        "content-type": "application/json",
        accept: "application/json",
        "mcp-session-id": sessionId,
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    });
    assert.equal(stranger.status, 404);
    await stranger.body?.cancel();
  } finally {
    await client.close();
    await served.close();
    await closeReplicas(replicas);
    await redis.stop();
  }
});

Deno.test("cancelling a call on the origin replica cancels it at the server behind the holder", async () => {
  const redis = await startRedis();
  const replicas = await startReplicas(redis.url, 2);
  const [holder, origin] = replicas as [typeof replicas[0], typeof replicas[0]];
  const served = await serveTestServer(holder.gateway, "srv");
  await claimed(holder, String(served.ack.sessionId));
  const client = await connectClient(origin.gateway, "srv", TOKENS.alice);
  try {
    const controller = new AbortController();
    const call = client.callTool(
      { name: "slow", arguments: { steps: 1000, stepMs: 20, tag: "crossed" } },
      undefined,
      { signal: controller.signal, onprogress: () => controller.abort("enough") },
    );
    await assert.rejects(within(call, 5_000, "the cancelled call"));
    await served.log.waitCancelled("crossed", 5_000);
  } finally {
    await client.close();
    await served.close();
    await closeReplicas(replicas);
    await redis.stop();
  }
});

Deno.test("with Redis down a cross-replica call gets a clear error, and calls on the holder go on", async () => {
  const redis = await startRedis();
  const replicas = await startReplicas(redis.url, 2);
  const [holder, origin] = replicas as [typeof replicas[0], typeof replicas[0]];
  const served = await serveTestServer(holder.gateway, "srv");
  await claimed(holder, String(served.ack.sessionId));
  const remote = await connectClient(origin.gateway, "srv", TOKENS.alice);
  const local = await connectClient(holder.gateway, "srv", TOKENS.alice);
  try {
    await redis.kill();
    for (const replica of replicas) await waitReadiness(replica.cluster, false);
    const refused: { code?: number; message: string } | undefined = await within(
      remote.callTool({ name: "echo", arguments: { text: "x" } }).then(
        () => undefined,
        (error: unknown) => error as { code?: number; message: string },
      ),
      5_000,
      "the refused call",
    );
    assert.equal(refused?.code, ErrorCode.TunnelUnavailable);
    assert.match(refused!.message, /Cross-replica calls are refused while Redis is unreachable/);
    const echo = await within(
      local.callTool({ name: "echo", arguments: { text: "still here" } }),
      5_000,
      "the local call",
    );
    assert.equal(text(echo), "still here");
  } finally {
    await remote.close();
    await local.close();
    await served.close();
    await closeReplicas(replicas);
    await redis.stop();
  }
});

Deno.test("a call whose holder goes away gets a JSON-RPC error at the origin's next beat", async () => {
  const redis = await startRedis();
  const replicas = await startReplicas(redis.url, 2, { ttlMs: 1_000, beatMs: 100 });
  const [holder, origin] = replicas as [typeof replicas[0], typeof replicas[0]];
  const served = await serveTestServer(holder.gateway, "srv");
  await claimed(holder, String(served.ack.sessionId));
  const client = await connectClient(origin.gateway, "srv", TOKENS.alice);
  try {
    let progressed: () => void = () => {};
    const started = new Promise<void>((resolve) => progressed = resolve);
    const call = client.callTool(
      { name: "slow", arguments: { steps: 1000, stepMs: 20 } },
      undefined,
      { onprogress: () => progressed() },
    ).then(() => undefined, (error: unknown) => error as { message: string });
    await within(started, 5_000, "the call to run");
    // The holder leaves without a word: its tunnel and its inbox go, its liveness runs out.
    await holder.cluster.liveness.close({ leave: false });
    await holder.cluster.inbox.close();
    await served.tunnel.close();
    const failed: { message: string } | undefined = await within(call, 10_000, "the call to fail");
    assert.match(
      String(failed?.message),
      /Server 'srv': (replica r1 holding its tunnel is gone|the tunnel it was sent to on replica r1 ended) before answering/,
    );
  } finally {
    await client.close();
    await served.close();
    await closeReplicas(replicas);
    await redis.stop();
  }
});

Deno.test("after Redis restarts empty, the replicas publish their sessions again: a session goes on anywhere", async () => {
  const redis = await startRedis();
  const replicas = await startReplicas(redis.url, 3, { ttlMs: 2_000, beatMs: 100 });
  const [holder, first, second] = replicas as [
    typeof replicas[0],
    typeof replicas[0],
    typeof replicas[0],
  ];
  const served = await serveTestServer(holder.gateway, "srv");
  await claimed(holder, String(served.ack.sessionId));
  const client = await connectClient(first.gateway, "srv", TOKENS.alice);
  try {
    const sessionId = (client.transport as { sessionId?: string }).sessionId!;
    await redis.restart();
    for (const replica of replicas) await waitReadiness(replica.cluster, true);
    // Each replica re-asserts at its next beat: the tunnel's claim and directory, the sessions it knows.
    await claimed(holder, String(served.ack.sessionId));
    for (let i = 0;; i++) {
      await second.cluster.commands.ready(AbortSignal.timeout(10_000));
      const known = await second.cluster.commands.redis.exists(`c:${sessionId}`).catch(() => 0);
      if (known === 1) break;
      if (i > 10_000) assert.fail("the session was not published again");
    }
    // Until every replica is back on Redis a cross-replica call is refused (fail closed): ask until
    // the answer comes, each request pacing the next; a session not published again stays a 404.
    const deadline = Date.now() + 10_000;
    let body = "";
    for (;;) {
      const response = await fetch(`${second.gateway.url}/servers/srv/mcp`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${TOKENS.alice}`,
          "content-type": "application/json",
          accept: "application/json",
          "mcp-session-id": sessionId,
          "mcp-protocol-version": "2025-11-25",
        },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 1,
          method: "tools/call",
          params: { name: "echo", arguments: { text: "after the restart" } },
        }),
      });
      body = await response.text();
      if (response.status === 200 && JSON.parse(body).result !== undefined) break;
      if (Date.now() > deadline) {
        assert.fail(`no answer after the restart: ${response.status} ${body}`);
      }
      await second.cluster.commands.ready(AbortSignal.timeout(5_000));
    }
    assert.equal(JSON.parse(body).result.content[0].text, "after the restart", body);
  } finally {
    await client.close();
    await served.close();
    await closeReplicas(replicas);
    await redis.stop();
  }
});

Deno.test("a server request reaches the capable client on another replica; a notification reaches clients on every replica", async () => {
  const redis = await startRedis();
  const replicas = await startReplicas(redis.url, 2);
  const [holder, origin] = replicas as [typeof replicas[0], typeof replicas[0]];
  const { server } = createTestServer("srv");
  const tunnel = await TunnelClient.open(holder.gateway, TOKENS.alice);
  const bridged = await bridge(tunnel, server);
  const client = await (async () => {
    const ack = await tunnel.register("srv");
    await claimed(holder, String(ack.sessionId));
    return await connectClient(origin.gateway, "srv", TOKENS.alice, { roots: ["file:///far"] });
  })();
  try {
    // roots/list from the server finds no client on the holder: the client on the other replica answers.
    const roots = await within(client.callTool({ name: "roots", arguments: {} }), 10_000, "roots");
    assert.equal(text(roots), "file:///far");
    // A notification of the server reaches the client's GET stream on the other replica.
    const { ToolListChangedNotificationSchema } = await import(
      "@modelcontextprotocol/sdk/types.js"
    );
    const changed = new Promise<void>((resolve) =>
      client.setNotificationHandler(ToolListChangedNotificationSchema, () => resolve())
    );
    // The client's GET stream opens after initialize; notify until it is there to receive one.
    const sent = (async () => {
      for (let i = 0; i < 200; i++) {
        await server.sendToolListChanged();
        const done = await Promise.race([changed.then(() => true), delay(50).then(() => false)]);
        if (done) return;
      }
    })();
    await within(changed, 10_000, "tools/list_changed on the other replica");
    await sent;
  } finally {
    await client.close();
    await tunnel.close();
    await bridged.close();
    await closeReplicas(replicas);
    await redis.stop();
  }
});

Deno.test("legacy SSE across replicas: the stream on one replica, its POSTs on another, the tunnel on a third", async () => {
  const redis = await startRedis();
  const replicas = await startReplicas(redis.url, 3);
  const [holder, streamer, poster] = replicas as [
    typeof replicas[0],
    typeof replicas[0],
    typeof replicas[0],
  ];
  const served = await serveTestServer(holder.gateway, "srv");
  await claimed(holder, String(served.ack.sessionId));
  const response = await fetch(`${streamer.gateway.url}/servers/srv/sse`, {
    headers: { authorization: `Bearer ${TOKENS.alice}`, accept: "text/event-stream" },
  });
  const reading = readSse(response);
  try {
    assert.equal(response.status, 200);
    const endpoint = await reading.events.waitFor(() => true, 5_000, "the endpoint event");
    assert.match(
      endpoint.data,
      /sessionId=r2\.[0-9a-f-]{36}$/,
      "the id names the stream's replica",
    );
    const post = (body: unknown, token: string = TOKENS.alice) =>
      fetch(new URL(endpoint.data, poster.gateway.url), {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const accepted = await post({
      jsonrpc: "2.0",
      id: 5,
      method: "tools/call",
      params: { name: "echo", arguments: { text: "three replicas" } },
    });
    assert.equal(accepted.status, 202);
    await accepted.body?.cancel();
    const answer = await reading.events.waitFor(
      (e) => e.event === "message" && JSON.parse(e.data).id === 5,
      10_000,
      "the answer on the stream",
    );
    assert.equal(JSON.parse(answer.data).result.content[0].text, "three replicas");
    // Another owner's POST is refused by the holder of the stream, as on one replica.
    const stranger = await post(
      { jsonrpc: "2.0", method: "notifications/initialized" },
      TOKENS.bob,
    );
    assert.equal(stranger.status, 404);
    await stranger.body?.cancel();
  } finally {
    await reading.close();
    await served.close();
    await closeReplicas(replicas);
    await redis.stop();
  }
});
