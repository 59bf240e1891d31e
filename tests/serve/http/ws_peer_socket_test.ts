// The WebSocket side of serve's listener, seen on the wire: frames refused at their header (1003 for
// binary, 1009 over the limit) with their reasons, the socket no longer read after a refusal, pings that
// drop a peer that does not answer, and refused upgrades as Deno's client reports them.

import assert from "node:assert/strict";
import { CloseCode } from "../../../lib/protocol/frames.ts";
import { frameHeader, Opcode, RawWebSocket } from "../../fixtures/raw_websocket.ts";
import { startTestGateway, TOKENS, TunnelClient } from "../../fixtures/test_gateway.ts";

const MIB = 1024 * 1024;

Deno.test("a binary frame is refused with 1003 at its header, before its payload arrives", async () => {
  const gateway = await startTestGateway();
  const peer = await RawWebSocket.open(gateway.port, { token: TOKENS.alice });
  try {
    // Announce 60 MiB and send none of it: only the header can have been read.
    await peer.write(frameHeader(Opcode.Binary, 60 * MIB));
    const close = await peer.readClose();
    assert.deepEqual(close, {
      code: CloseCode.UnsupportedData,
      reason: "binary frames are not supported; send JSON text frames",
    });
  } finally {
    peer.close();
    await gateway.close();
  }
});

Deno.test("a text frame over the limit is refused with 1009 at its header, before its payload arrives", async () => {
  const gateway = await startTestGateway({ maxFrameBytes: 1024 * 1024 });
  const peer = await RawWebSocket.open(gateway.port, { token: TOKENS.alice });
  try {
    await peer.write(frameHeader(Opcode.Text, 60 * MIB));
    const close = await peer.readClose();
    assert.deepEqual(close, {
      code: CloseCode.TooBig,
      reason: `frame of ${60 * MIB} bytes exceeds the limit of ${
        1024 * 1024
      } (serve --max-frame-bytes)`,
    });
  } finally {
    peer.close();
    await gateway.close();
  }
});

Deno.test("after a refused frame the gateway stops reading, and drops the connection within its close timeout", async () => {
  const gateway = await startTestGateway({ maxFrameBytes: 1024 * 1024 });
  const peer = await RawWebSocket.open(gateway.port, { token: TOKENS.alice });
  try {
    await peer.write(frameHeader(Opcode.Text, 60 * MIB));
    const chunk = new Uint8Array(256 * 1024).fill(0x20);
    let written = 0;
    const started = Date.now();
    // Keep sending the announced payload until the gateway stops taking it (or the connection ends).
    try {
      while (written < 60 * MIB) {
        await peer.write(chunk, 1_000);
        written += chunk.length;
      }
    } catch {
      // Timed out writing (nobody reads any more), or the connection was dropped.
    }
    // What the gateway read is at most ~1 MiB; the rest of what was written sits in socket buffers.
    assert.ok(written < 24 * MIB, `the gateway took ${written} of ${60 * MIB} bytes`);
    assert.equal((await peer.readClose())?.code, CloseCode.TooBig);
    assert.ok(Date.now() - started < 5_000);
  } finally {
    peer.close();
    await gateway.close();
  }
});

Deno.test("a peer that answers no ping is dropped after --ws-idle-timeout; one that answers stays", async () => {
  const gateway = await startTestGateway({ wsIdleTimeoutSeconds: 1 });
  const silent = await RawWebSocket.open(gateway.port, { token: TOKENS.alice });
  const answering = await TunnelClient.open(gateway, TOKENS.alice); // Deno's client answers pings
  try {
    const started = Date.now();
    let pings = 0;
    while (true) {
      const frame = await silent.readFrame(4_000);
      if (frame === undefined) break; // dropped
      if (frame.opcode === Opcode.Ping) pings++;
    }
    const after = Date.now() - started;
    assert.ok(pings >= 1, "the gateway pinged");
    assert.ok(after >= 900 && after < 3_500, `dropped after ${after} ms`);
    assert.equal(answering.socket.readyState, WebSocket.OPEN);
    answering.send({ type: "heartbeat", sessionId: "" });
    await answering.next((f) => f.type === "heartbeat", 2_000, "a heartbeat reply");
  } finally {
    silent.close();
    await answering.close();
    await gateway.close();
  }
});

Deno.test("a refused upgrade reads 'Invalid status code: 401' (no token) or 403 (no connect role) to Deno's client", async () => {
  const gateway = await startTestGateway();
  try {
    await assert.rejects(TunnelClient.open(gateway, undefined), /Invalid status code: 401/);
    await assert.rejects(
      TunnelClient.open(gateway, TOKENS.aliceClientOnly),
      /Invalid status code: 403/,
    );
    // The JSON body goes out as a plain HTTP answer.
    await assert.rejects(RawWebSocket.open(gateway.port), /^Error: HTTP\/1\.1 401 Unauthorized$/);
  } finally {
    await gateway.close();
  }
});
