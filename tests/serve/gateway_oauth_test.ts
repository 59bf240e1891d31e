// serve as an OAuth resource server, against a real authorization server (oidc-provider on loopback) and
// the official SDK as the client: the SDK's OAuth flow from the 401 to a tool call through a tunnel, the
// audience, expiry, scope and key-rotation rules, RFC 9728 metadata, and static tokens beside OAuth.

import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { type Gateway, type GatewayOptions, startGateway } from "../../lib/serve/gateway.ts";
import { createTokenStore } from "../../lib/serve/token_store.ts";
import { JWT_SECRET, signJwt } from "../fixtures/jwt.ts";
import { decodeJwt } from "../fixtures/jwt_check.ts";
import { completeAuthorization } from "../fixtures/oauth_flow.ts";
import { InMemoryOAuthProvider } from "../fixtures/oauth_client_provider.ts";
import { type OAuthServer, startOAuthServer } from "../fixtures/oauth_server.ts";
import { RawSseLink, register } from "../fixtures/raw_sse_link.ts";
import {
  connectClient,
  type ServedServer,
  serveTestServer,
  TOKENS,
  TOKENS_FILE,
  within,
} from "../fixtures/test_gateway.ts";

/** A connect token that the operator mapped onto an OAuth owner (see `ownerMappings`). */
const MAPPED_CONNECT = "tok-mapped-oauth-connect-0123456789";

interface OAuthGatewayOptions extends Partial<Omit<GatewayOptions, "tokens">> {
  /** Owner of {@link MAPPED_CONNECT} (a connect-only token). */
  mappedOwner?: string;
  jwksCooldownMs?: number;
  /** The store's clock. */
  now?: () => number;
}

/** A gateway on loopback that trusts `as`, with the test tokens file and the HS256 test secret beside it. */
async function startOAuthGateway(
  as: OAuthServer,
  options: OAuthGatewayOptions = {},
): Promise<Gateway> {
  const { mappedOwner, jwksCooldownMs = 0, now, ...gatewayOptions } = options;
  const mapping = mappedOwner === undefined
    ? ""
    : `${MAPPED_CONNECT}: {owner: ${JSON.stringify(mappedOwner)}, roles: [connect]}\n`;
  return await startGateway({
    tokens: await createTokenStore({
      tokensFile: `${TOKENS_FILE}${mapping}`,
      jwt: { secret: JWT_SECRET },
      oauth: { issuers: [as.issuer], jwksCooldownMs },
      ...(now === undefined ? {} : { now }),
    }),
    hostname: "127.0.0.1",
    port: 0,
    ...gatewayOptions,
  });
}

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

/** A raw request to the gateway (an MCP `initialize` POST for `/servers/…` paths), its answer read whole. */
async function request(gateway: Gateway, path: string, token?: string): Promise<Answer> {
  const headers = new Headers();
  if (token !== undefined) headers.set("authorization", `Bearer ${token}`);
  const init: RequestInit = { headers };
  if (path.startsWith("/servers/")) {
    headers.set("content-type", "application/json");
    headers.set("accept", "application/json, text/event-stream");
    init.method = "POST";
    init.body = JSON.stringify({
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
  const response = await within(fetch(`${gateway.url}${path}`, init), 5_000, `request ${path}`);
  const text = await response.text();
  const json = response.headers.get("content-type")?.includes("application/json") && text !== "";
  return { status: response.status, headers: response.headers, body: json ? JSON.parse(text) : {} };
}

/** Parses `Bearer k="v", k2="v2"` (quoted-string values without escapes, as RFC 6750 §3 allows). */
function challenge(header: string | null): Record<string, string> {
  assert.ok(header !== null, "a WWW-Authenticate header");
  assert.match(header, /^Bearer /);
  const params: Record<string, string> = {};
  const rest = header.slice("Bearer ".length);
  const pattern = /\s*([a-z_]+)="([\x20\x21\x23-\x5b\x5d-\x7e]*)"\s*(,|$)/gy;
  let match: RegExpExecArray | null;
  while ((match = pattern.exec(rest)) !== null) {
    params[match[1]!] = match[2]!;
    if (match[3] === "") break;
  }
  assert.equal(pattern.lastIndex, rest.length, `the whole challenge parses: ${header}`);
  return params;
}

Deno.test("the SDK's OAuth flow runs end to end: 401 → metadata → DCR → code + PKCE → token → tool call through a tunnel", async () => {
  const as = await startOAuthServer();
  const owner = `oauth:${as.issuer}#alice`;
  const gateway = await startOAuthGateway(as, { mappedOwner: owner });
  let served: ServedServer | undefined;
  const clients: Client[] = [];
  try {
    // alice's laptop tunnels a server with a static connect token the operator wrote for her OAuth owner.
    served = await serveTestServer(gateway, "files", MAPPED_CONNECT);
    const url = new URL(`${gateway.url}/servers/files/mcp`);
    const provider = new InMemoryOAuthProvider();

    // First attempt: the 401 sends the SDK to discovery, registration and the authorization URL.
    const first = new Client({ name: "oauth-client", version: "1" });
    clients.push(first);
    await assert.rejects(
      within(
        first.connect(new StreamableHTTPClientTransport(url, { authProvider: provider })),
        10_000,
        "the unauthorized connect",
      ),
      UnauthorizedError,
    );
    assert.equal(provider.registrations.length, 1, "dynamic client registration happened once");
    const authorizationUrl = provider.authorizationUrls[0];
    assert.ok(authorizationUrl, "the SDK asked the user to open an authorization URL");
    assert.equal(authorizationUrl.origin, as.issuer);
    assert.equal(authorizationUrl.searchParams.get("resource"), url.href);
    assert.equal(authorizationUrl.searchParams.get("scope"), "mcp:client");
    assert.equal(authorizationUrl.searchParams.get("code_challenge_method"), "S256");

    // The user signs in and consents; the client gets the code at its redirect URI.
    const redirect = await completeAuthorization(authorizationUrl.href, { login: "alice" });
    const code = redirect.searchParams.get("code");
    assert.ok(code, `a code in ${redirect}`);
    const finishing = new StreamableHTTPClientTransport(url, { authProvider: provider });
    await within(finishing.finishAuth(code), 10_000, "the code exchange");
    await finishing.close();
    const accessToken = provider.tokens()?.access_token;
    assert.ok(accessToken, "the SDK saved an access token");
    const claims = decodeJwt(accessToken).payload;
    assert.equal(claims.aud, url.href, "the token's audience is the MCP endpoint's URL");
    assert.equal(claims.sub, "alice");

    // Second attempt: the token opens the endpoint and the call reaches the tunneled server.
    const client = new Client({ name: "oauth-client", version: "1" });
    clients.push(client);
    await within(
      client.connect(new StreamableHTTPClientTransport(url, { authProvider: provider })),
      10_000,
      "the authorized connect",
    );
    const result = await client.callTool(
      { name: "echo", arguments: { text: "through OAuth" } },
      undefined,
      { timeout: 10_000 },
    );
    assert.deepEqual(result.content, [{ type: "text", text: "through OAuth" }]);
    assert.deepEqual(served.log.calls, ["echo"]);

    // The token is for that endpoint only: the sessions API is another resource.
    const elsewhere = await request(gateway, "/reverse-proxy/sessions", accessToken);
    assert.equal(elsewhere.status, 401);
    assert.match(
      String(elsewhere.body.error_description),
      /must have the audience .*\/reverse-proxy\/sessions/,
    );
  } finally {
    for (const client of clients) await client.close();
    await served?.close();
    await gateway.close();
    await as.stop();
  }
});

Deno.test("OAuth tokens: wrong audience → 401, expired → 401, missing scope → 403, each with the challenge a client acts on", async () => {
  const as = await startOAuthServer();
  let skewMs = 0;
  const gateway = await startOAuthGateway(as, { now: () => Date.now() + skewMs });
  const served: ServedServer[] = [];
  let client: Client | undefined;
  try {
    const mcp = `${gateway.url}/servers/files/mcp`;
    const metadataUrl = `${gateway.url}/.well-known/oauth-protected-resource/servers/files/mcp`;
    // A machine client (client_credentials) tunnels with an OAuth token for the tunnel endpoint.
    const connectToken = await as.mintToken({
      resource: `${gateway.url}/reverse-proxy/ws`,
      scope: "mcp:connect",
    });
    served.push(await serveTestServer(gateway, "files", connectToken.access_token));
    // And the owner namespace: a tokens-file owner named like the OAuth subject is someone else.
    served.push(await serveTestServer(gateway, "plain", TOKENS.alice));

    const good = (await as.mintToken({ resource: mcp, scope: "mcp:client" })).access_token;
    client = await connectClient(gateway, "files", good);
    const echoed = await client.callTool({ name: "echo", arguments: { text: "m2m" } });
    assert.deepEqual(echoed.content, [{ type: "text", text: "m2m" }]);
    const sessions = await request(
      gateway,
      "/reverse-proxy/sessions",
      (await as.mintToken({
        resource: `${gateway.url}/reverse-proxy/sessions`,
        scope: "mcp:client",
      }))
        .access_token,
    );
    assert.equal(sessions.status, 200);
    assert.deepEqual(
      (sessions.body.sessions as { user: string; server_info: { name: string } }[])
        .map((s) => [s.user, s.server_info.name]),
      [[`oauth:${as.issuer}#${as.m2mClient.clientId}`, "files"]],
    );

    // Wrong audience: a token for another endpoint of the same gateway.
    const other =
      (await as.mintToken({ resource: `${gateway.url}/servers/other/mcp`, scope: "mcp:client" }))
        .access_token;
    const wrongAudience = await request(gateway, "/servers/files/mcp", other);
    assert.equal(wrongAudience.status, 401);
    const audienceChallenge = challenge(wrongAudience.headers.get("www-authenticate"));
    assert.equal(audienceChallenge.error, "invalid_token");
    assert.equal(audienceChallenge.resource_metadata, metadataUrl);
    assert.equal(audienceChallenge.scope, "mcp:client");
    assert.match(
      audienceChallenge.error_description ?? "",
      new RegExp(`must have the audience ${mcp}`),
    );

    // Expired: the same kind of token as `good`, once its exp has passed on the gateway's clock.
    // (A minute to live, so that a loaded machine cannot expire it before the first request.)
    await as.setAccessTokenTtl(60);
    const shortLived = (await as.mintToken({ resource: mcp, scope: "mcp:client" })).access_token;
    assert.equal((await request(gateway, "/servers/files/mcp", shortLived)).status, 200);
    skewMs = 120_000;
    const expired = await request(gateway, "/servers/files/mcp", shortLived);
    assert.equal(expired.status, 401);
    assert.equal(challenge(expired.headers.get("www-authenticate")).error, "invalid_token");
    assert.match(String(expired.body.error_description), /^The access token has expired\./);
    skewMs = 0;

    // Missing scope: a valid token for this endpoint that only may connect.
    const connectOnly = (await as.mintToken({ resource: mcp, scope: "mcp:connect" })).access_token;
    const forbidden = await request(gateway, "/servers/files/mcp", connectOnly);
    assert.equal(forbidden.status, 403);
    const scopeChallenge = challenge(forbidden.headers.get("www-authenticate"));
    assert.equal(scopeChallenge.error, "insufficient_scope");
    assert.equal(scopeChallenge.scope, "mcp:client");
    assert.equal(scopeChallenge.resource_metadata, metadataUrl);
    assert.equal(forbidden.body.scope, "mcp:client");

    // Namespaces: the OAuth owner sees no tokens-file owner's server, whatever the names.
    const plain =
      (await as.mintToken({ resource: `${gateway.url}/servers/plain/mcp`, scope: "mcp:client" }))
        .access_token;
    assert.equal((await request(gateway, "/servers/plain/mcp", plain)).status, 404);
  } finally {
    await client?.close();
    for (const server of served) await server.close();
    await gateway.close();
    await as.stop();
  }
});

Deno.test("a rotated signing key is picked up from the JWKS, and a dropped one stops verifying", async () => {
  const as = await startOAuthServer({ alg: "ES256" });
  const gateway = await startOAuthGateway(as, { jwksCooldownMs: 0 });
  try {
    const resource = `${gateway.url}/reverse-proxy/sessions`;
    const before = (await as.mintToken({ resource, scope: "mcp:client" })).access_token;
    assert.equal((await request(gateway, "/reverse-proxy/sessions", before)).status, 200);
    const rotated = await as.rotateKeys({ keepOld: false });
    const after = (await as.mintToken({ resource, scope: "mcp:client" })).access_token;
    assert.equal(decodeJwt(after).header.kid, rotated.kid);
    assert.notEqual(decodeJwt(before).header.kid, rotated.kid);
    // The new kid is not in the cached key set: the gateway fetches the JWKS again and finds it.
    assert.equal((await request(gateway, "/reverse-proxy/sessions", after)).status, 200);
    // The old key left the JWKS: a token it signed no longer verifies.
    const old = await request(gateway, "/reverse-proxy/sessions", before);
    assert.equal(old.status, 401);
    assert.match(String(old.body.error_description), /signature does not verify/);
  } finally {
    await gateway.close();
    await as.stop();
  }
});

Deno.test("--oauth-jwks-cooldown bounds refetches: a new key is not fetched again within the cooldown", async () => {
  const as = await startOAuthServer();
  const gateway = await startOAuthGateway(as, { jwksCooldownMs: 600_000 });
  try {
    const resource = `${gateway.url}/reverse-proxy/sessions`;
    const before = (await as.mintToken({ resource, scope: "mcp:client" })).access_token;
    assert.equal((await request(gateway, "/reverse-proxy/sessions", before)).status, 200);
    await as.rotateKeys();
    const after = (await as.mintToken({ resource, scope: "mcp:client" })).access_token;
    const refused = await request(gateway, "/reverse-proxy/sessions", after);
    assert.equal(refused.status, 401, "a kid unknown within the cooldown is refused, not fetched");
    assert.equal((await request(gateway, "/reverse-proxy/sessions", before)).status, 200);
  } finally {
    await gateway.close();
    await as.stop();
  }
});

Deno.test("RFC 9728 metadata is served per endpoint under --public-url, and the 401 points to it", async () => {
  const as = await startOAuthServer();
  const base = "https://gw.example.com/prefix";
  const gateway = await startOAuthGateway(as, { publicUrl: `${base}/` });
  try {
    const expected = [
      ["/servers/files/mcp", ["mcp:client"]],
      ["/reverse-proxy/sessions", ["mcp:client", "mcp:admin"]],
      ["/reverse-proxy/ws", ["mcp:connect"]],
    ] as const;
    for (const [path, scopes] of expected) {
      const answer = await request(gateway, `/.well-known/oauth-protected-resource${path}`);
      assert.equal(answer.status, 200, path);
      assert.equal(answer.headers.get("access-control-allow-origin"), "*");
      assert.deepEqual(answer.body, {
        resource: `${base}${path}`,
        authorization_servers: [as.issuer],
        scopes_supported: scopes,
        bearer_methods_supported: ["header"],
        resource_name: answer.body.resource_name,
      });
    }
    // The gateway as a whole is no resource: a client falling back there would get a useless token.
    for (const path of ["", "/", "/servers/files", "/healthz"]) {
      const answer = await request(gateway, `/.well-known/oauth-protected-resource${path}`);
      assert.equal(answer.status, 404, path);
    }

    const missing = await request(gateway, "/servers/files/mcp");
    assert.equal(missing.status, 401);
    assert.deepEqual(challenge(missing.headers.get("www-authenticate")), {
      realm: "mcp-rproxy",
      resource_metadata: `${base}/.well-known/oauth-protected-resource/servers/files/mcp`,
      scope: "mcp:client",
    });
    assert.equal(missing.body.error, "invalid_token");
    assert.deepEqual(missing.body.authentication, {
      scheme: "Bearer",
      header: "Authorization: Bearer TOKEN",
      oauth: true,
      resource: `${base}/servers/files/mcp`,
      resource_metadata: `${base}/.well-known/oauth-protected-resource/servers/files/mcp`,
      scope: "mcp:client",
    });
    const sessions = await request(gateway, "/reverse-proxy/sessions/abc/messages", "nope");
    assert.equal(sessions.status, 401);
    const params = challenge(sessions.headers.get("www-authenticate"));
    assert.equal(
      params.resource_metadata,
      `${base}/.well-known/oauth-protected-resource/reverse-proxy/sessions`,
    );
    assert.equal(params.error, "invalid_token");

    // The resource URL is built on --public-url, never on the address the request came to.
    const forListenAddress = await as.mintToken({
      resource: `${gateway.url}/reverse-proxy/sessions`,
      scope: "mcp:client",
    });
    assert.equal(
      (await request(gateway, "/reverse-proxy/sessions", forListenAddress.access_token)).status,
      401,
    );
    const forPublicUrl = await as.mintToken({
      resource: `${base}/reverse-proxy/sessions`,
      scope: "mcp:client",
    });
    assert.equal(
      (await request(gateway, "/reverse-proxy/sessions", forPublicUrl.access_token)).status,
      200,
    );
  } finally {
    await gateway.close();
    await as.stop();
  }
});

Deno.test("tokens-file tokens and HS256 JWTs keep working beside OAuth, and the HS256 secret cannot mint an OAuth owner", async () => {
  const as = await startOAuthServer();
  const gateway = await startOAuthGateway(as);
  const served: ServedServer[] = [];
  const clients: Client[] = [];
  try {
    const exp = Math.floor(Date.now() / 1000) + 600;
    served.push(await serveTestServer(gateway, "files", TOKENS.alice));
    served.push(await serveTestServer(gateway, "files", await signJwt({ sub: "alice", exp })));
    clients.push(await connectClient(gateway, "files", TOKENS.alice));
    clients.push(await connectClient(gateway, "files", await signJwt({ sub: "alice", exp })));
    for (const [i, client] of clients.entries()) {
      const result = await client.callTool({ name: "echo", arguments: { text: `c${i}` } });
      assert.deepEqual(result.content, [{ type: "text", text: `c${i}` }]);
    }
    assert.deepEqual(served.map((s) => s.log.calls), [["echo"], ["echo"]]);

    // An HS256 JWT claiming the OAuth issuer goes to that issuer's keys, and HS256 is not among them.
    const forged = await signJwt({
      iss: as.issuer,
      sub: "alice",
      aud: `${gateway.url}/servers/files/mcp`,
      scope: "mcp:client",
      exp,
    });
    const refused = await request(gateway, "/servers/files/mcp", forged);
    assert.equal(refused.status, 401);
    assert.match(String(refused.body.error_description), /not signed with an algorithm/);
    // Nor does an OAuth access token pass as an HS256 JWT where no issuer claims it.
    const plainGateway = await startGateway({
      tokens: await createTokenStore({ tokensFile: TOKENS_FILE, jwt: { secret: JWT_SECRET } }),
      hostname: "127.0.0.1",
      port: 0,
    });
    try {
      const token = await as.mintToken({ resource: `${plainGateway.url}/reverse-proxy/sessions` });
      const answer = await request(plainGateway, "/reverse-proxy/sessions", token.access_token);
      assert.equal(answer.status, 401);
      assert.equal(challenge(answer.headers.get("www-authenticate")).resource_metadata, undefined);
    } finally {
      await plainGateway.close();
    }
  } finally {
    for (const client of clients) await client.close();
    for (const server of served) await server.close();
    await gateway.close();
    await as.stop();
  }
});

Deno.test("legacy HTTP+SSE is an OAuth resource of its own: a token for its /sse URL runs a tool through the SDK's SSEClientTransport, and its 401 points to its metadata", async () => {
  const as = await startOAuthServer();
  const gateway = await startOAuthGateway(as);
  let served: ServedServer | undefined;
  let client: Client | undefined;
  try {
    const connectToken = await as.mintToken({
      resource: `${gateway.url}/reverse-proxy/ws`,
      scope: "mcp:connect",
    });
    served = await serveTestServer(gateway, "files", connectToken.access_token);
    const sse = `${gateway.url}/servers/files/sse`;
    const metadataUrl = `${gateway.url}/.well-known/oauth-protected-resource/servers/files/sse`;

    // No token: the challenge an OAuth client starts from, naming the legacy resource's metadata.
    const refused = await within(
      fetch(sse, { headers: { accept: "text/event-stream" } }),
      5_000,
      "the unauthenticated GET",
    );
    await refused.body?.cancel();
    assert.equal(refused.status, 401);
    assert.equal(challenge(refused.headers.get("www-authenticate")).resource_metadata, metadataUrl);
    const metadata = await request(
      gateway,
      "/.well-known/oauth-protected-resource/servers/files/sse",
    );
    assert.equal(metadata.body.resource, sse);
    assert.deepEqual(metadata.body.scopes_supported, ["mcp:client"]);

    // A token for the legacy resource opens the stream, and its POSTs to /messages are taken too.
    const token = (await as.mintToken({ resource: sse, scope: "mcp:client" })).access_token;
    client = new Client({ name: "legacy-oauth", version: "1" });
    await within(
      client.connect(
        new SSEClientTransport(new URL(sse), {
          requestInit: { headers: { Authorization: `Bearer ${token}` } },
        }),
      ),
      10_000,
      "the legacy client to connect",
    );
    const echoed = await client.callTool({ name: "echo", arguments: { text: "legacy oauth" } });
    assert.deepEqual(echoed.content, [{ type: "text", text: "legacy oauth" }]);

    // The Streamable HTTP endpoint is another resource: its token does not open the legacy one.
    const mcpToken =
      (await as.mintToken({ resource: `${gateway.url}/servers/files/mcp`, scope: "mcp:client" }))
        .access_token;
    const other = await within(
      fetch(sse, { headers: { accept: "text/event-stream", authorization: `Bearer ${mcpToken}` } }),
      5_000,
      "the GET with the /mcp token",
    );
    await other.body?.cancel();
    assert.equal(other.status, 401);
    assert.match(
      challenge(other.headers.get("www-authenticate")).error_description ?? "",
      /must have the audience .*\/servers\/files\/sse/,
    );
  } finally {
    await client?.close();
    await served?.close();
    await gateway.close();
    await as.stop();
  }
});

Deno.test("an OAuth connect token for the tunnel endpoint also opens and feeds an SSE link, as connect's fallback uses it", async () => {
  const as = await startOAuthServer();
  const gateway = await startOAuthGateway(as);
  let link: RawSseLink | Response | undefined;
  try {
    const token = (await as.mintToken({
      resource: `${gateway.url}/reverse-proxy/ws`,
      scope: "mcp:connect",
    })).access_token;
    link = await within(RawSseLink.open(gateway, token), 5_000, "the SSE link to open");
    if (link instanceof Response) {
      assert.fail(`the SSE link was refused ${link.status}: ${await link.text()}`);
    }
    const sent = await link.post(0, register("files"), token);
    assert.equal(sent.status, 202, sent.text);
    const ack = await link.frame("register_ack");
    assert.equal(ack.status, "success");
    const sessions = await request(
      gateway,
      "/reverse-proxy/sessions",
      (await as.mintToken({
        resource: `${gateway.url}/reverse-proxy/sessions`,
        scope: "mcp:client",
      })).access_token,
    );
    assert.deepEqual(
      (sessions.body.sessions as { user: string }[]).map((s) => s.user),
      [`oauth:${as.issuer}#${as.m2mClient.clientId}`],
    );
  } finally {
    if (link instanceof RawSseLink) await link.close();
    else await link?.body?.cancel();
    await gateway.close();
    await as.stop();
  }
});
