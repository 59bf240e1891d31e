// OAuthIssuer and the OAuth source of the token store on their own: discovery (its mix-up check, its
// failures and their bounded retry), the algorithms, token types and claims accepted, and scopes → roles.
// The issuer is a small real HTTP server publishing a discovery document and a JWKS of a WebCrypto key,
// so that a test can sign what an attacker would; the full authorization server is in gateway_oauth_test.

import assert from "node:assert/strict";
import { OAuthIssuer } from "../../lib/serve/oauth_issuer.ts";
import { createTokenStore } from "../../lib/serve/token_store.ts";
import { b64url, jwtPart, signJwt } from "../fixtures/jwt.ts";
import { startOAuthServer } from "../fixtures/oauth_server.ts";

const RESOURCE = "http://127.0.0.1:9/servers/files/mcp";

/** A minimal issuer: discovery + JWKS on loopback, an ES256 key, and a switch that makes it answer 503. */
interface KeyServer extends AsyncDisposable {
  readonly issuer: string;
  /** Requests seen, by path. */
  readonly hits: Map<string, number>;
  failing: boolean;
  /** Signs `claims` with the published key (ES256), or with `header` overriding the default header. */
  sign(claims: Record<string, unknown>, header?: Record<string, unknown>): Promise<string>;
}

async function startKeyServer(): Promise<KeyServer> {
  const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ]);
  const jwk = { ...await crypto.subtle.exportKey("jwk", pair.publicKey), kid: "k1", alg: "ES256" };
  delete jwk.key_ops;
  delete jwk.ext;
  const hits = new Map<string, number>();
  const state = { failing: false };
  const server: Deno.HttpServer<Deno.NetAddr> = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: () => {},
  }, (request): Response => {
    const path = new URL(request.url).pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    if (state.failing) return new Response("down", { status: 503 });
    if (path === "/.well-known/openid-configuration") {
      return Response.json({ issuer, jwks_uri: `${issuer}/jwks` });
    }
    if (path === "/jwks") return Response.json({ keys: [jwk] });
    return new Response("not found", { status: 404 });
  });
  const issuer: string = `http://127.0.0.1:${server.addr.port}`;
  return {
    issuer,
    hits,
    get failing() {
      return state.failing;
    },
    set failing(value: boolean) {
      state.failing = value;
    },
    async sign(claims, header = { alg: "ES256", typ: "at+jwt", kid: "k1" }) {
      const input = `${jwtPart(header)}.${jwtPart(claims)}`;
      const signature = await crypto.subtle.sign(
        { name: "ECDSA", hash: "SHA-256" },
        pair.privateKey,
        new TextEncoder().encode(input),
      );
      return `${input}.${b64url(new Uint8Array(signature))}`;
    },
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

function claims(issuer: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: issuer,
    sub: "alice",
    aud: RESOURCE,
    scope: "mcp:client",
    exp: Math.floor(Date.now() / 1000) + 300,
    ...extra,
  };
}

Deno.test("OAuthIssuer.discover() finds the JWKS of oidc-provider, and refuses metadata naming another issuer", async () => {
  const as = await startOAuthServer();
  try {
    const issuer = new OAuthIssuer({ url: as.issuer, cooldownMs: 0 });
    assert.deepEqual(await issuer.discover(), { issuer: as.issuer, jwksUri: `${as.issuer}/jwks` });
    // Same server, another name: its metadata says 127.0.0.1, so this is a mix-up, not a match.
    const renamed = new OAuthIssuer({
      url: as.issuer.replace("127.0.0.1", "localhost"),
      cooldownMs: 0,
    });
    await assert.rejects(
      renamed.discover(),
      new RegExp(
        `describes issuer "${as.issuer}", not http://localhost:\\d+; check --oauth-issuer`,
      ),
    );
  } finally {
    await as.stop();
  }
});

Deno.test("OAuthIssuer accepts asymmetric access tokens for the audience and refuses none, HS256, other types and missing claims", async () => {
  await using keys = await startKeyServer();
  const issuer = new OAuthIssuer({ url: keys.issuer, cooldownMs: 0 });
  const verify = (token: string) => issuer.verify(token, { audience: RESOURCE, now: Date.now() });
  const good = await verify(await keys.sign(claims(keys.issuer)));
  assert.ok("claims" in good, JSON.stringify(good));
  const listed = await verify(await keys.sign(claims(keys.issuer, { aud: ["other", RESOURCE] })));
  assert.ok("claims" in listed, "an audience list containing the resource");
  const plainType = await keys.sign(claims(keys.issuer), { alg: "ES256", typ: "JWT", kid: "k1" });
  assert.ok("claims" in await verify(plainType), "typ JWT, as most servers write it");

  const refusals: [string, string][] = [
    [`${jwtPart({ alg: "none" })}.${jwtPart(claims(keys.issuer))}.`, "algorithm"],
    [await signJwt(claims(keys.issuer)), "algorithm"],
    [
      await keys.sign(claims(keys.issuer), { alg: "ES256", typ: "logout+jwt", kid: "k1" }),
      "token-type",
    ],
    [await keys.sign(claims(keys.issuer, { aud: "http://127.0.0.1:9/servers/x/mcp" })), "audience"],
    [await keys.sign(claims(keys.issuer, { exp: Math.floor(Date.now() / 1000) - 1 })), "expired"],
    [await keys.sign(claims(keys.issuer, { exp: undefined })), "no-exp"],
    [await keys.sign(claims(keys.issuer, { sub: undefined })), "no-subject"],
    [await keys.sign(claims(keys.issuer, { iss: "https://evil.example" })), "issuer"],
    [await keys.sign(claims(keys.issuer), { alg: "ES256", kid: "k2" }), "unknown-key"],
  ];
  for (const [token, reason] of refusals) {
    assert.deepEqual(await verify(token), { rejected: reason }, reason);
  }
});

Deno.test("OAuthIssuer: a failed discovery refuses tokens as keys-unavailable and is retried at most once per cooldown", async () => {
  await using keys = await startKeyServer();
  keys.failing = true;
  const slow = new OAuthIssuer({ url: keys.issuer, cooldownMs: 600_000 });
  const token = await keys.sign(claims(keys.issuer));
  const verify = (issuer: OAuthIssuer) =>
    issuer.verify(token, { audience: RESOURCE, now: Date.now() });
  assert.deepEqual(await verify(slow), { rejected: "keys-unavailable" });
  const tried = keys.hits.get("/.well-known/openid-configuration");
  assert.equal(tried, 1);
  keys.failing = false;
  assert.deepEqual(await verify(slow), { rejected: "keys-unavailable" }, "within the cooldown");
  assert.equal(keys.hits.get("/.well-known/openid-configuration"), 1, "no second discovery");

  keys.failing = true;
  const eager = new OAuthIssuer({ url: keys.issuer, cooldownMs: 0 });
  assert.deepEqual(await verify(eager), { rejected: "keys-unavailable" });
  keys.failing = false;
  assert.ok("claims" in await verify(eager), "discovery tried again after the cooldown");
});

Deno.test("createTokenStore() with OAuth: owner oauth:<issuer>#<sub>, roles from scope or scp, no resource no token", async () => {
  await using keys = await startKeyServer();
  const store = await createTokenStore({
    tokensFile: "tok-a: alice\n",
    oauth: { issuers: [keys.issuer], jwksCooldownMs: 0 },
  });
  const cases: [Record<string, unknown>, string[]][] = [
    [{ scope: "mcp:client" }, ["client"]],
    [{ scope: "mcp:connect mcp:admin" }, ["connect", "admin", "client"]],
    [{ scope: undefined, scp: ["mcp:connect", "other"] }, ["connect"]],
    [{ scope: "openid profile" }, []],
  ];
  for (const [extra, roles] of cases) {
    const result = await store.check(await keys.sign(claims(keys.issuer, extra)), RESOURCE);
    assert.ok("identity" in result, JSON.stringify(result));
    assert.equal(result.identity.owner, `oauth:${keys.issuer}#alice`);
    assert.equal(result.identity.source, "oauth");
    assert.deepEqual([...result.identity.roles], roles, JSON.stringify(extra));
  }
  const token = await keys.sign(claims(keys.issuer));
  assert.deepEqual(await store.check(token), { rejected: "audience" }, "no resource, no audience");
  assert.equal(await store.authenticate(token), undefined);
  assert.equal((await store.authenticate("tok-a"))?.owner, "alice", "the tokens file still first");
});
