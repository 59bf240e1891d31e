// Abandoned calls free their slot (disconnection is not cancellation, MCP 2025-11-25): a call whose SSE
// stream dropped is kept for --sse-resume-window, then cancelled at the server if no client came back for
// it; a call answered as plain JSON, which nothing could resume, is cancelled as soon as its client is gone.

import assert from "node:assert/strict";
import { createServeMetrics } from "../../lib/serve/metrics.ts";
import { initializeMcp, postMcp, readSse, rpc } from "../fixtures/mcp_http.ts";
import { serveTestServer, startTestGateway, TOKENS, within } from "../fixtures/test_gateway.ts";
import { delay } from "../../lib/util/delay.ts";

const WINDOW_MS = 600;

/** Polls a value held in this process (each round paced by 10 ms) until `check` holds, or fails. */
async function pollUntil(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await delay(10);
  }
}

function slow(id: number, tag: string, progress: boolean) {
  return rpc(id, "tools/call", {
    name: "slow",
    arguments: { steps: 100_000, stepMs: 10, tag },
    ...(progress ? { _meta: { progressToken: tag } } : {}),
  });
}

Deno.test("a call whose SSE stream dropped is kept for --sse-resume-window, then cancelled and its slot freed", async () => {
  const metrics = createServeMetrics();
  const gateway = await startTestGateway({ sseResumeWindowMs: WINDOW_MS, maxInflight: 1, metrics });
  const served = await serveTestServer(gateway, "left");
  try {
    const session = await initializeMcp(gateway, "left");
    const reading = readSse(
      await postMcp(gateway, "left", slow(1, "left", true), {
        session,
        accept: "text/event-stream",
      }),
    );
    await reading.events.waitFor((e) => e.data.includes("progress"), 5_000, "the first progress");
    const left = performance.now();
    await reading.close();
    // Within the window the call goes on: it still holds the one slot, and a second call waits.
    await delay(WINDOW_MS / 3);
    assert.deepEqual(served.log.cancelled, []);
    assert.equal(metrics.callsInFlight.value, 1);
    const second = postMcp(
      gateway,
      "left",
      rpc(2, "tools/call", {
        name: "echo",
        arguments: { text: "after" },
      }),
      { session, accept: "application/json" },
    );
    await served.log.waitCancelled("left", 5_000);
    const waited = performance.now() - left;
    assert.ok(waited >= WINDOW_MS * 0.9, `cancelled after ${waited} ms, before the window`);
    const answer = await (await within(second, 5_000, "the queued call")).json();
    assert.equal(answer.result.content[0].text, "after");
    assert.equal(metrics.callsInFlight.value, 0);
  } finally {
    await served.close();
    await gateway.close();
  }
});

Deno.test("a call answered as plain JSON is cancelled at once when its client disconnects", async () => {
  const metrics = createServeMetrics();
  const gateway = await startTestGateway({ sseResumeWindowMs: 60_000, maxInflight: 1, metrics });
  const served = await serveTestServer(gateway, "plain");
  try {
    const session = await initializeMcp(gateway, "plain");
    const controller = new AbortController();
    const call = fetch(`${gateway.url}/servers/plain/mcp`, {
      method: "POST",
      signal: controller.signal,
      headers: {
        authorization: `Bearer ${TOKENS.alice}`,
        "content-type": "application/json",
        accept: "application/json",
        "mcp-session-id": session,
        "mcp-protocol-version": "2025-11-25",
      },
      body: JSON.stringify(slow(1, "plain", false)),
    }).catch((error: unknown) => error);
    await pollUntil("the server to run the call", () => served.log.calls.includes("slow"));
    const left = performance.now();
    controller.abort();
    await call;
    await served.log.waitCancelled("plain", 5_000);
    const waited = performance.now() - left;
    assert.ok(waited < 2_000, `cancelled ${waited} ms after the client left`);
    await pollUntil("the slot to be free", () => metrics.callsInFlight.value === 0);
    const after = await postMcp(
      gateway,
      "plain",
      rpc(2, "tools/call", {
        name: "echo",
        arguments: { text: "free" },
      }),
      { session, accept: "application/json" },
    );
    assert.equal((await after.json()).result.content[0].text, "free");
  } finally {
    await served.close();
    await gateway.close();
  }
});
