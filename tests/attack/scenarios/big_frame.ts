// Attack: authenticated links, never registered, each sending one 60 MiB frame (text or binary) against
// serve's 48 MiB default limit. Each should be refused at its header (1009 / 1003 on the wire).

import { frameHeader, Opcode, RawWebSocket } from "../../fixtures/raw_websocket.ts";
import { ATTACK_TOKENS } from "../harness.ts";
import type { AttackScenario } from "../run_attack.ts";

const MIB = 1024 * 1024;
export const FRAME_BYTES = 60 * MIB;
export const LINKS_PER_KIND = 4;

/** What the attacker saw: serve's close of each text link, then of each binary link. */
export interface BigFrameObserved {
  textCloses: ({ code: number; reason: string } | undefined)[];
  binaryCloses: ({ code: number; reason: string } | undefined)[];
  /** serve's log records of the refusals. */
  refusals: Record<string, unknown>[];
}

/** Announces a 60 MiB frame and streams its payload until serve stops taking it; serve's close. */
async function sendBigFrame(
  port: number,
  opcode: number,
): Promise<{ code: number; reason: string } | undefined> {
  const peer = await RawWebSocket.open(port, { token: ATTACK_TOKENS.attacker });
  try {
    const closing = peer.readClose(10_000);
    await peer.write(frameHeader(opcode, FRAME_BYTES));
    const chunk = new Uint8Array(256 * 1024).fill(0x20);
    try {
      for (let sent = 0; sent < FRAME_BYTES; sent += chunk.length) await peer.write(chunk, 1_000);
    } catch {
      // Serve stopped reading, or dropped the connection: the point.
    }
    return await closing;
  } finally {
    peer.close();
  }
}

/**
 * 4 text and 4 binary frames of 60 MiB at once. The RSS bound is far less than one frame: what serve may
 * add meanwhile, the victim's own garbage included (~+8 MiB over the attack's few seconds). Reading each
 * refused frame to its end, as ws does by default, took +150..210 MiB here; buffering whole messages
 * (Deno.serve) +400..820 MiB.
 */
export const bigFrames: AttackScenario<BigFrameObserved> = {
  name: "8 links each send a 60 MiB text or binary frame",
  rssBound: 32 * MIB,
  async attack({ serve }) {
    const closes = await Promise.all([
      ...Array.from({ length: LINKS_PER_KIND }, () => sendBigFrame(serve.port, Opcode.Text)),
      ...Array.from({ length: LINKS_PER_KIND }, () => sendBigFrame(serve.port, Opcode.Binary)),
    ]);
    return {
      textCloses: closes.slice(0, LINKS_PER_KIND),
      binaryCloses: closes.slice(LINKS_PER_KIND),
      refusals: serve.records().filter((r) =>
        r.event === "frame_too_large" || r.event === "binary_frame"
      ),
    };
  },
};
