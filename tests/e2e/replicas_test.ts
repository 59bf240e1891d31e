// Three `serve --redis` replicas behind HAProxy (round-robin per request, no sticky sessions), connect with
// server-everything through HAProxy, four SDK clients through HAProxy: every call succeeds, a session
// started on one replica goes on on the others, and a 16 MiB message crosses replicas both ways.

import assert from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { DEMO_SERVER, EVERYTHING_SERVER, startProxy } from "../fixtures/proxy_process.ts";
import { clusterClient, replicaMetric, startServeCluster } from "../fixtures/serve_cluster.ts";
import { textOf } from "../fixtures/per_client.ts";
import { TOKENS, within } from "../fixtures/test_gateway.ts";

Deno.test("3 replicas behind HAProxy: 4 SDK clients' calls all succeed, sessions move between replicas, 16 MiB crosses", async () => {
  const cluster = await startServeCluster();
  const clients: Client[] = [];
  try {
    // server-everything, and the demo server for a 16 MiB result (server-everything has no tool that
    // returns that much), both on one link through HAProxy.
    await using connect = startProxy([
      "connect",
      "--gateway",
      cluster.url,
      "--server",
      `name=everything,stdio="${EVERYTHING_SERVER.join(" ")}"`,
      "--server",
      `name=demo,stdio="${DEMO_SERVER.join(" ")}"`,
      "--log-format",
      "json",
    ], { env: { REVERSE_PROXY_TOKEN: TOKENS.alice } });
    await connect.waitForLine(
      (l) => l.json?.event === "registered" && l.json.server === "everything",
      60_000,
    );
    await connect.waitForLine(
      (l) => l.json?.event === "registered" && l.json.server === "demo",
      60_000,
    );

    for (let i = 0; i < 4; i++) clients.push(await clusterClient(cluster.url));
    const calls = clients.flatMap((client, c) =>
      Array.from(
        { length: 25 },
        (_, n) =>
          client.callTool({ name: "echo", arguments: { message: `c${c}-n${n}` } }).then((
            result: unknown,
          ) => assert.equal(textOf(result), `Echo: c${c}-n${n}`)),
      )
    );
    await within(Promise.all(calls), 60_000, "100 calls");

    // Every replica took requests, and the two that do not hold the tunnel sent theirs across.
    const crossed = await Promise.all(
      cluster.replicas.map((r) =>
        replicaMetric(r, "mcp_rproxy_cross_replica_calls_total", { outcome: "answered" })
      ),
    );
    const owned = await Promise.all(
      cluster.replicas.map((r) => replicaMetric(r, "mcp_rproxy_tunnels_owned")),
    );
    assert.deepEqual(owned.toSorted(), [0, 0, 2], `tunnels owned ${owned}`);
    const holder = owned.indexOf(2);
    assert.equal(crossed[holder], 0, "the holder calls its own tunnel directly");
    assert.ok(
      crossed.filter((_, i) => i !== holder).every((n) => n > 0),
      `cross-replica calls ${crossed}`,
    );

    // One session, straight to each replica in turn.
    const sessionId = (clients[0]!.transport as { sessionId?: string }).sessionId!;
    for (const replica of cluster.replicas) {
      const response = await fetch(`${replica.url}/servers/everything/mcp`, {
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
          id: replica.rid,
          method: "tools/call",
          params: { name: "echo", arguments: { message: replica.rid } },
        }),
      });
      assert.equal(response.status, 200, `${replica.rid}: ${await response.clone().text()}`);
      const text = await response.text();
      assert.match(text, new RegExp(`Echo: ${replica.rid}`), replica.rid);
    }

    // A 16 MiB result, through a replica that does not hold the tunnel.
    const other = cluster.replicas[(holder + 1) % 3]!;
    const direct = await clusterClient(other.url, { server: "demo" });
    clients.push(direct);
    const started = performance.now();
    const big = await within(
      direct.callTool({ name: "big", arguments: { bytes: 16 << 20 } }, undefined, {
        timeout: 120_000,
      }),
      120_000,
      "the 16 MiB result",
    );
    assert.ok(textOf(big) === "x".repeat(16 << 20), "16 MiB came back whole");
    console.log(`16 MiB result across replicas: ${(performance.now() - started).toFixed(0)} ms`);
  } finally {
    for (const client of clients) await client.close().catch(() => {});
    await cluster.close();
  }
});
