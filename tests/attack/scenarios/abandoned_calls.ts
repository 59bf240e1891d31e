// Attack: an MCP client fills every slot of its server (--max-inflight, 64) with calls answered as plain
// JSON that would run for hours, then drops all 64 connections. Nothing could resume those calls, so each
// must be cancelled at once and its slot freed: the next client of the same owner is served right away.

import { deadline } from "../../../lib/util/delay.ts";
import {
  ATTACK_TOKENS,
  initializeAs,
  pollUntil,
  type ServeUnderAttack,
  startTunnel,
} from "../harness.ts";
import type { AttackScenario } from "../run_attack.ts";

const MIB = 1024 * 1024;
/** serve's default --max-inflight. */
export const SLOTS = 64;
const SERVER = "slowpoke";

/** What the attacker saw. */
export interface AbandonedCallsObserved {
  /** Calls in flight once the 64 were sent (serve's gauge; the victim may add one). */
  inFlight: number;
  /** Time from dropping the 64 connections until serve counted no call of theirs, in milliseconds. */
  freedMs: number;
  /** What another client of the same owner got for 64 calls sent at once right after. */
  followUp: { ok: number; errors: string[]; ms: number };
}

function body(id: number, tool: string, args: Record<string, unknown>): string {
  return JSON.stringify({
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: { name: tool, arguments: args },
  });
}

/** Sends a JSON-only `tools/call` on a raw connection that the attacker will drop unanswered. */
async function abandonedCall(
  serve: ServeUnderAttack,
  options: { session: string; id: number; held: AsyncDisposableStack },
): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: serve.port });
  options.held.defer(() => {
    try {
      conn.close();
    } catch {
      // Dropped already: the attack.
    }
  });
  // The longest call the demo server runs: 10,000 steps of 60 s.
  const payload = new TextEncoder().encode(
    body(options.id, "long-running", { steps: 10_000, stepMs: 60_000 }),
  );
  const head = [
    `POST /servers/${SERVER}/mcp HTTP/1.1`,
    `host: 127.0.0.1:${serve.port}`,
    `authorization: Bearer ${ATTACK_TOKENS.attacker}`,
    "content-type: application/json",
    "accept: application/json",
    `mcp-session-id: ${options.session}`,
    "mcp-protocol-version: 2025-11-25",
    `content-length: ${payload.length}`,
    "",
    "",
  ].join("\r\n");
  await conn.write(new TextEncoder().encode(head));
  await conn.write(payload);
  return conn;
}

/** A JSON call as `token` on `session`; the answer's text, or its error message. */
async function call(
  serve: ServeUnderAttack,
  options: { token: string; session: string; id: number; tool: string; args: object },
): Promise<{ text?: string; error?: string }> {
  const response = await fetch(`${serve.url}/servers/${SERVER}/mcp`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${options.token}`,
      "content-type": "application/json",
      accept: "application/json",
      "mcp-session-id": options.session,
      "mcp-protocol-version": "2025-11-25",
    },
    body: body(options.id, options.tool, options.args as Record<string, unknown>),
  });
  const answer = await response.json();
  if (answer.error !== undefined) return { error: String(answer.error.message) };
  return { text: String(answer.result?.content?.[0]?.text) };
}

/**
 * 64 endless JSON calls through a real tunnel, their connections dropped at once; then another client
 * of the same owner (its client-only token) sends 64 calls of 200 ms at once, each needing a slot.
 */
export const abandonedCalls: AttackScenario<AbandonedCallsObserved> = {
  name: `${SLOTS} JSON calls abandoned by their client`,
  rssBound: 64 * MIB,
  async attack({ serve, held }) {
    const tunnel = await startTunnel(serve, { token: ATTACK_TOKENS.attacker, name: SERVER });
    held.use(tunnel);
    const session = await initializeAs(serve, { name: SERVER, token: ATTACK_TOKENS.attacker });
    const conns: Deno.TcpConn[] = [];
    for (let id = 1; id <= SLOTS; id++) {
      conns.push(await abandonedCall(serve, { session, id, held }));
    }
    let inFlight = 0;
    await pollUntil(
      async () => (inFlight = await serve.metric("mcp_rproxy_calls_in_flight")) >= SLOTS,
      {
        ms: 10_000,
        what: `${SLOTS} calls in flight`,
      },
    );
    for (const conn of conns) conn.close();
    // The victim's own call may be in flight too: at most one.
    const freedMs = await pollUntil(
      async () => (await serve.metric("mcp_rproxy_calls_in_flight")) <= 1,
      { ms: 10_000, what: "the abandoned calls' slots to be freed" },
    );
    const other = await initializeAs(serve, { name: SERVER, token: ATTACK_TOKENS.attackerClient });
    const started = performance.now();
    const answers = await Promise.all(
      Array.from({ length: SLOTS }, (_, i) =>
        deadline(
          call(serve, {
            token: ATTACK_TOKENS.attackerClient,
            session: other,
            id: 100 + i,
            tool: "long-running",
            args: { steps: 1, stepMs: 200 },
          }),
          10_000,
          "a call of the next client",
        ).catch((error) => ({ error: String(error) }))),
    );
    const errors = answers.flatMap((a) => a.error === undefined ? [] : [a.error]);
    return {
      inFlight,
      freedMs,
      followUp: { ok: answers.length - errors.length, errors, ms: performance.now() - started },
    };
  },
};
