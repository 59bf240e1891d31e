// The demo server as a real subprocess, driven by the official MCP SDK client; framing edge cases in-process.

import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { EmptyResultSchema, ListRootsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { deadline } from "../../lib/util/delay.ts";
import { runDemoServer } from "../../lib/demo/server.ts";
import type { JsonObject } from "../../lib/protocol/jsonrpc.ts";

const T = 20_000;
const REPO_ROOT = new URL("../..", import.meta.url).pathname;

type ClientCapabilities = ConstructorParameters<typeof Client>[1];

interface Connected {
  client: Client;
  /** Stops the server and the client, leaving no timer behind. */
  close(): Promise<void>;
}

/** Spawns the demo server and connects an SDK client to it. */
async function connectClient(options: ClientCapabilities = {}): Promise<Connected> {
  const client = new Client({ name: "demo-test", version: "1.0.0" }, options);
  const transport = new StdioClientTransport({
    command: Deno.execPath(),
    args: ["run", "tests/fixtures/demo_server_main.ts"],
    cwd: REPO_ROOT,
    stderr: "inherit",
  });
  // The SDK's StdioClientTransport.close() races a live server against a 2 s timer it never clears, which the
  // op sanitizer reports; a server that has already exited skips that race. So stop the server first.
  const close = async () => {
    if (transport.pid !== null) {
      const exited = new Promise<void>((resolve) => {
        const previous = transport.onclose;
        transport.onclose = () => {
          previous?.();
          resolve();
        };
      });
      try {
        Deno.kill(transport.pid, "SIGTERM");
      } catch {
        // Already gone.
      }
      await deadline(exited, T, "demo server exit");
    }
    await client.close();
  };
  try {
    await deadline(client.connect(transport, { timeout: T }), T, "connect");
  } catch (error) {
    await close();
    throw error;
  }
  return { client, close };
}

function textOf(result: unknown): string {
  const content = (result as { content: { type: string; text: string }[] }).content;
  assert.equal(content[0]?.type, "text");
  return content[0]!.text;
}

Deno.test("runDemoServer() initializes and lists and calls its tools for the MCP SDK client", async () => {
  const { client, close } = await connectClient();
  try {
    assert.equal(client.getServerVersion()?.name, "mcp-rproxy-demo");
    assert.deepEqual(client.getServerCapabilities(), { tools: { listChanged: false } });
    const { tools } = await client.listTools({}, { timeout: T });
    assert.deepEqual(tools.map((t: { name: string }) => t.name), [
      "echo",
      "add",
      "long-running",
      "big",
      "roots",
      "stats",
    ]);
    const echo = await client.callTool(
      { name: "echo", arguments: { message: "hi ✓" } },
      undefined,
      {
        timeout: T,
      },
    );
    assert.equal(textOf(echo), "Echo: hi ✓");
    const add = await client.callTool({ name: "add", arguments: { a: 2, b: 3 } }, undefined, {
      timeout: T,
    });
    assert.equal(textOf(add), "The sum of 2 and 3 is 5.");
    await client.ping({ timeout: T });
    const stats = await client.callTool({ name: "stats" }, undefined, { timeout: T });
    assert.equal(JSON.parse(textOf(stats)).initializeCount, 1);
  } finally {
    await close();
  }
});

Deno.test("runDemoServer() answers unknown methods with -32601 and bad params with -32602", async () => {
  const { client, close } = await connectClient();
  try {
    await assert.rejects(
      client.request({ method: "nope/nothing" } as never, EmptyResultSchema, { timeout: T }),
      (error: { code?: number }) => error.code === -32601,
    );
    await assert.rejects(
      client.callTool({ name: "echo", arguments: {} }, undefined, { timeout: T }),
      (error: { code?: number }) => error.code === -32602,
    );
    await assert.rejects(
      client.callTool({ name: "big", arguments: { bytes: -1 } }, undefined, { timeout: T }),
      (error: { code?: number }) => error.code === -32602,
    );
  } finally {
    await close();
  }
});

Deno.test("runDemoServer() long-running reports progress to the MCP SDK client", async () => {
  const { client, close } = await connectClient();
  try {
    const progress: number[] = [];
    const result = await client.callTool(
      { name: "long-running", arguments: { steps: 3, stepMs: 30 } },
      undefined,
      { timeout: T, onprogress: (p: { progress: number }) => progress.push(p.progress) },
    );
    assert.match(textOf(result), /3 steps/);
    // The SDK handles notifications a microtask later than responses, so when the last progress and the
    // result arrive in one chunk it drops that progress: only a prefix is guaranteed here. The exact wire
    // order is pinned by the in-process test below.
    assert.ok(progress.length >= 1, `progress seen: ${JSON.stringify(progress)}`);
    assert.deepEqual(progress, [1, 2, 3].slice(0, progress.length));
  } finally {
    await close();
  }
});

Deno.test("runDemoServer() long-running sends one progress per step with the token, before the result", async () => {
  const input = new TransformStream<Uint8Array, Uint8Array>();
  const writer = input.writable.getWriter();
  const lines: JsonObject[] = [];
  let onLine = () => {};
  let pending = "";
  const decoder = new TextDecoder();
  const output = new WritableStream<Uint8Array>({
    write: (chunk) => {
      pending += decoder.decode(chunk, { stream: true });
      const parts = pending.split("\n");
      pending = parts.pop()!;
      for (const part of parts) lines.push(JSON.parse(part) as JsonObject);
      onLine();
    },
  });
  const running = runDemoServer({ input: input.readable, output });
  try {
    await writer.write(new TextEncoder().encode(
      JSON.stringify({
        jsonrpc: "2.0",
        id: 9,
        method: "tools/call",
        params: {
          name: "long-running",
          arguments: { steps: 3, stepMs: 1 },
          _meta: { progressToken: "tok" },
        },
      }) + "\n",
    ));
    await deadline(
      new Promise<void>((resolve) => {
        onLine = () => lines.some((l) => l.id === 9) && resolve();
        onLine();
      }),
      T,
      "long-running result",
    );
    assert.deepEqual(
      lines.map((l) => l.method === undefined ? `result ${l.id}` : JSON.stringify(l.params)),
      [
        JSON.stringify({ progressToken: "tok", progress: 1, total: 3, message: "Step 1 of 3" }),
        JSON.stringify({ progressToken: "tok", progress: 2, total: 3, message: "Step 2 of 3" }),
        JSON.stringify({ progressToken: "tok", progress: 3, total: 3, message: "Step 3 of 3" }),
        "result 9",
      ],
    );
  } finally {
    await writer.close();
    await deadline(running, T, "demo server end");
  }
});

Deno.test("runDemoServer() big returns a 5 MiB text in one line", async () => {
  const { client, close } = await connectClient();
  try {
    const bytes = 5 * 1024 * 1024;
    const result = await client.callTool({ name: "big", arguments: { bytes } }, undefined, {
      timeout: T,
    });
    const text = textOf(result);
    assert.equal(text.length, bytes);
    assert.equal(new TextEncoder().encode(text).length, bytes);
  } finally {
    await close();
  }
});

Deno.test("runDemoServer() roots asks the client for roots/list and returns its answer", async () => {
  const { client, close } = await connectClient({
    capabilities: { roots: { listChanged: false } },
  });
  try {
    client.setRequestHandler(ListRootsRequestSchema, () => ({
      roots: [{ uri: "file:///tmp/project", name: "project" }],
    }));
    const result = await client.callTool({ name: "roots" }, undefined, { timeout: T });
    assert.equal(result.isError, undefined);
    assert.deepEqual(JSON.parse(textOf(result)), {
      roots: [{ uri: "file:///tmp/project", name: "project" }],
    });
  } finally {
    await close();
  }
});

Deno.test("runDemoServer() roots reports the client's error when it has no roots", async () => {
  const { client, close } = await connectClient();
  try {
    const result = await client.callTool({ name: "roots" }, undefined, { timeout: T });
    assert.equal(result.isError, true);
    assert.match(textOf(result), /-32601/);
  } finally {
    await close();
  }
});

/** Feeds `chunks` to an in-process server and returns every output line, parsed. */
async function runWith(chunks: Uint8Array[]): Promise<JsonObject[]> {
  const out: Uint8Array[] = [];
  const output = new WritableStream<Uint8Array>({ write: (chunk) => void out.push(chunk) });
  await deadline(runDemoServer({ input: ReadableStream.from(chunks), output }), T, "demo server");
  const text = new TextDecoder().decode(
    out.reduce((all, c) => {
      const joined = new Uint8Array(all.length + c.length);
      joined.set(all);
      joined.set(c, all.length);
      return joined;
    }, new Uint8Array()),
  );
  return text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as JsonObject);
}

Deno.test("runDemoServer() joins lines split across chunks, multi-byte characters and multi-MiB lines included", async () => {
  const encoder = new TextEncoder();
  const message = "é✓".repeat(400_000); // 2 MB of UTF-16, 2.0 MiB+ of UTF-8
  const line = encoder.encode(
    JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "tools/call",
      params: { name: "echo", arguments: { message } },
    }) + "\n" + '{"jsonrpc":"2.0","id":2,"method":"ping"}\n',
  );
  const chunks: Uint8Array[] = [];
  // 1 001-byte chunks split multi-byte characters and put the second request's start in a chunk's tail.
  for (let i = 0; i < line.length; i += 1001) chunks.push(line.slice(i, i + 1001));
  const replies = await runWith(chunks);
  assert.equal(replies.length, 2);
  assert.equal(textOf(replies[0]!.result), `Echo: ${message}`);
  assert.deepEqual(replies[1], { jsonrpc: "2.0", id: 2, result: {} });
});

Deno.test("runDemoServer() answers a parse error with -32700 and id null, then keeps serving", async () => {
  const encoder = new TextEncoder();
  const replies = await runWith([
    encoder.encode('{"jsonrpc":"2.0","id":1,\n'),
    encoder.encode('{"jsonrpc":"2.0","id":2,"method":"ping"}\n'),
    encoder.encode('{"jsonrpc":"2.0","id":3}\n'),
  ]);
  assert.equal(replies.length, 3);
  assert.equal(replies[0]!.id, null);
  assert.equal((replies[0]!.error as JsonObject).code, -32700);
  assert.deepEqual(replies[1], { jsonrpc: "2.0", id: 2, result: {} });
  assert.equal((replies[2]!.error as JsonObject).code, -32600);
});

Deno.test("runDemoServer() negotiates the protocol version", async () => {
  const encoder = new TextEncoder();
  const init = (id: number, protocolVersion: string) =>
    encoder.encode(
      JSON.stringify({
        jsonrpc: "2.0",
        id,
        method: "initialize",
        params: { protocolVersion, capabilities: {}, clientInfo: { name: "t", version: "1" } },
      }) + "\n",
    );
  const replies = await runWith([
    init(1, "2024-11-05"),
    init(2, "1999-01-01"),
    init(3, "2025-06-18"),
  ]);
  assert.deepEqual(
    replies.map((r) => (r.result as JsonObject).protocolVersion),
    ["2024-11-05", "2025-11-25", "2025-06-18"],
  );
});
