// End to end: two SIGHUPs in a row leave connect running what the file said at the second one. A reload
// that reads slowly (a secret file on a slow mount; here a FIFO that answers only when written) must not
// be applied after a later one, undoing it.

import assert from "node:assert/strict";
import type { Gateway } from "../../lib/serve/gateway.ts";
import { startProxy } from "../fixtures/proxy_process.ts";
import { startTestGateway, TOKENS, within } from "../fixtures/test_gateway.ts";

const TINY = ["sh", new URL("../fixtures/tiny_mcp_server.sh", import.meta.url).pathname];

async function sessionNames(gateway: Gateway): Promise<string[]> {
  const response = await fetch(`${gateway.url}/reverse-proxy/sessions`, {
    headers: { authorization: `Bearer ${TOKENS.alice}` },
  });
  const body = await response.json() as { sessions: { server_info: { name: string } }[] };
  return body.sessions.map((s) => s.server_info.name).sort();
}

Deno.test("SIGHUP twice: a first reload that reads slowly is applied before the second, never after it", async () => {
  const gateway = await startTestGateway({});
  const dir = await Deno.makeTempDir({ prefix: "reload_order_" });
  try {
    const file = `${dir}/connect.json`;
    const fifo = `${dir}/bearer`;
    const write = (servers: object[]) =>
      Deno.writeTextFile(file, JSON.stringify({ gateway: gateway.url, servers }));
    const a = { name: "a", command: TINY };
    await write([a]);
    await using proxy = startProxy(
      ["connect", "--config", file, "--log-format", "json", "--reconnect-delay", "0.05"],
      { env: { REVERSE_PROXY_TOKEN: TOKENS.alice } },
    );
    await proxy.waitForEvent("registered", 30_000);
    const mkfifo = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.equal(mkfifo.code, 0);

    // The first reload blocks on its secret file until the test writes it.
    const from = proxy.lines.length;
    await write([a, { name: "slow", http: "http://127.0.0.1:9/mcp", bearer_file: fifo }]);
    proxy.signal("SIGHUP");
    // Opening the FIFO to write completes once connect opened it to read: it then waits for the text.
    const writer = await within(
      Deno.open(fifo, { write: true }),
      10_000,
      "connect opening the secret file of the first reload",
    );
    // The second reload: its file reads at once.
    await write([a, { name: "b", command: TINY }]);
    proxy.signal("SIGHUP");
    // A connect that applies reloads out of order applies this one now: give it the time to.
    await proxy.waitForEvent("reloaded", 2_000, from).catch(() => {});
    await writer.write(new TextEncoder().encode("secret\n"));
    writer.close();

    const reloaded = (l: { json?: Record<string, unknown> }) => l.json?.event === "reloaded";
    const first = await proxy.waitForLine(reloaded, 30_000, from);
    const second = (await proxy.waitForLine(reloaded, 30_000, proxy.lines.indexOf(first) + 1))
      .json!;
    assert.deepEqual(second.names, {
      added: ["b"],
      removed: ["slow"],
      changed: [],
      unchanged: ["a"],
    }, "the second SIGHUP's file is applied last");
    await proxy.waitForLine((l) => l.json?.event === "registered" && l.json.server === "b", 30_000);
    assert.deepEqual(await sessionNames(gateway), ["a", "b"]);
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(30_000), 0);
  } finally {
    await gateway.close();
    await Deno.remove(dir, { recursive: true });
  }
});
