// connect as the MCP client of real HTTP upstreams (server-everything in its Streamable HTTP and SSE
// modes): a forgotten session is initialized again without an error for the caller, and an upstream
// that cannot be reached ends the transport at once.

import assert from "node:assert/strict";
import { HttpUpstream } from "../../lib/connect/http_upstream.ts";
import { LocalSession, type ServerMessage } from "../../lib/connect/local_session.ts";
import { SseUpstream } from "../../lib/connect/sse_upstream.ts";
import type { JsonObject } from "../../lib/protocol/jsonrpc.ts";
import { deadline } from "../../lib/util/delay.ts";
import { HttpEverything } from "../fixtures/http_mcp_servers.ts";

const WAIT_MS = 15_000;

/** Starts a session over `open` and collects the answers by id. */
async function open(kind: "http" | "sse", url: string, maxMessageBytes?: number) {
  const answers = new Map<string | number, (message: JsonObject) => void>();
  const upstream = {
    headers: [],
    timeoutMs: 5_000,
    ...(maxMessageBytes ? { maxMessageBytes } : {}),
  };
  const onMessage = (message: ServerMessage) => {
    if (message.kind !== "response") return;
    const value = JSON.parse(message.text) as JsonObject;
    answers.get(value.id as string | number)?.(value);
  };
  const session = await deadline(
    LocalSession.start({
      open: (events) =>
        kind === "http"
          ? HttpUpstream.open({ ...upstream, url: new URL(url) }, events)
          : SseUpstream.open({ ...upstream, url: new URL(url) }, events),
      onMessage,
    }),
    WAIT_MS,
    "LocalSession.start",
  );
  /** Sends a call; its answer, or undefined while none came (`answers` gets it later). */
  const send = (id: number, name: string, args: JsonObject) => {
    const answer = new Promise<JsonObject>((resolve) => answers.set(id, resolve));
    const immediate = session.fromTunnel(
      { jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } },
      1,
    );
    return immediate ? Promise.resolve(immediate as JsonObject) : answer;
  };
  const call = (id: number, name: string, args: JsonObject) =>
    deadline(send(id, name, args), WAIT_MS, name);
  return { session, call, send };
}

function text(answer: JsonObject): string {
  return ((answer.result as { content?: { text: string }[] })?.content ?? [])[0]?.text ?? "";
}

Deno.test("HttpUpstream initializes a new session when the upstream forgets its own, and the call goes through", async () => {
  await using server = await HttpEverything.start("streamableHttp");
  const { session, call } = await open("http", server.url);
  try {
    const first = session.transport.mcpSessionId;
    assert.equal(typeof first, "string");
    assert.equal(text(await call(1, "echo", { message: "one" })), "Echo: one");
    // The upstream ends the session behind connect's back (as a restart or an expiry would).
    const deleted = await fetch(server.url, {
      method: "DELETE",
      headers: { "mcp-session-id": first! },
    });
    await deleted.body?.cancel();
    assert.equal(deleted.ok, true);
    assert.equal(text(await call(2, "echo", { message: "two" })), "Echo: two");
    assert.notEqual(session.transport.mcpSessionId, first, "a new session");
    assert.equal(session.alive, true);
  } finally {
    await session.stop();
  }
});

Deno.test("HttpUpstream ends when its upstream cannot be reached; the call gets -32000 at once", async () => {
  await using server = await HttpEverything.start("streamableHttp");
  const { session, send } = await open("http", server.url);
  try {
    await server.stop();
    const answer = send(3, "echo", { message: "nobody" });
    assert.match(await deadline(session.transport.ended, WAIT_MS, "ended"), /^unreachable/);
    // Whichever notices first ends the transport: the call's own POST (which answers it with -32000),
    // or the standalone GET stream, which leaves the call in flight for the tunnel to answer with
    // -32000 (Tunnel.failInFlight, as connect does when a server goes away).
    const left = session.takeInFlight().map((request) => request.id);
    if (left.length === 0) {
      const answered = await deadline(answer, WAIT_MS, "the answer");
      assert.equal((answered.error as { code: number }).code, -32000);
    } else assert.deepEqual(left, [3]);
    assert.equal(session.alive, false);
  } finally {
    await session.stop();
  }
});

Deno.test("SseUpstream speaks the legacy transport: endpoint event, POSTs, answers on the stream; its end ends the transport", async () => {
  await using server = await HttpEverything.start("sse");
  const { session, call } = await open("sse", server.url);
  try {
    assert.equal(typeof session.transport.mcpSessionId, "string");
    assert.equal(text(await call(1, "echo", { message: "legacy" })), "Echo: legacy");
    await server.stop();
    await deadline(session.transport.ended, WAIT_MS, "ended");
    assert.equal(session.alive, false);
  } finally {
    await session.stop();
  }
});

for (const kind of ["http", "sse"] as const) {
  Deno.test(`${kind} upstream: a server request over --max-message-bytes (its id written last) is answered to the server at once`, async () => {
    // Without that answer, server-everything waits its SDK's 60 s for one, and so does the call.
    await using server = await HttpEverything.start(kind === "http" ? "streamableHttp" : "sse");
    const { session, call } = await open(kind, server.url, 4096);
    try {
      const answer = await call(1, "trigger-sampling-request", { prompt: "p".repeat(8000) });
      assert.match(text(answer), /^MCP error -32002: .*connect --max-message-bytes/);
    } finally {
      await session.stop();
    }
  });
}

Deno.test("SseUpstream refuses an endpoint event on another origin: the upstream's headers (its bearer token) never go there", async () => {
  const seen: string[] = [];
  const elsewhere = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => {
      seen.push(request.headers.get("authorization") ?? "");
      return new Response(null, { status: 202 });
    },
  );
  const streams = new AbortController();
  const upstream = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {}, signal: streams.signal },
    () => {
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          const post = `http://127.0.0.1:${elsewhere.addr.port}/messages?sessionId=s1`;
          controller.enqueue(new TextEncoder().encode(`event: endpoint\ndata: ${post}\n\n`));
          streams.signal.addEventListener("abort", () => controller.close(), { once: true });
        },
      });
      return new Response(body, { headers: { "content-type": "text/event-stream" } });
    },
  );
  let opened: SseUpstream | undefined;
  try {
    const outcome = await deadline(
      SseUpstream.open({
        url: new URL(`http://127.0.0.1:${upstream.addr.port}/sse`),
        headers: [{ name: "Authorization", value: "Bearer upstream-secret", source: "test" }],
        timeoutMs: 5_000,
      }, { onLine: () => {} }).then((transport) => {
        opened = transport;
        return opened.send('{"jsonrpc":"2.0","method":"notifications/initialized"}')
          .then(() => "opened");
      }, (error: Error) => error.message),
      WAIT_MS,
      "open",
    );
    assert.match(outcome, /another origin/);
    assert.doesNotMatch(outcome, /upstream-secret/);
    assert.deepEqual(seen, [], "the bearer token went to the other origin");
  } finally {
    await opened?.stop();
    streams.abort();
    await upstream.finished;
    await elsewhere.shutdown();
  }
});
