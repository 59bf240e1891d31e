// The request view serve's handlers get from the node:http listener (lib/serve/http/node_request.ts) reads
// as a Web `Request` would: the same path as the URL parser gives (also for targets it normalizes), the
// same headers, and the same body whether read whole or as a stream, with or without Content-Length.

import assert from "node:assert/strict";
import { type HttpHandler, startHttpServer } from "../../../lib/serve/http/server.ts";
import { pathOf } from "../../../lib/serve/http_request.ts";
import { deadline } from "../../../lib/util/delay.ts";

const TIMEOUTS = {
  headersMs: 5_000,
  bodyMs: 2_000,
  bodyMinBytesPerSecond: 1024,
  keepAliveMs: 5_000,
};

async function withServer(handler: HttpHandler, body: (port: number) => Promise<void>) {
  const server = await startHttpServer({
    hostname: "127.0.0.1",
    port: 0,
    timeouts: TIMEOUTS,
    maxFrameBytes: 1024 * 1024,
    wsIdleTimeoutMs: 0,
    handler,
  });
  try {
    await body(server.port);
  } finally {
    await server.close();
  }
}

/** Sends `head` (and `payload`) on a fresh connection, returns the answer's body (connection: close). */
async function raw(port: number, head: string, payload = ""): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(head + payload));
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(65536);
    await deadline(
      (async () => {
        for (;;) {
          const n = await conn.read(buffer);
          if (n === null) return;
          chunks.push(buffer.slice(0, n));
        }
      })(),
      10_000,
      "the answer",
    );
    const text = new TextDecoder().decode(
      chunks.reduce((a, b) => new Uint8Array([...a, ...b]), new Uint8Array()),
    );
    return text.slice(text.indexOf("\r\n\r\n") + 4);
  } finally {
    conn.close();
  }
}

Deno.test("pathOf() of the listener's request is the path the URL parser gives, for every kind of target", async () => {
  const targets = [
    "/servers/a/mcp",
    "/servers/a/mcp?x=1&y=/../z",
    "/servers/a/../b/mcp",
    "/servers/a/./mcp",
    "/servers/a/%2e%2e/b/mcp",
    "/servers/%61/mcp",
    "/servers//a/mcp",
    "/servers/a/mcp/..",
    "/servers/a/mcp/.",
    "/servers/a%2Fb/mcp",
    "/servers/a|b/mcp",
    "/servers/a{b}/mcp",
    "/servers/a\\b/mcp",
    "/servers/a/mcp;p=1",
    "/",
  ];
  await withServer((request) => {
    return Promise.resolve(
      Response.json({ path: pathOf(request), parsed: new URL(request.url).pathname }),
    );
  }, async (port) => {
    for (const target of targets) {
      const answer = JSON.parse(
        await raw(port, `GET ${target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`),
      );
      assert.equal(answer.path, answer.parsed, `target ${target}`);
    }
  });
});

Deno.test("the listener's request reads headers, method and URL as a Web Request does", async () => {
  await withServer((request) =>
    Promise.resolve(Response.json({
      method: request.method,
      url: request.url,
      accept: request.headers.get("Accept"),
      missing: request.headers.get("x-missing"),
      repeated: request.headers.get("x-repeated"),
    })), async (port) => {
    const answer = JSON.parse(
      await raw(
        port,
        "DELETE /a?b=1 HTTP/1.1\r\nhost: example.test:8080\r\naccept: text/event-stream\r\nx-repeated: 1\r\nx-repeated: 2\r\nconnection: close\r\n\r\n",
      ),
    );
    assert.deepEqual(answer, {
      method: "DELETE",
      url: "http://example.test:8080/a?b=1",
      accept: "text/event-stream",
      missing: null,
      repeated: "1, 2",
    });
  });
});

Deno.test("the listener's request body is the same read whole or as a stream, with a length or chunked", async () => {
  const payload = JSON.stringify({ text: "x".repeat(200_000) });
  await withServer(async (request) => {
    if (request.headers.get("x-read") === "stream") {
      let bytes = 0;
      for await (const chunk of request.body!) bytes += chunk.byteLength;
      return Response.json({ bytes });
    }
    return Response.json({ bytes: (await request.arrayBuffer()).byteLength });
  }, async (port) => {
    for (const read of ["whole", "stream"]) {
      const sized = await raw(
        port,
        `POST / HTTP/1.1\r\nhost: x\r\nx-read: ${read}\r\ncontent-length: ${payload.length}\r\nconnection: close\r\n\r\n`,
        payload,
      );
      assert.deepEqual(JSON.parse(sized), { bytes: payload.length }, `${read}, content-length`);
      const chunked = await raw(
        port,
        `POST / HTTP/1.1\r\nhost: x\r\nx-read: ${read}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n`,
        `${payload.length.toString(16)}\r\n${payload}\r\n0\r\n\r\n`,
      );
      assert.deepEqual(JSON.parse(chunked), { bytes: payload.length }, `${read}, chunked`);
    }
  });
});
