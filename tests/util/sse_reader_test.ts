import assert from "node:assert/strict";
import { type OversizedEnds, readSseEvents, type SseEvent } from "../../lib/util/sse_reader.ts";

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
  const ends: OversizedEnds[] = [];
  for await (
    const event of readSseEvents(streamOf(chunks), {
      ...(maxEventChars === undefined ? {} : { maxEventChars }),
      onOversized: (chars, kept) => {
        dropped.push(chars);
        ends.push(kept);
      },
    })
  ) events.push(event);
  return { events, dropped, ends };
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

Deno.test("readSseEvents() reports a dropped event with its first and last 256 characters, where a JSON-RPC message keeps its id", async () => {
  // The MCP TypeScript SDK writes a request's id last: only the tail has it.
  const request = `{"method":"sampling/createMessage","params":{"p":"${
    "q".repeat(5000)
  }"},"jsonrpc":"2.0","id":7}`;
  const chunked = (text: string) => text.match(/[^]{1,700}/g)!;
  for (
    const chunks of [
      [`data: ${request}\n\n`], // one chunk
      chunked(`event: message\ndata: ${request}\r\n\r\n`), // a long line across chunks
      [`data: ${request.slice(0, 2000)}`, request.slice(2000), "\n\n"], // its end alone in a chunk
      [`data: {"method":"x",\n`, `data: "p":"${"q".repeat(5000)}",\n`, 'data: "id":8}\n\n'], // lines
    ]
  ) {
    const { events, ends } = await read([...chunks, "data: next\n\n"], 1024);
    assert.deepEqual(events, [{ event: "message", data: "next" }]);
    assert.equal(ends.length, 1);
    const [{ head, tail }] = ends as [OversizedEnds];
    assert.ok(head.startsWith('{"method":'), head);
    assert.ok(head.length <= 256 && tail.length <= 256, `${head.length}, ${tail.length}`);
    assert.match(tail, /"id":[78]\}$/);
  }
});
