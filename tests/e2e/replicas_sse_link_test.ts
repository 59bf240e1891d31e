// An SSE link (`connect --transport sse`) through HAProxy round-robin per request in front of three
// `serve --redis` replicas: the link's stream stays on one replica while its POSTs land on all three, the
// others forward theirs to the stream's replica, and every call of four SDK clients (also through
// HAProxy) is answered.

import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { DEMO_SERVER, startProxy } from "../fixtures/proxy_process.ts";
import { RawSseLink, register } from "../fixtures/raw_sse_link.ts";
import {
  replicaMetric,
  type ReplicaProcess,
  startServeCluster,
} from "../fixtures/serve_cluster.ts";
import { textOf } from "../fixtures/per_client.ts";
import { TOKENS, within } from "../fixtures/test_gateway.ts";
import { readSse, type SseReading } from "../fixtures/mcp_http.ts";

Deno.test("3 replicas behind HAProxy: an SSE link's POSTs reach its stream's replica from any replica; 100 calls succeed", async () => {
  const cluster = await startServeCluster();
  const clients: Client[] = [];
  try {
    await using connect = startProxy([
      "connect",
      "--gateway",
      cluster.url,
      "--transport",
      "sse",
      "--server",
      `name=demo,stdio="${DEMO_SERVER.join(" ")}"`,
      "--log-format",
      "json",
    ], { env: { REVERSE_PROXY_TOKEN: TOKENS.alice } });
    const registered = await connect.waitForLine(
      (l) => l.json?.event === "registered" && l.json.server === "demo",
      60_000,
    );
    assert.equal(registered.json?.transport, "sse");

    for (let i = 0; i < 4; i++) {
      const client = new Client({ name: "replicas-sse-link-test", version: "1.0.0" });
      const transport = new StreamableHTTPClientTransport(
        new URL(`${cluster.url}/servers/demo/mcp`),
        {
          requestInit: { headers: { Authorization: `Bearer ${TOKENS.alice}` } },
        },
      );
      await within(client.connect(transport), 20_000, "the MCP client to connect");
      clients.push(client);
    }
    const calls = clients.flatMap((client, c) =>
      Array.from(
        { length: 25 },
        (_, n) =>
          client.callTool({ name: "echo", arguments: { message: `c${c}-n${n}` } }).then((
            result: unknown,
          ) => assert.equal(textOf(result), `Echo: c${c}-n${n}`)),
      )
    );
    await within(Promise.all(calls), 60_000, "100 calls");

    // The stream's replica holds the tunnel; the two others forwarded the link's POSTs they took.
    const owned = await Promise.all(
      cluster.replicas.map((r) => replicaMetric(r, "mcp_rproxy_tunnels_owned")),
    );
    assert.deepEqual(owned.toSorted(), [0, 0, 1], `tunnels owned ${owned}`);
    const holder = owned.indexOf(1);
    const forwarded = await Promise.all(
      cluster.replicas.map((r) =>
        replicaMetric(r, "mcp_rproxy_stream_forwards_total", { what: "link_post" })
      ),
    );
    console.log(
      `link POSTs forwarded per replica: ${forwarded.join(", ")} (holder r${holder + 1})`,
    );
    assert.equal(forwarded[holder], 0, "the holder takes its own link's POSTs");
    assert.ok(
      forwarded.filter((_, i) => i !== holder).every((n) => n > 0),
      `forwarded link POSTs ${forwarded}`,
    );
    // One link the whole time: no POST was refused and nothing redialed.
    assert.equal(
      connect.lines.filter((l) => l.json?.event === "registered").length,
      1,
      "connect registered once",
    );
  } finally {
    for (const client of clients) await client.close().catch(() => {});
    await cluster.close();
  }
});

Deno.test("--cluster-forward-timeout: an SSE link POST and a legacy SSE POST forwarded to a frozen holder get 504 naming the flag once it passed", async () => {
  const cluster = await startServeCluster({
    replicas: 2,
    serveArgs: ["--cluster-forward-timeout", "1"],
  });
  const [holder, other] = cluster.replicas as [ReplicaProcess, ReplicaProcess];
  let link: RawSseLink | Response | undefined;
  let legacy: SseReading | undefined;
  let frozen = false;
  try {
    link = await RawSseLink.open({ url: holder.url }, TOKENS.alice);
    assert.ok(link instanceof RawSseLink, "the stream opened");
    const sent = await link.post(0, register("frozen-holder"), TOKENS.alice, other.url);
    assert.equal(sent.status, 202, sent.text);
    await link.frame("register_ack");
    // A legacy SSE client's stream on the holder: its POSTs to the other replica are forwarded.
    const stream = await fetch(`${holder.url}/servers/frozen-holder/sse`, {
      headers: { authorization: `Bearer ${TOKENS.alice}`, accept: "text/event-stream" },
    });
    assert.equal(stream.status, 200);
    legacy = readSse(stream);
    const endpoint = await legacy.events.waitFor((e) => e.event === "endpoint", 5_000, "endpoint");
    // The holder hangs (its liveness key lives on for its TTL): the forward gets no answer.
    holder.process.signal("SIGSTOP");
    frozen = true;
    const started = performance.now();
    const post = await within(
      link.post(1, JSON.stringify({ type: "heartbeat" }), TOKENS.alice, other.url),
      15_000,
      "the forwarded POST's answer",
    );
    const elapsed = performance.now() - started;
    assert.equal(post.status, 504, post.text);
    assert.match(post.text, /Replica r1 holding this SSE link did not answer within 1 s/);
    assert.match(post.text, /--cluster-forward-timeout/);
    assert.ok(elapsed >= 900 && elapsed < 5_000, `answered after ${Math.round(elapsed)} ms`);

    const legacyPost = await within(
      fetch(new URL(endpoint.data, other.url), {
        method: "POST",
        headers: { authorization: `Bearer ${TOKENS.alice}`, "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
      }),
      15_000,
      "the forwarded legacy POST's answer",
    );
    const legacyText = await legacyPost.text();
    assert.equal(legacyPost.status, 504, legacyText);
    assert.match(legacyText, /Replica r1 holding this session's stream did not answer within 1 s/);
    assert.match(legacyText, /--cluster-forward-timeout/);
  } finally {
    if (frozen) holder.process.signal("SIGCONT");
    await legacy?.close();
    if (link instanceof RawSseLink) await link.close();
    await cluster.close();
  }
});
