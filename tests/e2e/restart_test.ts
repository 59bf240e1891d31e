// serve restarted under load with --state-dir, end to end with real processes: SDK clients
// (StreamableHTTPClientTransport) go on with the same Mcp-Session-Id, connect resumes its session (same
// server process, never initialized again), and no call is lost but the ones in flight at the stop, which
// get an error. Beside it: --state-dir none gives today's 404, and a state directory that cannot be used
// stops serve at start with a message naming it and the fix.

import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ListRootsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { ExitCode } from "../../main.ts";
import { parsePrometheus, sampleValue } from "../fixtures/prometheus_parser.ts";
import { DEMO_SERVER, type ProxyProcess, startProxy } from "../fixtures/proxy_process.ts";
import { listening, startServe } from "../fixtures/serve_process.ts";
import { TOKENS, TOKENS_FILE, within } from "../fixtures/test_gateway.ts";

/** A port that was free a moment ago: the restarted serve must listen where the first one did. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

function textOf(result: unknown): string {
  const content = (result as { content?: { type: string; text: string }[] }).content;
  return content?.[0]?.text ?? "";
}

/** What one SDK client's HTTP requests got: method, status, the Last-Event-ID it sent. */
interface Exchange {
  method: string;
  status: number;
  lastEventId: string | null;
}

/**
 * An SDK client whose transport records every exchange and reconnects its GET stream patiently, or not at
 * all with `reconnect: false`: the SDK's close() does not stop a reconnection attempt already under way,
 * whose failure then arms another timer after the test ended (seen under load).
 */
async function sdkClient(
  url: string,
  options: { roots?: boolean; reconnect?: boolean } = {},
): Promise<{ client: Client; transport: StreamableHTTPClientTransport; exchanges: Exchange[] }> {
  const exchanges: Exchange[] = [];
  const client = new Client(
    { name: "restart-test", version: "1.0.0" },
    { capabilities: options.roots ? { roots: { listChanged: false } } : {} },
  );
  if (options.roots) {
    client.setRequestHandler(ListRootsRequestSchema, () => ({
      roots: [{ uri: "file:///srv/restart", name: "restart" }],
    }));
  }
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${TOKENS.alice}` } },
    // serve is down for a moment: the GET stream keeps trying (at serve's `retry:`, 0.1 s) for 20 s.
    reconnectionOptions: {
      initialReconnectionDelay: 100,
      maxReconnectionDelay: 200,
      reconnectionDelayGrowFactor: 1,
      maxRetries: options.reconnect === false ? 0 : 200,
    },
    fetch: async (input: string | URL, init?: RequestInit) => {
      const response = await fetch(input, init);
      const headers = new Headers(init?.headers);
      exchanges.push({
        method: init?.method ?? "GET",
        status: response.status,
        lastEventId: headers.get("last-event-id"),
      });
      return response;
    },
  });
  await within(client.connect(transport), 10_000, "the MCP client to connect");
  return { client, transport, exchanges };
}

/**
 * True for an error of a request that reached no session (serve down: connection refused; serve stopping:
 * 503 with Retry-After): safe to send again, as an HTTP client does.
 */
function unreached(error: unknown): boolean {
  return error instanceof TypeError ||
    /fetch failed|Connection refused|error sending request|HTTP error: 503|shutting down; retry/i
      .test(String(error));
}

/** What one client's loop of echo calls saw. */
interface LoopReport {
  ok: number;
  /** Calls answered with an error: in flight when serve stopped. */
  failed: string[];
  /** Sends that never reached a serve (it was down) and were sent again. */
  resent: number;
  /** Answers that did not match their call. */
  wrong: string[];
}

/**
 * Echo calls one after another until `stop` holds, each one `name-i`; a call that cannot reach serve is
 * sent again once serve is back (`serveBack`), never in a tight loop.
 */
async function echoLoop(
  client: Client,
  name: string,
  control: { stop: () => boolean; serveBack: () => Promise<void>; onOk: () => void },
): Promise<LoopReport> {
  const report: LoopReport = { ok: 0, failed: [], resent: 0, wrong: [] };
  for (let i = 0; i < 10_000 && !control.stop(); i++) {
    const message = `${name}-${i}`;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const result = await client.callTool(
          { name: "echo", arguments: { message } },
          undefined,
          { timeout: 20_000 },
        );
        if (textOf(result) !== `Echo: ${message}`) report.wrong.push(JSON.stringify(result));
        report.ok++;
        control.onOk();
        break;
      } catch (error: unknown) {
        if (!unreached(error)) {
          report.failed.push(String(error));
          break;
        }
        report.resent++;
        await control.serveBack();
      }
    }
  }
  return report;
}

Deno.test("serve restarted under load with --state-dir: same MCP sessions, connect resumes on the same server, only calls in flight fail", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-restart-" });
  const tokensFile = `${dir}/tokens.yaml`;
  await Deno.writeTextFile(tokensFile, TOKENS_FILE);
  const port = freePort();
  const healthPort = freePort();
  const settings = { port, healthPort, tokensFile, stateDir: `${dir}/state` };
  // 60 answers in all before the stop, 60 after it.
  const url = `http://127.0.0.1:${port}/servers/svc/mcp`;
  let first: ProxyProcess | undefined = startServe(settings);
  let second: ProxyProcess | undefined;
  const clients: Client[] = [];
  try {
    await listening(first);
    await using connect = startProxy([
      "connect",
      "--gateway",
      `http://127.0.0.1:${port}`,
      "--server-name",
      "svc",
      "--reconnect-delay",
      "0.05",
      "--log-format",
      "json",
      "--",
      ...DEMO_SERVER,
    ], { env: { REVERSE_PROXY_TOKEN: TOKENS.alice } });
    const registered = await connect.waitForEvent("registered", 30_000);
    const started = await connect.waitForEvent("server_started", 30_000);

    const plain = await sdkClient(url);
    const withRoots = await sdkClient(url, { roots: true });
    clients.push(plain.client, withRoots.client);
    const sessionIds = [plain.transport.sessionId, withRoots.transport.sessionId];
    assert.ok(sessionIds.every((id) => typeof id === "string" && id.length > 0));

    // Load: both clients call in a loop; serve is stopped during it, then started again.
    let restarted = false;
    let answeredAfter = 0;
    // Sends that find serve down wait for it to be back (an event, not a timer).
    const serveUp = Promise.withResolvers<void>();
    const serveBack = () => within(serveUp.promise, 30_000, "serve back");
    let okBefore = 0;
    const sixty = Promise.withResolvers<void>();
    const control = {
      stop: () => answeredAfter >= 60,
      serveBack,
      onOk: () => {
        if (restarted) answeredAfter++;
        else if (++okBefore >= 60) sixty.resolve();
      },
    };
    const loops = Promise.all([
      echoLoop(plain.client, "plain", control),
      echoLoop(withRoots.client, "roots", control),
    ]);
    await within(sixty.promise, 30_000, "60 answers before the restart");
    // A call surely in flight when serve stops: it runs for a second on the server, and reported progress.
    const progressed = Promise.withResolvers<void>();
    const slow: Promise<string> = plain.client.callTool(
      { name: "long-running", arguments: { steps: 10, stepMs: 100 } },
      undefined,
      { timeout: 20_000, onprogress: () => progressed.resolve() },
    ).then(() => "answered", (error: unknown) => String(error));
    await within(progressed.promise, 10_000, "the slow call to run");
    restarted = true;
    first.signal("SIGTERM");
    assert.equal(await first.exitCode(15_000), 0, "the first serve stopped cleanly");
    first = undefined;
    const slowOutcome = await within(slow, 20_000, "the slow call's outcome");
    // The gateway's error, at once (the SDK's own timeout is also -32001: the text tells them apart).
    assert.match(slowOutcome, /closed before it answered: gateway shutting down/);

    const resumedFrom = connect.lines.length;
    second = startServe(settings);
    await listening(second);
    serveUp.resolve();
    const restored = await second.waitForEvent("state_restored", 5_000);
    assert.equal(restored.tunnels, 1);
    assert.equal(restored.clients, 2);
    const resumed = await connect.waitForEvent("resumed", 30_000, resumedFrom);
    assert.equal(resumed.session, registered.session, "connect resumed its session");

    const reports = await within(loops, 60_000, "the loops to end");
    for (const [index, report] of reports.entries()) {
      assert.deepEqual(report.wrong, [], `client ${index}: every answer matched its call`);
      assert.ok(
        report.failed.length <= 1,
        `client ${index}: at most the one call in flight at the stop failed: ${report.failed}`,
      );
      for (const failure of report.failed) {
        assert.match(failure, /closed before it answered: gateway shutting down/);
      }
    }
    const total = reports.reduce((sum, r) => sum + r.ok, 0);
    assert.ok(total >= 120, `answers before and after the restart: ${total}`);

    // The same sessions, never a 404 (the SDK would not initialize again by itself).
    assert.deepEqual([plain.transport.sessionId, withRoots.transport.sessionId], sessionIds);
    for (const { exchanges } of [plain, withRoots]) {
      assert.deepEqual(exchanges.filter((e) => e.status === 404), []);
    }
    // Each GET stream came back on the new process with its Last-Event-ID; no GET got an error (the
    // SDK resumes even a stream that ended with an error answer: it gets 204, nothing held, and stops).
    for (const { exchanges } of [plain, withRoots]) {
      const refused = exchanges.filter((e) => e.method === "GET" && e.status >= 400);
      assert.deepEqual(refused, [], "no GET was refused");
      assert.ok(
        exchanges.some((e) => e.method === "GET" && e.status === 200 && e.lastEventId !== null),
        `a GET with Last-Event-ID answered 200: ${
          JSON.stringify(exchanges.filter((e) => e.method === "GET"))
        }`,
      );
    }
    // The restored session still declares roots: the server's roots/list reaches that client.
    const roots = await within(plain.client.callTool({ name: "roots" }), 10_000, "roots");
    assert.match(textOf(roots), /file:\/\/\/srv\/restart/);
    // One server process, initialized once; one connect session throughout.
    const stats = JSON.parse(textOf(await plain.client.callTool({ name: "stats" })));
    assert.equal(stats.initializeCount, 1, "the server was not initialized again");
    assert.equal(connect.lines.filter((l) => l.json?.event === "server_started").length, 1);
    assert.equal(
      connect.lines.filter((l) =>
        l.json?.event === "registered" && l.json.session !== registered.session
      ).length,
      0,
      "no fresh registration",
    );
    assert.equal(connect.lines.filter((l) => l.json?.event === "resume_refused").length, 0);
    assert.equal(typeof started.pid, "number");
    // Every call that failed at the stop (the slow one, and an echo per client at most) was answered
    // by the server all the same: connect sent those answers to the new serve, which dropped and counted
    // each as late. No more, no fewer.
    const expectedLate = 1 + reports.reduce((sum, r) => sum + r.failed.length, 0);
    const metricsUrl = `http://127.0.0.1:${healthPort}/metrics`;
    const late = async () =>
      sampleValue(
        parsePrometheus(await (await fetch(metricsUrl)).text()),
        "mcp_rproxy_errors_total",
        { kind: "late_response" },
      );
    const lateBy = Date.now() + 10_000;
    let lateCount = await late();
    // Each round trip to the health listener paces the next look; the slow call ends a second after it began.
    while (lateCount < expectedLate && Date.now() < lateBy) lateCount = await late();
    assert.equal(lateCount, expectedLate, "late answers: one per call that failed at the stop");
    const file = await Deno.readFile(`${dir}/state/serve.sqlite`);
    assert.ok(!new TextDecoder().decode(file).includes(TOKENS.alice), "no bearer token stored");
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await first?.[Symbol.asyncDispose]();
    await second?.[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve restarted with --state-dir none forgets MCP sessions: the client gets 404", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-restart-" });
  const tokensFile = `${dir}/tokens.yaml`;
  await Deno.writeTextFile(tokensFile, TOKENS_FILE);
  const settings = { port: freePort(), healthPort: freePort(), tokensFile, stateDir: "none" };
  const url = `http://127.0.0.1:${settings.port}/servers/svc/mcp`;
  let first: ProxyProcess | undefined = startServe(settings);
  let second: ProxyProcess | undefined;
  const clients: Client[] = [];
  try {
    await listening(first);
    await using connect = startProxy([
      "connect",
      "--gateway",
      `http://127.0.0.1:${settings.port}`,
      "--server-name",
      "svc",
      "--reconnect-delay",
      "0.05",
      "--log-format",
      "json",
      "--",
      ...DEMO_SERVER,
    ], { env: { REVERSE_PROXY_TOKEN: TOKENS.alice } });
    const registered = await connect.waitForEvent("registered", 30_000);
    // Only its POSTs matter here: a GET stream trying to come back would outlive the test.
    const { client, exchanges } = await sdkClient(url, { reconnect: false });
    clients.push(client);
    await client.callTool({ name: "echo", arguments: { message: "before" } });
    first.signal("SIGTERM");
    assert.equal(await first.exitCode(15_000), 0);
    first = undefined;
    const from = connect.lines.length;
    second = startServe(settings);
    await listening(second);
    // connect cannot resume (the new serve never heard of its session): it registers afresh.
    const refused = await connect.waitForEvent("resume_refused", 30_000, from);
    assert.equal(refused.why, "unknown-session");
    await connect.waitForLine(
      (l) => l.json?.event === "registered" && l.json.session !== registered.session,
      30_000,
      from,
    );
    const error = await client.callTool({ name: "echo", arguments: { message: "after" } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.match(String(error), /404|Session not found/);
    assert.ok(exchanges.some((e) => e.method === "POST" && e.status === 404));
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await first?.[Symbol.asyncDispose]();
    await second?.[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a state directory serve cannot use stops it at start: corrupt (exit 2), not writable (exit 2), in use (exit 1)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-restart-" });
  const tokensFile = `${dir}/tokens.yaml`;
  await Deno.writeTextFile(tokensFile, TOKENS_FILE);
  const args = (stateDir: string) => [
    "serve",
    "--listen",
    "127.0.0.1:0",
    "--tokens-file",
    tokensFile,
    "--state-dir",
    stateDir,
  ];
  try {
    await Deno.mkdir(`${dir}/corrupt`);
    await Deno.writeTextFile(`${dir}/corrupt/serve.sqlite`, "not a database ".repeat(100));
    await using corrupt = startProxy(args(`${dir}/corrupt`));
    assert.equal(await corrupt.exitCode(15_000), ExitCode.Usage);
    assert.match(corrupt.text(), /corrupt\/serve\.sqlite is corrupt/);
    assert.match(corrupt.text(), /move it away/);
    assert.doesNotMatch(corrupt.text(), /^\s+at /m, "no stack trace");

    // Deno may not write there (as root, file modes would not stop it): the permission names the fix.
    await using unwritable = startProxy(args(`${dir}/elsewhere`), {
      permissions: [
        "--no-prompt",
        "--allow-net",
        "--allow-env",
        `--allow-read=${dir}`,
        `--allow-write=${dir}/state-only`,
      ],
    });
    assert.equal(await unwritable.exitCode(15_000), ExitCode.Usage);
    assert.match(unwritable.text(), new RegExp(`Cannot use state directory ${dir}/elsewhere`));
    assert.match(unwritable.text(), /--allow-write=/);
    assert.match(unwritable.text(), /--state-dir none/);

    await using holder = startProxy([...args(`${dir}/shared`), "--log-format", "json"]);
    await listening(holder);
    await using second = startProxy(args(`${dir}/shared`));
    assert.equal(await second.exitCode(15_000), ExitCode.Failure);
    assert.match(second.text(), /shared\/serve\.sqlite is in use by another process/);
    assert.doesNotMatch(second.text(), /unexpected error/);
    holder.signal("SIGTERM");
    assert.equal(await holder.exitCode(15_000), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
