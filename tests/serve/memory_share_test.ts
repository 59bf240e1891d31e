// The memory budget on the wire: a frame being received is charged from its header, so an owner cannot
// hold more than its share in half-received frames, and another owner is not affected; a replay buffer
// past the share stops being kept (the session can no longer resume) instead of growing.

import assert from "node:assert/strict";
import { frameHeader, Opcode, RawWebSocket } from "../fixtures/raw_websocket.ts";
import { startTestGateway, TOKENS } from "../fixtures/test_gateway.ts";
import { registerResumable, resumeAs, sessionInfo, until } from "../fixtures/resumable_tunnel.ts";

const MIB = 1024 * 1024;

Deno.test("frames being received count against their owner's share from the header: the next is refused 1013, another owner's passes", async () => {
  const gateway = await startTestGateway({
    maxFrameBytes: 8 * MIB,
    memoryBudgetBytes: 64 * MIB,
    memoryPerOwnerBytes: 5 * MIB,
  });
  const open: RawWebSocket[] = [];
  try {
    // Alice announces a 3 MiB frame and sends only a little of it: 3 MiB of her share are taken.
    const first = await RawWebSocket.open(gateway.port, { token: TOKENS.alice });
    open.push(first);
    await first.write(frameHeader(Opcode.Text, 3 * MIB));
    await first.write(new Uint8Array(1024).fill(0x20));
    // Her second link announces another 3 MiB: past the 5 MiB share, refused at the header.
    const second = await RawWebSocket.open(gateway.port, { token: TOKENS.alice });
    open.push(second);
    await second.write(frameHeader(Opcode.Text, 3 * MIB));
    const refused = await second.readClose();
    assert.equal(refused?.code, 1013);
    assert.match(refused?.reason ?? "", /memory share/);
    // Bob's share is his own: the same frame passes the header check and is read.
    const bob = await RawWebSocket.open(gateway.port, { token: TOKENS.bob });
    open.push(bob);
    await bob.write(frameHeader(Opcode.Text, 3 * MIB));
    await bob.write(new Uint8Array(3 * MIB).fill(0x20)); // a frame of spaces: not JSON, a bad frame
    const answer = await bob.readFrame();
    assert.ok(answer !== undefined, "bob's frame was read and answered");
    assert.equal(answer.opcode, Opcode.Text, "an error frame, not a close");
  } finally {
    for (const socket of open) socket.close();
    await gateway.close();
  }
});

Deno.test("a replay buffer past its owner's share stops being kept: the session cannot resume", async () => {
  const gateway = await startTestGateway({
    memoryBudgetBytes: 64 * MIB,
    memoryPerOwnerBytes: 1 * MIB,
    callTimeoutMs: 30_000,
  });
  const first = await registerResumable(gateway);
  const pending: Promise<unknown>[] = [];
  let resumed: Awaited<ReturnType<typeof resumeAs>> | undefined;
  try {
    // Calls the tunnel never acknowledges: ~1.6 MiB of requests kept for replay, past the 1 MiB share.
    const big = "x".repeat(200 * 1024);
    for (let id = 1; id <= 8; id++) {
      pending.push(
        fetch(`${gateway.url}/reverse-proxy/sessions/${first.sessionId}/request`, {
          method: "POST",
          headers: { authorization: `Bearer ${TOKENS.alice}`, "content-type": "application/json" },
          body: JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { big } }),
        }).then((r) => r.body?.cancel(), () => {}),
      );
      await first.tunnel.next(
        (f) => f.type === "request" && f.seq !== undefined,
        5_000,
        `call ${id}`,
      );
    }
    await first.tunnel.close();
    // Without a whole replay buffer the session ends instead of waiting to be resumed.
    await until(
      "the session to end",
      async () => (await sessionInfo(gateway, first.sessionId)) === undefined,
    );
    resumed = await resumeAs(gateway, TOKENS.alice, {
      sessionId: first.sessionId,
      token: first.token,
      ack: 2,
    });
    assert.equal(resumed.ack.resumed, false);
    assert.equal(resumed.ack.resumeError, "overflowed");
  } finally {
    await resumed?.tunnel.close();
    await gateway.close();
    await Promise.all(pending);
  }
});
