// Attack: one client token opens MCP sessions up to its owner's limit (1,024) and asks for a GET stream on
// every one of them, holding what it gets. --max-streams-per-token (16) stops it; the owner's other
// token still opens a session (an idle one of the attacker's is forgotten), gets its stream and is served.

import { deadline } from "../../../lib/util/delay.ts";
import {
  ATTACK_TOKENS,
  initializeAs,
  pollUntil,
  type ServeUnderAttack,
  startTunnel,
  statusLine,
} from "../harness.ts";
import type { AttackScenario } from "../run_attack.ts";

const MIB = 1024 * 1024;
/** serve's defaults: --max-mcp-sessions-per-owner and --max-streams-per-token. */
export const SESSIONS = 1024;
export const STREAMS_PER_TOKEN = 16;
const SERVER = "streamer";
const BATCH = 32;

/** What the attacker and the owner's other client saw. */
export interface StreamsPerTokenObserved {
  /** Status lines of the attacker's GET streams, by status. */
  statuses: Record<string, number>;
  /** The error message of one refusal. */
  refusal: string;
  /** The other token's session, GET stream status and echo answer. */
  other: { stream: string; echo: string };
  /** Time until the attacker got a stream again after closing its own, in milliseconds. */
  slotBackMs: number;
}

/** Opens a GET stream on a raw connection as `token`; the connection and the status line. */
async function getStream(
  serve: ServeUnderAttack,
  options: { token: string; session: string },
): Promise<{ conn: Deno.TcpConn; status: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: serve.port });
  try {
    await conn.write(new TextEncoder().encode(
      [
        `GET /servers/${SERVER}/mcp HTTP/1.1`,
        `host: 127.0.0.1:${serve.port}`,
        `authorization: Bearer ${options.token}`,
        "accept: text/event-stream",
        `mcp-session-id: ${options.session}`,
        "mcp-protocol-version: 2025-11-25",
        "",
        "",
      ].join("\r\n"),
    ));
    return { conn, status: await statusLine(conn) };
  } catch (error) {
    conn.close();
    throw error;
  }
}

function closeQuietly(conn: Deno.TcpConn): void {
  try {
    conn.close();
  } catch {
    // Closed already.
  }
}

/** The refusal's message, through fetch, for one more of the attacker's sessions. */
async function refusalMessage(serve: ServeUnderAttack, session: string): Promise<string> {
  const response = await fetch(`${serve.url}/servers/${SERVER}/mcp`, {
    headers: {
      authorization: `Bearer ${ATTACK_TOKENS.attackerClient}`,
      accept: "text/event-stream",
      "mcp-session-id": session,
      "mcp-protocol-version": "2025-11-25",
    },
  });
  if (response.status !== 429) {
    await response.body?.cancel();
    return `${response.status}`;
  }
  return `${response.status} ${await response.text()}`;
}

async function echo(serve: ServeUnderAttack, session: string): Promise<string> {
  const response = await fetch(`${serve.url}/servers/${SERVER}/mcp`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${ATTACK_TOKENS.attacker}`,
      "content-type": "application/json",
      accept: "application/json",
      "mcp-session-id": session,
      "mcp-protocol-version": "2025-11-25",
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "tools/call",
      params: { name: "echo", arguments: { message: "other client" } },
    }),
  });
  const answer = await response.json();
  return String(answer.result?.content?.[0]?.text ?? JSON.stringify(answer.error));
}

/**
 * The attacker's client-only token opens 1,024 sessions and a GET stream on each; the owner's other token
 * (with every role) then opens a session and a stream and calls echo. Last, the attacker closes its
 * streams and must get one again.
 */
export const streamsPerToken: AttackScenario<StreamsPerTokenObserved> = {
  name: `one token asks for GET streams on ${SESSIONS} sessions of its owner`,
  rssBound: 64 * MIB,
  async attack({ serve, held }) {
    held.use(await startTunnel(serve, { token: ATTACK_TOKENS.attacker, name: SERVER }));
    const token = ATTACK_TOKENS.attackerClient;
    const sessions: string[] = [];
    for (let i = 0; i < SESSIONS; i += BATCH) {
      sessions.push(
        ...await Promise.all(
          Array.from({ length: BATCH }, () => initializeAs(serve, { name: SERVER, token })),
        ),
      );
    }
    const open: Deno.TcpConn[] = [];
    /** Sessions whose GET got a stream: never idle, so never the one forgotten for room below. */
    const streamed: string[] = [];
    held.defer(() => open.forEach(closeQuietly));
    const statuses: Record<string, number> = {};
    for (let i = 0; i < sessions.length; i += BATCH) {
      const slice = sessions.slice(i, i + BATCH);
      const batch = await Promise.all(slice.map((session) => getStream(serve, { token, session })));
      for (const [k, { conn, status }] of batch.entries()) {
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (status === "HTTP/1.1 200 OK") {
          open.push(conn);
          streamed.push(slice[k]!);
        } else closeQuietly(conn);
      }
    }
    const refusal = await deadline(
      refusalMessage(serve, sessions.at(-1)!),
      5_000,
      "the refused GET",
    );
    // The owner's other token: a new session (its owner is at 1,024; an idle one is forgotten).
    const otherSession = await initializeAs(serve, { name: SERVER, token: ATTACK_TOKENS.attacker });
    const otherStream = await getStream(serve, {
      token: ATTACK_TOKENS.attacker,
      session: otherSession,
    });
    held.defer(() => closeQuietly(otherStream.conn));
    const other = {
      stream: otherStream.status,
      echo: await deadline(echo(serve, otherSession), 10_000, "the other client's echo"),
    };
    // The attacker lets go of its streams: its slots come back (serve counts a stream until it sees the
    // connection end, which no event here reports).
    open.splice(0).forEach(closeQuietly);
    // A session that had a stream: one refused in the first batch may be the least recently used idle
    // session, which the other token's new session above made serve forget (1,024 per owner).
    const again = streamed[0]!;
    const slotBackMs = await pollUntil(async () => {
      const { conn, status } = await getStream(serve, { token, session: again });
      if (status === "HTTP/1.1 200 OK") {
        held.defer(() => closeQuietly(conn));
        return true;
      }
      closeQuietly(conn);
      return false;
    }, { ms: 5_000, what: "the attacker's stream slots to come back" });
    return { statuses, refusal, other, slotBackMs };
  },
};
