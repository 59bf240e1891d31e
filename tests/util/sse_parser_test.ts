import assert from "node:assert/strict";
import { type SseEvent, SseEventTooLargeError, SseParser } from "../../lib/util/sse_parser.ts";

const encoder = new TextEncoder();

function parse(chunks: (string | Uint8Array)[], maxEventChars?: number): SseEvent[] {
  const events: SseEvent[] = [];
  const parser = new SseParser(
    (event) => events.push(event),
    maxEventChars === undefined ? {} : { maxEventChars },
  );
  for (const chunk of chunks) {
    parser.push(typeof chunk === "string" ? encoder.encode(chunk) : chunk);
  }
  return events;
}

Deno.test("SseParser reads typed and untyped events, skips comments and ignores id and retry", () => {
  assert.deepEqual(
    parse([
      "event: endpoint\ndata: sse/1\n\n: keepalive\n\nid: 7\nretry: 10\ndata: {}\n\ndata:x\n\n",
    ]),
    [
      { type: "endpoint", data: "sse/1" },
      { type: "message", data: "{}" },
      { type: "message", data: "x" },
    ],
  );
});

Deno.test("SseParser joins data lines with \\n, takes CRLF line ends and skips events without data", () => {
  assert.deepEqual(parse(["event: close\r\n\r\ndata: a\r\ndata: b\r\n\r\n"]), [
    { type: "message", data: "a\nb" },
  ]);
});

Deno.test("SseParser waits for the blank line and reassembles lines and characters split across chunks", () => {
  const bytes = encoder.encode("data: é€😀\n\n");
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i++) chunks.push(bytes.subarray(i, i + 1));
  assert.deepEqual(parse(chunks.slice(0, -1)), []);
  assert.deepEqual(parse(chunks), [{ type: "message", data: "é€😀" }]);
});

Deno.test("SseParser reads a 16 MiB event in 64 KiB chunks in linear time", () => {
  const data = "x".repeat(16 * 1024 * 1024);
  const bytes = encoder.encode(`data: ${data}\n\n`);
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += 64 * 1024) chunks.push(bytes.subarray(i, i + 64 * 1024));
  const started = performance.now();
  const events = parse(chunks);
  const ms = performance.now() - started;
  assert.equal(events.length, 1);
  assert.equal(events[0]!.data.length, data.length);
  assert.ok(ms < 2_000, `took ${ms} ms`);
});

Deno.test("SseParser throws SseEventTooLargeError once an event passes its bound, even before its line ends", () => {
  assert.throws(() => parse(["data: " + "x".repeat(200)], 100), SseEventTooLargeError);
  assert.throws(
    () => parse(["data: " + "x".repeat(60) + "\n", "data: " + "y".repeat(60) + "\n"], 100),
    SseEventTooLargeError,
  );
  assert.deepEqual(parse(["data: " + "x".repeat(90) + "\n\n"], 100).length, 1);
});
