import assert from "node:assert/strict";
import { checkHealth, startHealthServer } from "../../lib/util/health_server.ts";
import { ListenError } from "../../lib/util/errors.ts";
import { createConnectMetrics } from "../../lib/connect/metrics.ts";
import { parsePrometheus, sampleValue } from "../fixtures/prometheus_parser.ts";

const TIMEOUT_MS = 5000;

async function get(url: string, init: RequestInit = {}): Promise<{
  status: number;
  type: string | null;
  body: string;
}> {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(TIMEOUT_MS) });
  return {
    status: response.status,
    type: response.headers.get("content-type"),
    body: await response.text(),
  };
}

Deno.test("startHealthServer() serves /healthz, /readyz, /metrics and 404", async () => {
  let ready = false;
  const metrics = createConnectMetrics();
  const server = await startHealthServer({ listen: "127.0.0.1:0", ready: () => ready, metrics });
  try {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.deepEqual(await get(`${server.url}/healthz`), {
      status: 200,
      type: "text/plain; charset=utf-8",
      body: "ok\n",
    });

    assert.equal((await get(`${server.url}/readyz`)).status, 503);
    ready = true;
    assert.equal((await get(`${server.url}/readyz`)).status, 200);

    let response = await get(`${server.url}/metrics`);
    assert.equal(response.status, 200);
    assert.equal(response.type, "text/plain; version=0.0.4; charset=utf-8");
    assert.equal(sampleValue(parsePrometheus(response.body), "mcp_rproxy_link_up"), 0);

    metrics.linkUp.set(1);
    metrics.framesOut.inc(5);
    response = await get(`${server.url}/metrics`);
    const families = parsePrometheus(response.body);
    assert.equal(sampleValue(families, "mcp_rproxy_link_up"), 1);
    assert.equal(sampleValue(families, "mcp_rproxy_frames_total", { direction: "out" }), 5);

    assert.equal((await get(`${server.url}/`)).status, 404);
    assert.equal((await get(`${server.url}/metrics/x`)).status, 404);
    const post = await get(`${server.url}/healthz`, { method: "POST" });
    assert.equal(post.status, 405);
    assert.equal((await get(`${server.url}/healthz`, { method: "HEAD" })).status, 200);
  } finally {
    await server.close();
  }
});

Deno.test("startHealthServer() answers 500 when ready() throws, and keeps serving", async () => {
  const server = await startHealthServer({
    listen: "127.0.0.1:0",
    ready: () => {
      throw new Error("state broken");
    },
    metrics: { render: () => "" },
  });
  try {
    const response = await get(`${server.url}/readyz`);
    assert.equal(response.status, 500);
    assert.match(response.body, /state broken/);
    assert.equal((await get(`${server.url}/healthz`)).status, 200);
  } finally {
    await server.close();
  }
});

Deno.test("startHealthServer() closes when its signal aborts", async () => {
  const controller = new AbortController();
  const server = await startHealthServer({
    listen: "127.0.0.1:0",
    ready: () => true,
    metrics: { render: () => "" },
    signal: controller.signal,
  });
  try {
    assert.equal((await get(`${server.url}/healthz`)).status, 200);
    controller.abort();
    await server.close();
    await assert.rejects(() => get(`${server.url}/healthz`));
  } finally {
    await server.close();
  }
});

Deno.test("startHealthServer() rejects an address in use with a ListenError naming the flag", async () => {
  const first = await startHealthServer({
    listen: "127.0.0.1:0",
    ready: () => true,
    metrics: { render: () => "" },
  });
  try {
    const taken = first.url.replace("http://", "");
    await assert.rejects(
      () => startHealthServer({ listen: taken, ready: () => true, metrics: { render: () => "" } }),
      (error: unknown) =>
        error instanceof ListenError && error.cause instanceof Deno.errors.AddrInUse &&
        error.message ===
          `Cannot listen on ${taken} (--health-listen): the address is in use; choose another port`,
    );
  } finally {
    await first.close();
  }
});

Deno.test("startHealthServer() listens on IPv6 loopback and brackets the URL", async (t) => {
  let server;
  try {
    server = await startHealthServer({
      listen: "[::1]:0",
      ready: () => true,
      metrics: { render: () => "" },
    });
  } catch (error: unknown) {
    if (error instanceof ListenError && error.cause instanceof Deno.errors.AddrNotAvailable) {
      t.step({ name: "IPv6 loopback unavailable here", ignore: true, fn: () => {} });
      return;
    }
    throw error;
  }
  try {
    assert.match(server.url, /^http:\/\/\[::1\]:\d+$/);
    assert.equal((await get(`${server.url}/healthz`)).status, 200);
  } finally {
    await server.close();
  }
});

Deno.test("checkHealth() passes on 200 and fails on 503 or no listener, saying what answered", async () => {
  let ready = true;
  const server = await startHealthServer({
    listen: "127.0.0.1:0",
    ready: () => ready,
    metrics: { render: () => "" },
  });
  const url = `${server.url}/readyz`;
  try {
    assert.deepEqual(await checkHealth(url), { ok: true, detail: "HTTP 200" });
    ready = false;
    assert.deepEqual(await checkHealth(url), { ok: false, detail: "HTTP 503" });
  } finally {
    await server.close();
  }
  const gone = await checkHealth(url, { timeoutMs: 2000 });
  assert.equal(gone.ok, false);
  assert.match(gone.detail, /refused|connect/i);
});
