// Attacks that serve does not withstand yet (docs/security.md, "Not bounded yet"): memory that serve holds
// for a peer that stops reading, outside its memory budget. Their tests are ignored until serve bounds
// them; `deno task attacks --gaps` runs them and shows how far past the bound they go.

import { RawWebSocket } from "../../fixtures/raw_websocket.ts";
import {
  ATTACK_TOKENS,
  initializeAs,
  pollUntil,
  type ServeUnderAttack,
  startTunnel,
} from "../harness.ts";
import type { AttackScenario } from "../run_attack.ts";

const MIB = 1024 * 1024;
const CALLS = 8;
const RESULT_BYTES = 40 * MIB;
const GAP_FLAGS = ["--memory-budget", "128MiB", "--memory-per-owner", "48MiB"];

function closeQuietly(conn: { close(): void }): void {
  try {
    conn.close();
  } catch {
    // Closed already.
  }
}

async function writeAll(conn: Deno.Conn, text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

function toolCall(id: number, name: string, args: Record<string, unknown>): string {
  return JSON.stringify({
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: { name, arguments: args },
  });
}

function post(serve: ServeUnderAttack, options: { server: string; session: string; body: string }) {
  return [
    `POST /servers/${options.server}/mcp HTTP/1.1`,
    `host: 127.0.0.1:${serve.port}`,
    `authorization: Bearer ${ATTACK_TOKENS.attacker}`,
    "content-type: application/json",
    "accept: application/json",
    `mcp-session-id: ${options.session}`,
    "mcp-protocol-version: 2025-11-25",
    `content-length: ${new TextEncoder().encode(options.body).length}`,
    "",
    options.body,
  ].join("\r\n");
}

/**
 * 8 MCP clients each ask the attacker's own server for a 40 MiB result as plain JSON, and never read the
 * answer: serve writes each whole answer to a socket nobody drains, and holds it there, uncharged.
 */
export const unreadJsonAnswers: AttackScenario<void> = {
  name: `${CALLS} JSON answers of 40 MiB never read by their clients`,
  flags: GAP_FLAGS,
  rssBound: 128 * MIB + 64 * MIB,
  async attack({ serve, held }) {
    held.use(await startTunnel(serve, { token: ATTACK_TOKENS.attacker, name: "big" }));
    const session = await initializeAs(serve, { name: "big", token: ATTACK_TOKENS.attacker });
    for (let id = 1; id <= CALLS; id++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: serve.port });
      held.defer(() => closeQuietly(conn));
      const body = toolCall(id, "big", { bytes: RESULT_BYTES });
      await writeAll(conn, post(serve, { server: "big", session, body }));
    }
    await pollUntil(async () => (await serve.metric("mcp_rproxy_calls_in_flight")) <= 1, {
      ms: 60_000,
      what: "the 8 answers to be written",
    });
  },
};

/**
 * A link registers a server and then stops reading its socket; MCP clients send that server 8 calls of
 * 40 MiB. serve sends each into the link's WebSocket, whose send buffer grows without bound, uncharged.
 */
export const deafLink: AttackScenario<void> = {
  name: `a link that stops reading, sent ${CALLS} calls of 40 MiB`,
  flags: GAP_FLAGS,
  rssBound: 128 * MIB + 64 * MIB,
  async attack({ serve, held }) {
    const peer = await RawWebSocket.open(serve.port, { token: ATTACK_TOKENS.attacker });
    held.defer(() => peer.close());
    await peer.sendText(JSON.stringify({
      type: "register",
      sessionId: "deaf",
      server: { name: "deaf", description: "", protocol: "mcp" },
    }));
    let sessionId = "";
    for (;;) {
      const frame = await peer.readFrame(10_000);
      if (frame === undefined) throw new Error("serve closed the deaf link before initialize");
      const message = JSON.parse(new TextDecoder().decode(frame.payload));
      if (message.type === "register_ack") sessionId = String(message.sessionId);
      if (message.type === "request" && message.payload?.method === "initialize") {
        await peer.sendText(JSON.stringify({
          type: "response",
          sessionId,
          payload: {
            jsonrpc: "2.0",
            id: message.payload.id,
            result: {
              protocolVersion: "2025-11-25",
              capabilities: { tools: {} },
              serverInfo: { name: "deaf", version: "1" },
            },
          },
        }));
        break;
      }
    }
    // From here on the link reads nothing.
    const session = await initializeAs(serve, { name: "deaf", token: ATTACK_TOKENS.attacker });
    const big = "x".repeat(RESULT_BYTES);
    for (let id = 1; id <= CALLS; id++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: serve.port });
      held.defer(() => closeQuietly(conn));
      const body = toolCall(id, "anything", { big });
      await writeAll(conn, post(serve, { server: "deaf", session, body }));
    }
    await pollUntil(async () => (await serve.metric("mcp_rproxy_calls_in_flight")) >= CALLS, {
      ms: 60_000,
      what: "the 8 calls to be sent to the link",
    });
  },
};
