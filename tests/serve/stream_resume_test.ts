// Resumable SSE streams over real HTTP: a POST stream cut mid-call and a GET stream are resumed with
// Last-Event-ID (what followed that id, then the rest, once); then the official SDK client, whose
// connections a TCP relay cuts, loses nothing and gets nothing twice, for one call and for 1,000.

import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { JsonObject } from "../../lib/protocol/jsonrpc.ts";
import type { Gateway } from "../../lib/serve/gateway.ts";
import { createServeMetrics } from "../../lib/serve/metrics.ts";
import { delay } from "../../lib/util/delay.ts";
import {
  getSse,
  initializeMcp,
  postMcp,
  readSse,
  rpc,
  type SseEvent,
} from "../fixtures/mcp_http.ts";
import { startTcpRelay, type TcpRelay } from "../fixtures/tcp_relay.ts";
import { serveTestServer, startTestGateway, TOKENS, within } from "../fixtures/test_gateway.ts";

/** Polls a value held in this process (each round paced by 10 ms) until `check` holds, or fails. */
async function pollUntil(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await delay(10);
  }
}

function messagesOf(events: SseEvent[]): JsonObject[] {
  return events.filter((e) => e.data !== "").map((e) => JSON.parse(e.data) as JsonObject);
}

function progressOf(messages: JsonObject[]): number[] {
  return messages.filter((m) => m.method === "notifications/progress")
    .map((m) => (m.params as { progress: number }).progress);
}

Deno.test("a POST stream cut mid-call resumes with Last-Event-ID: what followed, from the replay buffer, once", async () => {
  const metrics = createServeMetrics();
  const gateway = await startTestGateway({ metrics });
  const served = await serveTestServer(gateway, "res");
  try {
    const session = await initializeMcp(gateway, "res");
    const call = rpc(7, "tools/call", {
      name: "slow",
      arguments: { steps: 6, stepMs: 40, tag: "resumed" },
      _meta: { progressToken: "p" },
    });
    const first = readSse(
      await postMcp(gateway, "res", call, { session, accept: "text/event-stream" }),
    );
    await first.events.waitFor((e) => e.data.includes('"progress":2'), 5_000, "progress 2");
    await first.close(); // the connection drops; the call goes on
    // Resume only once the call is over, so that all that followed comes from the replay buffer.
    await pollUntil("the call to finish", () => metrics.callsInFlight.value === 0);
    const lastId = first.events.items.at(-1)!.id!;
    assert.match(lastId, /^\d+:2$/);
    const resumed = await getSse(gateway, "res", session, { lastEventId: lastId });
    assert.equal(resumed.status, 200);
    await within(resumed.reading.ended, 5_000, "the resumed stream to end with the answer");
    const before = messagesOf(first.events.items);
    const after = messagesOf(resumed.reading.events.items);
    assert.deepEqual(progressOf([...before, ...after]), [1, 2, 3, 4, 5, 6]);
    const answer = after.at(-1)!;
    assert.equal(answer.id, 7);
    assert.deepEqual(answer.result, { content: [{ type: "text", text: "done 6" }] });
    assert.deepEqual(served.log.cancelled, [], "a dropped connection is not a cancellation");
    // Ids go on across connections, one number per event.
    const ids = [...first.events.items, ...resumed.reading.events.items]
      .filter((e) => e.data !== "").map((e) => Number(e.id!.split(":")[1]));
    assert.deepEqual(ids, [1, 2, 3, 4, 5, 6, 7]);
    // Everything of a finished stream was seen: 204. Unknown stream: 410. Not an id of ours: 400.
    const finalId = resumed.reading.events.items.at(-1)!.id!;
    const finished = await getSse(gateway, "res", session, { lastEventId: finalId });
    assert.equal(finished.status, 204);
    const unknown = await getSse(gateway, "res", session, { lastEventId: "99:1" });
    assert.equal(unknown.status, 410);
    assert.match(String((await unknown.response.json()).error.message), /--sse-resume-window/);
    const bad = await getSse(gateway, "res", session, { lastEventId: "yesterday" });
    assert.equal(bad.status, 400);
    await bad.response.body?.cancel();
  } finally {
    await served.close();
    await gateway.close();
  }
});

Deno.test("a GET stream resumed with Last-Event-ID gets the notifications sent while it was away; a fresh GET does not", async () => {
  const gateway = await startTestGateway();
  const served = await serveTestServer(gateway, "res");
  const notify = (data: string) =>
    served.tunnel.send({
      type: "notification",
      sessionId: served.ack.sessionId,
      payload: { jsonrpc: "2.0", method: "notifications/message", params: { level: "info", data } },
    });
  /** A call through the same link: answered after every frame the server sent before it. */
  const barrier = async (session: string) => {
    const response = await postMcp(gateway, "res", rpc(1, "tools/list"), {
      session,
      accept: "application/json",
    });
    await response.body?.cancel();
  };
  try {
    const session = await initializeMcp(gateway, "res");
    const first = await getSse(gateway, "res", session);
    const priming = await first.reading.events.waitFor(() => true, 5_000, "the priming event");
    notify("one");
    await first.reading.events.waitFor((e) => e.data.includes('"one"'), 5_000, "one");
    const seen = first.reading.events.items.at(-1)!.id!;
    await first.reading.close();
    notify("two");
    notify("three");
    await barrier(session);
    const resumed = await getSse(gateway, "res", session, { lastEventId: seen });
    await resumed.reading.events.waitFor((e) => e.data.includes('"three"'), 5_000, "three");
    const data = messagesOf(resumed.reading.events.items).map((m) =>
      (m.params as { data: string }).data
    );
    assert.deepEqual(data, ["two", "three"]);
    assert.ok(priming.id!.startsWith("0:"), "the GET stream is stream 0");
    await resumed.reading.close();
    notify("four");
    await barrier(session);
    const fresh = await getSse(gateway, "res", session);
    notify("five");
    await fresh.reading.events.waitFor((e) => e.data.includes('"five"'), 5_000, "five");
    assert.deepEqual(
      messagesOf(fresh.reading.events.items).map((m) => (m.params as { data: string }).data),
      ["five"],
    );
    await fresh.reading.close();
  } finally {
    await served.close();
    await gateway.close();
  }
});

/** An SDK client of `name` that reaches the gateway through `relay`. */
async function relayedClient(relay: TcpRelay, name: string): Promise<Client> {
  const client = new Client({ name: "resume", version: "1" }, { capabilities: {} });
  const transport = new StreamableHTTPClientTransport(
    new URL(`http://127.0.0.1:${relay.port}/servers/${name}/mcp`),
    {
      requestInit: { headers: { Authorization: `Bearer ${TOKENS.alice}` } },
      // The relay may cut a reconnection too: let the client try a few more times than its default 2.
      reconnectionOptions: {
        initialReconnectionDelay: 20,
        maxReconnectionDelay: 200,
        reconnectionDelayGrowFactor: 1.5,
        maxRetries: 10,
      },
    },
  );
  await within(client.connect(transport), 10_000, "the MCP client to connect");
  return client;
}

/** Duplicated answers show up as the SDK's "unknown message ID" errors. */
function watchErrors(client: Client): string[] {
  const errors: string[] = [];
  client.onerror = (error: Error) => errors.push(error.message);
  return errors;
}

function textOf(result: unknown): string {
  return (result as { content: { text: string }[] }).content[0]!.text;
}

async function withRelayedServer(
  options: { retryMs: number },
  body: (
    context: { gateway: Gateway; relay: TcpRelay; metrics: ReturnType<typeof createServeMetrics> },
  ) => Promise<void>,
): Promise<void> {
  const metrics = createServeMetrics();
  const gateway = await startTestGateway({ sseRetryMs: options.retryMs, metrics });
  const served = await serveTestServer(gateway, "cut");
  const relay = await startTcpRelay({ targetPort: gateway.port });
  try {
    await body({ gateway, relay, metrics });
  } finally {
    await relay.close();
    await served.close();
    await gateway.close();
  }
}

Deno.test("the SDK client whose connection a TCP relay cuts mid-call gets the answer and every progress, once", async () => {
  await withRelayedServer({ retryMs: 50 }, async ({ relay }) => {
    const client = await relayedClient(relay, "cut");
    const errors = watchErrors(client);
    try {
      const progress: number[] = [];
      let cut = false;
      const result = await within(
        client.callTool({ name: "slow", arguments: { steps: 8, stepMs: 40 } }, undefined, {
          timeout: 10_000,
          onprogress: (p: { progress: number }) => {
            progress.push(p.progress);
            if (p.progress === 3 && !cut) {
              cut = true;
              relay.cut();
            }
          },
        }),
        15_000,
        "the call across the cut",
      );
      assert.ok(cut);
      assert.equal(textOf(result), "done 8");
      assert.deepEqual(progress, [1, 2, 3, 4, 5, 6, 7, 8]);
      assert.ok(relay.accepted >= 3, "the client came back on a new connection");
      assert.deepEqual(errors.filter((e) => /unknown message ID/i.test(e)), []);
    } finally {
      await client.close();
    }
  });
});

Deno.test("1,000 calls with progress while a TCP relay cuts the clients' connections 20 times: none lost, none twice", async () => {
  const CALLS = 1000;
  const CUTS = 20;
  const STEPS = 3;
  await withRelayedServer({ retryMs: 20 }, async ({ relay, metrics }) => {
    const clients: Client[] = [];
    const errors: string[][] = [];
    try {
      for (let i = 0; i < 4; i++) {
        const client = await relayedClient(relay, "cut");
        clients.push(client);
        errors.push(watchErrors(client));
      }
      let next = 0;
      let finished = 0;
      let cuts = 0;
      let retried = 0;
      const outcomes: string[] = new Array(CALLS);
      const worker = async (client: Client) => {
        for (let i = next++; i < CALLS; i = next++) {
          for (let attempt = 0;; attempt++) {
            const progress: number[] = [];
            try {
              const result = await client.callTool(
                { name: "slow", arguments: { steps: STEPS, stepMs: 5, tag: `c${i}` } },
                undefined,
                {
                  timeout: 15_000,
                  onprogress: (p: { progress: number }) => progress.push(p.progress),
                },
              );
              outcomes[i] = `${textOf(result)} [${progress.join(",")}]`;
              break;
            } catch (error) {
              // A cut before the answer's headers arrived fails the POST itself, visibly, before any event:
              // the client may send it again. Anything else is a failure of the test.
              if (
                progress.length > 0 || attempt >= 5 ||
                !/fetch|connection|error sending|reset|network/i.test(String(error))
              ) {
                outcomes[i] = `failed after [${progress.join(",")}]: ${String(error)}`;
                break;
              }
              retried++;
            }
          }
          finished++;
          if (cuts < CUTS && finished >= (cuts + 1) * (CALLS / (CUTS + 1))) {
            cuts++;
            relay.cut();
          }
        }
      };
      const started = performance.now();
      await within(
        Promise.all(clients.flatMap((client) => Array.from({ length: 10 }, () => worker(client)))),
        25_000,
        "1,000 calls",
      );
      const seconds = (performance.now() - started) / 1000;
      assert.equal(cuts, CUTS);
      const expected = `done ${STEPS} [1,2,3]`;
      const wrong = outcomes.map((o, i) => [i, o] as const).filter(([, o]) => o !== expected);
      assert.deepEqual(wrong, [], "every call: its answer and its progress, each once");
      for (const list of errors) {
        assert.deepEqual(list.filter((e) => /unknown message ID/i.test(e)), [], "no answer twice");
      }
      console.log(
        `1,000 calls, ${CUTS} cuts: ${
          seconds.toFixed(1)
        } s, ${relay.accepted} connections, ${retried} POSTs sent again, ${
          metrics.errors.value("replay_gap")
        } replay gaps`,
      );
      assert.equal(metrics.errors.value("replay_gap"), 0);
    } finally {
      for (const client of clients) await client.close();
    }
  });
});
