// End to end: SIGHUP makes the real `connect` re-read its config file. Servers are matched by name: an
// added one starts and registers, a removed one unregisters and stops, a changed one restarts, and the
// unchanged ones keep their process, their gateway session, their upstream MCP session and their calls
// in flight. A bad file is refused and changes nothing.

import assert from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { Gateway } from "../../lib/serve/gateway.ts";
import { HttpEverything } from "../fixtures/http_mcp_servers.ts";
import {
  DEMO_SERVER,
  processAlive,
  type ProxyProcess,
  startProxy,
} from "../fixtures/proxy_process.ts";
import { connectClient, startTestGateway, TOKENS, within } from "../fixtures/test_gateway.ts";

interface Listed {
  session_id: string;
  server_info: { name: string; description: string };
}

async function sessions(gateway: Gateway): Promise<Map<string, Listed>> {
  const response = await fetch(`${gateway.url}/reverse-proxy/sessions`, {
    headers: { authorization: `Bearer ${TOKENS.alice}` },
  });
  const body = await response.json() as { sessions: Listed[] };
  return new Map(body.sessions.map((s) => [s.server_info.name, s]));
}

function config(gateway: Gateway, servers: object[]): string {
  return JSON.stringify({ gateway: gateway.url, servers });
}

function eventsOf(proxy: ProxyProcess, event: string, server: string, from = 0) {
  return proxy.lines.slice(from).flatMap((line) =>
    line.json?.event === event && line.json.server === server ? [line.json] : []
  );
}

function registered(proxy: ProxyProcess, name: string, from = 0) {
  return proxy.waitForLine(
    (l) => l.json?.event === "registered" && l.json.server === name,
    60_000,
    from,
  );
}

Deno.test("SIGHUP adds, removes and restarts servers as the config file says; unchanged ones keep their process, sessions and calls", async () => {
  const gateway = await startTestGateway({ callTimeoutMs: 20_000 });
  const dir = await Deno.makeTempDir({ prefix: "reload_" });
  let client: Client | undefined;
  try {
    await using http = await HttpEverything.start("streamableHttp");
    const keep = { name: "keep", command: DEMO_SERVER };
    const keepHttp = { name: "keephttp", http: http.url };
    const file = `${dir}/connect.json`;
    await Deno.writeTextFile(
      file,
      config(gateway, [
        keep,
        keepHttp,
        { name: "change", command: DEMO_SERVER, description: "before" },
        { name: "gone", command: DEMO_SERVER },
      ]),
    );
    await using proxy = startProxy(
      ["connect", "--config", file, "--log-format", "json", "--reconnect-delay", "0.05"],
      { env: { REVERSE_PROXY_TOKEN: TOKENS.alice } },
    );
    for (const name of ["keep", "keephttp", "change", "gone"]) await registered(proxy, name);
    const before = await sessions(gateway);
    assert.equal(before.get("change")?.server_info.description, "before");
    const pid = (name: string) => Number(eventsOf(proxy, "server_started", name).at(-1)?.pid);
    const keepPid = pid("keep");
    const gonePid = pid("gone");
    const changePid = pid("change");
    const httpSession = eventsOf(proxy, "server_started", "keephttp")[0]?.mcpSession;
    assert.equal(typeof httpSession, "string");

    // A call in flight on an unchanged server across the reload.
    client = await connectClient(gateway, "keep", TOKENS.alice);
    const progress: number[] = [];
    const inFlight = client.callTool(
      { name: "long-running", arguments: { steps: 10, stepMs: 100 } },
      undefined,
      { onprogress: (p: { progress: number }) => progress.push(p.progress) },
    );

    const from = proxy.lines.length;
    await Deno.writeTextFile(
      file,
      config(gateway, [
        keep,
        keepHttp,
        { name: "change", command: DEMO_SERVER, description: "after" },
        { name: "added", command: DEMO_SERVER },
      ]),
    );
    proxy.signal("SIGHUP");
    const reloaded = await proxy.waitForEvent("reloaded", 60_000, from);
    assert.deepEqual(reloaded.names, {
      added: ["added"],
      removed: ["gone"],
      changed: ["change"],
      unchanged: ["keep", "keephttp"],
    });
    await registered(proxy, "added", from);
    await registered(proxy, "change", from);
    await within(inFlight, 20_000, "the call in flight across the reload");
    assert.equal(progress.length, 10, "no progress of the call in flight was lost");

    const after = await sessions(gateway);
    assert.deepEqual([...after.keys()].sort(), ["added", "change", "keep", "keephttp"]);
    assert.equal(after.get("change")?.server_info.description, "after");
    assert.notEqual(after.get("change")?.session_id, before.get("change")?.session_id);
    // Unchanged: the same process, the same gateway session, the same upstream MCP session.
    for (const name of ["keep", "keephttp"]) {
      assert.equal(after.get(name)?.session_id, before.get(name)?.session_id, `${name} session`);
      assert.deepEqual(eventsOf(proxy, "server_started", name, from), [], `${name} restarted`);
      assert.deepEqual(eventsOf(proxy, "registered", name, from), [], `${name} re-registered`);
    }
    assert.ok(processAlive(keepPid));
    assert.equal(pid("keep"), keepPid);
    assert.equal(eventsOf(proxy, "server_started", "keephttp").at(-1)?.mcpSession, httpSession);
    assert.equal(processAlive(gonePid), false, "the removed server was stopped");
    assert.equal(processAlive(changePid), false, "the changed server's old process was stopped");
    assert.notEqual(pid("change"), changePid);

    // A file that does not check is refused; nothing changes.
    const refusedFrom = proxy.lines.length;
    await Deno.writeTextFile(
      file,
      config(gateway, [keep, { name: "keep", command: DEMO_SERVER }]),
    );
    proxy.signal("SIGHUP");
    const refused = await proxy.waitForEvent("reload_refused", 20_000, refusedFrom);
    assert.match(String(refused.error), /Two servers are named keep/);
    assert.deepEqual(
      proxy.lines.slice(refusedFrom).filter((l) =>
        ["server_stopped", "server_started", "unregistered"].includes(String(l.json?.event))
      ),
      [],
    );
    assert.deepEqual([...(await sessions(gateway)).keys()].sort(), [
      "added",
      "change",
      "keep",
      "keephttp",
    ]);

    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(30_000), 0);
  } finally {
    await client?.close();
    await gateway.close();
    await Deno.remove(dir, { recursive: true });
  }
});
