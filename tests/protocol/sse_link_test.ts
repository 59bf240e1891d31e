import assert from "node:assert/strict";
import {
  encodeCloseEvent,
  encodeEndpointEvent,
  encodeFrameEvent,
  joinBatch,
  readCloseEvent,
  splitBatch,
} from "../../lib/protocol/sse_link.ts";
import { readSseEvents, type SseEvent } from "../../lib/util/sse_reader.ts";

async function read(text: string): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  for await (const event of readSseEvents(new Response(text).body!)) events.push(event);
  return events;
}

Deno.test("encodeFrameEvent() round-trips a frame, and one with line breaks to the same JSON value", async () => {
  const plain = '{"type":"request","payload":{"id":1}}';
  assert.deepEqual(await read(encodeFrameEvent(plain)), [{ event: "message", data: plain }]);
  // A payload that travels as its client sent it may be pretty-printed, with CR, LF or CRLF.
  const pretty = '{"type":"request",\r\n"payload":{\n"id":1,\r"s":"a\\nb"}}';
  const [event] = await read(encodeFrameEvent(pretty));
  assert.deepEqual(JSON.parse(event!.data), JSON.parse(pretty));
});

Deno.test("encodeEndpointEvent() and encodeCloseEvent() are read back; readCloseEvent() refuses junk", async () => {
  assert.deepEqual(await read(encodeEndpointEvent("sse/abc")), [
    { event: "endpoint", data: "sse/abc" },
  ]);
  const [close] = await read(encodeCloseEvent(4001, "evicted by alice"));
  assert.equal(close!.event, "close");
  assert.deepEqual(readCloseEvent(close!.data), { code: 4001, reason: "evicted by alice" });
  assert.deepEqual(readCloseEvent('{"code":1000}'), { code: 1000, reason: "" });
  assert.equal(readCloseEvent("nope"), undefined);
  assert.equal(readCloseEvent('{"code":"1000"}'), undefined);
  assert.equal(readCloseEvent("null"), undefined);
});

Deno.test("splitBatch() undoes joinBatch() and skips empty lines; a CR inside a frame stays", () => {
  const frames = ['{"a":1}', '{"b":\r2}'];
  assert.deepEqual(splitBatch(joinBatch(frames)), frames);
  assert.deepEqual(splitBatch(joinBatch(['{"a":1}'])), ['{"a":1}']);
  assert.deepEqual(splitBatch('{"a":1}\n\n{"b":2}\n'), ['{"a":1}', '{"b":2}']);
  assert.deepEqual(splitBatch(""), []);
});
