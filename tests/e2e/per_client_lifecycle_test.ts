// End to end: the life of per-client instances with the real connect and serve and SDK clients. The
// instance count follows the sessions (the sessions API and connect's metrics say so), DELETE stops its
// process within 2 s, the default cap of 16 refuses the 17th session with a clear error, a crashed
// instance fails only its own calls and its next request starts another, and when every session has ended
// the process count is back where it started.

import assert from "node:assert/strict";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { DEMO_SERVER } from "../fixtures/proxy_process.ts";
import { startTestGateway, TOKENS, within } from "../fixtures/test_gateway.ts";
import {
  childrenOf,
  gone,
  instancesAt,
  metric,
  type RecordingClient,
  recordingClient,
  startPerClient,
  textOf,
  waitInstances,
} from "../fixtures/per_client.ts";

/** A POSIX sh MCP server: 16 of them cost little next to 16 runtimes (tests run in parallel). */
const TINY_SERVER = ["sh", new URL("../fixtures/tiny_mcp_server.sh", import.meta.url).pathname];

Deno.test("per-client lifecycle: instances follow sessions, DELETE stops the process within 2 s, the 17th session is refused, a crash stays with its session, and the process count returns to baseline", async () => {
  const gateway = await startTestGateway({ callTimeoutMs: 20_000 });
  const clients: RecordingClient[] = [];
  try {
    await using proxy = await startPerClient(gateway, {
      name: "tiny",
      command: TINY_SERVER,
      flags: ["--health-listen", "127.0.0.1:0"],
    });
    const baseline = childrenOf(proxy.pid).length;
    assert.deepEqual(await instancesAt(gateway), [], "no client, no instance");

    // 16 sessions: 16 instances, each its own process.
    for (let i = 0; i < 16; i += 4) {
      clients.push(
        ...await Promise.all(
          [0, 1, 2, 3].map((j) =>
            recordingClient(gateway, "tiny", { label: `c${i + j}`, capabilities: {} })
          ),
        ),
      );
    }
    const listed = await waitInstances(gateway, 16);
    const bySession = new Map(listed.map((i) => [i.client_session, i.pid!]));
    for (const c of clients) assert.ok(bySession.has(c.transport.sessionId!), "listed by session");
    assert.equal(new Set(bySession.values()).size, 16, "16 distinct processes");
    // Each instance is its process and the watchdog of its process group (group_watchdog.ts).
    assert.equal(childrenOf(proxy.pid).length, baseline + 2 * 16);
    assert.equal(await metric(proxy, 'mcp_rproxy_server_instances{server="tiny"}'), 16);

    // The 17th is refused with a JSON-RPC error that names the limit.
    const refused = await recordingClient(gateway, "tiny", { label: "c16", capabilities: {} }).then(
      (c) => (clients.push(c), "connected"),
      (error: Error) => error.message,
    );
    assert.match(refused, /16 are running, its limit \(max_instances 16\)/);
    assert.equal(
      await metric(proxy, 'mcp_rproxy_server_instance_refusals_total{server="tiny"}'),
      1,
    );
    assert.equal(childrenOf(proxy.pid).length, baseline + 2 * 16, "no process for a refused one");

    // DELETE: the process is gone within 2 s, and the slot is free again.
    const first = clients.shift()!;
    const firstPid = bySession.get(first.transport.sessionId!)!;
    await within(first.transport.terminateSession(), 5_000, "DELETE");
    await gone(firstPid, 2_000);
    await first.client.close();
    await waitInstances(gateway, 15);
    clients.push(await recordingClient(gateway, "tiny", { label: "c17", capabilities: {} }));
    await waitInstances(gateway, 16);

    // A crash: the call in flight of that session fails, the others answer, its next call restarts it.
    const victim = clients[0]!;
    const victimPid = (await instancesAt(gateway)).find((i) =>
      i.client_session === victim.transport.sessionId
    )!.pid!;
    // A plain call (answered as JSON: an error on an SSE stream makes the SDK client resume it) that
    // the server never answers, so that it is in flight when the instance dies.
    const inFlight = victim.client.request(
      { method: "tools/call", params: { name: "hang", arguments: {} } },
      CallToolResultSchema,
    ).then(() => "answered", (error: Error) => error.message);
    const calls = 'mcp_rproxy_calls_in_flight{server="tiny"}';
    for (let i = 0; i < 200 && await metric(proxy, calls) < 1; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20)); // until it runs at the instance
    }
    assert.equal(await metric(proxy, calls), 1);
    Deno.kill(victimPid, "SIGKILL");
    assert.match(await within(inFlight, 10_000, "the crashed call"), /exited/);
    await within(clients[1]!.client.ping(), 10_000, "another session answers");
    await within(victim.client.ping(), 20_000, "the crashed session's next call");
    const now = await waitInstances(gateway, 16);
    assert.ok(!now.some((i) => i.pid === victimPid), "a new process serves the crashed session");
    assert.ok(
      now.some((i) => i.client_session === victim.transport.sessionId),
      "and the same session",
    );

    // Every session ends: every instance stops, the process count is back at its baseline.
    await Promise.all(
      clients.splice(0).map(async (c) => {
        await within(c.transport.terminateSession(), 5_000, "DELETE");
        await c.client.close();
      }),
    );
    await waitInstances(gateway, 0);
    const deadline = Date.now() + 5_000;
    while (childrenOf(proxy.pid).length > baseline && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(childrenOf(proxy.pid).length, baseline);
    assert.equal(await metric(proxy, 'mcp_rproxy_server_instances{server="tiny"}'), 0);
    assert.ok(
      await metric(
        proxy,
        'mcp_rproxy_server_instance_stops_total{server="tiny",reason="session_end"}',
      ) >=
        16,
    );
  } finally {
    await Promise.all(clients.map((c) => c.client.close().catch(() => {})));
    await gateway.close();
  }
});

Deno.test("per-client idle timeout: a quiet instance stops, its process gone; the session's next call starts another, initialized once", async () => {
  const gateway = await startTestGateway({ callTimeoutMs: 20_000 });
  let client: RecordingClient | undefined;
  try {
    await using proxy = await startPerClient(gateway, {
      name: "demo",
      command: DEMO_SERVER,
      extra: ",instance-idle-timeout=0.5",
    });
    client = await recordingClient(gateway, "demo", { label: "quiet", capabilities: {} });
    const [first] = await waitInstances(gateway, 1);
    const stopped = await proxy.waitForLine(
      (l) => l.json?.event === "instance_stopped" && String(l.json.reason).startsWith("idle"),
      10_000,
    );
    assert.equal(stopped.json?.clientSession, client.transport.sessionId);
    await gone(first!.pid!, 2_000);
    await waitInstances(gateway, 0);
    const stats = await within(
      client.client.callTool({ name: "stats", arguments: {} }),
      20_000,
      "the call after the idle stop",
    );
    assert.match(textOf(stats), /"initializeCount":1\b/);
    const [second] = await waitInstances(gateway, 1);
    assert.notEqual(second!.pid, first!.pid);
  } finally {
    await client?.client.close().catch(() => {});
    await gateway.close();
  }
});

Deno.test("per-client stop with no instance running: the unregister reaches the gateway before connect exits, so the session ends at once and the next connect gets the same name", async () => {
  const gateway = await startTestGateway();
  try {
    for (const round of [1, 2]) {
      await using proxy = await startPerClient(gateway, { name: "idle", command: DEMO_SERVER });
      const registered = await proxy.waitForEvent("registered");
      assert.match(String(registered.mcpUrl), /\/servers\/idle\/mcp$/, `round ${round}: its name`);
      proxy.signal("SIGTERM");
      assert.equal(await proxy.exitCode(10_000), 0);
      // Not kept detached for the resume window (as after a dropped connection, 1006), holding the name.
      const response = await fetch(`${gateway.url}/reverse-proxy/sessions`, {
        headers: { Authorization: `Bearer ${TOKENS.alice}` },
      });
      assert.deepEqual((await response.json() as { sessions: unknown[] }).sessions, []);
    }
  } finally {
    await gateway.close();
  }
});
