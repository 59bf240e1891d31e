// Attack: GET streams that are never read while the server behind them floods notifications. Each stream
// is bounded by --max-client-buffer, a token by --max-streams-per-token, and the owner by its memory share:
// past it the owner's oldest unread streams are cut. serve stays within its budget, another owner is
// served meanwhile, and the memory comes back afterwards.

import assert from "node:assert/strict";
import type { Gateway } from "../../lib/serve/gateway.ts";
import { TunnelClient } from "../fixtures/test_gateway.ts";
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
const STREAMS = 16;
const BUDGET = 128 * MIB;

function asGateway(serve: ServeUnderAttack): Gateway {
  return { url: serve.url, port: serve.port, close: () => Promise.resolve() };
}

/** An MCP session of the attacker on `name`: its id. */
async function initialize(serve: ServeUnderAttack, name: string): Promise<string> {
  const response = await fetch(`${serve.url}/servers/${name}/mcp`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${ATTACK_TOKENS.attacker}`,
      "content-type": "application/json",
      accept: "application/json",
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 0,
      method: "initialize",
      params: {
        protocolVersion: "2025-11-25",
        capabilities: {},
        clientInfo: { name: "x", version: "1" },
      },
    }),
  });
  await response.body?.cancel();
  assert.equal(response.status, 200);
  return response.headers.get("mcp-session-id")!;
}

/** Opens a GET stream on a raw connection and never reads from it. */
async function unreadStream(serve: ServeUnderAttack, name: string, session: string) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: serve.port });
  const request = [
    `GET /servers/${name}/mcp HTTP/1.1`,
    `host: 127.0.0.1:${serve.port}`,
    `authorization: Bearer ${ATTACK_TOKENS.attacker}`,
    "accept: text/event-stream",
    `mcp-session-id: ${session}`,
    "mcp-protocol-version: 2025-11-25",
    "",
    "",
  ].join("\r\n");
  await conn.write(new TextEncoder().encode(request));
  return conn;
}

Deno.test("unread GET streams under a notification flood: serve stays within its budget, cuts the owner's streams, serves the victim, gives the memory back", async () => {
  await using serve = await startServe([
    "--memory-budget",
    "128MiB",
    "--memory-per-owner",
    "48MiB",
  ]);
  await using victim = await startVictim(serve);
  await victim.start();
  const tunnel = await TunnelClient.open(asGateway(serve), ATTACK_TOKENS.attacker);
  const conns: Deno.TcpConn[] = [];
  try {
    const ack = await tunnel.register("flood");
    const init = await tunnel.next(isRequest("initialize"), 10_000, "initialize");
    tunnel.send({
      type: "response",
      sessionId: ack.sessionId,
      payload: { jsonrpc: "2.0", id: payloadOf(init).id, result: RAW_INIT_RESULT },
    });
    // Keep only heartbeat replies: the rest of what serve sends is not looked at.
    tunnel.onFrame = () => {
      const kept = tunnel.frames.filter((f) => f.type === "heartbeat");
      tunnel.frames.splice(0, tunnel.frames.length, ...kept);
    };
    for (let i = 0; i < STREAMS; i++) {
      conns.push(await unreadStream(serve, "flood", await initialize(serve, "flood")));
    }
    const before = serve.memory().rss;
    const sampler = sampleRss(serve.process.pid);
    // 256 MiB of notifications offered to each of 16 streams nobody reads.
    const data = "n".repeat(64 * 1024);
    for (let n = 0; n < 4096; n++) {
      tunnel.send({
        type: "notification",
        sessionId: ack.sessionId,
        payload: {
          jsonrpc: "2.0",
          method: "notifications/message",
          params: { level: "info", data },
        },
      });
      // Let serve take the frames as they come, as a real server's writes would be paced by the socket.
      if (n % 64 === 63) {
        while (tunnel.socket.bufferedAmount > 4 * MIB) {
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      }
    }
    tunnel.send({ type: "heartbeat", sessionId: ack.sessionId });
    await tunnel.next((f) => f.type === "heartbeat", 60_000, "serve to take the whole flood");
    const peak = sampler.stop();
    const report = await victim.stop();
    // The bound: baseline + budget + 64 MiB (the budget bounds what is held; the rest is the
    // garbage of 16 × 256 MiB offered, which V8 collects as it goes).
    assert.ok(
      peak - before < BUDGET + 64 * MIB,
      `serve's RSS rose by ${mib(peak - before)} with a budget of ${mib(BUDGET)}`,
    );
    assert.equal(report.failed, 0, `victim errors: ${report.errors.join("; ")}`);
    const cut = serve.records().filter((r) =>
      r.event === "slow_client" || r.event === "stream_cut"
    );
    assert.ok(cut.length > 0, "no unread stream was cut");
    for (const conn of conns) conn.close();
    conns.length = 0;
    // What the cut streams kept for replay stays for their resume window (--sse-resume-window, 30 s),
    // then goes: the 60 s bound.
    await recovered(serve, before, { ms: 60_000 });
  } finally {
    for (const conn of conns) conn.close();
    await tunnel.close();
  }
});
