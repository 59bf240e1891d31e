// An MCP client that stops reading its SSE stream: the gateway closes that stream at --max-client-buffer,
// cancels its call, counts `slow_client`, and keeps serving everyone else.

import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { setupLogging, shutdownLogging } from "../../lib/util/log.ts";
import { createServeMetrics, type ServeMetrics } from "../../lib/serve/metrics.ts";
import type { Gateway } from "../../lib/serve/gateway.ts";
import {
  connectClient,
  serveTestServer,
  startTestGateway,
  TOKENS,
  within,
} from "../fixtures/test_gateway.ts";

const MAX_CLIENT_BUFFER = 1024 * 1024;
/** Messages well under the bound, so a client that reads is never near it. */
const MESSAGE_BYTES = 64 * 1024;

async function initialize(gateway: Gateway): Promise<string> {
  const response = await fetch(`${gateway.url}/servers/demo/mcp`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${TOKENS.alice}`,
      "content-type": "application/json",
      accept: "application/json",
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 0,
      method: "initialize",
      params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw" } },
    }),
  });
  await response.body?.cancel();
  const session = response.headers.get("mcp-session-id");
  assert.ok(session);
  return session;
}

/**
 * Sends one HTTP/1.1 request over a raw socket and reads nothing: unlike fetch, nothing on the client side
 * drains the socket, so the gateway's queue for it grows once the kernel buffers are full.
 */
async function openUnread(
  gateway: Gateway,
  method: "GET" | "POST",
  session: string,
  body?: unknown,
): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: gateway.port });
  const payload = body === undefined ? "" : JSON.stringify(body);
  const head = [
    `${method} /servers/demo/mcp HTTP/1.1`,
    `host: 127.0.0.1:${gateway.port}`,
    `authorization: Bearer ${TOKENS.alice}`,
    "accept: text/event-stream",
    `mcp-session-id: ${session}`,
    "mcp-protocol-version: 2025-11-25",
    ...(body === undefined ? [] : ["content-type: application/json"]),
    `content-length: ${new TextEncoder().encode(payload).length}`,
  ].join("\r\n");
  const bytes = new TextEncoder().encode(`${head}\r\n\r\n${payload}`);
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
  return conn;
}

/** Reads the socket to its end (EOF or reset); returns the status line. Bounded by `ms`. */
async function readToEnd(conn: Deno.TcpConn, ms: number): Promise<string> {
  const buffer = new Uint8Array(256 * 1024);
  let first = "";
  const drain = async () => {
    while (true) {
      let n: number | null;
      try {
        n = await conn.read(buffer);
      } catch (error) {
        if (error instanceof Deno.errors.ConnectionReset) return;
        throw error;
      }
      if (n === null) return;
      if (first === "") first = new TextDecoder().decode(buffer.subarray(0, Math.min(n, 64)));
    }
  };
  await within(drain(), ms, "the gateway to close the unread stream");
  return first.split("\r\n")[0] ?? "";
}

function textOf(result: unknown): string {
  return (result as { content: { text: string }[] }).content[0]!.text;
}

function slowClients(metrics: ServeMetrics): number {
  return metrics.errors.value("slow_client");
}

Deno.test("a GET stream its client does not read is closed at --max-client-buffer; other clients carry on", async () => {
  const records: LogRecord[] = [];
  await setupLogging({ level: "warning", format: "json", sink: (r) => records.push(r) });
  const metrics = createServeMetrics();
  const gateway = await startTestGateway({ maxClientBufferBytes: MAX_CLIENT_BUFFER, metrics });
  const served = await serveTestServer(gateway, "demo");
  let client: Client | undefined;
  let conn: Deno.TcpConn | undefined;
  try {
    client = await connectClient(gateway, "demo", TOKENS.alice);
    const reader = client;
    const session = await initialize(gateway);
    conn = await openUnread(gateway, "GET", session);
    const notification = {
      jsonrpc: "2.0",
      method: "notifications/message",
      params: { level: "info", data: "x".repeat(MESSAGE_BYTES) },
    };
    // Batches of server notifications (a quarter of the bound, so the SDK client, which reads, never
    // nears it), each followed by a call through the same link: its answer comes after the batch, so
    // by then the gateway has queued the whole batch.
    let sent = 0;
    for (let batch = 0; batch < 256 && slowClients(metrics) === 0; batch++) {
      for (let i = 0; i < 4; i++) {
        served.tunnel.send({
          type: "notification",
          sessionId: served.ack.sessionId,
          payload: notification,
        });
        sent += MESSAGE_BYTES;
      }
      const echoed = await within(
        reader.callTool({ name: "echo", arguments: { text: `after batch ${batch}` } }),
        10_000,
        "the barrier call",
      );
      assert.equal(textOf(echoed), `after batch ${batch}`);
    }
    assert.equal(slowClients(metrics), 1, `slow_client counted after ${sent} bytes`);
    const warning = records.find((r) => r.properties.mcpSession === session);
    assert.ok(warning, "a warning names the MCP session");
    assert.equal(warning.level, "warning");
    assert.match(warning.message.join(""), /GET stream .* did not read \d+ bytes/);
    assert.match(await readToEnd(conn, 10_000), /^HTTP\/1\.1 200/);
    // The SDK client, which reads its own GET stream, was not cut off and still gets results.
    const after = await within(
      reader.callTool({ name: "echo", arguments: { text: "still here" } }),
      5_000,
      "a call after the slow client was cut off",
    );
    assert.equal(textOf(after), "still here");
    assert.equal(slowClients(metrics), 1);
  } finally {
    conn?.close();
    await client?.close();
    await served.close();
    await gateway.close();
    await shutdownLogging();
  }
});

Deno.test("a POST stream its client does not read is closed at --max-client-buffer and its call cancelled", async () => {
  const metrics = createServeMetrics();
  const gateway = await startTestGateway({ maxClientBufferBytes: MAX_CLIENT_BUFFER, metrics });
  const served = await serveTestServer(gateway, "demo");
  let client: Client | undefined;
  let conn: Deno.TcpConn | undefined;
  try {
    client = await connectClient(gateway, "demo", TOKENS.alice);
    conn = await openUnread(gateway, "POST", await initialize(gateway), {
      jsonrpc: "2.0",
      id: 7,
      method: "tools/call",
      params: {
        name: "chatty",
        // 64 MiB at most: far past the bound plus every socket buffer on the way.
        arguments: { count: 1024, bytes: MESSAGE_BYTES, tag: "unread" },
        _meta: { progressToken: "p" },
      },
    });
    // The overflow is handled like a disconnect: the server gets notifications/cancelled.
    await served.log.waitCancelled("unread", 30_000);
    assert.equal(slowClients(metrics), 1);
    assert.match(await readToEnd(conn, 10_000), /^HTTP\/1\.1 200/);
    const after = await within(
      client.callTool({ name: "echo", arguments: { text: "still here" } }),
      5_000,
      "a call after the slow client was cut off",
    );
    assert.equal(textOf(after), "still here");
  } finally {
    conn?.close();
    await client?.close();
    await served.close();
    await gateway.close();
  }
});
