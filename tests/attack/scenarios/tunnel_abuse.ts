// Attacks from a token holder's own tunnels: resumable sessions that never acknowledge while their
// replay buffers are fed megabytes of non-Latin text, registrations carrying 20 MiB of description, and a
// flood of answers for ids never asked.

import { TunnelClient, within } from "../../fixtures/test_gateway.ts";
import { isRequest, payloadOf, RAW_INIT_RESULT } from "../../fixtures/resumable_tunnel.ts";
import {
  asGateway,
  ATTACK_TOKENS,
  type Recovery,
  type ServeUnderAttack,
  waitForRecovery,
} from "../harness.ts";
import type { AttackScenario } from "../run_attack.ts";

const MIB = 1024 * 1024;

/** Registers a raw resumable tunnel as the attacker and answers serve's initialize; never acks later. */
async function silentTunnel(serve: ServeUnderAttack, held: AsyncDisposableStack, name: string) {
  const tunnel = await TunnelClient.open(asGateway(serve), ATTACK_TOKENS.attacker);
  held.defer(() => tunnel.close());
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

/** The owner's share in the never-ack attack. */
export const NEVER_ACK_SHARE = 16 * MIB;

/** What the never-ack attacker saw. */
export interface NeverAckObserved {
  /** Notifications serve took (202). */
  accepted: number;
  /** serve's `replay_overflow` records: replay buffers that hit the share. */
  overflows: Record<string, unknown>[];
}

/**
 * 4 resumable sessions that never ack, each fed 8 notifications of 1 MiB of UTF-8 in three-byte
 * characters (a third of that in UTF-16 units, what was counted before): 32 MiB in all, twice the owner's
 * share. Whatever is kept for replay stays within the share, plus the transient copies of each notification.
 */
export const neverAck: AttackScenario<NeverAckObserved> = {
  name: "4 never-acking sessions fed 32 MiB of non-Latin notifications",
  flags: ["--memory-per-owner", "16MiB"],
  rssBound: NEVER_ACK_SHARE + 64 * MIB,
  async attack({ serve, held }) {
    const tunnels = await Promise.all(
      [0, 1, 2, 3].map((i) => silentTunnel(serve, held, `quiet-${i}`)),
    );
    const text = "中".repeat(MIB / 3 | 0);
    let accepted = 0;
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
    return { accepted, overflows: serve.records().filter((r) => r.event === "replay_overflow") };
  },
};

/** What the padding attacker saw. */
export interface PaddedRegisterObserved {
  /** Each `register_ack` status. */
  acks: unknown[];
  /** The sessions API's answer to the attacker, in characters, and the names in it. */
  sessionsBodyChars: number;
  names: string[];
  /** serve's RSS coming back while the 4 registrations still stand. */
  whileRegistered: Recovery;
}

/**
 * 4 registrations, two with a 20 MiB description and two with a name padded with 20 MiB of spaces. What
 * they keep is 1 KiB each, so serve gives the frames' memory back while they still stand.
 */
export const paddedRegister: AttackScenario<PaddedRegisterObserved> = {
  name: "4 registers padded with 20 MiB of description or spaces",
  // The harness's 64 MiB, plus what handling a 20 MiB register holds for a moment (the frame, its text
  // and the parsed strings: 3 × 20 MiB) for two frames: the idle collector collects once 32 MiB were
  // released (lib/util/idle_gc.ts). What each registration keeps (1 KiB) is checked apart: serve's RSS
  // must come back near its baseline while all four still stand (`whileRegistered`).
  rssBound: 64 * MIB + 2 * 3 * 20 * MIB,
  async attack({ serve, held }) {
    const baseline = serve.memory().rss;
    const padding = " ".repeat(20 * MIB);
    const acks: unknown[] = [];
    for (let i = 0; i < 4; i++) {
      const tunnel = await TunnelClient.open(asGateway(serve), ATTACK_TOKENS.attacker);
      held.defer(() => tunnel.close());
      tunnel.send({
        type: "register",
        sessionId: `pad-${i}`,
        server: i % 2 === 0
          ? { name: `padded-${i}`, description: `d${padding}x`, protocol: "mcp" }
          : { name: `${padding}named-${i}`, description: "", protocol: "mcp" },
      });
      const ack = await tunnel.next((f) => f.type === "register_ack", 10_000, "register_ack");
      acks.push(ack.status);
    }
    const list = await fetch(`${serve.url}/reverse-proxy/sessions`, {
      headers: { authorization: `Bearer ${ATTACK_TOKENS.attacker}` },
    });
    const body = await list.text();
    const names = (JSON.parse(body).sessions as { server_info: { name: string } }[])
      .map((s) => s.server_info.name).sort();
    const whileRegistered = await waitForRecovery(serve, baseline);
    return { acks, sessionsBodyChars: body.length, names, whileRegistered };
  },
};

/** What the unknown-ids attacker saw. */
export interface UnknownIdsObserved {
  /** The close of the attacker's link. */
  close: { code: number; reason: string };
  /** serve's warnings (above debug) about unknown answers. */
  warnings: Record<string, unknown>[];
}

/** Up to 20,000 answers for ids serve never asked, on one link, as fast as it takes them. */
export const unknownIds: AttackScenario<UnknownIdsObserved> = {
  name: "20,000 answers for ids never asked",
  rssBound: 64 * MIB,
  async attack({ serve, held }) {
    const from = serve.process.lines.length;
    const { tunnel, sessionId } = await silentTunnel(serve, held, "noisy");
    for (let id = 1000; id < 21_000 && tunnel.socket.readyState === WebSocket.OPEN; id++) {
      tunnel.send({ type: "response", sessionId, payload: { jsonrpc: "2.0", id, result: {} } });
    }
    const closed = await within(tunnel.closed, 10_000, "the link to be closed");
    return {
      close: { code: closed.code, reason: closed.reason },
      warnings: serve.records(from).filter((r) =>
        r.event === "unknown_response" && r.level !== "debug"
      ),
    };
  },
};
