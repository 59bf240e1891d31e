// The gateway's SSE link over raw HTTP (fetch and an SSE reader): admission as for a WebSocket, POSTs that
// prove their owner and are taken once in order, the frame limit, close codes as a last event, comment
// lines, owner limits and metrics.

import assert from "node:assert/strict";
import { createServeMetrics } from "../../lib/serve/metrics.ts";
import type { Gateway, GatewayOptions } from "../../lib/serve/gateway.ts";
import { parsePrometheus, sampleValue } from "../fixtures/prometheus_parser.ts";
import { RawSseLink, register } from "../fixtures/raw_sse_link.ts";
import { startTestGateway, TOKENS, TunnelClient, within } from "../fixtures/test_gateway.ts";

async function openLink(gateway: Gateway, token: string = TOKENS.alice): Promise<RawSseLink> {
  const link = await RawSseLink.open(gateway, token);
  assert.ok(link instanceof RawSseLink, "the stream opened");
  return link;
}

async function withGateway(
  options: Partial<Omit<GatewayOptions, "tokens">>,
  body: (gateway: Gateway) => Promise<void>,
): Promise<void> {
  const gateway = await startTestGateway(options);
  try {
    await body(gateway);
  } finally {
    await gateway.close();
  }
}

Deno.test("SSE link: the stream is refused 401 without a token and 403 without the connect role", async () => {
  await withGateway({}, async (gateway) => {
    const anonymous = await RawSseLink.open(gateway, undefined);
    assert.ok(anonymous instanceof Response);
    assert.equal(anonymous.status, 401);
    await anonymous.body?.cancel();
    const clientOnly = await RawSseLink.open(gateway, TOKENS.aliceClientOnly);
    assert.ok(clientOnly instanceof Response);
    assert.equal(clientOnly.status, 403);
    await clientOnly.body?.cancel();
    const post = await fetch(`${gateway.url}/reverse-proxy/sse`, { method: "POST", body: "x" });
    assert.equal(post.status, 405);
    await post.body?.cancel();
  });
});

Deno.test("SSE link: registers through a POST, the answer comes on the stream, a heartbeat is answered", async () => {
  await withGateway({}, async (gateway) => {
    const link = await openLink(gateway);
    try {
      // Relative to the stream, so that a path prefix a proxy adds is kept.
      assert.match(link.postUrl.pathname, /^\/reverse-proxy\/sse\/[0-9a-f-]{36}$/);
      const heartbeat = JSON.stringify({ type: "heartbeat", sessionId: "raw" });
      const sent = await link.post(0, `${register("raw-one")}\n${heartbeat}`);
      assert.equal(sent.status, 202);
      const ack = await link.frame("register_ack");
      assert.equal(ack.status, "success");
      assert.equal(ack.name, "raw-one");
      await link.frame("heartbeat");
    } finally {
      await link.close();
    }
  });
});

Deno.test("SSE link: a POST needs the owner's token and its number; a retried number is taken once; a gap closes the link", async () => {
  await withGateway({}, async (gateway) => {
    const link = await openLink(gateway);
    try {
      assert.equal((await link.post(0, register("raw-two"), null)).status, 401);
      assert.equal((await link.post(0, register("raw-two"), TOKENS.bob)).status, 403);
      assert.equal((await link.post(undefined, register("raw-two"))).status, 400);
      const unknown = await fetch(`${gateway.url}/reverse-proxy/sse/no-such-link`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKENS.alice}`, "x-post-seq": "0" },
        body: "{}",
      });
      assert.equal(unknown.status, 404);
      await unknown.body?.cancel();
      assert.equal((await link.post(0, register("raw-two"))).status, 202);
      await link.frame("register_ack");
      // The same POST again (a retry after a cut): taken before, so dropped. Were it taken, this second
      // register on a link without channels would close it with 1008.
      assert.equal((await link.post(0, register("raw-two"))).status, 202);
      assert.equal((await link.post(1, JSON.stringify({ type: "heartbeat" }))).status, 202);
      await link.frame("heartbeat");
      assert.equal(link.events.some((e) => e.event === "close"), false);
      // POST 3 skips 2: frames are missing, the link cannot go on.
      assert.equal((await link.post(3, JSON.stringify({ type: "heartbeat" }))).status, 409);
      assert.equal((await link.closed()).code, 1002);
    } finally {
      await link.close();
    }
  });
});

Deno.test("SSE link: a frame over --max-frame-bytes closes with 1009; a body over the frame limit plus a batch gets 413", async () => {
  await withGateway({ maxFrameBytes: 4096 }, async (gateway) => {
    const link = await openLink(gateway);
    try {
      assert.equal((await link.post(0, register("raw-big"))).status, 202);
      await link.frame("register_ack");
      const big = JSON.stringify({ type: "notification", payload: { pad: "x".repeat(5000) } });
      assert.equal((await link.post(1, big)).status, 202);
      assert.equal((await link.closed()).code, 1009);
    } finally {
      await link.close();
    }
    const second = await openLink(gateway);
    try {
      const huge = await second.post(0, "x".repeat(4096 + 1024 * 1024 + 1));
      assert.equal(huge.status, 413);
      assert.match(huge.text, /exceeds the limit/);
      assert.equal((await second.closed()).code, 1009);
    } finally {
      await second.close();
    }
  });
});

Deno.test("SSE link: an idle stream gets a comment line every --sse-link-keepalive", async () => {
  await withGateway({ sseLinkKeepaliveMs: 100 }, async (gateway) => {
    const link = await openLink(gateway);
    try {
      const started = performance.now();
      await link.until(() => link.text.includes(": keepalive\n\n"), "a comment line", 2_000);
      assert.ok(performance.now() - started < 1_000, "within a few keepalive intervals");
    } finally {
      await link.close();
    }
  });
});

Deno.test("SSE link: counts against the owner's places from its start (4029 past them), shows in metrics, ends with 4001 when evicted", async () => {
  const metrics = createServeMetrics();
  await withGateway({ maxSessionsPerOwner: 1, metrics }, async (gateway) => {
    const first = await openLink(gateway);
    try {
      // Not registered yet, and already holding alice's one place: a WebSocket link is refused too.
      const ws = await TunnelClient.open(gateway, TOKENS.alice);
      assert.equal((await within(ws.closed, 5_000, "the 4029")).code, 4029);
      const second = await openLink(gateway);
      assert.equal((await second.closed()).code, 4029);
      await second.close();
      const families = parsePrometheus(metrics.render());
      assert.equal(sampleValue(families, "mcp_rproxy_links", { transport: "sse" }), 1);
      assert.equal(sampleValue(families, "mcp_rproxy_links", { transport: "websocket" }), 0);
      assert.equal((await first.post(0, register("raw-evictee"))).status, 202);
      const ack = await first.frame("register_ack");
      const evicted = await fetch(`${gateway.url}/reverse-proxy/sessions/${ack.sessionId}`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${TOKENS.alice}` },
      });
      assert.equal(evicted.status, 200);
      await evicted.body?.cancel();
      assert.equal((await first.closed()).code, 4001);
    } finally {
      await first.close();
    }
  });
});

Deno.test("SSE link: a POST body the owner's memory share cannot hold gets 503 and the link closes with 1013", async () => {
  const share = 256 * 1024;
  await withGateway(
    { memoryPerOwnerBytes: share, memoryBudgetBytes: 4 * share },
    async (gateway) => {
      const link = await openLink(gateway);
      try {
        assert.equal((await link.post(0, register("raw-memory"))).status, 202);
        await link.frame("register_ack");
        const big = JSON.stringify({ type: "notification", payload: { pad: "x".repeat(share) } });
        const refused = await link.post(1, big);
        assert.equal(refused.status, 503);
        assert.match(refused.text, /memory share/);
        assert.equal((await link.closed()).code, 1013);
      } finally {
        await link.close();
      }
    },
  );
});
