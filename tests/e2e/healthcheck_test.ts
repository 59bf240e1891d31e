// `mcp-rproxy healthcheck`, run for real against a running health listener: the container HEALTHCHECK
// of images without curl.

import assert from "node:assert/strict";
import { startHealthServer } from "../../lib/util/health_server.ts";
import { startProxy } from "../fixtures/proxy_process.ts";

async function healthcheck(args: string[]): Promise<{ code: number; text: string }> {
  await using probe = startProxy(["healthcheck", ...args]);
  const code = await probe.exitCode(20_000);
  return { code, text: probe.text() };
}

Deno.test("healthcheck exits 0 when the URL answers 200, 1 when it answers 503, silent on success", async () => {
  let ready = true;
  const server = await startHealthServer({
    listen: "127.0.0.1:0",
    ready: () => ready,
    metrics: { render: () => "" },
  });
  try {
    const url = `${server.url}/readyz`;
    assert.deepEqual(await healthcheck([url]), { code: 0, text: "" });
    ready = false;
    assert.deepEqual(await healthcheck([url, "--timeout", "5"]), {
      code: 1,
      text: `mcp-rproxy: ${url} is not healthy: HTTP 503`,
    });
  } finally {
    await server.close();
  }
});

Deno.test("healthcheck exits 1 when nothing listens, saying so", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const url = `http://127.0.0.1:${listener.addr.port}/healthz`;
  listener.close();
  const { code, text } = await healthcheck([url]);
  assert.equal(code, 1);
  assert.match(text, new RegExp(`^mcp-rproxy: ${url} is not healthy: .*Connection refused`));
});

Deno.test("healthcheck exits 0 against the --health-listen of a running serve", async () => {
  const dir = await Deno.makeTempDir({ prefix: "healthcheck-test-" });
  try {
    await Deno.writeTextFile(`${dir}/tokens.txt`, "healthcheck-test-token-0123456789 alice\n");
    await using serve = startProxy([
      "serve",
      "--listen",
      "127.0.0.1:0",
      "--tokens-file",
      `${dir}/tokens.txt`,
      "--health-listen",
      "127.0.0.1:0",
      "--log-format",
      "json",
    ]);
    const health = await serve.waitForEvent("health_listening", 20_000);
    await serve.waitForEvent("listening", 20_000);
    assert.deepEqual(await healthcheck([`${health.url}/readyz`]), { code: 0, text: "" });
    serve.signal("SIGTERM");
    assert.equal(await serve.exitCode(), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
