// connect's protection paths, each run for real with the program, a real misbehaving server
// (tests/fixtures/fault_server.ts) and real gateways, so that each fails when its rule breaks.

import assert from "node:assert/strict";
import { parsePrometheus } from "../fixtures/prometheus_parser.ts";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { type ContractGateway, startContractGateway } from "../fixtures/contract_gateway.ts";
import { EVERYTHING_SERVER, type ProxyProcess, startProxy } from "../fixtures/proxy_process.ts";
import { startTcpRelay } from "../fixtures/tcp_relay.ts";
import { connectClient, startTestGateway, TOKENS, within } from "../fixtures/test_gateway.ts";
import type { JsonObject } from "../../lib/protocol/jsonrpc.ts";

const FAULT_SERVER = [
  Deno.execPath(),
  "run",
  "-A",
  new URL("../fixtures/fault_server.ts", import.meta.url).pathname,
];

/** A POSIX sh MCP server (tests/fixtures/tiny_mcp_server.sh): a call that mentions "mute" closes its stdout. */
const TINY_SERVER = ["sh", new URL("../fixtures/tiny_mcp_server.sh", import.meta.url).pathname];

function connectArgs(url: string, extra: string[] = [], server = FAULT_SERVER): string[] {
  return [
    "connect",
    "--gateway",
    url,
    "--log-format",
    "json",
    "--reconnect-delay",
    "0.05",
    "--health-listen",
    "127.0.0.1:0",
    ...extra,
    "--",
    ...server,
  ];
}

/**
 * One counter of connect's /metrics, summed over the labels not named (`errors_total{kind="dial"}` adds
 * the links' and every server's).
 */
async function metric(proxy: ProxyProcess, name: string): Promise<number> {
  const url = String((await proxy.waitForEvent("health_listening")).url);
  const text = await (await fetch(`${url}/metrics`)).text();
  const [, family, labelText = ""] = /^([a-z_]+)(?:\{(.*)\})?$/.exec(name)!;
  const labels = Object.fromEntries(
    [...labelText.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]),
  );
  const samples = parsePrometheus(text).find((f) => f.name === `mcp_rproxy_${family}`)?.metrics ??
    [];
  const matching = samples.filter((m) =>
    Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)
  );
  assert.ok(matching.length > 0, `no metric ${name}`);
  return matching.reduce((sum, m) => sum + Number(m.value), 0);
}

function callTool(id: number | string, name: string, args: JsonObject): JsonObject {
  return { jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } };
}

function textOf(response: JsonObject): string {
  const result = response.result as { content?: { text?: string }[] } | undefined;
  return result?.content?.[0]?.text ?? "";
}

/** The number the server last reported on stderr as `<prefix> <n>`, or 0. */
function lastReported(proxy: ProxyProcess, prefix: string): number {
  let last = 0;
  for (const line of proxy.lines) {
    const text = line.json?.event === "server_stderr" ? String(line.json.line) : "";
    if (text.startsWith(`${prefix} `)) last = Number(text.slice(prefix.length + 1));
  }
  return last;
}

async function withContract(
  contract: "A" | "B",
  fn: (gateway: ContractGateway) => Promise<void>,
): Promise<void> {
  const gateway = await startContractGateway({ contract });
  try {
    await fn(gateway);
  } finally {
    await gateway.close();
  }
}

Deno.test("backpressure: the server's output is not read while the socket holds more than the high-water mark, and flows again after", async () => {
  await withContract("A", async (gateway) => {
    await using relay = await startTcpRelay({ targetPort: gateway.port });
    await using proxy = startProxy(connectArgs(`http://127.0.0.1:${relay.port}`));
    const sessionId = await gateway.waitForRegistered(20_000);
    const count = 800;
    const bytes = 100_000;
    const from = gateway.frames.length;
    // Sent before the relay goes silent; the flood starts a moment later.
    gateway.send({
      type: "request",
      sessionId,
      payload: callTool(1, "flood", { count, bytes, delayMs: 300 }),
    }, { sessionId });
    await proxy.waitForLine((l) => String(l.json?.line).startsWith("call flood"), 10_000);
    relay.blackhole();
    // The server writes until connect stops reading it: wait until its progress stands still.
    let seen = -1;
    const until = performance.now() + 20_000;
    while (lastReported(proxy, "flooded") !== seen && performance.now() < until) {
      seen = lastReported(proxy, "flooded");
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
    // 8 MiB above which connect pauses, plus what the kernel buffers hold on loopback (~10 MiB):
    // about 200 of the 800. Without the pause, connect reads all 80 MB into the socket's buffer.
    assert.ok(seen < count / 2, `the server wrote ${seen} of ${count} into a silent link`);
    relay.restore();
    const answer = await gateway.waitForFrame(
      (f) => f.direction === "in" && f.frame?.type === "response",
      60_000,
      { from },
    );
    assert.equal(textOf(answer.frame!.payload as JsonObject), "flooded");
    const notifications = gateway.frames.slice(from).filter((f) =>
      f.direction === "in" && f.frame?.type === "notification"
    );
    assert.equal(notifications.length, count, "every notification arrived after the pause");
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(15_000), 0);
  });
});

Deno.test("a server line over 64 MiB gets its caller an error, and the link stays up", async () => {
  await withContract("A", async (gateway) => {
    await using proxy = startProxy(connectArgs(gateway.url));
    const sessionId = await gateway.waitForRegistered(20_000);
    const answer = await gateway.request(callTool(3, "huge", { bytes: 65 * 1024 * 1024 }), {
      sessionId,
      timeoutMs: 30_000,
    });
    assert.equal(answer.id, 3);
    assert.deepEqual(answer.error, {
      code: -32002,
      message:
        "The local server's answer exceeded 64MiB, the largest message connect takes from it (connect --max-message-bytes)",
    });
    const echo = await gateway.request(callTool(4, "echo", { message: "after" }), { sessionId });
    assert.equal(textOf(echo), "Echo: after");
    assert.equal(gateway.connections, 1);
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(15_000), 0);
  });
});

Deno.test("--max-message-bytes bounds a server's line: past it the caller gets an error naming the flag", async () => {
  await withContract("A", async (gateway) => {
    await using proxy = startProxy(connectArgs(gateway.url, ["--max-message-bytes", "1MiB"]));
    const sessionId = await gateway.waitForRegistered(20_000);
    const answer = await gateway.request(callTool(3, "huge", { bytes: 2 * 1024 * 1024 }), {
      sessionId,
      timeoutMs: 30_000,
    });
    assert.deepEqual(answer.error, {
      code: -32002,
      message:
        "The local server's answer exceeded 1MiB, the largest message connect takes from it (connect --max-message-bytes)",
    });
    const echo = await gateway.request(callTool(4, "echo", { message: "after" }), { sessionId });
    assert.equal(textOf(echo), "Echo: after");
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(15_000), 0);
  });
});

Deno.test("--max-message-bytes: a TypeScript SDK server's answer, its id written last, gets its caller an error", async () => {
  // The SDK writes `{"result":…,"jsonrpc":"2.0","id":3}`: the id is past the head of the line.
  await withContract("A", async (gateway) => {
    await using proxy = startProxy(
      connectArgs(gateway.url, ["--max-message-bytes", "4KiB"], EVERYTHING_SERVER),
    );
    const sessionId = await gateway.waitForRegistered(60_000);
    const answer = await gateway.request(callTool(3, "echo", { message: "m".repeat(8000) }), {
      sessionId,
      timeoutMs: 10_000,
    });
    assert.equal(answer.id, 3);
    assert.equal((answer.error as JsonObject | undefined)?.code, -32002);
    const echo = await gateway.request(callTool(4, "echo", { message: "after" }), { sessionId });
    assert.equal(textOf(echo), "Echo: after");
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(15_000), 0);
  });
});

Deno.test("--max-message-bytes: a server request over it is answered to the server at once, never taken for a caller's answer", async () => {
  await withContract("A", async (gateway) => {
    await using proxy = startProxy(connectArgs(gateway.url, ["--max-message-bytes", "4KiB"]));
    const sessionId = await gateway.waitForRegistered(20_000);
    const from = gateway.frames.length;
    // The server's request `ask-3` ({"jsonrpc":"2.0","id":"ask-3","method":…}) is over the bound.
    const answer = await gateway.request(callTool(3, "ask", { bytes: 8000 }), { sessionId });
    assert.equal(textOf(answer), "asked");
    const told = await proxy.waitForLine(
      (l) => String(l.json?.line).startsWith("answer "),
      5_000,
    );
    assert.match(
      String(told.json!.line),
      /^answer "ask-3" \{"code":-32002,"message":"mcp-rproxy cannot deliver 'sampling\/createMessage': the request \(\d+ bytes\) exceeds the largest message connect takes from the server \(connect --max-message-bytes\)"\}$/,
    );
    const echo = await gateway.request(callTool(4, "echo", { message: "after" }), { sessionId });
    assert.equal(textOf(echo), "Echo: after");
    const answered = gateway.frames.slice(from).filter((f) =>
      f.direction === "in" && f.frame?.type === "response"
    ).map((f) => (f.frame!.payload as JsonObject).id);
    assert.deepEqual(answered, [3, 4]);
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(15_000), 0);
  });
});

Deno.test("--max-message-bytes: a TypeScript SDK server's request over it, its id written last, is answered to the server at once", async () => {
  // Without that answer the server waits for one (the SDK's 60 s), and so does the call that asked it.
  await withContract("A", async (gateway) => {
    await using proxy = startProxy(
      connectArgs(gateway.url, ["--max-message-bytes", "4KiB"], EVERYTHING_SERVER),
    );
    const sessionId = await gateway.waitForRegistered(60_000);
    const answer = await gateway.request(
      callTool(5, "trigger-sampling-request", { prompt: "p".repeat(8000) }),
      { sessionId, timeoutMs: 10_000 },
    );
    assert.match(textOf(answer), /^MCP error -32002: .*connect --max-message-bytes/);
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(15_000), 0);
  });
});

Deno.test("--max-message-bytes: a notification over it is dropped, logged and counted; an answer over it is counted too", async () => {
  await withContract("A", async (gateway) => {
    await using proxy = startProxy(connectArgs(gateway.url, ["--max-message-bytes", "4KiB"]));
    const sessionId = await gateway.waitForRegistered(20_000);
    const from = gateway.frames.length;
    const answer = await gateway.request(callTool(3, "notify", { bytes: 8000 }), { sessionId });
    assert.equal(textOf(answer), "notified");
    assert.ok(
      !gateway.frames.slice(from).some((f) =>
        f.direction === "in" && f.frame?.type === "notification"
      ),
      "an oversized notification reached the gateway",
    );
    const logged = await proxy.waitForEvent("message_too_large", 5_000);
    assert.ok(Number(logged.bytes) > 8000, `bytes ${logged.bytes}`);
    assert.equal(await metric(proxy, 'errors_total{kind="message_too_large"}'), 1);
    const huge = await gateway.request(callTool(4, "huge", { bytes: 8000 }), { sessionId });
    assert.equal((huge.error as JsonObject | undefined)?.code, -32002);
    assert.equal(await metric(proxy, 'errors_total{kind="message_too_large"}'), 2);
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(15_000), 0);
  });
});

Deno.test("--max-message-bytes: an initialize answer over it fails start-up at once, naming the flag, not blaming the server", async () => {
  // server-everything's initialize result (its instructions) is about 2 KiB.
  await withContract("A", async (gateway) => {
    await using proxy = startProxy(
      // --init-timeout 10: a connect that waited the answer out (the bug) fails in 10 s, not 30.
      connectArgs(
        gateway.url,
        ["--max-message-bytes", "1KiB", "--init-timeout", "10"],
        EVERYTHING_SERVER,
      ),
    );
    assert.equal(await proxy.exitCode(20_000), 1);
    const fatal = await proxy.waitForEvent("fatal", 1_000);
    assert.match(
      String(fatal.error),
      /answered initialize with \d+ bytes, more than connect takes of one message: raise --max-message-bytes$/,
    );
  });
});

Deno.test("--init-timeout bounds the wait for initialize, and the message names the flag", async () => {
  await withContract("A", async (gateway) => {
    const silent = ["sh", "-c", "exec cat >/dev/null"];
    const started = performance.now();
    await using proxy = startProxy(connectArgs(gateway.url, ["--init-timeout", "0.5"], silent));
    assert.equal(await proxy.exitCode(20_000), 1);
    assert.ok(performance.now() - started < 10_000, "waited past --init-timeout");
    const fatal = await proxy.waitForEvent("fatal", 1_000);
    assert.match(
      String(fatal.error),
      /did not answer initialize within 500 ms \(connect --init-timeout\)/,
    );
  });
});

Deno.test("a request batch from the gateway with null and scalar elements: those are not forwarded, the rest is served, connect stays up", async () => {
  await withContract("A", async (gateway) => {
    await using proxy = startProxy(connectArgs(gateway.url));
    const sessionId = await gateway.waitForRegistered(20_000);
    gateway.send({
      type: "request",
      sessionId,
      payload: [null, 1, "x", callTool(7, "echo", { message: "in a batch" })],
    });
    const answer = await gateway.waitForFrame(
      (f) => f.direction === "in" && (f.frame?.payload as JsonObject | undefined)?.id === 7,
      10_000,
    );
    assert.equal(textOf(answer.frame!.payload as JsonObject), "Echo: in a batch");
    const echo = await gateway.request(callTool(8, "echo", { message: "after" }), { sessionId });
    assert.equal(textOf(echo), "Echo: after");
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(15_000), 0);
  });
});

Deno.test("frame_too_large: a notification over B's 1 MiB is not forwarded, logged and counted; the call goes on", async () => {
  await withContract("B", async (gateway) => {
    await using proxy = startProxy(connectArgs(gateway.url));
    const sessionId = await gateway.waitForRegistered(20_000);
    const from = gateway.frames.length;
    const answer = await gateway.request(callTool(5, "notify", { bytes: 2 * 1024 * 1024 }), {
      sessionId,
      timeoutMs: 20_000,
    });
    assert.equal(textOf(answer), "notified");
    assert.ok(
      !gateway.frames.slice(from).some((f) =>
        f.direction === "in" && f.frame?.type === "notification"
      ),
      "an oversized notification reached the gateway",
    );
    const logged = await proxy.waitForEvent("frame_too_large", 1_000);
    assert.equal(logged.type, "notification");
    assert.equal(logged.limit, 1024 * 1024);
    assert.equal(await metric(proxy, 'errors_total{kind="frame_too_large"}'), 1);
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(15_000), 0);
  });
});

Deno.test("frame_too_large: a server request over serve's frame limit is answered to the server with why, never sent", async () => {
  const gateway = await startTestGateway({ maxFrameBytes: 1024 * 1024 });
  let client: Client | undefined;
  try {
    await using proxy = startProxy(
      connectArgs(gateway.url, ["--server-name", "faulty"]),
      { env: { REVERSE_PROXY_TOKEN: TOKENS.alice } },
    );
    await proxy.waitForEvent("registered", 20_000);
    client = await connectClient(gateway, "faulty", TOKENS.alice);
    const result = await within(
      client.callTool({ name: "ask", arguments: { bytes: 2 * 1024 * 1024 } }),
      20_000,
      "the ask call",
    );
    assert.equal((result as { content: { text: string }[] }).content[0]?.text, "asked");
    const logged = await proxy.waitForEvent("frame_too_large", 5_000);
    assert.equal(logged.type, "request");
    const answer = await proxy.waitForLine(
      (l) => String(l.json?.line).startsWith("answer "),
      5_000,
    );
    assert.match(
      String(answer.json!.line),
      /^answer "ask-\d+" \{"code":-32002,"message":"mcp-rproxy cannot deliver 'sampling\/createMessage' to a client: the request \(\d+ bytes\) exceeds the gateway's message limit of 1048576 bytes \(mcp-rproxy serve: --max-frame-bytes\)"\}$/,
    );
    assert.equal(await metric(proxy, 'errors_total{kind="frame_too_large"}'), 1);
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(15_000), 0);
  } finally {
    await client?.close();
    await gateway.close();
  }
});

Deno.test("an answer that comes after its link was lost is dropped, logged and counted, never sent on the new session", async () => {
  await withContract("A", async (gateway) => {
    await using relay = await startTcpRelay({ targetPort: gateway.port });
    await using proxy = startProxy(connectArgs(`http://127.0.0.1:${relay.port}`));
    const first = await gateway.waitForRegistered(20_000);
    gateway.send({
      type: "request",
      sessionId: first,
      payload: callTool("late-1", "slow", { ms: 1_500, message: "too late" }),
    }, { sessionId: first });
    await proxy.waitForLine((l) => String(l.json?.line) === 'call slow "late-1"', 10_000);
    relay.cut();
    const second = await gateway.waitForRegistered(20_000, { after: 1 });
    const lost = await proxy.waitForEvent("calls_lost", 5_000);
    assert.equal(lost.count, 1);
    const dropped = await proxy.waitForEvent("response_dropped", 10_000);
    assert.equal(dropped.id, '"late-1"');
    assert.equal(await metric(proxy, 'errors_total{kind="response_dropped"}'), 1);
    // The new session still works, and never saw the old call's answer.
    const echo = await gateway.request(callTool(2, "echo", { message: "new" }), {
      sessionId: second,
    });
    assert.equal(textOf(echo), "Echo: new");
    assert.ok(
      !gateway.frames.some((f) =>
        f.direction === "in" && (f.frame?.payload as JsonObject | undefined)?.id === "late-1"
      ),
      "an answer of the lost session reached the gateway",
    );
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(15_000), 0);
  });
});

Deno.test("a server restart that fails is retried with backoff and counted, until the server is back", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-restart-" });
  try {
    const failFile = `${dir}/fail-starts`;
    await Deno.writeTextFile(failFile, "0");
    await withContract("A", async (gateway) => {
      await using proxy = startProxy(
        connectArgs(gateway.url, [], [...FAULT_SERVER, "--fail-starts", failFile]),
      );
      const firstPid = Number((await proxy.waitForEvent("server_started", 20_000)).pid);
      await gateway.waitForRegistered(20_000);
      // The next two starts fail before they answer initialize.
      await Deno.writeTextFile(failFile, "2");
      const from = proxy.lines.length;
      Deno.kill(firstPid, "SIGKILL");
      const second = await gateway.waitForRegistered(30_000, { after: 1 });
      const events = proxy.lines.slice(from).map((l) => l.json?.event);
      assert.equal(events.filter((e) => e === "server_restart_scheduled").length, 3);
      const failures = proxy.lines.slice(from).filter((l) =>
        l.json?.event === "server_start_failed"
      );
      assert.equal(failures.length, 2);
      assert.match(
        String(failures[0]!.json!.error),
        /^Local server '.*fault_server\.ts --fail-starts .*' exited \(code 1\) before answering initialize$/,
      );
      assert.equal(await metric(proxy, 'errors_total{kind="server_start"}'), 2);
      assert.equal(await metric(proxy, 'errors_total{kind="server_exit"}'), 1);
      assert.equal(await metric(proxy, "server_restarts_total"), 1);
      const echo = await gateway.request(callTool(1, "echo", { message: "back" }), {
        sessionId: second,
      });
      assert.equal(textOf(echo), "Echo: back");
      proxy.signal("SIGTERM");
      assert.equal(await proxy.exitCode(15_000), 0);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a server that closes its stdout and keeps running is stopped: its caller gets an error, the server starts again", async () => {
  await withContract("A", async (gateway) => {
    await using proxy = startProxy(connectArgs(gateway.url, [], TINY_SERVER));
    const firstPid = Number((await proxy.waitForEvent("server_started", 20_000)).pid);
    await gateway.waitForRegistered(20_000);
    const from = proxy.lines.length;
    // Without the stop, the call would wait for an answer nothing can write any more.
    const muted = await gateway.request(callTool(1, "mute", {}), { timeoutMs: 15_000 });
    assert.equal((muted.error as JsonObject | undefined)?.code, -32000, JSON.stringify(muted));
    const closed = await proxy.waitForEvent("server_stdout_closed", 5_000);
    assert.equal(closed.pid, firstPid);
    const restarted = await proxy.waitForEvent("server_started", 20_000, from);
    assert.notEqual(restarted.pid, firstPid);
    // The server started again registers afresh (contract A).
    const second = await gateway.waitForRegistered(20_000, { after: 1 });
    const again = await gateway.request(callTool(2, "echo", {}), {
      timeoutMs: 15_000,
      sessionId: second,
    });
    assert.deepEqual(again.result, {}, JSON.stringify(again));
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(15_000), 0);
  });
});

Deno.test("a 1008 close in mid-session exits 3 and stops the server", async () => {
  await withContract("A", async (gateway) => {
    await using proxy = startProxy(connectArgs(gateway.url));
    const pid = Number((await proxy.waitForEvent("server_started", 20_000)).pid);
    await gateway.waitForRegistered(20_000);
    await gateway.closeSessions(1008, "token revoked");
    assert.equal(await proxy.exitCode(15_000), 3);
    const refused = await proxy.waitForEvent("auth_refused", 1_000);
    assert.match(
      String(refused.error),
      /^The gateway closed the link for a policy violation \(1008: token revoked\)/,
    );
    assert.equal(gateway.connections, 1, "reconnected after a 1008");
    await proxy.waitForEvent("server_stopped", 1_000);
    try {
      Deno.kill(pid, "SIGKILL");
      assert.fail(`server ${pid} outlived connect`);
    } catch (error) {
      assert.ok(error instanceof Deno.errors.NotFound, String(error));
    }
  });
});
