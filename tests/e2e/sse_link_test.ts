// The SSE link end to end, through Debian's tinyproxy (a real proxy that passes plain HTTP and drops the
// WebSocket upgrade): `connect --transport auto` (a subprocess) falls back to SSE and MCP SDK clients use
// the tunneled servers as over WebSocket; it comes back to WebSocket once the proxy is gone; a stream the
// proxy cuts for idleness is resumed with nothing lost (and comment lines keep it from being cut); auto
// never moves for an auth refusal, a gateway that is down, or a gateway without an SSE link (contract A);
// the SSE link to an https gateway goes through HTTPS_PROXY; and it carries many servers on one link.

import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CreateMessageRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { ExitCode } from "../../main.ts";
import { joinCommand } from "../../lib/util/shell_words.ts";
import type { Gateway } from "../../lib/serve/gateway.ts";
import { startGateway } from "../../lib/serve/gateway.ts";
import { createServeMetrics } from "../../lib/serve/metrics.ts";
import { createTokenStore } from "../../lib/serve/token_store.ts";
import { startContractGateway } from "../fixtures/contract_gateway.ts";
import { startTinyproxy } from "../fixtures/forward_proxy.ts";
import { parsePrometheus, sampleValue } from "../fixtures/prometheus_parser.ts";
import {
  DEMO_SERVER,
  EVERYTHING_SERVER,
  type ProxyProcess,
  startProxy,
} from "../fixtures/proxy_process.ts";
import { startTcpRelay } from "../fixtures/tcp_relay.ts";
import { connectClient, startTestGateway, TOKENS, within } from "../fixtures/test_gateway.ts";

/** `connect` with JSON logs; `env` adds a proxy (loopback kept on it with an empty NO_PROXY). */
function connect(
  gateway: string,
  name: string,
  server: string[],
  options: { proxy?: string; httpsProxy?: string; args?: string[]; token?: string } = {},
): ProxyProcess {
  const env: Record<string, string> = {
    REVERSE_PROXY_TOKEN: options.token ?? TOKENS.alice,
    DENO_NO_UPDATE_CHECK: "1",
  };
  if (options.proxy !== undefined) Object.assign(env, { HTTP_PROXY: options.proxy, NO_PROXY: "" });
  if (options.httpsProxy !== undefined) {
    Object.assign(env, { HTTPS_PROXY: options.httpsProxy, NO_PROXY: "" });
  }
  return startProxy([
    "connect",
    "--gateway",
    gateway,
    "--server-name",
    name,
    "--log-format",
    "json",
    "--reconnect-delay",
    "0.05",
    ...(options.args ?? []),
    "--",
    ...server,
  ], { env });
}

function textOf(result: unknown): string {
  return (result as { content: { type: string; text: string }[] }).content[0]!.text;
}

function events(proxy: ProxyProcess, name: string): Record<string, unknown>[] {
  return proxy.lines.flatMap((line) => line.json?.event === name ? [line.json] : []);
}

function msBetween(from: Record<string, unknown>, to: Record<string, unknown>): number {
  return Date.parse(String(to.time)) - Date.parse(String(from.time));
}

/** An SDK client that answers sampling requests, for `name` on `gateway`. */
async function samplingClient(gateway: Gateway, name: string): Promise<Client> {
  const client = new Client({ name: "sse-e2e", version: "1.0.0" }, {
    capabilities: { sampling: {} },
  });
  client.setRequestHandler(
    CreateMessageRequestSchema,
    (request: { params: { messages: unknown[] } }) => ({
      model: "test-model",
      role: "assistant",
      content: { type: "text", text: `sampled: ${JSON.stringify(request.params.messages[0])}` },
    }),
  );
  const transport = new StreamableHTTPClientTransport(
    new URL(`${gateway.url}/servers/${name}/mcp`),
    { requestInit: { headers: { Authorization: `Bearer ${TOKENS.alice}` } } },
  );
  await within(client.connect(transport), 10_000, "the MCP client to connect");
  return client;
}

Deno.test("through tinyproxy, connect --transport auto registers over SSE; clients run tools, progress, sampling and a 16 MiB result", async () => {
  const metrics = createServeMetrics();
  const gateway = await startTestGateway({ metrics });
  const tinyproxy = await startTinyproxy({ logLevel: "Connect" });
  const clients: Client[] = [];
  try {
    await using everything = connect(gateway.url, "everything", EVERYTHING_SERVER, {
      proxy: tinyproxy.url,
    });
    await using demo = connect(gateway.url, "demo", DEMO_SERVER, { proxy: tinyproxy.url });
    const [registered] = await Promise.all([
      everything.waitForEvent("registered", 60_000),
      demo.waitForEvent("registered", 30_000),
    ]);
    // Both went through the proxy: the WebSocket upgrade it broke, then the SSE stream.
    const proxied = tinyproxy.output();
    assert.match(proxied, /GET http:\/\/127\.0\.0\.1:\d+\/reverse-proxy\/ws/);
    assert.match(proxied, /GET http:\/\/127\.0\.0\.1:\d+\/reverse-proxy\/sse/);
    for (const proxy of [everything, demo]) {
      assert.equal(events(proxy, "registered")[0]!.transport, "sse");
      const [changed] = events(proxy, "transport_changed");
      assert.equal(changed?.transport, "sse");
      assert.match(String(changed?.why), /answered with HTTP \d{3} instead of 101/);
    }
    assert.equal(registered!.contract, "C");
    const families = parsePrometheus(metrics.render());
    assert.equal(sampleValue(families, "mcp_rproxy_links", { transport: "sse" }), 2);
    assert.equal(sampleValue(families, "mcp_rproxy_links", { transport: "websocket" }), 0);

    const a = await samplingClient(gateway, "everything");
    clients.push(a);
    const echo = await within(
      a.callTool({ name: "echo", arguments: { message: "over SSE" } }),
      10_000,
      "echo",
    );
    assert.match(textOf(echo), /over SSE/);
    const progress: number[] = [];
    const long = await within(
      a.callTool(
        { name: "trigger-long-running-operation", arguments: { duration: 0.3, steps: 3 } },
        undefined,
        { onprogress: (p: { progress: number }) => progress.push(p.progress) },
      ),
      10_000,
      "the long-running operation",
    );
    assert.match(textOf(long), /completed/i);
    assert.deepEqual(progress, [1, 2, 3]);
    const sampled = await within(
      a.callTool({
        name: "trigger-sampling-request",
        arguments: { prompt: "hello", maxTokens: 5 },
      }),
      10_000,
      "sampling",
    );
    assert.match(textOf(sampled), /sampled: .*hello/);

    const b = await connectClient(gateway, "demo", TOKENS.alice);
    clients.push(b);
    const big = await within(
      b.callTool({ name: "big", arguments: { bytes: 16 * 1024 * 1024 } }),
      60_000,
      "16 MiB",
    );
    assert.equal(textOf(big).length, 16 * 1024 * 1024);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await tinyproxy.stop();
    await gateway.close();
  }
});

Deno.test("auto falls back to SSE within 5 s when a proxy in front refuses the upgrade, and returns to WebSocket once it is gone", async () => {
  const gateway = await startTestGateway();
  // connect → relay → tinyproxy (a reverse proxy in front of the gateway) → gateway; "removing the
  // proxy" points the relay at the gateway itself.
  const tinyproxy = await startTinyproxy({ reverseTo: gateway.port });
  const relay = await startTcpRelay({ targetPort: tinyproxy.port });
  let client: Client | undefined;
  try {
    await using proxy = connect(`http://127.0.0.1:${relay.port}`, "returner", DEMO_SERVER, {
      args: ["--websocket-retry", "0.3"],
    });
    const first = await proxy.waitForEvent("connecting", 30_000);
    assert.equal(first.transport, "websocket");
    const registered = await proxy.waitForEvent("registered", 30_000);
    assert.equal(registered.transport, "sse");
    const fellBackMs = msBetween(first, registered);
    assert.ok(fellBackMs <= 5_000, `registered over SSE ${fellBackMs} ms after the first dial`);
    client = await connectClient(gateway, "returner", TOKENS.alice);
    assert.match(
      textOf(
        await within(client.callTool({ name: "echo", arguments: { message: "a" } }), 10_000, "a"),
      ),
      /a/,
    );
    // Probes through the proxy keep failing: still on SSE.
    assert.equal(events(proxy, "transport_changed").length, 1);

    relay.retarget(gateway.port);
    const back = await proxy.waitForLine(
      (line) => line.json?.event === "transport_changed" && line.json.transport === "websocket",
      10_000,
    );
    assert.match(String(back.json!.why), /passes again/);
    const again = await proxy.waitForLine(
      (line) => line.json?.event === "registered" && line.json.transport === "websocket",
      10_000,
    );
    assert.equal(again.json!.session, registered.session, "the same session, resumed");
    assert.equal(events(proxy, "resumed").length >= 1, true);
    assert.match(
      textOf(
        await within(client.callTool({ name: "echo", arguments: { message: "b" } }), 10_000, "b"),
      ),
      /b/,
    );
    const stats = JSON.parse(textOf(await client.callTool({ name: "stats" })));
    assert.equal(stats.initializeCount, 1);
    console.log(
      `auto: on SSE ${fellBackMs} ms after the first dial, back on WebSocket after the proxy went`,
    );
  } finally {
    await client?.close();
    await relay.close();
    await tinyproxy.stop();
    await gateway.close();
  }
});

Deno.test("a stream the proxy cuts for idleness is resumed with nothing lost; comment lines keep it from being cut", async () => {
  // tinyproxy closes a connection idle for 2 s, as a proxy's response timeout does.
  const tinyproxy = await startTinyproxy({ idleTimeoutSeconds: 2 });
  const quiet = await startTestGateway({ sseLinkKeepaliveMs: 600_000 });
  const kept = await startTestGateway({ sseLinkKeepaliveMs: 500 });
  const clients: Client[] = [];
  try {
    const args = ["--transport", "sse", "--keepalive", "30"];
    await using cut = connect(quiet.url, "idle", DEMO_SERVER, { proxy: tinyproxy.url, args });
    await using alive = connect(kept.url, "idle", DEMO_SERVER, { proxy: tinyproxy.url, args });
    await Promise.all([cut.waitForEvent("registered", 30_000), alive.waitForEvent("registered")]);
    const [a, b] = await Promise.all([
      connectClient(quiet, "idle", TOKENS.alice),
      connectClient(kept, "idle", TOKENS.alice),
    ]);
    clients.push(a!, b!);
    // Each call's answer comes 3 s after its request: past the proxy's idle timeout.
    const slow = { name: "long-running", arguments: { steps: 1, stepMs: 3_000 } };
    const [resultA, resultB] = await within(
      Promise.all([a!.callTool(slow), b!.callTool(slow)]),
      20_000,
      "the slow calls",
    );
    assert.match(textOf(resultA), /completed/);
    assert.match(textOf(resultB), /completed/);
    await cut.waitForEvent("link_lost", 5_000);
    await cut.waitForEvent("resumed", 10_000);
    const sessions = new Set(events(cut, "registered").map((e) => e.session));
    assert.equal(sessions.size, 1, "one session throughout, resumed after each cut");
    assert.match(
      textOf(
        await within(
          a!.callTool({ name: "echo", arguments: { message: "after" } }),
          10_000,
          "echo",
        ),
      ),
      /after/,
    );
    assert.equal(JSON.parse(textOf(await a!.callTool({ name: "stats" }))).initializeCount, 1);
    assert.equal(events(alive, "link_lost").length, 0, "comment lines kept the stream");
    assert.equal(events(alive, "registered").length, 1);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await quiet.close();
    await kept.close();
    await tinyproxy.stop();
  }
});

Deno.test("auto never moves to SSE for an auth refusal, a gateway that is down, or a gateway without an SSE link", async () => {
  const gateway = await startTestGateway();
  const contractA = await startContractGateway({ contract: "A" });
  const tinyproxy = await startTinyproxy();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const downPort = listener.addr.port;
  listener.close();
  try {
    // 401 on the upgrade: exit 3, no SSE attempt.
    await using refused = connect(gateway.url, "refused", DEMO_SERVER, {
      token: "tok-wrong-0123456789",
    });
    assert.equal(await refused.exitCode(20_000), ExitCode.AuthRefused);
    assert.equal(events(refused, "transport_probe").length, 0);
    // Behind the proxy the upgrade fails (the proxy's doing), the SSE stream is refused 401: exit 3 too.
    await using refusedBehind = connect(gateway.url, "refused", DEMO_SERVER, {
      token: "tok-wrong-0123456789",
      proxy: tinyproxy.url,
    });
    assert.equal(await refusedBehind.exitCode(20_000), ExitCode.AuthRefused);
    assert.equal(events(refusedBehind, "transport_changed").length, 0);

    // The gateway is down behind the proxy: both fail with the proxy's 5xx, auto stays on WebSocket.
    await using down = connect(`http://127.0.0.1:${downPort}`, "down", DEMO_SERVER, {
      proxy: tinyproxy.url,
    });
    const stays = await down.waitForEvent("transport_stays", 20_000);
    assert.match(String(stays.message), /The SSE link failed too .*staying on WebSocket/);
    await down.waitForLine((l) => l.json?.event === "connecting", 10_000, down.lines.length);
    assert.equal(events(down, "transport_changed").length, 0);

    // Contract A behind the proxy: no SSE link there; said so, and auto stays on WebSocket.
    await using a = connect(contractA.url, "a", DEMO_SERVER, { proxy: tinyproxy.url });
    const noSse = await a.waitForEvent("transport_stays", 20_000);
    assert.match(
      String(noSse.message),
      /no SSE link endpoint .*contracts A and B.*staying on WebSocket/,
    );
    const next = await a.waitForLine(
      (l) => l.json?.event === "connecting",
      10_000,
      a.lines.indexOf(a.lines.find((l) => l.json === noSse)!) + 1,
    );
    assert.equal(next.json!.transport, "websocket");
    assert.equal(events(a, "transport_changed").length, 0);
  } finally {
    await tinyproxy.stop();
    await contractA.close();
    await gateway.close();
  }
});

Deno.test("--transport sse to an https gateway goes through HTTPS_PROXY (CONNECT) and trusts --cert", async () => {
  const tls = new URL("../fixtures/tls/", import.meta.url).pathname;
  const gateway = await startGateway({
    tokens: await createTokenStore({ tokensFile: `${TOKENS.alice}: alice\n` }),
    port: 0,
    tls: {
      cert: await Deno.readTextFile(`${tls}server.pem`),
      key: await Deno.readTextFile(`${tls}server.key`),
    },
  });
  const tinyproxy = await startTinyproxy({
    allowConnectPorts: [gateway.port],
    logLevel: "Connect",
  });
  try {
    await using proxy = connect(`https://localhost:${gateway.port}`, "tls", DEMO_SERVER, {
      httpsProxy: tinyproxy.url,
      args: ["--transport", "sse", "--cert", `${tls}ca.pem`],
    });
    const registered = await proxy.waitForEvent("registered", 30_000);
    assert.equal(registered.transport, "sse");
    assert.match(String(registered.mcpUrl), /^https:\/\/localhost:\d+\/servers\/tls\/mcp$/);
    assert.match(tinyproxy.output(), new RegExp(`CONNECT localhost:${gateway.port}`));
  } finally {
    await tinyproxy.stop();
    await gateway.close();
  }
});

Deno.test("--transport sse carries many servers on one link, each with its own session", async () => {
  const metrics = createServeMetrics();
  const gateway = await startTestGateway({ metrics });
  const clients: Client[] = [];
  try {
    const demo = JSON.stringify(joinCommand(DEMO_SERVER));
    await using proxy = startProxy([
      "connect",
      "--gateway",
      gateway.url,
      "--log-format",
      "json",
      "--transport",
      "sse",
      "--server",
      `name=one,stdio=${demo}`,
      "--server",
      `name=two,stdio=${demo}`,
    ], { env: { REVERSE_PROXY_TOKEN: TOKENS.alice } });
    for (const name of ["one", "two"]) {
      const registered = await proxy.waitForLine(
        (l) => l.json?.event === "registered" && l.json.server === name,
        30_000,
      );
      assert.equal(registered.json!.transport, "sse");
      assert.equal(registered.json!.channel, name);
    }
    const families = parsePrometheus(metrics.render());
    assert.equal(sampleValue(families, "mcp_rproxy_links", { transport: "sse" }), 1, "one link");
    for (const name of ["one", "two"]) {
      const client = await connectClient(gateway, name, TOKENS.alice);
      clients.push(client);
      const echo = await within(
        client.callTool({ name: "echo", arguments: { message: `to ${name}` } }),
        10_000,
        `echo ${name}`,
      );
      assert.match(textOf(echo), new RegExp(`to ${name}`));
    }
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await gateway.close();
  }
});
