import assert from "node:assert/strict";
import { SseStream } from "../../lib/serve/sse_stream.ts";

const message = {
  jsonrpc: "2.0",
  method: "notifications/message",
  params: { data: "x".repeat(400) },
};

Deno.test("SseStream.send() ends an unread stream past maxBufferedBytes and drops its queue", async () => {
  const stream = new SseStream({ maxBufferedBytes: 2048 });
  const overflows: number[] = [];
  let cancelled = false;
  stream.onOverflow = (bytes) => overflows.push(bytes);
  stream.onCancel = () => cancelled = true;
  let sent = 0;
  while (stream.send(message)) sent++;
  assert.ok(sent >= 4 && sent <= 6, `${sent} messages fit in 2 KiB`);
  assert.equal(overflows.length, 1);
  // The bound and at most one message more.
  assert.ok(overflows[0]! >= 2048 && overflows[0]! < 2048 + 500, String(overflows[0]));
  assert.ok(stream.closed);
  assert.equal(stream.send(message), false);
  assert.equal(overflows.length, 1, "onOverflow runs once");
  await assert.rejects(new Response(stream.readable).text(), /did not read \d+ bytes/);
  assert.equal(cancelled, false);
});

Deno.test("SseStream.send() accepts a message larger than maxBufferedBytes while less than the bound waits", () => {
  const stream = new SseStream({ maxBufferedBytes: 1024 });
  const small = { jsonrpc: "2.0", method: "notifications/progress", params: { progress: 1 } };
  assert.equal(stream.send(small), true);
  const big = { ...message, params: { data: "x".repeat(4096) } };
  assert.equal(stream.send(big), true, "a large answer after an unread small event");
  assert.ok(stream.bufferedBytes > 4096, String(stream.bufferedBytes));
  assert.equal(stream.send(small), false, "past the bound, the next message overflows");
  assert.equal(stream.closed, true);
});

Deno.test("SseStream.send() keeps a stream whose reader keeps up below maxBufferedBytes", async () => {
  const stream = new SseStream({ maxBufferedBytes: 2048 });
  const reader = stream.readable.getReader();
  for (let i = 0; i < 100; i++) {
    assert.equal(stream.send(message), true, `message ${i}`);
    const { done } = await reader.read();
    assert.equal(done, false);
  }
  assert.equal(stream.bufferedBytes, 0);
  stream.close();
  assert.equal((await reader.read()).done, true);
});

Deno.test("SseStream() throws a RangeError for a non-positive maxBufferedBytes", () => {
  assert.throws(() => new SseStream({ maxBufferedBytes: 0 }), RangeError);
});

Deno.test("SseStream.sendText() writes JSON text as one event and refuses text with a line break", async () => {
  const stream = new SseStream();
  assert.equal(stream.sendText('{"jsonrpc": "2.0", "id": 1, "result": {}}'), true);
  assert.throws(() => stream.sendText('{"jsonrpc":"2.0",\n"id":2,"result":{}}'), RangeError);
  assert.throws(() => stream.sendText('{"jsonrpc":"2.0",\r"id":2,"result":{}}'), RangeError);
  stream.close();
  assert.equal(
    await new Response(stream.readable).text(),
    'event: message\ndata: {"jsonrpc": "2.0", "id": 1, "result": {}}\n\n',
  );
});
