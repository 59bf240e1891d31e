// Metrics of the real programs, scraped from `--health-listen` /metrics after real events: connect's link
// reconnects (a TCP cut), server restarts (a killed server) and heartbeat round trips; serve's MCP client
// gauge as SDK clients connect, end their session, and go idle past the TTL.

import assert from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { Gateway } from "../../lib/serve/gateway.ts";
import {
  family,
  type ParsedFamily,
  parsePrometheus,
  sampleValue,
} from "../fixtures/prometheus_parser.ts";
import { DEMO_SERVER, type ProxyProcess, startProxy } from "../fixtures/proxy_process.ts";
import { registerResumable } from "../fixtures/resumable_tunnel.ts";
import { startTcpRelay } from "../fixtures/tcp_relay.ts";
import {
  connectClient,
  startTestGateway,
  TOKENS,
  TOKENS_FILE,
  type TunnelClient,
  within,
} from "../fixtures/test_gateway.ts";

async function scrape(url: string): Promise<ParsedFamily[]> {
  const response = await within(fetch(`${url}/metrics`), 5_000, "GET /metrics");
  assert.equal(response.status, 200);
  return parsePrometheus(await response.text());
}

/** Scrapes until `check` holds (each scrape is the pacing), or fails with the last value seen. */
async function scrapeUntil(
  url: string,
  what: string,
  check: (families: ParsedFamily[]) => boolean,
  ms = 10_000,
): Promise<ParsedFamily[]> {
  const end = Date.now() + ms;
  for (;;) {
    const families = await scrape(url);
    if (check(families)) return families;
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    // A gauge has no change event to wait on: poll, without starving the process being measured.
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Where the program serves /metrics, from its log. */
async function healthUrl(proxy: ProxyProcess): Promise<string> {
  const line = await proxy.waitForLine((l) => /Health and metrics on/.test(l.raw), 30_000);
  return line.raw.match(/http:\/\/127\.0\.0\.1:\d+/)![0];
}

function heartbeats(families: ParsedFamily[]): { count: number; sum: number } {
  const sample = family(families, "mcp_rproxy_heartbeat_rtt_seconds").metrics[0];
  return { count: Number(sample?.count ?? 0), sum: Number(sample?.sum ?? 0) };
}

Deno.test("connect's /metrics counts a link reconnect, a server restart and heartbeat round trips as they happen", async () => {
  const gateway = await startTestGateway();
  const relay = await startTcpRelay({ targetPort: gateway.port });
  try {
    await using proxy = startProxy([
      "connect",
      "--gateway",
      `http://127.0.0.1:${relay.port}`,
      "--server-name",
      "metered",
      "--log-format",
      "json",
      "--keepalive",
      "0.1",
      "--reconnect-delay",
      "0.05",
      "--health-listen",
      "127.0.0.1:0",
      "--",
      ...DEMO_SERVER,
    ], { env: { REVERSE_PROXY_TOKEN: TOKENS.alice } });
    const url = await healthUrl(proxy);
    const started = await proxy.waitForEvent("server_started", 30_000);
    await proxy.waitForEvent("registered", 30_000);
    let families = await scrape(url);
    assert.equal(sampleValue(families, "mcp_rproxy_link_reconnects_total"), 0);
    assert.equal(sampleValue(families, "mcp_rproxy_server_restarts_total"), 0);
    // Heartbeats every 0.1 s: a few round trips, each a loopback time in seconds.
    families = await scrapeUntil(url, "3 heartbeat round trips", (f) => heartbeats(f).count >= 3);
    const rtt = heartbeats(families);
    assert.ok(rtt.sum > 0, "round trips take time");
    assert.ok(rtt.sum / rtt.count < 0.25, `mean RTT ${rtt.sum / rtt.count} s on loopback`);

    const beforeCut = proxy.lines.length;
    relay.cut();
    await proxy.waitForEvent("registered", 30_000, beforeCut);
    families = await scrape(url);
    assert.equal(sampleValue(families, "mcp_rproxy_link_reconnects_total"), 1, "one reconnect");
    assert.equal(sampleValue(families, "mcp_rproxy_server_restarts_total"), 0);

    const beforeKill = proxy.lines.length;
    Deno.kill(Number(started.pid), "SIGKILL");
    await proxy.waitForEvent("server_started", 30_000, beforeKill);
    await proxy.waitForEvent("registered", 30_000, beforeKill);
    families = await scrape(url);
    assert.equal(sampleValue(families, "mcp_rproxy_server_restarts_total"), 1, "one restart");
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(15_000), 0);
  } finally {
    await relay.close();
    await gateway.close();
  }
});

Deno.test("serve's /metrics counts MCP clients as SDK clients connect, end their session, and go idle past the TTL", async () => {
  const dir = await Deno.makeTempDir();
  const clients: Client[] = [];
  let tunnel: TunnelClient | undefined;
  try {
    await Deno.writeTextFile(`${dir}/tokens.yaml`, TOKENS_FILE);
    await using serve = startProxy([
      "serve",
      "--listen",
      "127.0.0.1:0",
      "--tokens-file",
      `${dir}/tokens.yaml`,
      "--mcp-session-ttl",
      "0.5",
      "--health-listen",
      "127.0.0.1:0",
      "--log-format",
      "json",
    ]);
    const listening = await serve.waitForLine((l) => /Gateway listening on/.test(l.raw), 30_000);
    const base = listening.raw.match(/http:\/\/127\.0\.0\.1:\d+/)![0];
    const metricsUrl = await healthUrl(serve);
    const gateway: Gateway = {
      url: base,
      port: Number(new URL(base).port),
      close: () => Promise.resolve(),
    };
    tunnel = (await registerResumable(gateway, "counted")).tunnel;
    const mcpClients = (f: ParsedFamily[]) => sampleValue(f, "mcp_rproxy_mcp_clients");
    assert.equal(mcpClients(await scrape(metricsUrl)), 0);
    for (let i = 0; i < 3; i++) clients.push(await connectClient(gateway, "counted", TOKENS.alice));
    assert.equal(mcpClients(await scrape(metricsUrl)), 3);
    // One ends its session (DELETE); the gauge follows at once.
    const [ending, leaving] = clients as [Client, Client, Client];
    await within(
      (ending.transport as StreamableHTTPClientTransport).terminateSession(),
      5_000,
      "DELETE of the session",
    );
    assert.equal(mcpClients(await scrape(metricsUrl)), 2);
    // One goes away without a word: its session stays until it has been idle for the TTL.
    await leaving.close();
    await scrapeUntil(metricsUrl, "the idle session to be forgotten", (f) => mcpClients(f) === 1);
    serve.signal("SIGTERM");
    assert.equal(await serve.exitCode(15_000), 0);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await tunnel?.close();
    await Deno.remove(dir, { recursive: true });
  }
});
