// Attacks by peers that stop reading what serve sends them: MCP clients that never read their large JSON
// answers, and a link that reads nothing while its owner's clients send it large calls. What waits for
// them is charged to the owner's memory share (answer_charge.ts, link_send_buffer.ts).

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
/** Calls to the deaf link: 256 MiB in all, over five times the owner's share. */
const DEAF_CALLS = 32;
const DEAF_CALL_BYTES = 8 * MIB;
const FLAGS = ["--memory-budget", "128MiB", "--memory-per-owner", "48MiB"];
/**
 * The budget and the harness's 64 MiB, plus the transient copies of the largest message being handled:
 * serve holds a 40 MiB message as the frame received, its text and the bytes it writes for a moment
 * (docs/security.md, "Memory").
 */
const RSS_BOUND = 128 * MIB + 64 * MIB + 2 * RESULT_BYTES;

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
 * What the unread-answers attack saw: how often serve refused for the owner's share (an answer to write,
 * or a frame to receive from the attacker's own link).
 */
export interface UnreadAnswers {
  refused: number;
}

/**
 * 8 MCP clients each ask the attacker's own server for a 40 MiB result as plain JSON, and never read the
 * answer: each waits in its connection's send buffer, charged to the owner, and past the owner's share
 * serve sends a short refusal instead.
 */
export const unreadJsonAnswers: AttackScenario<UnreadAnswers> = {
  name: `${CALLS} JSON answers of 40 MiB never read by their clients`,
  flags: FLAGS,
  rssBound: RSS_BOUND,
  async attack({ serve, held }) {
    held.use(await startTunnel(serve, { token: ATTACK_TOKENS.attacker, name: "big" }));
    const session = await initializeAs(serve, { name: "big", token: ATTACK_TOKENS.attacker });
    for (let id = 1; id <= CALLS; id++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: serve.port });
      held.defer(() => closeQuietly(conn));
      const body = toolCall(id, "big", { bytes: RESULT_BYTES });
      await writeAll(conn, post(serve, { server: "big", session, body }));
    }
    await pollUntil(async () => (await serve.metric("mcp_rproxy_calls_in_flight")) === 0, {
      ms: 60_000,
      what: "the 8 answers to be written",
    });
    const refusals = () =>
      serve.records().filter((r) =>
        r.event === "memory_refused" || r.event === "memory_share_exceeded"
      ).length;
    await pollUntil(() => Promise.resolve(refusals() > 0), {
      ms: 10_000,
      what: "serve to refuse the answers past the owner's share",
    });
    return { refused: refusals() };
  },
};

/** What the deaf-link attack saw: the record of serve closing the link. */
export interface DeafLink {
  closed: Record<string, unknown>;
}

/**
 * A link registers a server and then stops reading its socket; MCP clients send that server 32 calls of
 * 8 MiB. What the link has not taken is charged to the owner; past the share serve closes it (1013).
 */
export const deafLink: AttackScenario<DeafLink> = {
  name: `a link that stops reading, sent ${DEAF_CALLS} calls of 8 MiB`,
  flags: FLAGS,
  rssBound: RSS_BOUND,
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
    const big = "x".repeat(DEAF_CALL_BYTES);
    for (let id = 1; id <= DEAF_CALLS; id++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: serve.port });
      held.defer(() => closeQuietly(conn));
      const body = toolCall(id, "anything", { big });
      // A body past the owner's share is refused before it is read, and its connection dropped.
      await writeAll(conn, post(serve, { server: "deaf", session, body })).catch((error) => {
        if (
          !(error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BrokenPipe)
        ) {
          throw error;
        }
      });
    }
    const closed = () => serve.records().find((r) => r.event === "link_not_reading");
    await pollUntil(() => Promise.resolve(closed() !== undefined), {
      ms: 20_000,
      what: "serve to close the link that reads nothing",
    });
    return { closed: closed()! };
  },
};
