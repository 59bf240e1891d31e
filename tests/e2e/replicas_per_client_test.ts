// Per-client servers across replicas, end to end: a real redis-server, 3 `serve --redis` replicas, the real
// connect carrying server-everything in per-client mode on r1 (through a TCP relay, to cut its link and to
// move it), and official SDK clients on r2 and r3, which do not hold the tunnel. Each client gets its own
// instance (its own process and state), its calls, notifications and sampling requests cross replicas, a
// DELETE on r2 stops its instance at connect, and neither a resumed link on r1 nor r1 killed (connect
// resuming on r3, then its link resumed there) stops the instances of clients on the other replicas; a
// session that ended while the link was down stops once it is back.

import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { EVERYTHING_SERVER, processAlive } from "../fixtures/proxy_process.ts";
import { holderIndex, startServeCluster } from "../fixtures/serve_cluster.ts";
import { startTcpRelay } from "../fixtures/tcp_relay.ts";
import { TOKENS, within } from "../fixtures/test_gateway.ts";
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

const ALL = { roots: { listChanged: true }, sampling: {}, elicitation: {} };

/** Waits (bounded) until replica `url`'s sessions API says the one tunnel session is `detached`. */
async function waitDetached(url: string, detached: boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const response = await fetch(`${url}/reverse-proxy/sessions`, {
      headers: { Authorization: `Bearer ${TOKENS.alice}` },
    });
    const body = await response.json() as { sessions: { detached?: boolean }[] };
    if ((body.sessions[0]?.detached === true) === detached) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.fail(`the tunnel session at ${url} never became ${detached ? "detached" : "attached"}`);
}

async function echo(client: RecordingClient, text: string): Promise<string> {
  return textOf(
    await within(
      client.client.callTool({ name: "echo", arguments: { message: text } }),
      15_000,
      `echo ${text}`,
    ),
  );
}

Deno.test("replicas per-client: clients on replicas not holding the tunnel get their own instances, calls, notifications and sampling; DELETE there stops the instance; a resumed link and a killed holder keep the other replicas' instances", async () => {
  const cluster = await startServeCluster({ serveArgs: ["--resume-window", "30"] });
  const [r1, r2, r3] = cluster.replicas as [
    (typeof cluster.replicas)[0],
    (typeof cluster.replicas)[0],
    (typeof cluster.replicas)[0],
  ];
  const relay = await startTcpRelay({ targetPort: r1.port });
  const clients: RecordingClient[] = [];
  let legacyClient: Client | undefined;
  try {
    await using proxy = await startPerClient(r1, {
      name: "every",
      command: EVERYTHING_SERVER,
      gatewayUrl: `http://127.0.0.1:${relay.port}`,
      flags: ["--health-listen", "127.0.0.1:0"],
    });
    assert.equal(await holderIndex(cluster), 0, "r1 holds the tunnel");

    // A and B on r2, C on r3: each initializes its own instance through a replica that does not hold it.
    const a = await recordingClient(r2, "every", { label: "A", capabilities: ALL });
    clients.push(a);
    const b = await recordingClient(r2, "every", { label: "B", capabilities: {} });
    clients.push(b);
    const c = await recordingClient(r3, "every", { label: "C", capabilities: {} });
    clients.push(c);
    const ids = new Map(clients.map((x) => [x, x.transport.sessionId!]));
    // And a legacy HTTP+SSE client on r3: its session is not shared in Redis (its stream is on r3).
    const legacy = new Client({ name: "L", version: "1" });
    await within(
      legacy.connect(
        new SSEClientTransport(new URL(`${r3.url}/servers/every/sse`), {
          requestInit: { headers: { Authorization: `Bearer ${TOKENS.alice}` } },
        }),
      ),
      20_000,
      "the legacy client to connect",
    );
    legacyClient = legacy;
    const listed = await waitInstances(r1, 4);
    const pidOf = new Map(listed.map((i) => [i.client_session, i.pid!]));
    const legacyId = [...pidOf.keys()].find((id) => ![...ids.values()].includes(id))!;
    assert.match(legacyId, /^r3\./, "the legacy session's id names the replica of its stream");
    assert.deepEqual(
      new Set(pidOf.keys()),
      new Set([...ids.values(), legacyId]),
      "an instance per client session, named for it",
    );
    assert.equal(new Set(pidOf.values()).size, 4, "four processes");
    const pid = (x: RecordingClient) => pidOf.get(ids.get(x)!)!;
    const legacyEcho = async (text: string) =>
      textOf(
        await within(
          legacy.callTool({ name: "echo", arguments: { message: text } }),
          15_000,
          `legacy echo ${text}`,
        ),
      );
    assert.equal(await legacyEcho("from L"), "Echo: from L");

    // Calls cross replicas to each client's own instance.
    assert.equal(await echo(a, "from A"), "Echo: from A");
    assert.equal(await echo(c, "from C"), "Echo: from C");
    // Tools follow what each client declared in its own initialize: A's instance offers sampling.
    const toolsOf = async (x: RecordingClient) => {
      const { tools }: { tools: { name: string }[] } = await within(
        x.client.listTools(),
        15_000,
        "tools/list",
      );
      return tools.map((t) => t.name);
    };
    assert.ok((await toolsOf(a)).includes("trigger-sampling-request"));
    assert.ok(!(await toolsOf(b)).includes("trigger-sampling-request"));

    // Notifications of an instance reach its client on r2, and its state is its own: A at level error
    // gets no info log when it subscribes, B does.
    await within(a.client.setLoggingLevel("error"), 10_000, "A setLevel");
    const aLogsAtError = a.received.logs.length;
    assert.equal((await infoLogsOfSubscribing(a, "A")).length, 0, "A's own level holds");
    assert.equal((await infoLogsOfSubscribing(b, "B")).length, 1, "B's instance logs to B");
    assert.deepEqual(b.received.updates, [
      "demo://resource/static/document/architecture.md",
    ], "B got its own update, not A's");

    // A server→client request of A's instance reaches A on r2, and its answer comes back.
    const sampled = await within(
      a.client.callTool({
        name: "trigger-sampling-request",
        arguments: { prompt: "hi", maxTokens: 5 },
      }),
      20_000,
      "A sampling",
    );
    assert.match(textOf(sampled), /sampled by A/);
    assert.equal(a.received.sampling, 1);

    // A call of A cancelled on r2: the cancellation reaches A's instance (connect counts the call as
    // done at once, where the operation would take 30 s), after its progress came back across.
    const calls = 'mcp_rproxy_calls_in_flight{server="every"}';
    const cancel = new AbortController();
    const progressed = Promise.withResolvers<void>();
    const long = a.client.callTool(
      { name: "trigger-long-running-operation", arguments: { duration: 30, steps: 30 } },
      undefined,
      { signal: cancel.signal, timeout: 60_000, onprogress: () => progressed.resolve() },
    ).then(() => "answered", (error: Error) => error.name);
    await within(progressed.promise, 10_000, "A's long call to report progress");
    assert.equal(await metric(proxy, calls), 1);
    cancel.abort("the test gave up");
    await within(long, 5_000, "the cancelled call to settle");
    for (let i = 0; i < 100 && await metric(proxy, calls) > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(await metric(proxy, calls), 0, "the cancellation reached A's instance");

    // DELETE on r2 (not the holder): B's instance ends at connect.
    await within(b.transport.terminateSession(), 5_000, "B's DELETE");
    await gone(pid(b), 5_000);
    await b.client.close();
    clients.splice(clients.indexOf(b), 1);
    await waitInstances(r1, 3);

    // The link drops (r1 keeps the session detached), C's session ends on r3 meanwhile, and the link
    // resumes on r1: its register_ack lists A (opened through r2, listed in Redis) and L (whose calls r1
    // passed on) but not C, so C's instance stops and A's and L's live on.
    relay.blackhole();
    relay.cut();
    await waitDetached(r1.url, true);
    await within(c.transport.terminateSession(), 5_000, "C's DELETE");
    await c.client.close();
    clients.splice(clients.indexOf(c), 1);
    let from = proxy.lines.length;
    relay.restore();
    await proxy.waitForEvent("resumed", 20_000, from);
    await gone(pid(c), 5_000);
    assert.ok(processAlive(pid(a)), "A's instance outlived the resumed link");
    assert.equal(await echo(a, "after the resume"), "Echo: after the resume");
    assert.ok(processAlive(pidOf.get(legacyId)!), "L's instance outlived the resumed link");
    assert.equal(await legacyEcho("after the resume"), "Echo: after the resume");

    // r1 is killed; connect resumes on r3 (the relay now leads there). A's instance lives on, and A's
    // calls from r2 reach it through r3.
    relay.retarget(r3.port);
    from = proxy.lines.length;
    await cluster.kill(0);
    await proxy.waitForEvent("resumed", 30_000, from);
    assert.equal(await holderIndex(cluster, { except: 0 }), 2, "r3 holds the tunnel now");
    // The link drops again and resumes on r3, which has passed nothing of A's on yet: its register_ack
    // lists A from Redis (p:), so connect keeps A's instance.
    from = proxy.lines.length;
    relay.cut();
    await proxy.waitForEvent("resumed", 20_000, from);
    assert.equal(await echo(a, "after the kill"), "Echo: after the kill");
    assert.ok(processAlive(pid(a)), "A's instance outlived its holder");
    assert.equal(await legacyEcho("after the kill"), "Echo: after the kill");
    const after = await waitInstances(r3, 2);
    assert.deepEqual(
      new Map(after.map((i) => [i.client_session, i.pid])),
      new Map([[ids.get(a), pid(a)], [legacyId, pidOf.get(legacyId)]]),
    );
    assert.equal(
      await metric(proxy, 'mcp_rproxy_server_instance_starts_total{server="every"}'),
      4,
      "no instance was started again",
    );
    // A's level is still error: the same instance, with its state, sent A no info log since.
    assert.deepEqual(
      a.received.logs.slice(aLogsAtError).filter((l) => l.level === "info"),
      [],
      "A was sent no info log after it set its level",
    );
    // L leaves: its connection was its session, and its instance stops.
    await legacy.close();
    legacyClient = undefined;
    await gone(pidOf.get(legacyId)!, 5_000);
  } finally {
    relay.restore();
    await Promise.all(clients.map((x) => x.client.close().catch(() => {})));
    await legacyClient?.close().catch(() => {});
    await relay.close();
    await cluster.close();
  }
});

/** POSTs a JSON-RPC message to `/servers/every/mcp` of replica `url`, answered as JSON; the answer. */
async function post(url: string, body: object, session?: string): Promise<Response> {
  return await fetch(`${url}/servers/every/mcp`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${TOKENS.alice}`,
      "content-type": "application/json",
      accept: "application/json",
      ...(session === undefined
        ? {}
        : { "mcp-session-id": session, "mcp-protocol-version": "2025-11-25" }),
    },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
}

Deno.test("replicas per-client: a session idle past its TTL on the replica that opened it keeps its instance while another replica uses it, and stops it once idle everywhere", async () => {
  const cluster = await startServeCluster({ serveArgs: ["--mcp-session-ttl", "2"] });
  const [r1, r2, r3] = cluster.replicas as [
    (typeof cluster.replicas)[0],
    (typeof cluster.replicas)[0],
    (typeof cluster.replicas)[0],
  ];
  try {
    await using _proxy = await startPerClient(r1, { name: "every", command: EVERYTHING_SERVER });
    assert.equal(await holderIndex(cluster), 0, "r1 holds the tunnel");
    // Opened on r2 (a raw client: no GET stream, so each replica's copy of it can go idle).
    const initialized = await post(r2.url, {
      jsonrpc: "2.0",
      id: 0,
      method: "initialize",
      params: {
        protocolVersion: "2025-11-25",
        capabilities: {},
        clientInfo: { name: "raw", version: "1" },
      },
    });
    assert.equal(initialized.status, 200, await initialized.clone().text());
    await initialized.body?.cancel();
    const session = initialized.headers.get("mcp-session-id")!;
    const note = await post(
      r2.url,
      { jsonrpc: "2.0", method: "notifications/initialized" },
      session,
    );
    assert.equal(note.status, 202);
    await note.body?.cancel();
    const [instance] = await waitInstances(r1, 1);
    assert.equal(instance?.client_session, session);
    const pid = instance!.pid!;

    // Used on r3 only, for more than twice the TTL: r2 forgets its copy, but Redis says the session
    // lives on, so its instance does.
    const until = Date.now() + 5_000;
    for (let id = 1; Date.now() < until; id++) {
      const response = await post(r3.url, {
        jsonrpc: "2.0",
        id,
        method: "tools/call",
        params: { name: "echo", arguments: { message: `call ${id}` } },
      }, session);
      const answer = await response.json() as { result?: unknown };
      assert.equal(textOf(answer.result), `Echo: call ${id}`);
      assert.ok(processAlive(pid), `the instance ran while the session was used (call ${id})`);
      // Paces the calls: a session used every 300 ms, not a load test.
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    // Idle everywhere now: past its TTL the instance stops.
    await gone(pid, 10_000);
    await waitInstances(r1, 0);
  } finally {
    await cluster.close();
  }
});
