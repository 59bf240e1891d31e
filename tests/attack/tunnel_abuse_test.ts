// Attacks from a token holder's own tunnels: resumable sessions that never acknowledge while their
// replay buffers are fed megabytes of non-Latin text, registrations carrying 20 MiB of description, and a
// flood of answers for ids never asked. Each against a real serve, with another owner's calls going on.

import assert from "node:assert/strict";
import type { Gateway } from "../../lib/serve/gateway.ts";
import { TunnelClient, within } from "../fixtures/test_gateway.ts";
import { isRequest, payloadOf, RAW_INIT_RESULT } from "../fixtures/resumable_tunnel.ts";
import {
  ATTACK_TOKENS,
  mib,
  recovered,
  sampleRss,
  type ServeUnderAttack,
  startServe,
  startVictim,
} from "./harness.ts";

const MIB = 1024 * 1024;

function asGateway(serve: ServeUnderAttack): Gateway {
  return { url: serve.url, port: serve.port, close: () => Promise.resolve() };
}

/** Registers a raw resumable tunnel as the attacker and answers serve's initialize; never acks later. */
async function silentTunnel(serve: ServeUnderAttack, name: string) {
  const tunnel = await TunnelClient.open(asGateway(serve), ATTACK_TOKENS.attacker);
  const ack = await tunnel.register(name);
  const init = await tunnel.next(isRequest("initialize"), 10_000, "initialize");
  tunnel.send({
    type: "response",
    sessionId: ack.sessionId,
    seq: 1,
    ack: 1,
    payload: { jsonrpc: "2.0", id: payloadOf(init).id, result: RAW_INIT_RESULT },
  });
  // Frames arrive and are kept by the client object; drop them as they come so the test holds little.
  tunnel.onFrame = () => tunnel.frames.splice(0);
  return { tunnel, sessionId: String(ack.sessionId) };
}

Deno.test("resumable sessions that never ack, fed 1 MiB notifications of non-Latin text: serve stays within the owner's share", async () => {
  const perOwner = 16 * MIB;
  await using serve = await startServe(["--memory-per-owner", "16MiB"]);
  await using victim = await startVictim(serve);
  await victim.start();
  const tunnels = await Promise.all([0, 1, 2, 3].map((i) => silentTunnel(serve, `quiet-${i}`)));
  const before = serve.memory().rss;
  const sampler = sampleRss(serve.process.pid);
  // 1 MiB of UTF-8 in three-byte characters (a third of that in UTF-16 units, what was counted before):
  // 8 per session, 32 MiB in all, twice the owner's share.
  const text = "中".repeat(MIB / 3 | 0);
  let accepted = 0;
  try {
    for (let n = 0; n < 8; n++) {
      await Promise.all(tunnels.map(async ({ sessionId }) => {
        const response = await fetch(`${serve.url}/reverse-proxy/sessions/${sessionId}/request`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${ATTACK_TOKENS.attacker}`,
            "content-type": "application/json",
          },
          body: JSON.stringify({
            jsonrpc: "2.0",
            method: "notifications/message",
            params: { level: "info", data: text },
          }),
        });
        if (response.status === 202) accepted++;
        await response.body?.cancel();
      }));
    }
  } finally {
    const peak = sampler.stop();
    const report = await victim.stop();
    for (const { tunnel } of tunnels) await tunnel.close();
    // Whatever was kept for replay is within the share, plus the transient copies of each notification.
    assert.ok(
      peak - before < perOwner + 64 * MIB,
      `serve's RSS rose by ${mib(peak - before)} for ${accepted} notifications of 3 MiB`,
    );
    assert.equal(report.failed, 0, `victim errors: ${report.errors.join("; ")}`);
    await recovered(serve, before);
    const abandoned = serve.records().filter((r) => r.event === "replay_overflow");
    assert.ok(
      abandoned.length > 0,
      `no replay buffer hit the share (${accepted} accepted): ${
        JSON.stringify(serve.records().map((r) => r.event).slice(-30))
      }`,
    );
  }
});

Deno.test("register with a 20 MiB description or a name padded with 20 MiB of spaces keeps 1 KiB, and the sessions API answer stays small", async () => {
  await using serve = await startServe();
  const baseline = serve.memory().rss;
  const padding = " ".repeat(20 * MIB);
  const tunnels: TunnelClient[] = [];
  try {
    for (let i = 0; i < 4; i++) {
      const tunnel = await TunnelClient.open(asGateway(serve), ATTACK_TOKENS.attacker);
      tunnels.push(tunnel);
      tunnel.send({
        type: "register",
        sessionId: `pad-${i}`,
        server: i % 2 === 0
          ? { name: `padded-${i}`, description: `d${padding}x`, protocol: "mcp" }
          : { name: `${padding}named-${i}`, description: "", protocol: "mcp" },
      });
      const ack = await tunnel.next((f) => f.type === "register_ack", 10_000, "register_ack");
      assert.equal(ack.status, "success");
    }
    const list = await fetch(`${serve.url}/reverse-proxy/sessions`, {
      headers: { authorization: `Bearer ${ATTACK_TOKENS.attacker}` },
    });
    const body = await list.text();
    assert.ok(body.length < 20_000, `the sessions API answered ${body.length} characters`);
    const names = JSON.parse(body).sessions.map((s: { server_info: { name: string } }) =>
      s.server_info.name
    ).sort();
    assert.deepEqual(names, ["named-1", "named-3", "padded-0", "padded-2"]);
    // The registrations stay; what they kept is 1 KiB each, so serve gives the frames' memory back.
    await recovered(serve, baseline);
  } finally {
    for (const tunnel of tunnels) await tunnel.close();
  }
});

Deno.test("20,000 answers for ids never asked close the link for bad frames, with a bounded number of log lines", async () => {
  await using serve = await startServe();
  await using victim = await startVictim(serve);
  await victim.start();
  const from = serve.process.lines.length;
  const { tunnel, sessionId } = await silentTunnel(serve, "noisy");
  try {
    for (let id = 1000; id < 21_000 && tunnel.socket.readyState === WebSocket.OPEN; id++) {
      tunnel.send({ type: "response", sessionId, payload: { jsonrpc: "2.0", id, result: {} } });
    }
    const closed = await within(tunnel.closed, 10_000, "the link to be closed");
    assert.equal(closed.code, 1008);
    const report = await victim.stop();
    assert.equal(report.failed, 0, `victim errors: ${report.errors.join("; ")}`);
    const lines = serve.records(from).filter((r) =>
      r.event === "unknown_response" && r.level !== "DEBUG"
    );
    assert.ok(lines.length <= 2, `${lines.length} warning lines for unknown answers`);
  } finally {
    await tunnel.close();
  }
});
