// The queue of calls waiting for a slot: CallQueue's FIFO and byte count, and a burst of 300 SDK calls
// through one tunneled server with the gateway's defaults, which all succeed.

import assert from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { CallQueue } from "../../lib/serve/call_queue.ts";
import { GATEWAY_DEFAULTS } from "../../lib/serve/gateway.ts";
import { createServeMetrics } from "../../lib/serve/metrics.ts";
import {
  connectClient,
  serveTestServer,
  startTestGateway,
  TOKENS,
  within,
} from "../fixtures/test_gateway.ts";

Deno.test("CallQueue keeps order, removes from the middle, counts bytes and refuses past its bound", () => {
  const queue = new CallQueue<string>(3);
  assert.equal(queue.push("a", 10), true);
  assert.equal(queue.push("b", 20), true);
  assert.equal(queue.push("c", 30), true);
  assert.equal(queue.full, true);
  assert.equal(queue.push("d", 40), false);
  assert.equal(queue.bytes, 60);
  assert.equal(queue.delete("b"), true);
  assert.equal(queue.delete("b"), false);
  assert.equal(queue.bytes, 40);
  assert.equal(queue.shift(), "a");
  assert.equal(queue.push("d", 40), true);
  assert.deepEqual(queue.drain(), ["c", "d"]);
  assert.equal(queue.bytes, 0);
  assert.equal(queue.shift(), undefined);
  assert.throws(() => new CallQueue(-1), RangeError);
});

Deno.test("a burst of 3 SDK clients x 100 concurrent calls through one server all succeed with the defaults", async () => {
  const metrics = createServeMetrics();
  const gateway = await startTestGateway({ metrics });
  const served = await serveTestServer(gateway, "burst");
  const clients: Client[] = [];
  try {
    for (let i = 0; i < 3; i++) clients.push(await connectClient(gateway, "burst", TOKENS.alice));
    const results = await within(
      Promise.allSettled(
        clients.flatMap((client, c) =>
          Array.from(
            { length: 100 },
            (_, i) =>
              client.callTool({ name: "echo", arguments: { text: `${c}-${i}`, delayMs: 20 } }),
          )
        ),
      ),
      60_000,
      "300 calls",
    );
    const texts = results.map((r) =>
      r.status === "fulfilled"
        ? (r.value as { content: { text: string }[] }).content[0]!.text
        : `failed: ${String(r.reason)}`
    );
    const expected = clients.flatMap((_, c) => Array.from({ length: 100 }, (_, i) => `${c}-${i}`));
    assert.deepEqual(texts, expected);
    // The burst did go past the in-flight limit: calls waited instead of being refused.
    assert.ok(
      metrics.callQueueSeconds.count >= 300 - GATEWAY_DEFAULTS.maxInflight * 2,
      `${metrics.callQueueSeconds.count} calls waited`,
    );
    assert.equal(metrics.errors.value("queue_full"), 0);
    assert.equal(metrics.callsQueued.value, 0);
  } finally {
    for (const client of clients) await client.close();
    await served.close();
    await gateway.close();
  }
});
