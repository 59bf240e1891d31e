import assert from "node:assert/strict";
import {
  ReceiveWindow,
  ReplayBuffer,
  sequencedFrame,
} from "../../lib/protocol/sequenced_channel.ts";

function fill(buffer: ReplayBuffer, count: number, size = 10): void {
  for (let i = 0; i < count; i++) {
    const seq = buffer.nextSeq();
    assert.ok(buffer.keep({ seq, text: `f${seq}`, size }));
  }
}

Deno.test("ReplayBuffer.ack() drops acknowledged frames and ignores repeated or backward acks", () => {
  const out = new ReplayBuffer({ maxFrames: 100, maxBytes: 10_000 });
  fill(out, 5);
  out.ack(3);
  assert.equal(out.pending, 2);
  assert.equal(out.size, 20);
  out.ack(3);
  out.ack(1);
  assert.equal(out.pending, 2);
  assert.equal(out.acked, 3);
});

Deno.test("ReplayBuffer.ack() clamps an ack beyond what was sent", () => {
  const out = new ReplayBuffer({ maxFrames: 100, maxBytes: 10_000 });
  fill(out, 2);
  out.ack(50);
  assert.equal(out.acked, 2);
  assert.equal(out.pending, 0);
  fill(out, 1);
  assert.deepEqual(out.replayAfter(2)?.map((f) => f.seq), [3]);
});

Deno.test("ReplayBuffer.replayAfter() returns exactly the frames after the peer's ack, in order", () => {
  const out = new ReplayBuffer({ maxFrames: 100, maxBytes: 10_000 });
  fill(out, 6);
  out.ack(2);
  assert.deepEqual(out.replayAfter(4)?.map((f) => f.seq), [5, 6]);
  assert.deepEqual(out.replayAfter(6), []);
});

Deno.test("ReplayBuffer.replayAfter() refuses an ack older than what was already dropped", () => {
  const out = new ReplayBuffer({ maxFrames: 100, maxBytes: 10_000 });
  fill(out, 4);
  out.ack(3);
  assert.equal(out.replayAfter(1), undefined);
  assert.equal(out.replayAfter(9), undefined, "an ack of frames never sent");
});

Deno.test("ReplayBuffer.keep() overflows on count and on bytes, for good", () => {
  const byCount = new ReplayBuffer({ maxFrames: 3, maxBytes: 10_000 });
  fill(byCount, 3);
  assert.equal(byCount.keep({ seq: byCount.nextSeq(), text: "x", size: 1 }), false);
  assert.ok(byCount.overflowed);
  byCount.ack(4);
  assert.equal(byCount.keep({ seq: byCount.nextSeq(), text: "x", size: 1 }), false);
  assert.equal(byCount.replayAfter(4), undefined);

  const byBytes = new ReplayBuffer({ maxFrames: 100, maxBytes: 25 });
  fill(byBytes, 2);
  assert.equal(byBytes.keep({ seq: byBytes.nextSeq(), text: "x", size: 10 }), false);
  assert.ok(byBytes.overflowed);
});

Deno.test("ReplayBuffer() rejects non-positive limits", () => {
  assert.throws(() => new ReplayBuffer({ maxFrames: 0, maxBytes: 1 }), RangeError);
});

Deno.test("ReceiveWindow.accept() takes frames in order, drops duplicates and reports gaps", () => {
  const inbound = new ReceiveWindow();
  assert.equal(inbound.accept(1), "new");
  assert.equal(inbound.accept(2), "new");
  assert.equal(inbound.accept(2), "duplicate");
  assert.equal(inbound.accept(1), "duplicate");
  assert.equal(inbound.accept(4), "gap");
  assert.equal(inbound.last, 2, "a gap does not advance the window");
  assert.equal(inbound.accept(3), "new");
  assert.equal(inbound.unacked, 3);
  inbound.acked();
  assert.equal(inbound.unacked, 0);
});

Deno.test("ReceiveWindow.accept() handles replay after reordering across a resume", () => {
  // The peer replays 3..5 after we had seen up to 4: 3 and 4 are duplicates, 5 is new.
  const inbound = new ReceiveWindow();
  for (const seq of [1, 2, 3, 4]) inbound.accept(seq);
  assert.deepEqual([3, 4, 5].map((s) => inbound.accept(s)), ["duplicate", "duplicate", "new"]);
});

Deno.test("sequencedFrame() embeds the payload text as is", () => {
  const text = sequencedFrame({
    type: "response",
    sessionId: 's"1',
    seq: 2,
    ack: 7,
    payloadText: '{"id":1}',
  });
  assert.deepEqual(JSON.parse(text), {
    type: "response",
    sessionId: 's"1',
    seq: 2,
    ack: 7,
    payload: { id: 1 },
  });
});
