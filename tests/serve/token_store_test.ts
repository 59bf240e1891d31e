// The token store: tokens-file and JWT identities behind one lookup, in separate owner namespaces; reloads
// that keep the old tokens on a bad file; and the 401/403 answers.

import assert from "node:assert/strict";
import {
  authorizeRequest,
  bearerToken,
  createTokenStore,
  type TokenStore,
} from "../../lib/serve/token_store.ts";
import { JWT_SECRET, signJwt } from "../fixtures/jwt.ts";

const SECRET = JWT_SECRET;
const NOW = Date.UTC(2026, 0, 1);
const exp = NOW / 1000 + 3600;

async function jwtStore(
  options: { audience?: string; issuer?: string; allowNoExp?: boolean; tokensFile?: string } = {},
): Promise<TokenStore> {
  const { tokensFile, ...jwt } = options;
  return await createTokenStore({
    jwt: { secret: SECRET, ...jwt },
    now: () => NOW,
    ...(tokensFile === undefined ? {} : { tokensFile }),
  });
}

async function rejection(store: TokenStore, token: string): Promise<string | undefined> {
  const result = await store.check(token);
  return "rejected" in result ? result.rejected : undefined;
}

Deno.test("createTokenStore() authenticates file tokens and refuses others", async () => {
  const store = await createTokenStore({
    tokensFile: "tok-a: alice\ntok-b: {owner: bob, roles: [client]}",
  });
  const alice = await store.authenticate("tok-a");
  assert.equal(alice?.owner, "alice");
  assert.equal(alice?.source, "tokens-file");
  assert.deepEqual([...(await store.authenticate("tok-b"))!.roles], ["client"]);
  assert.equal(await store.authenticate("tok-"), undefined);
  assert.equal(await store.authenticate("tok-aa"), undefined);
  assert.equal(await store.authenticate(""), undefined);
  assert.equal(await rejection(store, "tok-aa"), "unknown");
  assert.equal(await rejection(store, ""), "missing");
});

Deno.test("createTokenStore() gives admins the client role too", async () => {
  const store = await createTokenStore({ tokensFile: "tok: {owner: ops, roles: [admin]}" });
  const identity = await store.authenticate("tok");
  assert.ok(identity?.roles.has("admin") && identity.roles.has("client"));
  assert.ok(!identity?.roles.has("connect"));
});

Deno.test("createTokenStore() accepts valid JWTs as jwt: owners with ContextForge roles", async () => {
  const store = await jwtStore();
  const withEmail = await store.authenticate(await signJwt({ sub: "u1", email: "a@x.io", exp }));
  assert.equal(withEmail?.owner, "jwt:a@x.io");
  assert.equal(withEmail?.source, "jwt");
  assert.equal((await store.authenticate(await signJwt({ sub: "u1", exp })))?.owner, "jwt:u1");
  const contextForge = await signJwt({
    sub: "u2",
    user: { email: "cf@x.io", is_admin: true },
    exp,
  });
  const identity = await store.authenticate(contextForge);
  assert.equal(identity?.owner, "jwt:cf@x.io");
  assert.ok(identity?.roles.has("admin"));
  const narrowed = await store.authenticate(
    await signJwt({ sub: "u", exp, scopes: { permissions: ["servers.create"] } }),
  );
  assert.deepEqual([...narrowed!.roles], ["connect"]);
});

Deno.test("createTokenStore() refuses each bad JWT with its reason", async () => {
  const store = await jwtStore({ audience: "aud", issuer: "iss" });
  const ok = { sub: "u", exp, aud: "aud", iss: "iss" };
  assert.equal(await rejection(store, await signJwt(ok)), undefined);
  const cases: [Record<string, unknown>, { secret?: string; alg?: string }, string][] = [
    [ok, { alg: "none" }, "algorithm"],
    [ok, { alg: "HS512" }, "algorithm"],
    [ok, { alg: "RS256" }, "algorithm"],
    [ok, { secret: "other" }, "signature"],
    [{ ...ok, exp: NOW / 1000 }, {}, "expired"],
    [{ ...ok, exp: undefined }, {}, "no-exp"],
    [{ ...ok, nbf: NOW / 1000 + 60 }, {}, "not-yet-valid"],
    [{ ...ok, aud: "other" }, {}, "audience"],
    [{ ...ok, iss: "other" }, {}, "issuer"],
    [{ ...ok, sub: undefined }, {}, "no-subject"],
  ];
  for (const [claims, options, reason] of cases) {
    const token = await signJwt(claims, options);
    assert.equal(await rejection(store, token), reason, `${JSON.stringify(claims)} ${reason}`);
    assert.equal(await store.authenticate(token), undefined);
  }
  assert.equal(await rejection(store, "a.b.c"), "malformed");
  const lenient = await jwtStore({ allowNoExp: true });
  assert.equal((await lenient.authenticate(await signJwt({ sub: "u" })))?.owner, "jwt:u");
});

Deno.test("createTokenStore() keeps a JWT subject and the same tokens-file owner apart", async () => {
  const store = await jwtStore({ tokensFile: "tok-file-alice: alice\ntok-mapped: jwt:alice\n" });
  const fromFile = await store.authenticate("tok-file-alice");
  const fromJwt = await store.authenticate(await signJwt({ sub: "alice", exp }));
  assert.equal(fromFile?.owner, "alice");
  assert.equal(fromJwt?.owner, "jwt:alice");
  assert.notEqual(fromFile?.owner, fromJwt?.owner);
  // The operator's explicit mapping: a tokens-file owner written in the JWT namespace.
  assert.equal((await store.authenticate("tok-mapped"))?.owner, fromJwt?.owner);
  assert.equal((await store.authenticate("tok-mapped"))?.source, "tokens-file");
});

Deno.test("replaceTokensFile() swaps the tokens, and a bad file leaves the old ones in use", async () => {
  const store = await createTokenStore({ tokensFile: "tok-old: alice\n" });
  assert.equal(store.replaceTokensFile("tok-old: alice\ntok-new: bob\n"), 2);
  assert.equal((await store.authenticate("tok-new"))?.owner, "bob");
  assert.throws(() => store.replaceTokensFile("tok-x: {owner: bob, roles: [root]}"), SyntaxError);
  assert.equal((await store.authenticate("tok-new"))?.owner, "bob");
  assert.equal(store.replaceTokensFile("tok-new: carol\n"), 1);
  assert.equal(await store.authenticate("tok-old"), undefined, "a removed token stops working");
  assert.equal((await store.authenticate("tok-new"))?.owner, "carol");
});

Deno.test("bearerToken() reads only the Authorization header", () => {
  assert.equal(
    bearerToken(new Request("http://x/", { headers: { authorization: "Bearer abc" } })),
    "abc",
  );
  assert.equal(
    bearerToken(new Request("http://x/", { headers: { authorization: "bearer  abc " } })),
    "abc",
  );
  assert.equal(bearerToken(new Request("http://x/?token=abc")), undefined);
  assert.equal(
    bearerToken(new Request("http://x/", { headers: { authorization: "Basic abc" } })),
    undefined,
  );
});

Deno.test("authorizeRequest() answers 401 without a valid token and 403 without the role", async () => {
  const store = await createTokenStore({ tokensFile: "tok-a: {owner: a, roles: [client]}" });
  const request = (token?: string) =>
    new Request("http://x/", token ? { headers: { authorization: `Bearer ${token}` } } : {});
  const none = await authorizeRequest(store, request(), { role: "client" });
  assert.ok(none instanceof Response && none.status === 401);
  await none.body?.cancel();
  const wrong = await authorizeRequest(store, request("nope"), { role: "client" });
  assert.ok(wrong instanceof Response && wrong.status === 401);
  await wrong.body?.cancel();
  const forbidden = await authorizeRequest(store, request("tok-a"), { role: "connect" });
  assert.ok(forbidden instanceof Response && forbidden.status === 403);
  await forbidden.body?.cancel();
  const ok = await authorizeRequest(store, request("tok-a"), { role: "client" });
  assert.ok(!(ok instanceof Response) && ok.owner === "a");
});

/** Parses `Bearer k="v", k2="v2"` (quoted-string values without escapes, as RFC 6750 §3 allows). */
function challenge(header: string): Record<string, string> {
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

Deno.test("authorizeRequest() 401 says in WWW-Authenticate and the body: a static bearer token, no OAuth", async () => {
  const store = await createTokenStore({ tokensFile: "tok-a: a" });
  for (const token of [undefined, "nope"]) {
    const refused = await authorizeRequest(
      store,
      new Request("http://x/", token ? { headers: { authorization: `Bearer ${token}` } } : {}),
      { role: "client" },
    );
    assert.ok(refused instanceof Response);
    const params = challenge(refused.headers.get("www-authenticate") ?? "");
    assert.equal(params.realm, "mcp-rproxy");
    assert.equal(params.error, "invalid_token");
    assert.match(params.error_description ?? "", /static bearer token/);
    assert.match(params.error_description ?? "", /Authorization: Bearer TOKEN/);
    assert.match(params.error_description ?? "", token ? /not accepted/ : /No bearer token/);
    assert.equal(params.resource_metadata, undefined, "nothing points OAuth clients to discovery");
    const body = await refused.json();
    assert.equal(body.error, "invalid_token");
    assert.equal(body.error_description, params.error_description);
    assert.equal(body.authentication.oauth, false);
  }
});
