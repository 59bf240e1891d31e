// wss:// with a private CA: `--cert` makes connect trust it, and without it the handshake fails plainly.

import assert from "node:assert/strict";
import { startGateway } from "../../lib/serve/gateway.ts";
import { createTokenStore } from "../../lib/serve/token_store.ts";
import { DEMO_SERVER, processAlive, startProxy } from "../fixtures/proxy_process.ts";

const TLS_DIR = new URL("../fixtures/tls/", import.meta.url).pathname;
const TOKEN = "tls-test-token-0123456789abcdef";

async function withTlsGateway(fn: (url: string) => Promise<void>): Promise<void> {
  const gateway = await startGateway({
    tokens: await createTokenStore({ tokensFile: `${TOKEN}: alice\n` }),
    port: 0,
    tls: {
      cert: await Deno.readTextFile(`${TLS_DIR}server.pem`),
      key: await Deno.readTextFile(`${TLS_DIR}server.key`),
    },
  });
  try {
    await fn(`https://localhost:${gateway.port}`);
  } finally {
    await gateway.close();
  }
}

function args(url: string, extra: string[]): string[] {
  return ["connect", "--gateway", url, "--log-format", "json", ...extra, "--", ...DEMO_SERVER];
}

Deno.test("connect --cert trusts a private CA for wss:// and registers with our gateway", async () => {
  await withTlsGateway(async (url) => {
    await using proxy = startProxy(args(url, ["--cert", `${TLS_DIR}ca.pem`]), {
      env: { REVERSE_PROXY_TOKEN: TOKEN },
    });
    const registered = await proxy.waitForEvent("registered", 20_000);
    assert.equal(registered.contract, "C");
    assert.match(
      String(registered.mcpUrl),
      /^https:\/\/localhost:\d+\/servers\/mcp-rproxy-demo\/mcp$/,
    );
    const pid = Number((await proxy.waitForEvent("server_started")).pid);
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(), 0);
    assert.equal(processAlive(pid), false);
  });
});

Deno.test("connect without --cert refuses an untrusted certificate and says so", async () => {
  await withTlsGateway(async (url) => {
    await using proxy = startProxy(args(url, ["--max-retries", "1", "--reconnect-delay", "0.01"]), {
      env: { REVERSE_PROXY_TOKEN: TOKEN },
    });
    assert.equal(await proxy.exitCode(20_000), 1);
    const failed = await proxy.waitForEvent("connect_failed");
    assert.match(String(failed.error), /certificate|UnknownIssuer|invalid peer/i);
  });
});
