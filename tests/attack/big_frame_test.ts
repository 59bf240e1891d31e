// Attack: authenticated links, never registered, each sending one 60 MiB frame (text or binary) against
// serve's 48 MiB default limit. Each is refused at its header (1009 / 1003 on the wire), serve's RSS rises
// by far less than one frame, and another owner's calls through a real tunnel go on meanwhile.

import assert from "node:assert/strict";
import { CloseCode } from "../../lib/protocol/frames.ts";
import { frameHeader, Opcode, RawWebSocket } from "../fixtures/raw_websocket.ts";
import { ATTACK_TOKENS, mib, sampleRss, startServe, startVictim } from "./harness.ts";

const MIB = 1024 * 1024;
const FRAME_BYTES = 60 * MIB;
const LINKS_PER_KIND = 4;
/**
 * Far less than one frame: what serve may add while 8 frames of 60 MiB are thrown at it, the victim's own
 * garbage included (~+8 MiB over the attack's few seconds). Reading each refused frame to its end, as ws
 * does by default, took +150..210 MiB here; buffering whole messages (Deno.serve) +400..820 MiB.
 */
const RSS_BOUND = 32 * MIB;

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

Deno.test("60 MiB text and binary frames are refused at their header; serve's RSS barely moves and another owner is served", async () => {
  await using serve = await startServe();
  await using victim = await startVictim(serve);
  await victim.start();
  const before = serve.memory().rss;
  const sampler = sampleRss(serve.process.pid);
  const closes = await Promise.all([
    ...Array.from({ length: LINKS_PER_KIND }, () => sendBigFrame(serve.port, Opcode.Text)),
    ...Array.from({ length: LINKS_PER_KIND }, () => sendBigFrame(serve.port, Opcode.Binary)),
  ]);
  const peak = sampler.stop();
  const report = await victim.stop();
  for (const close of closes.slice(0, LINKS_PER_KIND)) {
    assert.equal(close?.code, CloseCode.TooBig);
    assert.match(
      close.reason,
      /frame of 62914560 bytes exceeds the limit of 50331648 \(serve --max-frame-bytes\)/,
    );
  }
  for (const close of closes.slice(LINKS_PER_KIND)) {
    assert.equal(close?.code, CloseCode.UnsupportedData);
  }
  assert.ok(
    peak - before < RSS_BOUND,
    `serve's RSS rose by ${mib(peak - before)} (from ${mib(before)}) for ${
      2 * LINKS_PER_KIND
    } frames of ${mib(FRAME_BYTES)}`,
  );
  assert.equal(report.failed, 0, `victim errors: ${report.errors.join("; ")}`);
  assert.ok(report.ok > 0);
  const refusals = serve.records().filter((r) =>
    r.event === "frame_too_large" || r.event === "binary_frame"
  );
  assert.equal(refusals.length, 2 * LINKS_PER_KIND);
});
