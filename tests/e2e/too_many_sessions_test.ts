// A full session limit is not "token refused": a registration closed with 4029 is retried with backoff
// and logged with the gateway's reason; connect never exits 3 for it (exit 3 is for 401/403/1008 only).

import assert from "node:assert/strict";
import { startScriptedGateway } from "../fixtures/scripted_gateway.ts";
import { DEMO_SERVER, startProxy } from "../fixtures/proxy_process.ts";

const REASON = "too many sessions for owner alice (limit 1)";

function connectArgs(url: string, extra: string[] = []): string[] {
  return [
    "connect",
    "--gateway",
    url,
    "--log-format",
    "json",
    "--reconnect-delay",
    "0.05",
    ...extra,
    "--",
    ...DEMO_SERVER,
  ];
}

Deno.test("a 4029 refusal is retried with backoff and logged with why, until a slot frees", async () => {
  await using gateway = startScriptedGateway({
    onFrame(frame, peer) {
      if (frame.type !== "register") return;
      // The first two links find the owner's sessions all taken; the third gets a slot.
      if (peer.index <= 2) peer.close(4029, REASON);
      else peer.send({ type: "register_ack", status: "success", sessionId: "gw-3" });
    },
  });
  await using proxy = startProxy(connectArgs(gateway.url, ["--health-listen", "127.0.0.1:0"]));
  const registered = await proxy.waitForEvent("registered", 20_000);
  assert.equal(registered.session, "gw-3");
  const failures = proxy.lines.filter((l) => l.json?.event === "connect_failed").map((l) =>
    l.json!
  );
  assert.equal(failures.length, 2);
  for (const failure of failures) {
    assert.equal(failure.kind, "too-many-sessions");
    assert.equal(failure.level, "warning");
    assert.equal(
      failure.error,
      `Gateway refused the registration: too many sessions for this token's owner (close 4029: ${REASON}); an older session of the same owner must end first, or the gateway's per-owner limit be raised`,
    );
  }
  const waits = proxy.lines.filter((l) => l.json?.event === "reconnect_scheduled").map((l) =>
    l.json!
  );
  assert.deepEqual(waits.map((w) => w.attempt), [1, 2], "backoff counted attempts");
  const url = String((await proxy.waitForEvent("health_listening")).url);
  const metrics = await (await fetch(`${url}/metrics`)).text();
  assert.match(metrics, /^mcp_rproxy_errors_total\{kind="too_many_sessions",server=""\} 2$/m);
  assert.ok(!proxy.lines.some((l) => l.json?.event === "auth_refused"));
  proxy.signal("SIGTERM");
  assert.equal(await proxy.exitCode(15_000), 0);
});

Deno.test("4029 until the retries run out exits 1 with the reason, never 3", async () => {
  await using gateway = startScriptedGateway({
    onFrame(frame, peer) {
      if (frame.type === "register") peer.close(4029, REASON);
    },
  });
  await using proxy = startProxy(connectArgs(gateway.url, ["--max-retries", "2"]));
  assert.equal(await proxy.exitCode(20_000), 1);
  assert.equal(gateway.peers.items.length, 3, "one attempt and two retries");
  const fatal = await proxy.waitForEvent("fatal", 1_000);
  assert.match(
    String(fatal.error),
    /^Giving up after 2 reconnect attempts; last error: Gateway refused the registration: too many sessions for this token's owner \(close 4029: too many sessions for owner alice \(limit 1\)\)/,
  );
});
