// End to end: connect's gateway token never reaches the environment of the servers it starts (often a
// package from npx or uvx, which has no use for it and could register or evict as its owner). The rest
// of connect's environment still does.

import assert from "node:assert/strict";
import { startProxy } from "../fixtures/proxy_process.ts";
import { startTestGateway, TOKENS } from "../fixtures/test_gateway.ts";

const TINY = new URL("../fixtures/tiny_mcp_server.sh", import.meta.url).pathname;

Deno.test("a stdio server started by connect does not get REVERSE_PROXY_TOKEN in its environment; other variables it does", async () => {
  const gateway = await startTestGateway({});
  const dir = await Deno.makeTempDir({ prefix: "child_env_" });
  try {
    const out = `${dir}/env.txt`;
    await using proxy = startProxy(
      [
        "connect",
        "--gateway",
        gateway.url,
        "--log-format",
        "json",
        "--",
        "sh",
        "-c",
        `env > "$ENV_OUT"; exec sh ${TINY}`,
      ],
      { env: { REVERSE_PROXY_TOKEN: TOKENS.alice, ENV_OUT: out } },
    );
    await proxy.waitForEvent("registered", 30_000);
    const env = await Deno.readTextFile(out);
    assert.ok(env.includes(`ENV_OUT=${out}`), "the rest of the environment is inherited");
    assert.ok(!env.includes(TOKENS.alice), "the gateway token reached the server's environment");
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(20_000), 0);
  } finally {
    await gateway.close();
    await Deno.remove(dir, { recursive: true });
  }
});
