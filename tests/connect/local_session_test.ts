// Tests of LocalSession with real child processes: the demo server, a scripted server whose behaviour each
// test drives through method names, and children that never answer or exit at once.

import assert from "node:assert/strict";
import { deadline } from "../../lib/util/delay.ts";
import { ServerStartError } from "../../lib/connect/errors.ts";
import { SCAN_ABOVE_CHARS } from "../../lib/protocol/json_scan.ts";
import { ErrorCode, factsOf, type JsonObject } from "../../lib/protocol/jsonrpc.ts";
import {
  LocalSession,
  type LocalSessionOptions,
  type ServerMessage,
} from "../../lib/connect/local_session.ts";
import { StdioServer } from "../../lib/connect/stdio_server.ts";
import type { JsonRpcId } from "../../lib/protocol/jsonrpc.ts";
import { Collector } from "../fixtures/collector.ts";
import { DEMO_SERVER, processGroupMembers } from "../fixtures/proxy_process.ts";

/** The message a ServerMessage carries, parsed from its text. */
function json(message: ServerMessage | undefined): JsonObject {
  return JSON.parse(message!.text) as JsonObject;
}

const WAIT_MS = 20_000;

/**
 * A minimal stdio server. It answers initialize; reports every notification and response it receives as a
 * `seen` notification; and for requests: `hold` is never answered, `garbage` writes a non-JSON line and a
 * non-JSON-RPC object before its answer, `big-garbage` a 100 kB line cut short and a 100 kB notification
 * (lines that are scanned rather than parsed), `batch` answers with a batch, `ask` first sends a request of its
 * own (id "srv-1"), anything else is answered with its params. With argument `refuse` it refuses initialize.
 */
const SCRIPTED_SERVER = `
const encoder = new TextEncoder();
const out = (m) => {
  const bytes = encoder.encode((typeof m === "string" ? m : JSON.stringify(m)) + "\\n");
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
};
const decoder = new TextDecoder();
let buffer = "";
for await (const chunk of Deno.stdin.readable) {
  buffer += decoder.decode(chunk, { stream: true });
  let i;
  while ((i = buffer.indexOf("\\n")) >= 0) {
    const m = JSON.parse(buffer.slice(0, i));
    buffer = buffer.slice(i + 1);
    if (m.method === "initialize") {
      if (Deno.args[0] === "refuse") out({ jsonrpc: "2.0", id: m.id, error: { code: -32602, message: "no thanks" } });
      else out({ jsonrpc: "2.0", id: m.id, result: { protocolVersion: m.params.protocolVersion, capabilities: {}, serverInfo: { name: "scripted", version: "1" } } });
    } else if (!("method" in m)) out({ jsonrpc: "2.0", method: "seen", params: { response: m } });
    else if (!("id" in m)) out({ jsonrpc: "2.0", method: "seen", params: { method: m.method, requestId: m.params?.requestId } });
    else if (m.method === "hold") {}
    else if (m.method === "garbage") {
      out("this is not JSON");
      out({ hello: "world" });
      out({ jsonrpc: "2.0", id: m.id, result: { after: "garbage" } });
    } else if (m.method === "big-garbage") {
      out('{"jsonrpc":"2.0","id":' + JSON.stringify(m.id) + ',"result":{"text":"' + "x".repeat(100000) + '"}');
      out({ jsonrpc: "2.0", method: "notifications/big", params: { text: "y".repeat(100000) } });
      out({ jsonrpc: "2.0", id: m.id, result: { after: "big garbage" } });
    } else if (m.method === "batch") {
      out([{ jsonrpc: "2.0", method: "notifications/first" }, { jsonrpc: "2.0", id: m.id, result: { n: 2 } }]);
    } else if (m.method === "ask") {
      out({ jsonrpc: "2.0", id: "srv-1", method: "roots/list" });
      out({ jsonrpc: "2.0", id: m.id, result: {} });
    } else out({ jsonrpc: "2.0", id: m.id, result: { echo: m.params ?? null } });
  }
}
`;

function scripted(...args: string[]): string[] {
  return [Deno.execPath(), "eval", SCRIPTED_SERVER, ...args];
}

/** Starts a session whose messages are collected; the caller stops it in finally. */
async function start(
  command: string[],
  options: Partial<LocalSessionOptions> = {},
): Promise<{ session: LocalSession; messages: Collector<ServerMessage> }> {
  const messages = new Collector<ServerMessage>();
  const session = await deadline(
    LocalSession.start({ command, onMessage: messages.push, onStderr: () => {}, ...options }),
    WAIT_MS,
    "LocalSession.start",
  );
  return { session, messages };
}

function request(id: string | number, method: string, params?: JsonObject): JsonObject {
  return { jsonrpc: "2.0", id, method, ...(params === undefined ? {} : { params }) };
}

function notification(method: string, params?: JsonObject): JsonObject {
  return { jsonrpc: "2.0", method, ...(params === undefined ? {} : { params }) };
}

function isResponseTo(id: string | number) {
  return (m: ServerMessage) => m.kind === "response" && json(m).id === id;
}

Deno.test("LocalSession.start() initializes the demo server and holds its result", async () => {
  const { session } = await start(DEMO_SERVER);
  try {
    const info = session.initializeResult.serverInfo as { name?: unknown };
    assert.equal(info.name, "mcp-rproxy-demo");
    assert.equal(session.serverInfo.name, "mcp-rproxy-demo");
    assert.equal(typeof session.initializeResult.protocolVersion, "string");
    assert.equal(session.alive, true);
  } finally {
    await deadline(session.stop(), WAIT_MS, "stop");
  }
  assert.equal(session.alive, false);
});

Deno.test("LocalSession.fromTunnel() answers initialize from the held result without asking the server", async () => {
  const { session, messages } = await start(DEMO_SERVER);
  try {
    const answer = await session.fromTunnel(
      request(7, "initialize", {
        protocolVersion: "2025-06-18",
        capabilities: {},
        clientInfo: { name: "gateway-client", version: "0" },
      }),
      1,
    );
    assert.deepEqual(answer, { jsonrpc: "2.0", id: 7, result: session.initializeResult });
    assert.equal(session.inFlightCount, 0);
    // The demo server counts the initialize requests it has seen.
    assert.equal(
      await session.fromTunnel(
        request("stats-1", "tools/call", { name: "stats", arguments: {} }),
        1,
      ),
      undefined,
    );
    const reply = await messages.waitFor(isResponseTo("stats-1"), WAIT_MS, "stats reply");
    const result = json(reply).result as { content: { text: string }[] };
    const stats = JSON.parse(result.content[0]!.text);
    assert.equal(stats.initializeCount, 1);
  } finally {
    await deadline(session.stop(), WAIT_MS, "stop");
  }
});

Deno.test("LocalSession.fromTunnel() swallows the notifications/initialized after a tunneled initialize exactly once", async () => {
  const { session, messages } = await start(scripted());
  try {
    // Our own `initialized` from start-up.
    await messages.waitFor(
      (m) => (json(m).params as JsonObject | undefined)?.method === "notifications/initialized",
      WAIT_MS,
      "start-up initialized",
    );
    assert.ok(await session.fromTunnel(request(1, "initialize", {}), 1));
    assert.equal(await session.fromTunnel(notification("notifications/initialized"), 1), undefined);
    await session.fromTunnel(notification("notifications/marker"), 1);
    await session.fromTunnel(notification("notifications/initialized"), 1);
    await messages.waitFor(
      (m) => (json(m).params as JsonObject | undefined)?.method === "notifications/initialized",
      WAIT_MS,
      "second tunneled initialized",
      1,
    );
    const seen = messages.items
      .filter((m) => json(m).method === "seen")
      .map((m) => (json(m).params as JsonObject).method);
    assert.deepEqual(seen, [
      "notifications/initialized",
      "notifications/marker",
      "notifications/initialized",
    ]);
  } finally {
    await deadline(session.stop(), WAIT_MS, "stop");
  }
});

Deno.test("LocalSession.fromTunnel() tracks a request in flight until its response comes through onMessage", async () => {
  const { session, messages } = await start(scripted());
  try {
    assert.equal(await session.fromTunnel(request(5, "tools/list", { x: 1 }), 3), undefined);
    const reply = await messages.waitFor(isResponseTo(5), WAIT_MS, "reply to 5");
    assert.deepEqual(reply.request, { id: 5, method: "tools/list", generation: 3 });
    assert.deepEqual(json(reply), { jsonrpc: "2.0", id: 5, result: { echo: { x: 1 } } });
    assert.equal(reply.id, 5);
    assert.equal(reply.bytes, reply.text.length);
    assert.equal(session.inFlightCount, 0);
  } finally {
    await deadline(session.stop(), WAIT_MS, "stop");
  }
});

Deno.test('LocalSession.fromTunnel() keeps requests 1 and "1" apart', async () => {
  const { session, messages } = await start(scripted());
  try {
    await session.fromTunnel(request(1, "numeric"), 1);
    await session.fromTunnel(request("1", "textual"), 1);
    const numeric = await messages.waitFor(isResponseTo(1), WAIT_MS, "reply to 1");
    const textual = await messages.waitFor(isResponseTo("1"), WAIT_MS, 'reply to "1"');
    assert.equal(numeric.request?.method, "numeric");
    assert.equal(textual.request?.method, "textual");
  } finally {
    await deadline(session.stop(), WAIT_MS, "stop");
  }
});

Deno.test("LocalSession.takeInFlight() empties the requests in flight, by generation or all", async () => {
  const { session } = await start(scripted());
  try {
    await session.fromTunnel(request("a", "hold"), 1);
    await session.fromTunnel(request("b", "hold"), 2);
    await session.fromTunnel(request("c", "hold"), 2);
    assert.equal(session.inFlightCount, 3);
    assert.deepEqual(session.takeInFlight(2), [
      { id: "b", method: "hold", generation: 2 },
      { id: "c", method: "hold", generation: 2 },
    ]);
    assert.equal(session.inFlightCount, 1);
    assert.deepEqual(session.takeInFlight(), [{ id: "a", method: "hold", generation: 1 }]);
    assert.equal(session.inFlightCount, 0);
    assert.deepEqual(session.takeInFlight(), []);
  } finally {
    await deadline(session.stop(), WAIT_MS, "stop");
  }
});

Deno.test("LocalSession.fromTunnel() forgets a request the tunnel cancelled and tells the server", async () => {
  const { session, messages } = await start(scripted());
  try {
    await session.fromTunnel(request(9, "hold"), 1);
    assert.equal(session.inFlightCount, 1);
    await session.fromTunnel(notification("notifications/cancelled", { requestId: 9 }), 1);
    assert.equal(session.inFlightCount, 0);
    // The server itself must hear of it, with the request's id, so that it stops the work.
    const seen = await messages.waitFor(
      (m) => (json(m).params as JsonObject | undefined)?.method === "notifications/cancelled",
      WAIT_MS,
      "the server to see notifications/cancelled",
    );
    assert.equal((json(seen).params as JsonObject).requestId, 9);
  } finally {
    await deadline(session.stop(), WAIT_MS, "stop");
  }
});

Deno.test("LocalSession onOversized names a call only while it is in flight, and takes it out of flight", async () => {
  const oversized = new Collector<JsonRpcId | undefined>();
  const { session } = await start(scripted(), {
    open: (events) => StdioServer.spawn({ command: scripted(), maxLineBytes: 1000, ...events }),
    onOversized: (_line, id) => oversized.push(id),
  });
  try {
    const big = { text: "x".repeat(2000) };
    await session.fromTunnel(request(1, "echo", big), 1);
    await oversized.waitForCount(1, WAIT_MS, "the first oversized answer");
    // Cancelled before its answer came: nobody waits for it any more.
    await session.fromTunnel(request(2, "echo", big), 1);
    await session.fromTunnel(notification("notifications/cancelled", { requestId: 2 }), 1);
    await oversized.waitForCount(2, WAIT_MS, "the second oversized answer");
    assert.deepEqual(oversized.items, [1, undefined]);
    assert.equal(session.inFlightCount, 0);
  } finally {
    await deadline(session.stop(), WAIT_MS, "stop");
  }
});

Deno.test("LocalSession.fromTunnel() answers an invalid payload with an id with InvalidRequest", async () => {
  const { session } = await start(scripted());
  try {
    const answer = await session.fromTunnel({ jsonrpc: "2.0", id: 4, params: {} }, 1);
    assert.deepEqual(answer, {
      jsonrpc: "2.0",
      id: 4,
      error: { code: ErrorCode.InvalidRequest, message: "Invalid JSON-RPC request" },
    });
    assert.equal(await session.fromTunnel({ jsonrpc: "1.0" }, 1), undefined);
  } finally {
    await deadline(session.stop(), WAIT_MS, "stop");
  }
});

Deno.test("LocalSession.fromTunnel() answers ServerUnavailable once the server is gone", async () => {
  const { session } = await start(scripted());
  try {
    await deadline(session.stop(), WAIT_MS, "stop");
    const answer = await session.fromTunnel(request(11, "tools/list"), 1);
    assert.equal(answer?.id, 11);
    assert.equal(answer?.error?.code, ErrorCode.ServerUnavailable);
    assert.equal(session.inFlightCount, 0);
  } finally {
    await deadline(session.stop(), WAIT_MS, "stop");
  }
});

Deno.test("LocalSession onMessage does not receive a line that is not JSON or not JSON-RPC", async () => {
  const { session, messages } = await start(scripted());
  try {
    const from = messages.items.length;
    await session.fromTunnel(request(21, "garbage"), 1);
    await messages.waitFor(isResponseTo(21), WAIT_MS, "reply to 21");
    // The scripted server's report of our start-up `initialized` may arrive at any time: leave it out.
    const after = messages.items.slice(from).filter((m) => json(m).method !== "seen");
    assert.deepEqual(after.map((m) => json(m)), [
      { jsonrpc: "2.0", id: 21, result: { after: "garbage" } },
    ]);
  } finally {
    await deadline(session.stop(), WAIT_MS, "stop");
  }
});

Deno.test("LocalSession onMessage routes lines over 64 KiB by id and method, and drops one that is not JSON", async () => {
  const { session, messages } = await start(scripted());
  try {
    const from = messages.items.length;
    const text = "é".repeat(300_000);
    session.fromTunnel(request("big", "echo", { text }), 2);
    const reply = await messages.waitFor(isResponseTo("big"), WAIT_MS, "reply to big");
    assert.equal(reply.id, "big");
    assert.deepEqual(reply.request, { id: "big", method: "echo", generation: 2 });
    assert.deepEqual(json(reply), { jsonrpc: "2.0", id: "big", result: { echo: { text } } });
    assert.equal(reply.bytes, new TextEncoder().encode(reply.text).length);

    session.fromTunnel(request(41, "big-garbage"), 2);
    await messages.waitFor(isResponseTo(41), WAIT_MS, "reply to 41");
    const after = messages.items.slice(from).filter((m) => m.method !== "seen");
    assert.deepEqual(after.map((m) => [m.kind, m.id, m.method]), [
      ["response", "big", undefined],
      ["notification", undefined, "notifications/big"],
      ["response", 41, undefined],
    ]);
    assert.deepEqual(json(after[1]), {
      jsonrpc: "2.0",
      method: "notifications/big",
      params: { text: "y".repeat(100000) },
    });
    assert.deepEqual(json(after[2]), { jsonrpc: "2.0", id: 41, result: { after: "big garbage" } });
    assert.equal(session.inFlightCount, 0);
  } finally {
    await deadline(session.stop(), WAIT_MS, "stop");
  }
});

Deno.test("LocalSession.forwardText() passes a long message on as is, and leaves to fromTunnel what needs the proxy", async () => {
  const { session, messages } = await start(scripted());
  try {
    const text = "ü".repeat(SCAN_ABOVE_CHARS);
    const call = JSON.stringify(request("long", "echo", { text }));
    assert.equal(session.forwardText(call, factsOf(JSON.parse(call)), 4), true);
    assert.equal(session.inFlightCount, 1);
    const reply = await messages.waitFor(isResponseTo("long"), WAIT_MS, "reply to long");
    assert.deepEqual(reply.request, { id: "long", method: "echo", generation: 4 });
    assert.deepEqual(json(reply), { jsonrpc: "2.0", id: "long", result: { echo: { text } } });
    // Not forwarded as text: a pretty-printed message (line breaks between tokens), initialize,
    // the notifications the proxy acts on, a batch, and what is not JSON-RPC.
    const pretty = JSON.stringify(request("pretty", "echo", { text }), null, 2);
    for (
      const refused of [
        pretty,
        JSON.stringify(request(1, "initialize", { text })),
        JSON.stringify(notification("notifications/cancelled", { requestId: 1, text })),
        JSON.stringify(notification("notifications/initialized", { text })),
        JSON.stringify([request(2, "echo", { text })]),
        JSON.stringify({ id: 3, method: "echo", params: { text } }),
      ]
    ) {
      const value = JSON.parse(refused);
      const facts = Array.isArray(value) ? "batch" as const : factsOf(value);
      assert.equal(session.forwardText(refused, facts, 4), false, refused.slice(0, 60));
    }
    assert.equal(session.inFlightCount, 0);
  } finally {
    await deadline(session.stop(), WAIT_MS, "stop");
  }
});

Deno.test("LocalSession onMessage receives a batch from the server as separate messages", async () => {
  const { session, messages } = await start(scripted());
  try {
    const from = messages.items.length;
    await session.fromTunnel(request(31, "batch"), 1);
    await messages.waitFor(isResponseTo(31), WAIT_MS, "reply to 31");
    // The scripted server's report of our start-up `initialized` may arrive at any time: leave it out.
    const after = messages.items.slice(from).filter((m) => json(m).method !== "seen");
    assert.equal(after.length, 2);
    assert.equal(after[0]?.kind, "notification");
    assert.deepEqual(json(after[0]), { jsonrpc: "2.0", method: "notifications/first" });
    assert.equal(after[0]?.text, '{"jsonrpc":"2.0","method":"notifications/first"}');
    assert.equal(after[0]?.bytes, undefined);
    assert.equal(after[1]?.kind, "response");
    assert.deepEqual(after[1]?.request, { id: 31, method: "batch", generation: 1 });
    assert.equal(session.inFlightCount, 0);
  } finally {
    await deadline(session.stop(), WAIT_MS, "stop");
  }
});

Deno.test("LocalSession onMessage receives the server's own requests, and fromTunnel passes answers back", async () => {
  const { session, messages } = await start(scripted());
  try {
    await session.fromTunnel(request(41, "ask"), 1);
    const ask = await messages.waitFor((m) => m.kind === "request", WAIT_MS, "server request");
    assert.deepEqual(json(ask), { jsonrpc: "2.0", id: "srv-1", method: "roots/list" });
    assert.equal(
      await session.fromTunnel({ jsonrpc: "2.0", id: "srv-1", result: { roots: [] } }, 1),
      undefined,
    );
    const seen = await messages.waitFor(
      (m) => json(m).method === "seen" && "response" in (json(m).params as JsonObject),
      WAIT_MS,
      "answer seen by the server",
    );
    assert.deepEqual((json(seen).params as JsonObject).response, {
      jsonrpc: "2.0",
      id: "srv-1",
      result: { roots: [] },
    });
  } finally {
    await deadline(session.stop(), WAIT_MS, "stop");
  }
});

Deno.test("LocalSession.start() fails with ServerStartError when the server never answers initialize", async () => {
  const command = ["sh", "-c", "echo $$ >&2; exec cat >/dev/null"];
  const stderr = new Collector<string>();
  await assert.rejects(
    deadline(
      LocalSession.start({
        command,
        initTimeoutMs: 500,
        onMessage: () => {},
        onStderr: stderr.push,
      }),
      WAIT_MS,
      "LocalSession.start",
    ),
    (error) => {
      assert.ok(error instanceof ServerStartError, String(error));
      assert.equal(
        error.message,
        "Local server 'sh -c echo $$ >&2; exec cat >/dev/null' did not answer initialize within 500 ms (connect --init-timeout); is it an MCP stdio server?",
      );
      return true;
    },
  );
  // The server was stopped on the way out.
  const pid = Number(stderr.items[0]);
  assert.ok(pid > 0, `pid line ${stderr.items[0]}`);
  assert.deepEqual(processGroupMembers(pid), []);
});

Deno.test("LocalSession.start() fails with ServerStartError when the server exits before answering", async () => {
  await assert.rejects(
    deadline(
      LocalSession.start({
        command: ["sh", "-c", "exit 4"],
        onMessage: () => {},
        onStderr: () => {},
      }),
      WAIT_MS,
      "LocalSession.start",
    ),
    {
      name: "ServerStartError",
      message: "Local server 'sh -c exit 4' exited (code 4) before answering initialize",
    },
  );
});

Deno.test("LocalSession.start() fails with ServerStartError when the server refuses initialize", async () => {
  await assert.rejects(
    deadline(
      LocalSession.start({ command: scripted("refuse"), onMessage: () => {}, onStderr: () => {} }),
      WAIT_MS,
      "LocalSession.start",
    ),
    (error) => {
      assert.ok(error instanceof ServerStartError);
      assert.match(error.message, /refused initialize: .*no thanks/);
      return true;
    },
  );
});

Deno.test("LocalSession.start() fails with ServerStartError for a program that does not exist", async () => {
  await assert.rejects(
    LocalSession.start({ command: ["mcp-rproxy-no-such-server-4711"], onMessage: () => {} }),
    (error) => {
      assert.ok(error instanceof ServerStartError);
      assert.match(error.message, /'mcp-rproxy-no-such-server-4711' was not found/);
      return true;
    },
  );
});
