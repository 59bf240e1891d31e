// A Streamable HTTP stream resumed on another replica, with real processes and the official SDK: three
// `serve --redis` replicas behind HAProxy round-robin per request, connect with the demo server, an SDK
// client (through a TCP relay in front of HAProxy) in a call streaming progress. The relay cuts the
// client's connections mid-stream; the SDK resumes with Last-Event-ID, HAProxy sends that GET to the next
// replica, which has the stream's replica relay the rest: every progress once, in order, and the answer.

import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { DEMO_SERVER, startProxy } from "../fixtures/proxy_process.ts";
import { replicaMetric, startServeCluster } from "../fixtures/serve_cluster.ts";
import { startTcpRelay } from "../fixtures/tcp_relay.ts";
import { TOKENS, within } from "../fixtures/test_gateway.ts";

Deno.test("3 replicas behind HAProxy: an SDK client cut mid-stream resumes on another replica and misses nothing", async () => {
  const cluster = await startServeCluster();
  let client: Client | undefined;
  try {
    await using connect = startProxy([
      "connect",
      "--gateway",
      cluster.url,
      "--server",
      `name=demo,stdio="${DEMO_SERVER.join(" ")}"`,
      "--log-format",
      "json",
    ], { env: { REVERSE_PROXY_TOKEN: TOKENS.alice } });
    await connect.waitForLine(
      (l) => l.json?.event === "registered" && l.json.server === "demo",
      60_000,
    );
    await using relay = await startTcpRelay({ targetPort: cluster.haproxy.port });
    client = new Client({ name: "replicas-streams-test", version: "1.0.0" });
    const transport = new StreamableHTTPClientTransport(
      new URL(`http://127.0.0.1:${relay.port}/servers/demo/mcp`),
      {
        requestInit: { headers: { Authorization: `Bearer ${TOKENS.alice}` } },
        reconnectionOptions: {
          initialReconnectionDelay: 100,
          maxReconnectionDelay: 500,
          reconnectionDelayGrowFactor: 1.5,
          maxRetries: 5,
        },
      },
    );
    await within(client.connect(transport), 20_000, "the MCP client to connect");

    const steps = 12;
    const progress: number[] = [];
    let cut = false;
    const result = client.callTool(
      { name: "long-running", arguments: { steps, stepMs: 150 } },
      undefined,
      {
        timeout: 30_000,
        onprogress: (p: { progress: number }) => {
          progress.push(p.progress);
          // Mid-stream: the client's connections to HAProxy are cut; the call goes on at the server.
          if (p.progress === 3 && !cut) {
            cut = true;
            relay.cut();
          }
        },
      },
    );
    const answer = await within(result, 30_000, "the call's answer after the cut") as {
      content: { text: string }[];
    };
    assert.ok(cut, "the connection was cut mid-stream");
    assert.match(answer.content[0]!.text, new RegExp(`${steps}`));
    assert.deepEqual(
      progress,
      Array.from({ length: steps }, (_, i) => i + 1),
      "each progress once",
    );
    const resumes = await Promise.all(
      cluster.replicas.map((r) =>
        replicaMetric(r, "mcp_rproxy_stream_forwards_total", { what: "resume" })
      ),
    );
    console.log(`resumes forwarded per replica: ${resumes.join(", ")}`);
    assert.ok(resumes.some((n) => n > 0), `the resume landed on another replica: ${resumes}`);
  } finally {
    await client?.close().catch(() => {});
    await cluster.close();
  }
});
