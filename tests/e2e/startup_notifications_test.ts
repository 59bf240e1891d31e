// End to end: what a local server says before its first registration reaches the gateway after it,
// except the list_changed notifications the registration's own discovery made moot; a first start logs
// no "could not be delivered" line.

import assert from "node:assert/strict";
import { startContractGateway } from "../fixtures/contract_gateway.ts";
import { startProxy } from "../fixtures/proxy_process.ts";
import type { JsonObject } from "../../lib/protocol/jsonrpc.ts";
import { parsePrometheus, sampleValue } from "../fixtures/prometheus_parser.ts";

const TOKEN = "startup-notifications-token";

/** The demo server, sending two list_changed and a log message as soon as it is initialized. */
const CHATTY_SERVER = [
  Deno.execPath(),
  "run",
  new URL("../fixtures/chatty_server_main.ts", import.meta.url).pathname,
];

for (const contract of ["A", "B"] as const) {
  Deno.test(`contract ${contract}: start-up notifications are held until registration; moot list_changed counted, not logged at info`, async () => {
    const gateway = await startContractGateway({ contract, tokens: [TOKEN] });
    // Down until the server has said its piece: so the notifications surely precede the registration.
    await gateway.stop();
    try {
      await using proxy = startProxy([
        "connect",
        "--gateway",
        gateway.url,
        "--log-format",
        "json",
        "--log-level",
        "debug",
        "--reconnect-delay",
        "0.05",
        "--health-listen",
        "127.0.0.1:0",
        "--",
        ...CHATTY_SERVER,
      ], { env: { REVERSE_PROXY_TOKEN: TOKEN } });
      const health = await proxy.waitForEvent("health_listening", 20_000);
      await proxy.waitForLine(
        () => proxy.lines.filter((l) => l.json?.event === "notification_held").length === 3,
        20_000,
      );
      await gateway.start();
      await gateway.waitForRegistered(20_000);
      await gateway.waitUntil(
        () => gateway.frames.some((f) => f.frame?.type === "notification"),
        10_000,
        "the held notification",
      );
      const inbound = gateway.frames.filter((f) => f.direction === "in" && f.frame !== undefined);
      const registerAt = inbound.findIndex((f) => f.frame!.type === "register");
      const notifications = inbound.flatMap((f, i) =>
        f.frame!.type === "notification"
          ? [{ i, method: (f.frame!.payload as JsonObject).method }]
          : []
      );
      assert.deepEqual(notifications.map((n) => n.method), ["notifications/message"]);
      assert.ok(notifications[0]!.i > registerAt, "the held notification came after register");

      const superseded = await proxy.waitForEvent("notification_superseded", 5_000);
      assert.equal(superseded.level, "debug");
      const metrics = parsePrometheus(
        await (await fetch(`${health.url}/metrics`, { signal: AbortSignal.timeout(5000) })).text(),
      );
      assert.equal(sampleValue(metrics, "mcp_rproxy_notifications_superseded_total"), 2);
      assert.ok(
        !proxy.lines.some((l) => l.json?.event === "undelivered"),
        "a first start logged an 'undelivered' line",
      );
      proxy.signal("SIGTERM");
      assert.equal(await proxy.exitCode(15_000), 0);
    } finally {
      await gateway.close();
    }
  });
}
