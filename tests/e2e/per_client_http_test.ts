// End to end: a per-client server whose local side is an HTTP upstream (server-everything from npm in
// its streamableHttp mode, behind a recording tap), reached through a real serve by official SDK clients.
// Each MCP client gets an upstream MCP session of its own: its state (log level) stays its own and what
// the upstream sends for one session reaches that client alone; ending a client's session ends its
// upstream session with a DELETE, and the other session goes on; connect's shutdown ends the rest.

import assert from "node:assert/strict";
import { HttpEverything } from "../fixtures/http_mcp_servers.ts";
import { HttpTap } from "../fixtures/http_tap.ts";
import { startTestGateway, within } from "../fixtures/test_gateway.ts";
import {
  infoLogsOfSubscribing,
  metric,
  type RecordingClient,
  recordingClient,
  startPerClient,
  waitInstances,
} from "../fixtures/per_client.ts";

/** A ping straight to the upstream on `session`: its HTTP status. */
async function pingUpstream(everything: HttpEverything, session: string): Promise<number> {
  const response = await fetch(everything.url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-session-id": session,
      "mcp-protocol-version": "2025-11-25",
    },
    body: JSON.stringify({ jsonrpc: "2.0", id: "direct", method: "ping" }),
  });
  await response.body?.cancel();
  return response.status;
}

Deno.test("per-client over an HTTP upstream: an upstream MCP session per client, state kept apart, a client's DELETE ends its upstream session alone, shutdown the rest", async () => {
  const gateway = await startTestGateway({ callTimeoutMs: 30_000 });
  await using everything = await HttpEverything.start("streamableHttp");
  await using tap = HttpTap.start(new URL(everything.url).origin);
  const clients: RecordingClient[] = [];
  try {
    await using proxy = await startPerClient(gateway, {
      name: "web",
      http: tap.url("/mcp"),
      flags: ["--health-listen", "127.0.0.1:0"],
    });
    assert.equal(tap.records.length, 0, "no client, no upstream session");

    // Two clients: two upstream sessions, each initialized once, each with its own event stream.
    const upstreamOf = new Map<RecordingClient, string>();
    for (const label of ["A", "B"]) {
      const from = tap.records.length;
      const client = await recordingClient(gateway, "web", { label, capabilities: {} });
      clients.push(client);
      const init = await tap.waitFor(`${label}'s initialize`, (r) => r.rpc === "initialize", {
        from,
      });
      assert.equal(init.status, 200);
      // The upstream session is initialized with this client's own parameters.
      const params = (JSON.parse(init.body!) as { params: Record<string, unknown> }).params;
      assert.deepEqual(params.clientInfo, { name: label, version: "1.0.0" });
      assert.deepEqual(params.capabilities, {});
      assert.ok(init.given, "the upstream gave a session");
      upstreamOf.set(client, init.given);
      await tap.waitFor(
        `${label}'s event stream`,
        (r) => r.method === "GET" && r.session === init.given && r.status === 200,
        { from },
      );
    }
    const [a, b] = clients as [RecordingClient, RecordingClient];
    const aUp = upstreamOf.get(a)!;
    const bUp = upstreamOf.get(b)!;
    assert.notEqual(aUp, bUp, "two upstream MCP sessions");
    assert.equal(tap.records.filter((r) => r.rpc === "initialize").length, 2);
    await waitInstances(gateway, 2);

    // Log levels are each session's own: A takes errors only, B everything. Each subscription is logged
    // at info to the subscriber's upstream session, which the message names.
    await within(a.client.setLoggingLevel("error"), 10_000, "A setLevel");
    await within(b.client.setLoggingLevel("debug"), 10_000, "B setLevel");
    assert.deepEqual(await infoLogsOfSubscribing(a, "A"), [], "A's level is error");
    const bInfo = await infoLogsOfSubscribing(b, "B");
    assert.equal(bInfo.length, 1, "B's level is debug");
    assert.match(String(bInfo[0]), new RegExp(`from session ${bUp}`), "from B's own session");
    assert.ok(!a.received.logs.some((l) => String(l.data).includes(bUp)), "none of B's reach A");
    assert.ok(a.received.updates.length > 0, "A's subscription updates reach A");
    // Every request after the initializes named one of the two sessions.
    for (const record of tap.records.filter((r) => r.rpc !== "initialize")) {
      assert.ok(record.session === aUp || record.session === bUp, `${record.method} ${record.rpc}`);
    }

    // A's session ends: connect ends A's upstream session with a DELETE, and B's goes on.
    const from = tap.records.length;
    await within(a.transport.terminateSession(), 5_000, "A's DELETE");
    await a.client.close();
    clients.shift();
    const deleted = await tap.waitFor(
      "A's upstream session deleted",
      (r) => r.method === "DELETE",
      {
        from,
      },
    );
    assert.equal(deleted.session, aUp);
    assert.equal(deleted.status, 200);
    assert.equal(await pingUpstream(everything, aUp), 400, "the upstream forgot A's session");
    assert.equal(await pingUpstream(everything, bUp), 200, "and kept B's");
    await within(b.client.ping(), 10_000, "B after A left");
    await waitInstances(gateway, 1);
    assert.equal(await metric(proxy, 'mcp_rproxy_server_instances{server="web"}'), 1);
    assert.ok(!tap.records.slice(from).some((r) => r.method === "DELETE" && r.session === bUp));

    // connect shuts down: B's upstream session is ended too.
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(15_000), 0);
    const last = await tap.waitFor("B's upstream session deleted", (r) => r.method === "DELETE", {
      from: tap.records.indexOf(deleted) + 1,
    });
    assert.equal(last.session, bUp);
    assert.equal(await pingUpstream(everything, bUp), 400, "the upstream forgot B's session");
  } finally {
    await Promise.all(clients.map((c) => c.client.close().catch(() => {})));
    await gateway.close();
  }
});
