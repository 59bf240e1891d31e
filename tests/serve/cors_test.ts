// CORS on /servers/<name>/mcp for browser-based MCP clients: preflight without credentials, and the
// headers a browser needs to read answers, only for allowed origins.

import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import { setupLogging, shutdownLogging } from "../../lib/util/log.ts";
import type { Gateway } from "../../lib/serve/gateway.ts";
import { serveTestServer, startTestGateway, TOKENS } from "../fixtures/test_gateway.ts";

const APP = "https://app.example";

async function preflight(gateway: Gateway, origin: string | undefined): Promise<Response> {
  const response = await fetch(`${gateway.url}/servers/demo/mcp`, {
    method: "OPTIONS",
    headers: {
      ...(origin === undefined ? {} : { origin }),
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization, content-type, mcp-session-id",
    },
  });
  await response.body?.cancel();
  return response;
}

function initialize(
  gateway: Gateway,
  origin: string | undefined,
  token: string = TOKENS.alice,
): Promise<Response> {
  return fetch(`${gateway.url}/servers/demo/mcp`, {
    method: "POST",
    headers: {
      ...(origin === undefined ? {} : { origin }),
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "browser" } },
    }),
  });
}

Deno.test("OPTIONS /servers/<name>/mcp from an allowed origin answers a CORS preflight without a token", async () => {
  const gateway = await startTestGateway({ allowedOrigins: [APP] });
  try {
    for (const origin of [APP, gateway.url]) {
      const response = await preflight(gateway, origin);
      assert.equal(response.status, 204, origin);
      const headers = response.headers;
      assert.equal(headers.get("access-control-allow-origin"), origin);
      assert.equal(headers.get("access-control-allow-methods"), "GET, POST, DELETE");
      assert.equal(
        headers.get("access-control-allow-headers"),
        "authorization, content-type, mcp-session-id, mcp-protocol-version, last-event-id",
      );
      assert.equal(
        headers.get("access-control-expose-headers"),
        "mcp-session-id, www-authenticate",
      );
      assert.ok(Number(headers.get("access-control-max-age")) > 0);
      assert.match(headers.get("vary") ?? "", /origin/i);
    }
    const plain = await preflight(gateway, undefined);
    assert.equal(plain.status, 204);
    assert.equal(plain.headers.get("access-control-allow-origin"), null);
  } finally {
    await gateway.close();
  }
});

Deno.test("OPTIONS /servers/<name>/mcp from a disallowed origin gets 403 without CORS headers", async () => {
  const gateway = await startTestGateway({ allowedOrigins: [APP] });
  try {
    const response = await preflight(gateway, "https://evil.example");
    assert.equal(response.status, 403);
    assert.equal(response.headers.get("access-control-allow-origin"), null);
    assert.equal(response.headers.get("access-control-allow-methods"), null);
  } finally {
    await gateway.close();
  }
});

Deno.test("answers to an allowed origin carry Access-Control-Allow-Origin and expose Mcp-Session-Id", async () => {
  const gateway = await startTestGateway({ allowedOrigins: [APP] });
  const served = await serveTestServer(gateway, "demo");
  try {
    const ok = await initialize(gateway, APP);
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
    assert.equal(ok.headers.get("access-control-allow-origin"), APP);
    assert.equal(
      ok.headers.get("access-control-expose-headers"),
      "mcp-session-id, www-authenticate",
    );
    const session = ok.headers.get("mcp-session-id");
    assert.ok(session);
    const ended = await fetch(`${gateway.url}/servers/demo/mcp`, {
      method: "DELETE",
      headers: { origin: APP, authorization: `Bearer ${TOKENS.alice}`, "mcp-session-id": session },
    });
    await ended.body?.cancel();
    assert.equal(ended.status, 204);
    assert.equal(ended.headers.get("access-control-allow-origin"), APP);
    // A refused token is readable by the page too, so it can tell the user.
    const unauthorized = await initialize(gateway, APP, "tok-nobody");
    await unauthorized.body?.cancel();
    assert.equal(unauthorized.status, 401);
    assert.equal(unauthorized.headers.get("access-control-allow-origin"), APP);
    const noOrigin = await initialize(gateway, undefined);
    await noOrigin.body?.cancel();
    assert.equal(noOrigin.status, 200);
    assert.equal(noOrigin.headers.get("access-control-allow-origin"), null);
    const evil = await initialize(gateway, "https://evil.example");
    await evil.body?.cancel();
    assert.equal(evil.status, 403);
    assert.equal(evil.headers.get("access-control-allow-origin"), null);
  } finally {
    await served.close();
    await gateway.close();
  }
});

Deno.test("with --allowed-origin '*' any origin is echoed back, never a wildcard", async () => {
  const gateway = await startTestGateway({ allowedOrigins: ["*"] });
  const served = await serveTestServer(gateway, "demo");
  try {
    const origin = "https://anywhere.example";
    const pre = await preflight(gateway, origin);
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get("access-control-allow-origin"), origin);
    const ok = await initialize(gateway, origin);
    await ok.body?.cancel();
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get("access-control-allow-origin"), origin);
  } finally {
    await served.close();
    await gateway.close();
  }
});

Deno.test("requests with a token from a refused origin are warned about once per interval, not once each", async () => {
  const records: LogRecord[] = [];
  await setupLogging({ level: "warning", format: "json", sink: (r) => records.push(r) });
  const gateway = await startTestGateway({ allowedOrigins: [APP] });
  try {
    for (let i = 0; i < 30; i++) {
      const refused = await initialize(gateway, "https://evil.example");
      await refused.body?.cancel();
      assert.equal(refused.status, 403);
    }
    const warnings = records.filter((r) => r.properties.event === "origin_refused");
    assert.equal(warnings.length, 1, "one warning line for 30 refused requests");
    assert.equal(warnings[0]!.properties.origin, "https://evil.example");
  } finally {
    await gateway.close();
    await shutdownLogging();
  }
});
