// serve's listener on the HTTP side, in process: a request body is held to its minimum arrival rate (and
// only after its grace period), an answer sent before the body was read still reaches its client, and a
// streamed answer is cancelled when its client goes away.

import assert from "node:assert/strict";
import { startHttpServer } from "../../../lib/serve/http/server.ts";
import { deadline } from "../../../lib/util/delay.ts";

const TIMEOUTS = { headersMs: 5_000, bodyMs: 500, bodyMinBytesPerSecond: 1024, keepAliveMs: 5_000 };

/** A server whose handler reads the body whole and answers with its length. */
async function bodyLengthServer() {
  return await startHttpServer({
    hostname: "127.0.0.1",
    port: 0,
    timeouts: TIMEOUTS,
    maxFrameBytes: 1024 * 1024,
    wsIdleTimeoutMs: 0,
    handler: async (request) => Response.json({ bytes: (await request.arrayBuffer()).byteLength }),
  });
}

/**
 * POSTs `total` bytes over a raw socket, `step` bytes every `everyMs`, and returns the status line and when
 * it came (ms after the first byte). Stops sending once an answer arrived.
 */
async function trickle(
  port: number,
  options: { total: number; step: number; everyMs: number },
): Promise<{ status: string; afterMs: number }> {
  const { total, step, everyMs } = options;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const started = Date.now();
  let answered = false;
  const reading = (async () => {
    const buffer = new Uint8Array(4096);
    const n = await conn.read(buffer).catch(() => null);
    answered = true;
    const text = n === null ? "" : new TextDecoder().decode(buffer.subarray(0, n));
    return { status: text.split("\r\n")[0] ?? "", afterMs: Date.now() - started };
  })();
  try {
    await conn.write(
      new TextEncoder().encode(
        `POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${total}\r\n\r\n`,
      ),
    );
    for (let sent = 0; sent < total && !answered;) {
      const n = Math.min(step, total - sent);
      await conn.write(new Uint8Array(n).fill(0x20)).catch(() => 0);
      sent += n;
      if (sent < total) await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
    return await deadline(reading, 10_000, "the answer");
  } finally {
    conn.close();
  }
}

Deno.test("a body below the minimum rate is answered 408 after its grace; one at a fair rate is served", async () => {
  const server = await bodyLengthServer();
  try {
    const [slow, fair] = await Promise.all([
      // 100 bytes/s: past the 500 ms grace it owes 1 KiB/s and falls behind at once.
      trickle(server.port, { total: 4096, step: 10, everyMs: 100 }),
      // 4 KiB/s for 2 s: slower than a LAN, well above the minimum, longer than the grace.
      trickle(server.port, { total: 8192, step: 1024, everyMs: 250 }),
    ]);
    assert.equal(slow.status, "HTTP/1.1 408 Request Timeout");
    assert.ok(slow.afterMs >= 500 && slow.afterMs < 2_000, `408 after ${slow.afterMs} ms`);
    assert.equal(fair.status, "HTTP/1.1 200 OK");
    assert.ok(fair.afterMs >= 1_500, `the fair body took ${fair.afterMs} ms, past the grace`);
  } finally {
    await server.close();
  }
});

Deno.test("an answer sent before the body was read reaches a client that is still sending", async () => {
  const server = await startHttpServer({
    hostname: "127.0.0.1",
    port: 0,
    timeouts: TIMEOUTS,
    maxFrameBytes: 1024 * 1024,
    wsIdleTimeoutMs: 0,
    // As the gateway does without a token: answer at once, never read the body.
    handler: () => Promise.resolve(Response.json({ error: "no token" }, { status: 401 })),
  });
  try {
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (++pulled > 64 * 1024) return controller.close();
        controller.enqueue(new Uint8Array(1024));
      },
    });
    const response = await deadline(
      fetch(`http://127.0.0.1:${server.port}/`, { method: "POST", body }),
      5_000,
      "the answer",
    );
    assert.equal(response.status, 401);
    assert.deepEqual(await response.json(), { error: "no token" });
    assert.ok(pulled < 32 * 1024, `the client sent ${pulled} KiB of 64 MiB`);
  } finally {
    await server.close();
  }
});

Deno.test("an event stream is cancelled when its client goes away", async () => {
  const { promise: cancelled, resolve } = Promise.withResolvers<void>();
  const server = await startHttpServer({
    hostname: "127.0.0.1",
    port: 0,
    timeouts: TIMEOUTS,
    maxFrameBytes: 1024 * 1024,
    wsIdleTimeoutMs: 0,
    handler: () =>
      Promise.resolve(
        new Response(
          new ReadableStream({
            start(controller) {
              controller.enqueue(new TextEncoder().encode("event: message\ndata: {}\n\n"));
            },
            cancel: () => resolve(),
          }),
          { headers: { "content-type": "text/event-stream" } },
        ),
      ),
  });
  try {
    const response = await fetch(`http://127.0.0.1:${server.port}/`);
    const reader = response.body!.getReader();
    const first = await deadline(reader.read(), 5_000, "the first event");
    assert.match(new TextDecoder().decode(first.value), /^event: message/);
    await reader.cancel();
    await deadline(cancelled, 5_000, "the stream to be cancelled");
  } finally {
    await server.close();
  }
});
