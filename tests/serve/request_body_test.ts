// Unit tests of readBody: the size limit holds for declared and for chunked bodies, and an oversized
// chunked body is cancelled instead of read to its end.

import assert from "node:assert/strict";
import { BodyTooLargeError, readBody } from "../../lib/serve/request_body.ts";

const encoder = new TextEncoder();

/** A body stream of `count` chunks of `size` bytes that records how far it was read and if it was cancelled. */
function countingStream(count: number, size: number) {
  const state = { pulled: 0, cancelled: false };
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (state.pulled === count) return controller.close();
      state.pulled++;
      controller.enqueue(new Uint8Array(size).fill(0x61));
    },
    cancel() {
      state.cancelled = true;
    },
  });
  return { stream, state };
}

function post(body: BodyInit, headers: Record<string, string> = {}): Request {
  return new Request("http://127.0.0.1/", { method: "POST", body, headers });
}

Deno.test("readBody() returns a body within the limit, declared or chunked", async () => {
  assert.deepEqual(await readBody(post("{}"), 2), encoder.encode("{}"));
  const { stream } = countingStream(3, 10);
  const bytes = await readBody(post(stream), 30);
  assert.equal(bytes.length, 30);
  assert.ok(bytes.every((b) => b === 0x61));
  assert.equal((await readBody(new Request("http://127.0.0.1/"), 10)).length, 0);
});

Deno.test("readBody() refuses a declared length over the limit without reading the body", async () => {
  const { stream, state } = countingStream(100, 1024);
  const request = post(stream, { "content-length": String(100 * 1024) });
  await assert.rejects(() => readBody(request, 4096), (error: unknown) => {
    assert.ok(error instanceof BodyTooLargeError);
    assert.equal(error.bytes, 100 * 1024);
    assert.equal(error.message, "Body of 102400 bytes exceeds the limit of 4096");
    return true;
  });
  assert.ok(state.pulled <= 1, `pulled ${state.pulled} chunks`);
  assert.equal(state.cancelled, true);
});

Deno.test("readBody() stops reading a chunked body once it passes the limit, and cancels it", async () => {
  const { stream, state } = countingStream(10_000, 1024);
  await assert.rejects(() => readBody(post(stream), 4096), BodyTooLargeError);
  assert.ok(state.pulled <= 6, `pulled ${state.pulled} of 10,000 chunks`);
  assert.equal(state.cancelled, true);
});
