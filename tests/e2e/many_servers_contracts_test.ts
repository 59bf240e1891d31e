// End to end: against ContextForge's contracts A and B (one `register` per connection, no channels), a
// connect with two servers opens two links and registers each server once, on its own link; against our
// gateway, evicting one server of the shared link ends that server alone.

import assert from "node:assert/strict";
import { startContractGateway } from "../fixtures/contract_gateway.ts";
import { DEMO_SERVER, startProxy } from "../fixtures/proxy_process.ts";
import { connectClient, startTestGateway, TOKENS, within } from "../fixtures/test_gateway.ts";
import { startWsTap } from "../fixtures/ws_tap.ts";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { JsonObject } from "../../lib/protocol/jsonrpc.ts";
import { joinCommand } from "../../lib/util/shell_words.ts";

const TOKEN = "s3cret-token-for-many-servers";

for (const contract of ["A", "B"] as const) {
  Deno.test(`contract ${contract}: connect with two servers opens two links and registers each once`, async () => {
    await using gateway = await startContractGateway({ contract, tokens: [TOKEN] });
    const demo = JSON.stringify(joinCommand(DEMO_SERVER));
    await using proxy = startProxy([
      "connect",
      "--gateway",
      gateway.url,
      "--log-format",
      "json",
      "--reconnect-delay",
      "0.05",
      "--server",
      `name=one,stdio=${demo}`,
      "--server",
      `name=two,stdio=${demo}`,
    ], { env: { REVERSE_PROXY_TOKEN: TOKEN } });
    for (const name of ["one", "two"]) {
      await proxy.waitForLine(
        (l) => l.json?.event === "registered" && l.json.server === name,
        30_000,
      );
    }
    await gateway.waitUntil(() => gateway.registrations === 2, 10_000, "two registrations");
    const registers = gateway.frames.filter((f) =>
      f.direction === "in" && f.frame?.type === "register"
    );
    const names = registers.map((f) => (f.frame!.server as JsonObject).name).sort();
    assert.deepEqual(names, ["one", "two"], "each server registered once");
    assert.notEqual(registers[0]!.connection, registers[1]!.connection, "on links of its own");
    assert.equal(gateway.connections, 2);
    assert.equal(gateway.openConnections, 2);
    // Each server answers on its own link.
    for (const session of gateway.sessions) {
      const answer = await gateway.request(
        {
          jsonrpc: "2.0",
          id: 1,
          method: "tools/call",
          params: { name: "echo", arguments: { message: String(session.server?.name) } },
        },
        { sessionId: session.sessionId },
      );
      const text = (answer.result as { content: { text: string }[] }).content[0]!.text;
      assert.match(text, new RegExp(String(session.server?.name)));
    }
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(15_000), 0);
    assert.deepEqual(gateway.violations, []);
  });
}

Deno.test("our gateway: evicting one server of a shared link stops only that server; evicting the last one exits 4", async () => {
  const gateway = await startTestGateway({ callTimeoutMs: 10_000 });
  try {
    const demo = JSON.stringify(joinCommand(DEMO_SERVER));
    await using proxy = startProxy([
      "connect",
      "--gateway",
      gateway.url,
      "--log-format",
      "json",
      "--reconnect-delay",
      "0.05",
      "--server",
      `name=one,stdio=${demo}`,
      "--server",
      `name=two,stdio=${demo}`,
    ], { env: { REVERSE_PROXY_TOKEN: TOKENS.alice } });
    const sessionOf = async (name: string) =>
      (await proxy.waitForLine(
        (l) => l.json?.event === "registered" && l.json.server === name,
        30_000,
      )).json!.session;
    const evict = async (session: unknown) => {
      const response = await fetch(`${gateway.url}/reverse-proxy/sessions/${session}`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${TOKENS.alice}` },
      });
      assert.equal(response.status, 200);
      await response.body?.cancel();
    };
    const one = await sessionOf("one");
    const two = await sessionOf("two");
    await evict(one);
    await proxy.waitForLine(
      (l) => l.json?.event === "server_stopped" && l.json.server === "one",
      20_000,
    );
    const client = await connectClient(gateway, "two", TOKENS.alice);
    try {
      const echo = await within(
        client.callTool({ name: "echo", arguments: { message: "two goes on" } }),
        10_000,
        "echo on two",
      );
      assert.match(JSON.stringify(echo), /two goes on/);
    } finally {
      await client.close();
    }
    assert.equal(
      proxy.lines.filter((l) => l.json?.event === "registered" && l.json.server === "one").length,
      1,
      "an evicted server does not come back",
    );
    await evict(two);
    assert.equal(await proxy.exitCode(20_000), 4);
  } finally {
    await gateway.close();
  }
});

Deno.test("our gateway: when the shared link drops, every server on it resumes its own session and a call in flight completes", async () => {
  const gateway = await startTestGateway({ callTimeoutMs: 20_000 });
  const clients: Client[] = [];
  try {
    await using tap = await startWsTap({ target: gateway.url.replace(/^http/, "ws") });
    const demo = JSON.stringify(joinCommand(DEMO_SERVER));
    await using proxy = startProxy([
      "connect",
      "--gateway",
      tap.url,
      "--log-format",
      "json",
      "--reconnect-delay",
      "0.05",
      "--keepalive",
      "0.2",
      "--server",
      `name=one,stdio=${demo}`,
      "--server",
      `name=two,stdio=${demo}`,
    ], { env: { REVERSE_PROXY_TOKEN: TOKENS.alice } });
    const sessions = new Map<string, unknown>();
    for (const name of ["one", "two"]) {
      const line = await proxy.waitForLine(
        (l) => l.json?.event === "registered" && l.json.server === name,
        30_000,
      );
      sessions.set(name, line.json!.session);
    }
    const one = await connectClient(gateway, "one", TOKENS.alice);
    const two = await connectClient(gateway, "two", TOKENS.alice);
    clients.push(one, two);
    const inFlight = two.callTool({ name: "long-running", arguments: { steps: 5, stepMs: 100 } });
    const from = proxy.lines.length;
    tap.cut();
    const resumed = new Set<unknown>();
    await proxy.waitForLine(
      (l) => {
        if (l.json?.event === "resumed") resumed.add(l.json.session);
        return resumed.size === 2;
      },
      20_000,
      from,
    );
    assert.deepEqual([...resumed].sort(), [...sessions.values()].sort(), "each its own session");
    await within(inFlight, 20_000, "the call in flight across the drop");
    const echo = await within(
      one.callTool({ name: "echo", arguments: { message: "after the drop" } }),
      10_000,
      "echo after the drop",
    );
    assert.match(JSON.stringify(echo), /after the drop/);
    assert.equal(
      proxy.lines.slice(from).filter((l) => l.json?.event === "connecting").length,
      1,
      "one link dialed again for both",
    );
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    await gateway.close();
  }
});

for (const contract of ["A", "B"] as const) {
  Deno.test(`contract ${contract}: a per-client server is refused alone with a clear error; the shared one runs; per-client alone exits 2`, async () => {
    await using gateway = await startContractGateway({ contract, tokens: [TOKEN] });
    const demo = JSON.stringify(joinCommand(DEMO_SERVER));
    const connect = (servers: string[]) =>
      startProxy([
        "connect",
        "--gateway",
        gateway.url,
        "--log-format",
        "json",
        "--reconnect-delay",
        "0.05",
        ...servers.flatMap((spec) => ["--server", spec]),
      ], { env: { REVERSE_PROXY_TOKEN: TOKEN } });
    {
      await using proxy = connect([
        `name=shared,stdio=${demo}`,
        `name=mine,stdio=${demo},isolation=per-client`,
      ]);
      const refused = await proxy.waitForLine(
        (l) => l.json?.event === "isolation_refused" && l.json.server === "mine",
        30_000,
      );
      assert.match(String(refused.json?.reason), /per-client needs mcp-rproxy serve/);
      assert.match(String(refused.json?.reason), new RegExp(`contract ${contract}`));
      await proxy.waitForLine((l) => l.json?.event === "registered" && l.json.server === "shared");
      // Never registered as shared behind the user's back (A's registration is withdrawn at once).
      assert.ok(
        !proxy.lines.some((l) => l.json?.event === "registered" && l.json.server === "mine"),
      );
      assert.equal(proxy.lines.filter((l) => l.json?.event === "isolation_refused").length, 1);
      proxy.signal("SIGTERM");
      assert.equal(await proxy.exitCode(15_000), 0);
    }
    await using alone = connect([`name=mine,stdio=${demo},isolation=per-client`]);
    assert.equal(await alone.exitCode(30_000), 2, "nothing left to run: a setting to change");
    assert.match(alone.text(), /isolation per-client needs mcp-rproxy serve/);
  });
}
