import assert from "node:assert/strict";
import {
  ACK_EVERY,
  ReceiveWindow,
  ReplayBuffer,
  SequencedChannel,
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

Deno.test("SequencedChannel.send() numbers frames, carries the current ack and embeds the payload as is", () => {
  const channel = new SequencedChannel();
  channel.receive(1);
  channel.receive(2);
  const first = channel.send({ type: "response", sessionId: 's"1', payloadText: '{"id":1}' });
  const second = channel.send({ type: "request", sessionId: "s", payloadText: "[1]" });
  assert.deepEqual(JSON.parse(first.text), {
    type: "response",
    sessionId: 's"1',
    seq: 1,
    ack: 2,
    payload: { id: 1 },
  });
  assert.equal(JSON.parse(second.text).seq, 2);
  assert.equal(channel.out.pending, 2);
});

Deno.test("SequencedChannel.send() counts what it keeps in UTF-8 bytes, not UTF-16 units", () => {
  const payloadText = JSON.stringify("中".repeat(1000));
  const channel = new SequencedChannel({ maxFrames: 10, maxBytes: 2500 });
  // 1,000 characters of 3 bytes each: over 2,500 bytes although only ~1,000 UTF-16 units.
  const { overflowedNow } = channel.send({ type: "notification", sessionId: "s", payloadText });
  assert.equal(overflowedNow, true);
  assert.equal(channel.overflowed, true);
  const roomy = new SequencedChannel({ maxFrames: 10, maxBytes: 4000 });
  roomy.send({ type: "notification", sessionId: "s", payloadText });
  assert.ok(roomy.out.size >= 3000, `kept ${roomy.out.size} bytes`);
});

Deno.test("SequencedChannel.send() reports the overflow once, and keeps nothing after it", () => {
  const channel = new SequencedChannel({ maxFrames: 2, maxBytes: 1_000_000 });
  const outcomes = [1, 2, 3, 4].map(() =>
    channel.send({ type: "response", sessionId: "s", payloadText: "{}" }).overflowedNow
  );
  assert.deepEqual(outcomes, [false, false, true, false]);
  assert.equal(channel.out.pending, 0);
  assert.equal(channel.replayAfter(0), undefined);
});

Deno.test("SequencedChannel acks are due after ACK_EVERY frames received and reset when taken", () => {
  const channel = new SequencedChannel();
  for (let seq = 1; seq < ACK_EVERY; seq++) {
    assert.equal(channel.receive(seq), "new");
    assert.equal(channel.ackDue, false, `after ${seq}`);
  }
  assert.equal(channel.receive(ACK_EVERY), "new");
  assert.equal(channel.ackDue, true);
  assert.equal(channel.takeAck(), ACK_EVERY);
  assert.equal(channel.ackDue, false);
  // A data frame sent carries the ack too, so it also resets the count.
  channel.receive(ACK_EVERY + 1);
  channel.send({ type: "response", sessionId: "s", payloadText: "{}" });
  assert.equal(channel.in.unacked, 0);
});

Deno.test("SequencedChannel.receive() drops duplicates and reports a gap without moving on", () => {
  const channel = new SequencedChannel();
  assert.equal(channel.receive(1), "new");
  assert.equal(channel.receive(1), "duplicate");
  assert.equal(channel.receive(3), "gap");
  assert.equal(channel.in.last, 1);
  assert.equal(channel.receive(2), "new");
});

Deno.test("SequencedChannel.peerAcked() clamps an ack beyond what was sent", () => {
  const channel = new SequencedChannel();
  channel.send({ type: "response", sessionId: "s", payloadText: "{}" });
  channel.send({ type: "response", sessionId: "s", payloadText: "{}" });
  channel.peerAcked(99);
  assert.equal(channel.out.acked, 2);
  const third = channel.send({ type: "response", sessionId: "s", payloadText: "{}" });
  assert.equal(JSON.parse(third.text).seq, 3);
  assert.deepEqual(channel.replayAfter(2)?.map((f) => f.seq), [3]);
  assert.equal(channel.replayAfter(5), undefined, "an ack beyond the last sent cannot be resumed");
});
