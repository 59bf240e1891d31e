// End to end: per-client instances across a restart of serve with --state-dir (real serve subprocesses,
// connect through a TCP relay that holds its redial). The restarted serve restores the server's session
// and its MCP client sessions; one of them ends before connect is back, which serve cannot tell connect
// then. connect resumes: the instance of the session still open is the same process, initialized once,
// and the ended session's instance stops at once.

import assert from "node:assert/strict";
import { DEMO_SERVER, type ProxyProcess } from "../fixtures/proxy_process.ts";
import { listening, startServe } from "../fixtures/serve_process.ts";
import { freePort } from "../fixtures/daemon.ts";
import { startTcpRelay } from "../fixtures/tcp_relay.ts";
import { TOKENS_FILE, within } from "../fixtures/test_gateway.ts";
import {
  gone,
  metric,
  type RecordingClient,
  recordingClient,
  startPerClient,
  textOf,
  waitInstances,
} from "../fixtures/per_client.ts";

Deno.test("per-client with serve restarted (--state-dir): the instance of an open session is kept, one whose session ended before connect came back stops", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-per-client-restart-" });
  const tokensFile = `${dir}/tokens.yaml`;
  await Deno.writeTextFile(tokensFile, TOKENS_FILE);
  const settings = {
    port: freePort(),
    healthPort: freePort(),
    tokensFile,
    stateDir: `${dir}/state`,
  };
  const serve = { url: `http://127.0.0.1:${settings.port}` };
  let first: ProxyProcess | undefined = startServe(settings);
  let second: ProxyProcess | undefined;
  const relay = await startTcpRelay({ targetPort: settings.port });
  const clients: RecordingClient[] = [];
  try {
    await listening(first);
    await using proxy = await startPerClient(serve, {
      name: "demo",
      command: DEMO_SERVER,
      gatewayUrl: `http://127.0.0.1:${relay.port}`,
      flags: ["--health-listen", "127.0.0.1:0"],
    });
    for (const label of ["A", "C"]) {
      clients.push(await recordingClient(serve, "demo", { label, capabilities: {} }));
    }
    const [a, c] = clients as [RecordingClient, RecordingClient];
    const aSession = a.transport.sessionId!;
    const pidOf = new Map(
      (await waitInstances(serve, 2)).map((i) => [i.client_session, i.pid]),
    );
    const aPid = pidOf.get(aSession);
    const cPid = pidOf.get(c.transport.sessionId!);
    assert.ok(aPid !== undefined && cPid !== undefined, "both instances listed with their PIDs");

    // serve stops and starts again; connect's redial is held meanwhile.
    relay.blackhole();
    first.signal("SIGTERM");
    assert.equal(await first.exitCode(15_000), 0, "the first serve stopped cleanly");
    first = undefined;
    relay.cut();
    second = startServe(settings);
    await listening(second);
    const restored = await second.waitForEvent("state_restored", 5_000);
    assert.deepEqual([restored.tunnels, restored.clients], [1, 2]);
    // C's session ends before connect is back.
    await within(c.transport.terminateSession(), 5_000, "C's DELETE");
    await c.client.close();
    clients.pop();
    const from = proxy.lines.length;
    relay.restore();
    await proxy.waitForEvent("resumed", 30_000, from);

    await gone(cPid, 5_000);
    const after = await waitInstances(serve, 1);
    assert.deepEqual(after.map((i) => [i.client_session, i.pid]), [[aSession, aPid]]);
    const stats = await within(
      a.client.callTool({ name: "stats", arguments: {} }),
      10_000,
      "A's call after the restart",
    );
    assert.match(textOf(stats), /"initializeCount":1\b/, "A's instance was not initialized again");
    assert.equal(
      await metric(proxy, 'mcp_rproxy_server_instance_starts_total{server="demo"}'),
      2,
      "no instance was started again",
    );
  } finally {
    relay.restore();
    await Promise.all(clients.map((x) => x.client.close().catch(() => {})));
    await relay.close();
    await first?.[Symbol.asyncDispose]();
    await second?.[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
});
