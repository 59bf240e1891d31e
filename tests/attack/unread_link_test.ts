// Attack: a token holder registers a tunnel and then stops reading its link, while its own clients push
// megabytes through it. What serve has sent and the link has not taken is charged to the owner's memory
// share; past it the link is closed (1013) instead of growing serve's memory, and another owner's calls go
// on.

import assert from "node:assert/strict";
import { RawWebSocket } from "../fixtures/raw_websocket.ts";
import { deadline } from "../../lib/util/delay.ts";
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
const decoder = new TextDecoder();

/** Registers `name` on a raw link, answers serve's initialize, and from then on reads nothing. */
async function deafTunnel(serve: ServeUnderAttack, name: string) {
  const socket = await RawWebSocket.open(serve.port, { token: ATTACK_TOKENS.attacker });
  await socket.sendText(JSON.stringify({
    type: "register",
    sessionId: name,
    server: { name, description: "", protocol: "mcp" },
  }));
  let sessionId = "";
  for (let i = 0; i < 10; i++) {
    const frame = await socket.readFrame();
    if (frame === undefined) throw new Error("the link closed before initialize");
    const parsed = JSON.parse(decoder.decode(frame.payload));
    if (parsed.type === "register_ack") sessionId = String(parsed.sessionId);
    if (parsed.payload?.method === "initialize") {
      await socket.sendText(JSON.stringify({
        type: "response",
        sessionId,
        payload: {
          jsonrpc: "2.0",
          id: parsed.payload.id,
          result: {
            protocolVersion: "2025-06-18",
            capabilities: {},
            serverInfo: { name, version: "1" },
          },
        },
      }));
      return { socket, sessionId };
    }
  }
  throw new Error("serve sent no initialize");
}

Deno.test("a link that stops reading is closed 1013 once what it has not taken fills its owner's share; serve's RSS holds and another owner is served", async () => {
  const perOwner = 16 * MIB;
  await using serve = await startServe(["--memory-per-owner", "16MiB"]);
  await using victim = await startVictim(serve);
  await victim.start();
  const { socket, sessionId } = await deafTunnel(serve, "deaf");
  const before = serve.memory().rss;
  const sampler = sampleRss(serve.process.pid);
  // 1 MiB notifications pushed through the owner's own sessions API, up to 128 MiB: eight times the share.
  const data = "y".repeat(MIB);
  let accepted = 0;
  try {
    for (let n = 0; n < 128; n++) {
      const response = await deadline(
        fetch(`${serve.url}/reverse-proxy/sessions/${sessionId}/request`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${ATTACK_TOKENS.attacker}`,
            "content-type": "application/json",
          },
          body: JSON.stringify({
            jsonrpc: "2.0",
            method: "notifications/message",
            params: { level: "info", data },
          }),
        }),
        10_000,
        "serve to take a notification",
      );
      await response.body?.cancel();
      if (response.status !== 202) break;
      accepted++;
    }
    const closed = await deadline(
      (async () => {
        for (;;) {
          const record = serve.records().find((r) => r.event === "link_not_reading");
          if (record !== undefined) return record;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      })(),
      10_000,
      "serve to close the link that does not read",
    );
    assert.equal(closed.owner, "mallory");
  } finally {
    const peak = sampler.stop();
    const report = await victim.stop();
    socket.close();
    assert.ok(
      accepted < 128,
      `serve kept taking notifications for a link that reads nothing (${accepted} MiB)`,
    );
    assert.ok(
      peak - before < perOwner + 64 * MIB,
      `serve's RSS rose by ${
        mib(peak - before)
      } for ${accepted} MiB sent to a link that reads nothing`,
    );
    assert.equal(report.failed, 0, `victim errors: ${report.errors.join("; ")}`);
    await recovered(serve, before);
  }
});
