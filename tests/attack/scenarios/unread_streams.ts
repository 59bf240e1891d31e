// Attack: GET streams that are never read while the server behind them floods notifications. Each stream
// is bounded by --max-client-buffer, a token by --max-streams-per-token, and the owner by its memory share:
// past it the owner's oldest unread streams are cut.

import { TunnelClient } from "../../fixtures/test_gateway.ts";
import { isRequest, payloadOf, RAW_INIT_RESULT } from "../../fixtures/resumable_tunnel.ts";
import { asGateway, ATTACK_TOKENS, initializeAs, type ServeUnderAttack } from "../harness.ts";
import type { AttackScenario } from "../run_attack.ts";

const MIB = 1024 * 1024;
const STREAMS = 16;
/** serve's budget in this attack (the share of one owner is 48 MiB). */
export const UNREAD_STREAMS_BUDGET = 128 * MIB;

/** What the attacker saw: serve's records of streams it closed or cut. */
export interface UnreadStreamsObserved {
  cut: Record<string, unknown>[];
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

/**
 * 16 unread GET streams, then 4,096 notifications of 64 KiB (256 MiB offered to each stream). The bound is
 * the issue's: budget + 64 MiB (the budget bounds what is held; the rest is the garbage of 16 × 256 MiB
 * offered, which V8 collects as it goes). What the cut streams kept for replay stays for their resume
 * window (--sse-resume-window, 30 s), then goes: recovery within the 60 s.
 */
export const unreadStreams: AttackScenario<UnreadStreamsObserved> = {
  name: `${STREAMS} unread GET streams under a 256 MiB notification flood`,
  flags: ["--memory-budget", "128MiB", "--memory-per-owner", "48MiB"],
  rssBound: UNREAD_STREAMS_BUDGET + 64 * MIB,
  recoveryMs: 60_000,
  async attack({ serve, held }) {
    const tunnel = await TunnelClient.open(asGateway(serve), ATTACK_TOKENS.attacker);
    held.defer(() => tunnel.close());
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
      const session = await initializeAs(serve, { name: "flood", token: ATTACK_TOKENS.attacker });
      const conn = await unreadStream(serve, "flood", session);
      held.defer(() => conn.close());
    }
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
      // Let serve take the frames as they come, as a real server's writes would be paced by the socket
      // (Deno's WebSocket has no drain event: its buffered amount is polled).
      if (n % 64 === 63) {
        while (tunnel.socket.bufferedAmount > 4 * MIB) {
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      }
    }
    tunnel.send({ type: "heartbeat", sessionId: ack.sessionId });
    await tunnel.next((f) => f.type === "heartbeat", 60_000, "serve to take the whole flood");
    return {
      cut: serve.records().filter((r) => r.event === "slow_client" || r.event === "stream_cut"),
    };
  },
};
