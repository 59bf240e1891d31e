// End to end: the real program, a real MCP server from npm, and test gateways that implement contracts A
// and B exactly, over real sockets on 127.0.0.1.

import assert from "node:assert/strict";
import { type ContractGateway, startContractGateway } from "../fixtures/contract_gateway.ts";
import {
  DEMO_SERVER,
  EVERYTHING_SERVER,
  groupGone,
  processAlive,
  processGroupMembers,
  type ProxyProcess,
  startProxy,
} from "../fixtures/proxy_process.ts";
import { startTcpRelay } from "../fixtures/tcp_relay.ts";
import { delay } from "../../lib/util/delay.ts";
import type { JsonObject } from "../../lib/protocol/jsonrpc.ts";

const TOKEN = "s3cret-token-for-e2e-tests";

function connectArgs(
  gatewayUrl: string,
  extra: string[] = [],
  server = EVERYTHING_SERVER,
): string[] {
  return [
    "connect",
    "--gateway",
    gatewayUrl,
    "--log-format",
    "json",
    "--reconnect-delay",
    "0.05",
    ...extra,
    "--",
    ...server,
  ];
}

/** The pid of the local server from the program's log. */
async function serverPid(proxy: ProxyProcess, from = 0): Promise<number> {
  const event = await proxy.waitForEvent("server_started", 20_000, from);
  return Number(event.pid);
}

/** Stops the proxy and asserts that nothing it started is still running. */
async function stopAndCheck(proxy: ProxyProcess, pids: number[]): Promise<number> {
  proxy.signal("SIGTERM");
  const code = await proxy.exitCode(15_000);
  for (const pid of pids) {
    assert.equal(processAlive(pid), false, `server process ${pid} outlived the proxy`);
    assert.deepEqual(processGroupMembers(pid), [], `processes of group ${pid} outlived the proxy`);
  }
  return code;
}

async function withGateway(
  contract: "A" | "B",
  fn: (gateway: ContractGateway) => Promise<void>,
): Promise<void> {
  const gateway = await startContractGateway({ contract, tokens: [TOKEN] });
  try {
    await fn(gateway);
  } finally {
    await gateway.close();
  }
}

function textOf(response: JsonObject): string {
  const result = response.result as { content?: { text?: string }[] } | undefined;
  return result?.content?.[0]?.text ?? "";
}

for (const contract of ["A", "B"] as const) {
  Deno.test(`contract ${contract}: registers, tunnels tools/list and tools/call echo, exits 0 on SIGTERM`, async () => {
    await withGateway(contract, async (gateway) => {
      await using proxy = startProxy(connectArgs(gateway.url), {
        env: { REVERSE_PROXY_TOKEN: TOKEN },
      });
      const pid = await serverPid(proxy);
      const sessionId = await gateway.waitForRegistered(20_000);
      const register = gateway.frames.find((f) => f.frame?.type === "register")!.frame!;
      assert.equal((register.server as JsonObject).name, "mcp-servers/everything");
      const tools = await gateway.request({ jsonrpc: "2.0", id: 1, method: "tools/list" }, {
        sessionId,
      });
      const names = ((tools.result as JsonObject).tools as { name: string }[]).map((t) => t.name);
      assert.ok(names.includes("echo"), `echo missing from ${names.join(",")}`);
      const echo = await gateway.request(
        {
          jsonrpc: "2.0",
          id: "e-1",
          method: "tools/call",
          params: { name: "echo", arguments: { message: "hello through the tunnel" } },
        },
        contract === "B"
          ? { sessionId, authentication: { Authorization: "Bearer downstream-secret" } }
          : { sessionId },
      );
      assert.equal(echo.id, "e-1");
      assert.equal(textOf(echo), "Echo: hello through the tunnel");
      if (contract === "B") {
        assert.equal(gateway.registrations, 1);
        assert.ok(
          (gateway.sessions[0]?.discovery?.tools.length ?? 0) > 0,
          "B discovery found no tools",
        );
      }
      assert.equal(await stopAndCheck(proxy, [pid]), 0);
      assert.ok(
        gateway.frames.some((f) => f.direction === "in" && f.frame?.type === "unregister"),
        "no unregister frame on shutdown",
      );
      assert.deepEqual(gateway.violations, []);
      // The resume extension is C's alone: A and B never see its frames or fields.
      const extended = gateway.frames.filter((f) =>
        f.direction === "in" && f.frame !== undefined &&
        (f.frame.type === "ack" ||
          ["seq", "ack", "resume", "keepaliveMs"].some((k) => k in f.frame!))
      );
      assert.deepEqual(extended.map((f) => f.frame), [], "no resume fields sent to A or B");
      assert.ok(!proxy.text().includes(TOKEN), "the token appeared in the logs");
      assert.ok(
        !proxy.text().includes("downstream-secret"),
        "downstream credentials appeared in the logs",
      );
      const notJson = proxy.lines.filter((l) => l.json === undefined).map((l) => l.raw);
      assert.deepEqual(notJson, [], "with --log-format json every line is a JSON record");
    });
  });
}

Deno.test("progress notifications of a long-running tool reach the gateway before the result", async () => {
  await withGateway("A", async (gateway) => {
    await using proxy = startProxy(connectArgs(gateway.url), {
      env: { REVERSE_PROXY_TOKEN: TOKEN },
    });
    const pid = await serverPid(proxy);
    const sessionId = await gateway.waitForRegistered(20_000);
    const from = gateway.frames.length;
    const response = await gateway.request({
      jsonrpc: "2.0",
      id: 7,
      method: "tools/call",
      params: {
        name: "trigger-long-running-operation",
        arguments: { duration: 0.3, steps: 3 },
        _meta: { progressToken: "tok-7" },
      },
    }, { sessionId, timeoutMs: 10_000 });
    assert.match(textOf(response), /Long running operation completed/);
    const progress = gateway.frames.slice(from).filter((f) =>
      f.frame?.type === "notification" &&
      (f.frame.payload as JsonObject).method === "notifications/progress"
    );
    assert.deepEqual(
      progress.map((f) => ((f.frame!.payload as JsonObject).params as JsonObject).progress),
      [1, 2, 3],
    );
    assert.equal(await stopAndCheck(proxy, [pid]), 0);
  });
});

Deno.test("roots/list from the server is answered at once when the gateway cannot relay it", async () => {
  await withGateway("A", async (gateway) => {
    await using proxy = startProxy(connectArgs(gateway.url), {
      env: { REVERSE_PROXY_TOKEN: TOKEN },
    });
    const pid = await serverPid(proxy);
    await gateway.waitForRegistered(20_000);
    // server-everything asks for roots shortly after initialization because we declared the capability.
    const answered = await proxy.waitForEvent("server_request_answered", 10_000);
    assert.equal(answered.method, "roots/list");
    // The server's own stderr, as a JSON log record (--log-format json).
    await proxy.waitForLine(
      (l) =>
        l.json?.event === "server_stderr" &&
        String(l.json.line).includes("Failed to request roots"),
      10_000,
    );
    assert.ok(
      !gateway.frames.some((f) => f.direction === "in" && f.frame?.type === "request"),
      "a server-initiated request was sent to a gateway that cannot take it",
    );
    assert.equal(await stopAndCheck(proxy, [pid]), 0);
  });
});

Deno.test("a 5 MiB result passes contract A, becomes an error under B's 1 MiB limit, and the link stays up", async () => {
  const message = "x".repeat(5 * 1024 * 1024);
  for (const contract of ["A", "B"] as const) {
    await withGateway(contract, async (gateway) => {
      await using proxy = startProxy(connectArgs(gateway.url), {
        env: { REVERSE_PROXY_TOKEN: TOKEN },
      });
      const pid = await serverPid(proxy);
      const sessionId = await gateway.waitForRegistered(20_000);
      const big = await gateway.request({
        jsonrpc: "2.0",
        id: 5,
        method: "tools/call",
        params: { name: "echo", arguments: { message } },
      }, { sessionId, timeoutMs: 20_000 });
      assert.equal(big.id, 5);
      if (contract === "A") {
        assert.equal(textOf(big).length, message.length + "Echo: ".length);
      } else {
        const error = big.error as { code: number; message: string };
        assert.equal(error.code, -32002);
        assert.match(error.message, /exceeds the gateway's message limit of 1048576 bytes/);
      }
      const after = await gateway.request({ jsonrpc: "2.0", id: 6, method: "tools/list" }, {
        sessionId,
      });
      assert.ok(after.result, "the link did not survive the big message");
      assert.equal(gateway.connections, 1);
      assert.equal(await stopAndCheck(proxy, [pid]), 0);
    });
  }
});

Deno.test("a long request frame reaches the server intact, compact or pretty-printed", async () => {
  await withGateway("A", async (gateway) => {
    await using proxy = startProxy(connectArgs(gateway.url, [], DEMO_SERVER), {
      env: { REVERSE_PROXY_TOKEN: TOKEN },
    });
    const pid = await serverPid(proxy);
    const sessionId = await gateway.waitForRegistered(20_000);
    const message = "ß€".repeat(200_000);
    const compact = await gateway.request({
      jsonrpc: "2.0",
      id: 7,
      method: "tools/call",
      params: { name: "echo", arguments: { message } },
    }, { sessionId, timeoutMs: 20_000 });
    assert.equal(textOf(compact), `Echo: ${message}`);
    // A gateway may indent its frames: the line breaks between tokens must not reach the server's stdin.
    const from = gateway.frames.length;
    gateway.send(
      JSON.stringify(
        {
          type: "request",
          sessionId,
          payload: {
            jsonrpc: "2.0",
            id: 8,
            method: "tools/call",
            params: { name: "echo", arguments: { message } },
          },
        },
        null,
        2,
      ),
      { sessionId },
    );
    const answer = await gateway.waitForFrame(
      (f) => f.direction === "in" && (f.frame?.payload as JsonObject | undefined)?.id === 8,
      20_000,
      { from },
    );
    assert.equal(textOf(answer.frame!.payload as JsonObject), `Echo: ${message}`);
    assert.equal(await stopAndCheck(proxy, [pid]), 0);
  });
});

Deno.test("idle for 5 s at keepalive 1 s sends about 5 heartbeats and never answers the gateway's", async () => {
  await withGateway("A", async (gateway) => {
    await using proxy = startProxy(connectArgs(gateway.url, ["--keepalive", "1"], DEMO_SERVER), {
      env: { REVERSE_PROXY_TOKEN: TOKEN },
    });
    const pid = await serverPid(proxy);
    await gateway.waitForRegistered(20_000);
    const before = gateway.heartbeatsReceived;
    // The observation window itself is the measurement: heartbeats per idle second.
    await delay(5_000);
    const sent = gateway.heartbeatsReceived - before;
    assert.ok(sent >= 4 && sent <= 6, `expected about 5 heartbeats in 5 s, saw ${sent}`);
    assert.equal(gateway.connections, 1, "the link was dropped while idle");
    assert.equal(await stopAndCheck(proxy, [pid]), 0);
  });
});

Deno.test("a TCP drop and a gateway restart both end re-registered with the same server process", async () => {
  await withGateway("A", async (gateway) => {
    await using relay = await startTcpRelay({ targetPort: gateway.port });
    await using proxy = startProxy(
      connectArgs(`http://127.0.0.1:${relay.port}`, ["--keepalive", "1"]),
      {
        env: { REVERSE_PROXY_TOKEN: TOKEN },
      },
    );
    const pid = await serverPid(proxy);
    await gateway.waitForRegistered(20_000);
    relay.cut();
    const second = await gateway.waitForRegistered(20_000, { after: 1 });
    const echo = await gateway.request({
      jsonrpc: "2.0",
      id: 1,
      method: "tools/call",
      params: { name: "echo", arguments: { message: "after drop" } },
    }, { sessionId: second });
    assert.equal(textOf(echo), "Echo: after drop");
    await gateway.restart();
    const third = await gateway.waitForRegistered(20_000, { after: 2 });
    assert.ok(third !== second);
    assert.equal(
      proxy.lines.filter((l) => l.json?.event === "server_started").length,
      1,
      "server restarted",
    );
    assert.ok(processAlive(pid));
    assert.equal(await stopAndCheck(proxy, [pid]), 0);
  });
});

Deno.test("a killed server fails its call in flight, is restarted and re-registered", async () => {
  await withGateway("A", async (gateway) => {
    await using proxy = startProxy(connectArgs(gateway.url), {
      env: { REVERSE_PROXY_TOKEN: TOKEN },
    });
    const firstPid = await serverPid(proxy);
    const sessionId = await gateway.waitForRegistered(20_000);
    const from = gateway.frames.length;
    const call = gateway.request({
      jsonrpc: "2.0",
      id: 9,
      method: "tools/call",
      params: { name: "trigger-long-running-operation", arguments: { duration: 10, steps: 10 } },
    }, { sessionId, timeoutMs: 20_000 });
    await gateway.waitForFrame((f) => f.direction === "out" && f.frame?.type === "request", 5_000, {
      from,
    });
    Deno.kill(firstPid, "SIGKILL");
    const answer = await call;
    assert.equal((answer.error as { code: number }).code, -32000);
    const firstStart = proxy.lines.findIndex((l) => l.json?.event === "server_started");
    const secondPid = await serverPid(proxy, firstStart + 1);
    assert.notEqual(secondPid, firstPid);
    const again = await gateway.waitForRegistered(20_000, { after: 1 });
    const echo = await gateway.request({
      jsonrpc: "2.0",
      id: 10,
      method: "tools/call",
      params: { name: "echo", arguments: { message: "reborn" } },
    }, { sessionId: again });
    assert.equal(textOf(echo), "Echo: reborn");
    assert.equal(await stopAndCheck(proxy, [firstPid, secondPid]), 0);
  });
});

Deno.test("a refused token exits with code 3 within seconds, against A (403) and B (401)", async () => {
  for (const contract of ["A", "B"] as const) {
    await withGateway(contract, async (gateway) => {
      const started = performance.now();
      await using proxy = startProxy(connectArgs(gateway.url), {
        env: { REVERSE_PROXY_TOKEN: "wrong-token" },
      });
      const pid = await serverPid(proxy);
      assert.equal(await proxy.exitCode(10_000), 3);
      assert.ok(performance.now() - started < 10_000);
      const status = contract === "A" ? 403 : 401;
      assert.match(proxy.text(), new RegExp(`refused the token: HTTP ${status}`));
      assert.equal(gateway.admissions.length, 1, "retried a refused token");
      assert.ok(!proxy.text().includes("wrong-token"));
      assert.equal(processAlive(pid), false);
    });
  }
});

Deno.test("--max-retries 2 against a dead port exits 1 after exactly 2 retries", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  await using proxy = startProxy(
    connectArgs(`ws://127.0.0.1:${port}`, ["--max-retries", "2"], DEMO_SERVER),
  );
  const pid = await serverPid(proxy);
  assert.equal(await proxy.exitCode(20_000), 1);
  const events = proxy.lines.map((l) => l.json?.event);
  assert.equal(
    events.filter((e) => e === "connect_failed").length,
    3,
    "one first attempt and two retries",
  );
  assert.equal(events.filter((e) => e === "reconnect_scheduled").length, 2);
  assert.match(proxy.text(), /Giving up after 2 reconnect attempts/);
  assert.equal(processAlive(pid), false);
});

Deno.test("SIGTERM with a request in flight answers it, unregisters, exits 0 and leaves no process", async () => {
  await withGateway("B", async (gateway) => {
    await using proxy = startProxy(connectArgs(gateway.url), {
      env: { REVERSE_PROXY_TOKEN: TOKEN },
    });
    const pid = await serverPid(proxy);
    const sessionId = await gateway.waitForRegistered(20_000);
    const from = gateway.frames.length;
    const call = gateway.request({
      jsonrpc: "2.0",
      id: 11,
      method: "tools/call",
      params: {
        name: "trigger-long-running-operation",
        arguments: { duration: 30, steps: 60 },
        _meta: { progressToken: "p-11" },
      },
    }, { sessionId, timeoutMs: 15_000 });
    // The first progress notification proves the call is running in the server.
    await gateway.waitForFrame(
      (f) => f.direction === "in" && f.frame?.type === "notification",
      5_000,
      {
        from,
      },
    );
    const answer = call.catch((error) => ({ error }));
    assert.equal(await stopAndCheck(proxy, [pid]), 0);
    const response = await answer as JsonObject;
    assert.equal((response.error as { code: number }).code, -32000);
  });
});

Deno.test("bad input exits with code 2 and one message naming the problem", async () => {
  await using missing = startProxy(["connect", "--", "true"]);
  assert.equal(await missing.exitCode(), 2);
  assert.match(missing.text(), /REVERSE_PROXY_GATEWAY/);
  await using unknown = startProxy(["connect", "--gatway", "http://x", "--", "true"]);
  assert.equal(await unknown.exitCode(), 2);
  assert.match(unknown.text(), /--gatway/);
});

Deno.test("--version prints the version from deno.json for every command", async () => {
  const { default: meta } = await import("../../deno.json", { with: { type: "json" } });
  for (
    const args of [["--version"], ["connect", "--version"], ["serve", "--version"], ["demo", "-V"]]
  ) {
    await using proxy = startProxy(args);
    assert.equal(await proxy.exitCode(), 0);
    assert.equal(proxy.text().trim(), meta.version, `mcp-rproxy ${args.join(" ")}`);
  }
});

/** Pids of the live children of `pid` (Linux /proc). */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] !== "Z" && Number(fields[1]) === pid) children.push(Number(entry.name));
    } catch {
      // Gone in between.
    }
  }
  return children;
}

/**
 * Starts connect with `sh -c script` as a server that never answers initialize (the gateway is a closed
 * port, never reached), and finds the server's pid. The caller disposes of the proxy.
 */
async function startWithSilentServer(
  script: string,
): Promise<{ proxy: ProxyProcess; server: number }> {
  const proxy = startProxy([
    "connect",
    "--gateway",
    "ws://127.0.0.1:9",
    "--log-format",
    "json",
    "--",
    "sh",
    "-c",
    script,
  ]);
  try {
    await proxy.waitForEvent("server_starting");
    // The spawn follows the log line at once; there is no event for a process appearing, so look (bounded).
    let server: number | undefined;
    // connect has another child, its group watchdog (`sh -c … mcp-rproxy-watchdog`): the server is the
    // other one (its script may have exec'd into another program already).
    const isServer = (pid: number) => {
      try {
        return !Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").includes(
          "mcp-rproxy-watchdog",
        );
      } catch {
        return false; // gone in between
      }
    };
    for (let i = 0; i < 200 && server === undefined; i++) {
      server = childrenOf(proxy.pid).find(isServer);
      if (server === undefined) await delay(10);
    }
    assert.ok(server !== undefined, "the server process never appeared");
    return { proxy, server };
  } catch (error) {
    await proxy[Symbol.asyncDispose]();
    throw error;
  }
}

Deno.test("SIGTERM while the server is still starting stops it and exits 0 without waiting for initialize", async () => {
  // Start-up would otherwise wait 30 s for the initialize answer.
  const { proxy: launched, server } = await startWithSilentServer("sleep 300 & sleep 301");
  await using proxy = launched;
  const started = performance.now();
  proxy.signal("SIGTERM");
  assert.equal(await proxy.exitCode(10_000), 0);
  assert.ok(performance.now() - started < 8_000, "shutdown waited for the initialize deadline");
  assert.deepEqual(
    processGroupMembers(server),
    [],
    "the server or its children outlived the proxy",
  );
});

Deno.test("a signal repeated at once (deno task forwarding Ctrl-C) still shuts down gracefully, exit 0", async () => {
  await withGateway("A", async (gateway) => {
    await using proxy = startProxy(connectArgs(gateway.url, [], DEMO_SERVER), {
      env: { REVERSE_PROXY_TOKEN: TOKEN },
    });
    await proxy.waitForEvent("registered", 20_000);
    // What one Ctrl-C under `deno task` delivers: the terminal's signal and the task runner's copy.
    proxy.signal("SIGINT");
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(15_000), 0);
    await proxy.waitForEvent("unregistered", 1_000);
  });
});

Deno.test("a second signal after the first one's window stops at once with 130 and kills the server's group", async () => {
  // A server that ignores SIGTERM and stdin EOF: a graceful stop waits out the 5 s grace before SIGKILL.
  const { proxy: started, server } = await startWithSilentServer("trap '' TERM; exec sleep 300");
  await using proxy = started;
  proxy.signal("SIGTERM");
  await proxy.waitForEvent("shutdown", 5_000);
  // The spacing is the behaviour under test: a repeat within 500 ms counts as the same request.
  await delay(600);
  const second = performance.now();
  proxy.signal("SIGINT");
  assert.equal(await proxy.exitCode(10_000), 130);
  assert.ok(performance.now() - second < 2_000, "the second signal did not stop at once");
  // SIGKILL was sent before the exit; the kernel finishes the group a moment later.
  await groupGone(server, 2_000);
});
