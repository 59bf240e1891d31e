// The life of MCP client sessions on the gateway's MCP endpoint, over real HTTP: the idle TTL, the cap per
// owner (429), DELETE cancelling calls on the server, server-initiated requests that time out, are cancelled,
// or go to the client that declared sampling or elicitation, -32001 once the server is gone, and the body
// errors (415, 406, 400).

import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  LoggingMessageNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { ErrorCode, type JsonObject } from "../../lib/protocol/jsonrpc.ts";
import type { Gateway } from "../../lib/serve/gateway.ts";
import { createServeMetrics } from "../../lib/serve/metrics.ts";
import { delay } from "../../lib/util/delay.ts";
import { Collector } from "../fixtures/collector.ts";
import {
  type GetStream,
  initializeMcp,
  openGetStream,
  postMcp,
  rpc,
} from "../fixtures/mcp_http.ts";
import { parsePrometheus, sampleValue } from "../fixtures/prometheus_parser.ts";
import { payloadOf, RAW_INIT_RESULT, until } from "../fixtures/resumable_tunnel.ts";
import {
  serveTestServer,
  startTestGateway,
  TOKENS,
  TunnelClient,
  within,
} from "../fixtures/test_gateway.ts";

function textOf(result: unknown): string {
  const content = (result as { content: { type: string; text: string }[] }).content;
  return content[0]!.text;
}

/** Polls a value held in this process (each round paced by 10 ms) until `check` holds, or fails. */
async function pollUntil(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await delay(10);
  }
}

/** Registers a raw tunnel (no `seq`: not resumable) and answers the gateway's initialize. */
async function registerRaw(
  gateway: Gateway,
  name: string,
): Promise<{ tunnel: TunnelClient; sessionId: string }> {
  const tunnel = await TunnelClient.open(gateway, TOKENS.alice);
  const ack = await tunnel.register(name);
  const init = await tunnel.next((f) => payloadOf(f)?.method === "initialize");
  tunnel.send({
    type: "response",
    sessionId: ack.sessionId,
    payload: { jsonrpc: "2.0", id: payloadOf(init).id, result: RAW_INIT_RESULT },
  });
  await tunnel.next((f) => payloadOf(f)?.method === "notifications/initialized");
  return { tunnel, sessionId: String(ack.sessionId) };
}

/** An SDK client of `name` with `capabilities`; `setup` installs its handlers before it connects. */
async function sdkClient(
  gateway: Gateway,
  name: string,
  capabilities: JsonObject,
  setup: (client: Client) => void = () => {},
): Promise<Client> {
  const client = new Client({ name: "lifecycle", version: "1" }, { capabilities });
  setup(client);
  const transport = new StreamableHTTPClientTransport(
    new URL(`${gateway.url}/servers/${name}/mcp`),
    { requestInit: { headers: { Authorization: `Bearer ${TOKENS.alice}` } } },
  );
  await within(client.connect(transport), 10_000, "the MCP client to connect");
  return client;
}

/**
 * The SDK opens its GET stream in the background: `probe` makes the server send a notification, repeated
 * until the client heard one on that stream.
 */
async function untilListening(
  client: Client,
  probe: (attempt: number) => void,
): Promise<void> {
  const heard = new Collector<string>();
  client.setNotificationHandler(
    LoggingMessageNotificationSchema,
    (notification: { params: { data?: unknown } }) => heard.push(String(notification.params.data)),
  );
  for (let attempt = 0; attempt < 50; attempt++) {
    probe(attempt);
    const ok = await heard.waitFor(() => true, 200, "a probe").then(() => true, () => false);
    if (ok) return;
  }
  throw new Error("The MCP client's GET stream never delivered a notification");
}

/** A probe sent by a raw tunnel: a log notification. */
function rawProbe(tunnel: TunnelClient, sessionId: string): (attempt: number) => void {
  return (attempt) =>
    tunnel.send({
      type: "notification",
      sessionId,
      payload: {
        jsonrpc: "2.0",
        method: "notifications/message",
        params: { level: "info", data: `probe-${attempt}` },
      },
    });
}

Deno.test("an idle MCP session is forgotten after mcpSessionTtlMs; one with a GET stream or a call in flight is kept", async () => {
  const ttlMs = 300;
  const metrics = createServeMetrics();
  const gateway = await startTestGateway({ mcpSessionTtlMs: ttlMs, metrics });
  const served = await serveTestServer(gateway, "demo");
  const clients = () => sampleValue(parsePrometheus(metrics.render()), "mcp_rproxy_mcp_clients");
  let stream: GetStream | undefined;
  let busy: string | undefined;
  let call: Promise<Response> | undefined;
  try {
    const streaming = await initializeMcp(gateway, "demo");
    stream = await openGetStream(gateway, "demo", streaming);
    assert.equal(stream.status, 200);
    busy = await initializeMcp(gateway, "demo");
    call = postMcp(
      gateway,
      "demo",
      rpc(1, "tools/call", { name: "slow", arguments: { steps: 1000, stepMs: 10, tag: "ttl" } }),
      { session: busy, accept: "application/json" },
    );
    await served.tunnel.next((f) => payloadOf(f)?.method === "tools/call", 5_000, "the call");
    const idle = await initializeMcp(gateway, "demo");
    const lastUsed = performance.now();
    assert.equal(clients(), 3);
    await pollUntil("the idle session to be forgotten", () => clients() === 2);
    const idleFor = performance.now() - lastUsed;
    assert.ok(
      idleFor >= ttlMs * 0.9 && idleFor <= ttlMs + 1_500,
      `forgotten after ${Math.round(idleFor)} ms idle, TTL ${ttlMs} ms`,
    );
    const gone = await postMcp(gateway, "demo", rpc(2, "tools/list"), { session: idle });
    assert.equal(gone.status, 404);
    assert.match((await gone.json()).error.message, /Session not found/);
    // Well past the TTL, the other two still work.
    await pollUntil("twice the TTL", () => performance.now() - lastUsed > 2 * ttlMs);
    for (const session of [streaming, busy]) {
      const kept = await postMcp(gateway, "demo", rpc(3, "tools/list"), {
        session,
        accept: "application/json",
      });
      assert.equal(kept.status, 200, session === busy ? "busy" : "streaming");
      assert.equal((await kept.json()).result.tools.length, 7);
    }
  } finally {
    await stream?.close();
    if (busy !== undefined) {
      const ended = await fetch(`${gateway.url}/servers/demo/mcp`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${TOKENS.alice}`, "mcp-session-id": busy },
      });
      await ended.body?.cancel();
    }
    await (await call)?.body?.cancel();
    await served.close();
    await gateway.close();
  }
});

Deno.test("past maxMcpSessionsPerOwner the least recently used idle session is forgotten; with none idle a new one gets 429", async () => {
  const gateway = await startTestGateway({ maxMcpSessionsPerOwner: 3 });
  const alice = await serveTestServer(gateway, "demo");
  const bob = await serveTestServer(gateway, "demo", TOKENS.bob);
  const streams: GetStream[] = [];
  try {
    const s1 = await initializeMcp(gateway, "demo");
    const s2 = await initializeMcp(gateway, "demo");
    const s3 = await initializeMcp(gateway, "demo");
    streams.push(await openGetStream(gateway, "demo", s1));
    streams.push(await openGetStream(gateway, "demo", s2));
    // s3 is idle: the fourth session takes its place.
    const s4 = await initializeMcp(gateway, "demo");
    const forgotten = await postMcp(gateway, "demo", rpc(1, "tools/list"), { session: s3 });
    assert.equal(forgotten.status, 404);
    await forgotten.body?.cancel();
    streams.push(await openGetStream(gateway, "demo", s4));
    // None idle now: the fifth is refused, and nothing is forgotten for it.
    const refused = await postMcp(gateway, "demo", {
      jsonrpc: "2.0",
      id: 5,
      method: "initialize",
      params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "x" } },
    }, { accept: "application/json" });
    assert.equal(refused.status, 429);
    const body = await refused.json();
    assert.equal(body.id, 5);
    assert.match(
      body.error.message,
      /Too many MCP sessions for owner alice \(limit 3, --max-mcp-sessions-per-owner\)/,
    );
    for (const session of [s1, s2, s4]) {
      const kept = await postMcp(gateway, "demo", rpc(2, "tools/list"), {
        session,
        accept: "application/json",
      });
      assert.equal(kept.status, 200);
      await kept.body?.cancel();
    }
    // The cap is per owner.
    assert.ok(await initializeMcp(gateway, "demo", { token: TOKENS.bob }));
  } finally {
    for (const stream of streams) await stream.close();
    await alice.close();
    await bob.close();
    await gateway.close();
  }
});

Deno.test("DELETE of an MCP session cancels its calls in flight on the server", async () => {
  const gateway = await startTestGateway();
  const served = await serveTestServer(gateway, "demo");
  try {
    const session = await initializeMcp(gateway, "demo");
    const call = postMcp(
      gateway,
      "demo",
      rpc("c1", "tools/call", {
        name: "slow",
        arguments: { steps: 1000, stepMs: 10, tag: "deleted" },
      }),
      { session, accept: "application/json" },
    );
    const sent = await served.tunnel.next(
      (f) => payloadOf(f)?.method === "tools/call",
      5_000,
      "the call",
    );
    const ended = await fetch(`${gateway.url}/servers/demo/mcp`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${TOKENS.alice}`, "mcp-session-id": session },
    });
    assert.equal(ended.status, 204);
    const cancelled = await served.tunnel.next(
      (f) => payloadOf(f)?.method === "notifications/cancelled",
      5_000,
      "notifications/cancelled through the tunnel",
    );
    assert.equal(
      (payloadOf(cancelled).params as JsonObject).requestId,
      payloadOf(sent).id,
      "it names the call by its tunnel id",
    );
    await served.log.waitCancelled("deleted");
    const answer = await within(call, 5_000, "the call's answer");
    assert.equal((await answer.json()).error.code, ErrorCode.InternalError);
  } finally {
    await served.close();
    await gateway.close();
  }
});

Deno.test("a server request the MCP client never answers fails with Timeout to the server, and the client is told it was cancelled", async () => {
  const gateway = await startTestGateway({ callTimeoutMs: 300 });
  const { tunnel, sessionId } = await registerRaw(gateway, "raw");
  let client: Client | undefined;
  try {
    const aborted = new Collector<string>();
    client = await sdkClient(gateway, "raw", { sampling: {} }, (c) => {
      c.setRequestHandler(
        CreateMessageRequestSchema,
        (_request: unknown, extra: { signal: AbortSignal }) =>
          new Promise<never>((_, reject) => {
            extra.signal.addEventListener("abort", () => {
              aborted.push(String(extra.signal.reason));
              reject(new Error("aborted"));
            }, { once: true });
          }),
      );
    });
    await untilListening(client, rawProbe(tunnel, sessionId));
    tunnel.send({
      type: "request",
      sessionId,
      payload: {
        jsonrpc: "2.0",
        id: "srv-t",
        method: "sampling/createMessage",
        params: { messages: [], maxTokens: 1 },
      },
    });
    const answer = await tunnel.next(
      (f) => f.type === "response" && payloadOf(f).id === "srv-t",
      5_000,
      "the gateway's answer to the server",
    );
    const error = payloadOf(answer).error as JsonObject;
    assert.equal(error.code, ErrorCode.Timeout);
    assert.match(String(error.message), /did not answer 'sampling\/createMessage' within 0.3 s/);
    const reason = await aborted.waitFor(() => true, 5_000, "the client's handler to be cancelled");
    assert.match(reason, /timed out/);
  } finally {
    await client?.close();
    await tunnel.close();
    await gateway.close();
  }
});

Deno.test("a server request the server cancels is cancelled at the MCP client, and no answer goes back", async () => {
  const gateway = await startTestGateway();
  const { tunnel, sessionId } = await registerRaw(gateway, "raw");
  let client: Client | undefined;
  try {
    const asked = new Collector<string>();
    const aborted = new Collector<string>();
    client = await sdkClient(gateway, "raw", { elicitation: {} }, (c) => {
      c.setRequestHandler(
        ElicitRequestSchema,
        (request: { params: { message?: string } }, extra: { signal: AbortSignal }) => {
          const message = String(request.params.message);
          asked.push(message);
          if (message !== "hold") return { action: "decline" };
          return new Promise<never>((_, reject) => {
            extra.signal.addEventListener("abort", () => {
              aborted.push(String(extra.signal.reason));
              reject(new Error("aborted"));
            }, { once: true });
          });
        },
      );
    });
    await untilListening(client, rawProbe(tunnel, sessionId));
    const elicit = (id: string, message: string) =>
      tunnel.send({
        type: "request",
        sessionId,
        payload: {
          jsonrpc: "2.0",
          id,
          method: "elicitation/create",
          params: { message, requestedSchema: { type: "object", properties: {} } },
        },
      });
    elicit("srv-c", "hold");
    await asked.waitFor((m) => m === "hold", 5_000, "the client to be asked");
    tunnel.send({
      type: "notification",
      sessionId,
      payload: {
        jsonrpc: "2.0",
        method: "notifications/cancelled",
        params: { requestId: "srv-c", reason: "the server gave up" },
      },
    });
    const reason = await aborted.waitFor(() => true, 5_000, "the client's handler to be cancelled");
    assert.match(reason, /the server gave up/);
    // A later request is answered; by then an answer to the cancelled one would have come back too.
    elicit("srv-d", "answer");
    const later = await tunnel.next(
      (f) => f.type === "response" && payloadOf(f).id === "srv-d",
      5_000,
      "the answer to a later request",
    );
    assert.deepEqual(payloadOf(later).result, { action: "decline" });
    assert.ok(
      !tunnel.frames.some((f) => f.type === "response" && payloadOf(f).id === "srv-c"),
      "no answer to a request the server cancelled",
    );
  } finally {
    await client?.close();
    await tunnel.close();
    await gateway.close();
  }
});

/** An SDK client that answers sampling with "sampled: <prompt>". */
function sampler(client: Client): void {
  client.setRequestHandler(
    CreateMessageRequestSchema,
    (request: { params: { messages: { content: { text?: string } }[] } }) => ({
      model: "test-model",
      role: "assistant" as const,
      content: {
        type: "text" as const,
        text: `sampled: ${request.params.messages[0]?.content.text}`,
      },
    }),
  );
}

/** An SDK client that answers elicitation with the name Ada. */
function elicitor(client: Client): void {
  client.setRequestHandler(
    ElicitRequestSchema,
    () => ({ action: "accept" as const, content: { name: "Ada" } }),
  );
}

Deno.test("sampling and elicitation from the server reach a client that declared them, not the caller that did not", async () => {
  const gateway = await startTestGateway();
  const served = await serveTestServer(gateway, "demo");
  const clients: Client[] = [];
  try {
    const samplingClient = await sdkClient(gateway, "demo", { sampling: {} }, sampler);
    clients.push(samplingClient);
    const elicitingClient = await sdkClient(gateway, "demo", { elicitation: {} }, elicitor);
    clients.push(elicitingClient);
    const plain = await sdkClient(gateway, "demo", {});
    clients.push(plain);
    // Each on its own call's stream.
    const own = await within(
      samplingClient.callTool({ name: "sample", arguments: { prompt: "own" } }),
      5_000,
      "sampling by the caller",
    );
    assert.equal(textOf(own), "sampled: own");
    const answer = await within(
      elicitingClient.callTool({ name: "elicit", arguments: { message: "Name?" } }),
      5_000,
      "elicitation by the caller",
    );
    assert.deepEqual(JSON.parse(textOf(answer)), { action: "accept", content: { name: "Ada" } });
    // A caller without the capability: the request goes to the client that declared it (its GET stream).
    const probe = (attempt: number) =>
      served.tunnel.send({
        type: "notification",
        sessionId: served.ack.sessionId,
        payload: {
          jsonrpc: "2.0",
          method: "notifications/message",
          params: { level: "info", data: `probe-${attempt}` },
        },
      });
    await untilListening(samplingClient, probe);
    await untilListening(elicitingClient, probe);
    const viaOther = await within(
      plain.callTool({ name: "sample", arguments: { prompt: "for plain" } }),
      5_000,
      "sampling via the other client",
    );
    assert.equal(textOf(viaOther), "sampled: for plain");
    const elicitedViaOther = await within(
      samplingClient.callTool({ name: "elicit", arguments: { message: "Name?" } }),
      5_000,
      "elicitation via the other client",
    );
    assert.deepEqual(JSON.parse(textOf(elicitedViaOther)).content, { name: "Ada" });
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await served.close();
    await gateway.close();
  }
});

Deno.test("sampling and elicitation with no client that declared them fail at once with an error to the server", async () => {
  const gateway = await startTestGateway({ callTimeoutMs: 30_000 });
  const served = await serveTestServer(gateway, "demo");
  const plain = await sdkClient(gateway, "demo", { roots: {} });
  try {
    await assert.rejects(
      within(plain.callTool({ name: "sample", arguments: { prompt: "x" } }), 5_000, "sample"),
      /declared the 'sampling' capability/,
    );
    await assert.rejects(
      within(plain.callTool({ name: "elicit", arguments: { message: "x" } }), 5_000, "elicit"),
      /declared the 'elicitation' capability/,
    );
  } finally {
    await plain.close();
    await served.close();
    await gateway.close();
  }
});

Deno.test("a call on an MCP session whose server went away gets -32001, a notification 503, and both work again once it is back", async () => {
  const gateway = await startTestGateway();
  let served = await serveTestServer(gateway, "demo");
  try {
    const session = await initializeMcp(gateway, "demo");
    await served.close();
    await until("the server to be gone", async () => {
      const list = await fetch(`${gateway.url}/reverse-proxy/sessions`, {
        headers: { authorization: `Bearer ${TOKENS.alice}` },
      });
      return (await list.json()).total === 0;
    });
    for (const accept of ["application/json", "text/event-stream"]) {
      const response = await postMcp(gateway, "demo", rpc(1, "tools/list"), { session, accept });
      assert.equal(response.status, 200, accept);
      const text = await response.text();
      const json = accept === "application/json" ? text : text.split("\n")[1]!.slice(6);
      const error = JSON.parse(json).error;
      assert.equal(error.code, ErrorCode.TunnelUnavailable, accept);
      assert.match(error.message, /Server 'demo' is not connected/);
    }
    // MCP 2025-11-25 transports: a notification the server cannot accept gets an HTTP error status, not
    // 202, so that its sender knows it was lost.
    const changed = { jsonrpc: "2.0", method: "notifications/roots/list_changed" };
    const lost = await postMcp(gateway, "demo", changed, { session });
    assert.equal(lost.status, 503);
    const refusal = await lost.json();
    assert.equal(refusal.error.code, ErrorCode.TunnelUnavailable);
    assert.match(refusal.error.message, /Server 'demo' is not connected: .*not delivered/);
    served = await serveTestServer(gateway, "demo");
    const delivered = await postMcp(gateway, "demo", changed, { session });
    assert.equal(delivered.status, 202, "the notification goes out again");
    await delivered.body?.cancel();
    const again = await postMcp(gateway, "demo", rpc(2, "tools/list"), {
      session,
      accept: "application/json",
    });
    assert.equal((await again.json()).result.tools.length, 7, "the same MCP session works again");
  } finally {
    await served.close();
    await gateway.close();
  }
});

Deno.test("the MCP endpoint refuses bodies it cannot take: 415, 406 and 400 with a JSON-RPC error", async () => {
  const gateway = await startTestGateway();
  const served = await serveTestServer(gateway, "demo");
  try {
    const session = await initializeMcp(gateway, "demo");
    const list = rpc(7, "tools/list");
    const cases: {
      what: string;
      options: Parameters<typeof postMcp>[3];
      body?: unknown;
      status: number;
      code: number;
      message: RegExp;
    }[] = [
      {
        what: "a text/plain body",
        options: { session, contentType: "text/plain" },
        status: 415,
        code: ErrorCode.InvalidRequest,
        message: /Content-Type must be application\/json/,
      },
      {
        what: "Accept without JSON or SSE",
        options: { session, accept: "text/html" },
        status: 406,
        code: ErrorCode.InvalidRequest,
        message: /Accept must include application\/json or text\/event-stream/,
      },
      {
        what: "a body that is not JSON",
        options: { session, rawBody: "{not json" },
        status: 400,
        code: ErrorCode.ParseError,
        message: /Body is not JSON/,
      },
      {
        what: "a batch",
        options: { session },
        body: [list, rpc(8, "tools/list")],
        status: 400,
        code: ErrorCode.InvalidRequest,
        message: /batches are not supported/,
      },
      {
        what: "JSON that is not JSON-RPC",
        options: { session },
        body: { hello: "world" },
        status: 400,
        code: ErrorCode.InvalidRequest,
        message: /not a JSON-RPC message/,
      },
    ];
    for (const { what, options, body, status, code, message } of cases) {
      const response = await within(postMcp(gateway, "demo", body ?? list, options), 5_000, what);
      assert.equal(response.status, status, what);
      const answer = await response.json();
      assert.equal(answer.jsonrpc, "2.0", what);
      assert.equal(answer.error.code, code, what);
      assert.match(answer.error.message, message, what);
    }
    const get = await fetch(`${gateway.url}/servers/demo/mcp`, {
      headers: {
        authorization: `Bearer ${TOKENS.alice}`,
        accept: "application/json",
        "mcp-session-id": session,
      },
    });
    assert.equal(get.status, 406, "a GET stream needs Accept: text/event-stream");
    await get.body?.cancel();
    // None of them reached the server.
    const calls = served.tunnel.frames.filter((f) => payloadOf(f)?.method === "tools/list");
    assert.equal(calls.length, 0);
  } finally {
    await served.close();
    await gateway.close();
  }
});
