// End to end: per-client instances across a real link drop (a TCP relay between connect and serve cuts
// the link and holds the redial). The instances, and the state each keeps for its client, outlive the
// drop: same processes, not started again, whether the session is resumed or (past the resume window)
// registered afresh. A client session that ends while the link is down cannot be told to connect then;
// the registration's acknowledgement lists the sessions still open, and connect stops the instance of the
// one that ended (at once, not after its idle timeout).

import assert from "node:assert/strict";
import { EVERYTHING_SERVER } from "../fixtures/proxy_process.ts";
import { startTcpRelay } from "../fixtures/tcp_relay.ts";
import { startTestGateway, TOKENS, within } from "../fixtures/test_gateway.ts";
import {
  gone,
  infoLogsOfSubscribing,
  metric,
  type RecordingClient,
  recordingClient,
  startPerClient,
  textOf,
  waitInstances,
} from "../fixtures/per_client.ts";
import type { Gateway } from "../../lib/serve/gateway.ts";

/** Waits (bounded) until the sessions API's list of tunneled sessions passes `check`. */
async function waitSessions(
  gateway: Gateway,
  what: string,
  check: (sessions: { detached?: boolean }[]) => boolean,
  ms = 10_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const response = await fetch(`${gateway.url}/reverse-proxy/sessions`, {
      headers: { Authorization: `Bearer ${TOKENS.alice}` },
    });
    const body = await response.json() as { sessions: { detached?: boolean }[] };
    if (check(body.sessions)) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.fail(`the gateway never ${what}`);
}

/**
 * Three clients, three instances; the link drops and C's session ends while it is down. `resumed`: the
 * link comes back within the resume window; `expired`: past it, connect registers afresh.
 */
async function dropWhileSessionEnds(how: "resumed" | "expired"): Promise<void> {
  const gateway = await startTestGateway({
    callTimeoutMs: 30_000,
    ...(how === "expired" ? { resumeWindowMs: 300 } : {}),
  });
  const relay = await startTcpRelay({ targetPort: gateway.port });
  const clients: RecordingClient[] = [];
  try {
    await using proxy = await startPerClient(gateway, {
      name: "every",
      command: EVERYTHING_SERVER,
      gatewayUrl: `http://127.0.0.1:${relay.port}`,
      flags: ["--health-listen", "127.0.0.1:0"],
    });
    for (const label of ["A", "B", "C"]) {
      clients.push(await recordingClient(gateway, "every", { label, capabilities: {} }));
    }
    const [a, b, c] = clients as [RecordingClient, RecordingClient, RecordingClient];
    const pidOf = new Map(
      (await waitInstances(gateway, 3)).map((i) => [i.client_session, i.pid!]),
    );
    // Taken now: a transport forgets its session id on DELETE.
    const ids = new Map(clients.map((x) => [x, x.transport.sessionId!]));
    const sessionOf = (client: RecordingClient) => ids.get(client)!;
    assert.equal(pidOf.size, 3);
    // State kept by A's instance alone: it sends A nothing below error.
    await within(a.client.setLoggingLevel("error"), 10_000, "A setLevel");

    // Resumed: B's call in flight across the drop is answered after it (its answer waits in connect's
    // replay buffer). Past the window it cannot be.
    const calls = 'mcp_rproxy_calls_in_flight{server="every"}';
    const progressed = Promise.withResolvers<void>();
    const slow = b.client.callTool(
      { name: "trigger-long-running-operation", arguments: { duration: 1, steps: 2 } },
      undefined,
      { timeout: 30_000, onprogress: () => progressed.resolve() },
    ).then((result: unknown) => textOf(result), (error: Error) => `error: ${error.message}`);
    await within(progressed.promise, 10_000, "B's long call to run");

    // The link drops; connect's redial is held, so the gateway keeps the session detached (or, past
    // the window, ends it).
    relay.blackhole();
    relay.cut();
    if (how === "resumed") {
      await waitSessions(gateway, "saw the link drop", (s) => s[0]?.detached === true);
    } else await waitSessions(gateway, "ended the session", (s) => s.length === 0);
    // C's session ends meanwhile: the gateway cannot tell connect now.
    await within(c.transport.terminateSession(), 5_000, "C's DELETE");
    await c.client.close();
    clients.pop();
    if (how === "resumed") {
      // The instance answers B while the link is down: the answer waits for the link.
      for (let i = 0; i < 200 && await metric(proxy, calls) > 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(await metric(proxy, calls), 0, "B's instance answered while the link was down");
    }
    const from = proxy.lines.length;
    relay.restore();
    if (how === "resumed") await proxy.waitForEvent("resumed", 20_000, from);
    else {
      assert.equal((await proxy.waitForEvent("resume_refused", 20_000, from)).why, "expired");
      await proxy.waitForEvent("registered", 20_000, from);
    }

    assert.match(
      await within(slow, 20_000, "B's long call"),
      how === "resumed" ? /^Long running operation completed/ : /^error: /,
    );

    // Back: C's instance stops at once (its idle timeout is minutes away), A's and B's live on.
    const cPid = pidOf.get(sessionOf(c));
    assert.ok(cPid !== undefined, "C's instance was listed with its PID");
    await gone(cPid, 5_000);
    const after = await waitInstances(gateway, 2);
    assert.deepEqual(
      new Map(after.map((i) => [i.client_session, i.pid])),
      new Map([a, b].map((x) => [sessionOf(x), pidOf.get(sessionOf(x))])),
      "A and B keep the processes they had before the drop",
    );
    assert.equal(
      await metric(proxy, 'mcp_rproxy_server_instance_starts_total{server="every"}'),
      3,
      "no instance was started again",
    );
    // Counted once the process is reaped (the sessions API may list the two before that).
    const stops = 'mcp_rproxy_server_instance_stops_total{server="every",reason="session_end"}';
    for (let i = 0; i < 100 && !(await metric(proxy, stops) >= 1); i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(await metric(proxy, stops), 1);
    // A's instance still holds A's level (a new one would send A every level); B's sends B info.
    assert.equal(
      (await infoLogsOfSubscribing(a, "A")).length,
      0,
      "A's level error outlived the drop",
    );
    assert.equal((await infoLogsOfSubscribing(b, "B")).length, 1, "B's instance answers as before");
  } finally {
    relay.restore();
    await Promise.all(clients.map((x) => x.client.close().catch(() => {})));
    await relay.close();
    await gateway.close();
  }
}

Deno.test("per-client across a resumed link: instances and their state outlive the drop, and a session that ended while it was down stops its instance once it is back", async () => {
  await dropWhileSessionEnds("resumed");
});

Deno.test("per-client past the resume window: connect registers afresh, the instances of open sessions live on, the ended session's stops", async () => {
  await dropWhileSessionEnds("expired");
});
