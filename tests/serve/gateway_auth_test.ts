// Authentication as clients of a real gateway see it: a JWT subject and the tokens-file owner of the same
// name are two owners (sessions API and MCP endpoint), unless a tokens file maps them on purpose; a 401
// tells an OAuth-capable client that this gateway takes a static bearer token; the OAuth discovery paths
// are 404.

import assert from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { type Gateway, startGateway } from "../../lib/serve/gateway.ts";
import { createTokenStore } from "../../lib/serve/token_store.ts";
import { JWT_SECRET, signJwt } from "../fixtures/jwt.ts";
import {
  connectClient,
  type ServedServer,
  serveTestServer,
  TOKENS,
  TOKENS_FILE,
  within,
} from "../fixtures/test_gateway.ts";

/** A tokens-file client token that the operator mapped onto the JWT identity `alice`. */
const MAPPED_TOKEN = "tok-mapped-to-jwt-alice-0123456789";

async function startJwtGateway(): Promise<Gateway> {
  return await startGateway({
    tokens: await createTokenStore({
      tokensFile: `${TOKENS_FILE}${MAPPED_TOKEN}: {owner: "jwt:alice", roles: [client]}\n`,
      jwt: { secret: JWT_SECRET },
    }),
    hostname: "127.0.0.1",
    port: 0,
  });
}

async function call(
  gateway: Gateway,
  path: string,
  token: string | undefined,
  init: RequestInit = {},
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const headers = new Headers(init.headers);
  if (token !== undefined) headers.set("authorization", `Bearer ${token}`);
  const response = await within(
    fetch(`${gateway.url}${path}`, { ...init, headers }),
    5_000,
    `${init.method ?? "GET"} ${path}`,
  );
  const text = await response.text();
  return {
    status: response.status,
    body: text === "" ? {} : JSON.parse(text),
    headers: response.headers,
  };
}

function initializeBody(): string {
  return JSON.stringify({
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: {
      protocolVersion: "2025-11-25",
      capabilities: {},
      clientInfo: { name: "t", version: "1" },
    },
  });
}

const MCP_HEADERS = {
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
};

Deno.test("a JWT with sub alice can neither see nor act on the tokens-file owner alice's sessions", async () => {
  const gateway = await startJwtGateway();
  const jwtAlice = await signJwt({ sub: "alice", exp: Date.now() / 1000 + 600 });
  const served: ServedServer[] = [];
  const clients: Client[] = [];
  try {
    const fileServer = await serveTestServer(gateway, "files", TOKENS.alice);
    served.push(fileServer);
    const sessionId = String(fileServer.ack.sessionId);

    // Sessions API: the JWT alice sees none of them and may touch none.
    const mine = await call(gateway, "/reverse-proxy/sessions", TOKENS.alice);
    assert.equal(mine.body.total, 1);
    const theirs = await call(gateway, "/reverse-proxy/sessions", jwtAlice);
    assert.equal(theirs.status, 200);
    assert.equal(theirs.body.total, 0);
    assert.equal(
      (await call(gateway, `/reverse-proxy/sessions/${sessionId}`, jwtAlice)).status,
      403,
    );
    const request = await call(gateway, `/reverse-proxy/sessions/${sessionId}/request`, jwtAlice, {
      method: "POST",
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    });
    assert.equal(request.status, 403);
    const evict = await call(gateway, `/reverse-proxy/sessions/${sessionId}`, jwtAlice, {
      method: "DELETE",
    });
    assert.equal(evict.status, 403);
    assert.equal((await call(gateway, "/reverse-proxy/sessions", TOKENS.alice)).body.total, 1);

    // MCP endpoint: the server is not there for the JWT alice, nor is the file alice's MCP session.
    const init = await call(gateway, "/servers/files/mcp", jwtAlice, {
      method: "POST",
      headers: MCP_HEADERS,
      body: initializeBody(),
    });
    assert.equal(init.status, 404);
    const fileClient = await connectClient(gateway, "files", TOKENS.alice);
    clients.push(fileClient);
    const ownInit = await call(gateway, "/servers/files/mcp", TOKENS.alice, {
      method: "POST",
      headers: MCP_HEADERS,
      body: initializeBody(),
    });
    const fileMcpSession = ownInit.headers.get("mcp-session-id");
    assert.ok(fileMcpSession, "the file alice gets an MCP session");
    const hijack = await call(gateway, "/servers/files/mcp", jwtAlice, {
      method: "POST",
      headers: { ...MCP_HEADERS, "mcp-session-id": fileMcpSession },
      body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }),
    });
    assert.equal(hijack.status, 404);
    const end = await call(gateway, "/servers/files/mcp", jwtAlice, {
      method: "DELETE",
      headers: { "mcp-session-id": fileMcpSession },
    });
    assert.equal(end.status, 404);

    // Each namespace registers the same name for itself, and each reaches only its own.
    const jwtServer = await serveTestServer(gateway, "files", jwtAlice);
    served.push(jwtServer);
    assert.equal(jwtServer.ack.name, "files", "no collision: another owner");
    const jwtClient = await connectClient(gateway, "files", jwtAlice);
    clients.push(jwtClient);
    await within(jwtClient.callTool({ name: "echo", arguments: { text: "j" } }), 5_000, "echo");
    await within(fileClient.callTool({ name: "echo", arguments: { text: "f" } }), 5_000, "echo");
    assert.deepEqual(jwtServer.log.calls, ["echo"]);
    assert.deepEqual(fileServer.log.calls, ["echo"]);
    const jwtList = await call(gateway, "/reverse-proxy/sessions", jwtAlice);
    assert.deepEqual(
      (jwtList.body.sessions as { session_id: string; user: string }[]).map((s) => s.user),
      ["jwt:alice"],
    );

    // The operator's mapping: a tokens-file token written for owner jwt:alice acts as the JWT alice.
    const mapped = await call(gateway, "/reverse-proxy/sessions", MAPPED_TOKEN);
    assert.deepEqual(
      (mapped.body.sessions as { session_id: string }[]).map((s) => s.session_id),
      [String(jwtServer.ack.sessionId)],
    );
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    for (const server of served) await server.close();
    await gateway.close();
  }
});

Deno.test("a 401 from the gateway says: static bearer token, how to send it, no OAuth", async () => {
  const gateway = await startJwtGateway();
  try {
    const paths = ["/servers/files/mcp", "/reverse-proxy/sessions"];
    for (const [path, token] of paths.flatMap((p) => [[p, undefined], [p, "tok-wrong"]] as const)) {
      const refused = await call(gateway, path, token, {
        method: path.endsWith("/mcp") ? "POST" : "GET",
        ...(path.endsWith("/mcp") ? { headers: MCP_HEADERS, body: initializeBody() } : {}),
      });
      assert.equal(refused.status, 401, path);
      const challenge = refused.headers.get("www-authenticate") ?? "";
      assert.match(
        challenge,
        /^Bearer realm="mcp-rproxy", error="invalid_token", error_description="[^"\\]+"$/,
      );
      assert.match(
        challenge,
        /static bearer token, not OAuth: send the header Authorization: Bearer TOKEN/,
      );
      assert.doesNotMatch(challenge, /resource_metadata|scope=/);
      assert.equal(refused.body.error, "invalid_token");
      assert.match(String(refused.body.error_description), /static bearer token/);
      assert.deepEqual(refused.body.authentication, {
        scheme: "Bearer",
        header: "Authorization: Bearer TOKEN",
        oauth: false,
      });
    }
  } finally {
    await gateway.close();
  }
});

Deno.test("the OAuth discovery paths answer 404, with or without a token", async () => {
  const gateway = await startJwtGateway();
  try {
    const paths = [
      "/.well-known/oauth-protected-resource",
      "/.well-known/oauth-protected-resource/servers/files/mcp",
      "/.well-known/oauth-authorization-server",
      "/.well-known/oauth-authorization-server/servers/files/mcp",
      "/.well-known/openid-configuration",
    ];
    for (const path of paths) {
      for (const token of [undefined, TOKENS.alice]) {
        const answer = await call(gateway, path, token);
        assert.equal(answer.status, 404, `${path} ${token ? "with" : "without"} a token`);
        assert.equal(answer.headers.get("www-authenticate"), null, path);
      }
    }
    // What an OAuth client does next: dynamic client registration at the default path.
    const register = await call(gateway, "/register", undefined, { method: "POST", body: "{}" });
    assert.equal(register.status, 404);
  } finally {
    await gateway.close();
  }
});
