import assert from "node:assert/strict";
import { readSseEvents, type SseEvent } from "../../lib/util/sse_reader.ts";

function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      controller.close();
    },
  });
}

async function read(chunks: string[], maxEventChars?: number) {
  const events: SseEvent[] = [];
  const dropped: number[] = [];
  for await (
    const event of readSseEvents(streamOf(chunks), {
      ...(maxEventChars === undefined ? {} : { maxEventChars }),
      onOversized: (chars) => dropped.push(chars),
    })
  ) events.push(event);
  return { events, dropped };
}

Deno.test("readSseEvents() reads types, ids, multi-line data and every line ending, across chunks; an unfinished event at the end is dropped", async () => {
  const { events } = await read([
    "event: endpoint\r\ndata: /message?sessionId=1\r",
    "\n\r\n: a comment\n",
    'id: 7\ndata: {"a":\ndata: 1}\n\n',
    "data:no space\r\rdata: last",
  ]);
  assert.deepEqual(events, [
    { event: "endpoint", data: "/message?sessionId=1" },
    { event: "message", data: '{"a":\n1}', id: "7" },
    { event: "message", data: "no space", id: "7" },
  ]);
});

Deno.test("readSseEvents() drops an event over the bound whole and goes on with the next", async () => {
  const { events, dropped } = await read(
    ["data: ", "x".repeat(60), "y".repeat(60), "\n\n", "data: small\n\n"],
    100,
  );
  assert.deepEqual(events, [{ event: "message", data: "small" }]);
  assert.equal(dropped.length, 1);
  assert.ok(dropped[0]! > 100);
});
