import assert from "node:assert/strict";
import {
  authorizeRequest,
  bearerToken,
  createTokenStore,
  parseTokensFile,
} from "../../lib/serve/token_store.ts";

const encoder = new TextEncoder();
const SECRET = "my-test-key-that-is-long-enough";
const NOW = Date.UTC(2026, 0, 1);

function b64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(
    /=+$/,
    "",
  );
}

async function signJwt(
  claims: Record<string, unknown>,
  options: { secret?: string; alg?: string } = {},
): Promise<string> {
  const { secret = SECRET, alg = "HS256" } = options;
  const header = b64url(encoder.encode(JSON.stringify({ alg, typ: "JWT" })));
  const payload = b64url(encoder.encode(JSON.stringify(claims)));
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const signature = new Uint8Array(
    await crypto.subtle.sign("HMAC", key, encoder.encode(`${header}.${payload}`)),
  );
  return `${header}.${payload}.${b64url(signature)}`;
}

const exp = NOW / 1000 + 3600;

async function jwtStore(
  options: { audience?: string; issuer?: string; allowNoExp?: boolean } = {},
) {
  return await createTokenStore({ jwt: { secret: SECRET, ...options }, now: () => NOW });
}

Deno.test("parseTokensFile() reads one token per line with optional owner and comments", () => {
  const entries = parseTokensFile("# comment\n\ntok-a\ntok-b bob\n");
  assert.deepEqual(entries.map((e) => [e.token, e.owner, e.roles]), [
    ["tok-a", "default", ["connect", "client"]],
    ["tok-b", "bob", ["connect", "client"]],
  ]);
});

Deno.test("parseTokensFile() reads a YAML map of owners and of {owner, roles}", () => {
  const entries = parseTokensFile(
    "tok-a: alice\ntok-b: {owner: bob, roles: [connect]}\ntok-c:\n  owner: ops\n  roles: [admin]\n",
  );
  assert.deepEqual(entries.map((e) => [e.token, e.owner, e.roles]), [
    ["tok-a", "alice", ["connect", "client"]],
    ["tok-b", "bob", ["connect"]],
    ["tok-c", "ops", ["admin"]],
  ]);
});

Deno.test("parseTokensFile() refuses unknown roles and missing owners without echoing the token", () => {
  assert.throws(
    () => parseTokensFile("secret-tok: {owner: bob, roles: [root]}"),
    (error: Error) =>
      error instanceof SyntaxError && /unknown role "root"/.test(error.message) &&
      !error.message.includes("secret-tok"),
  );
  assert.throws(() => parseTokensFile("secret-tok: {roles: [client]}"), SyntaxError);
  assert.throws(() => parseTokensFile("a b c"), /expected 'TOKEN' or 'TOKEN OWNER'/);
});

Deno.test("createTokenStore() authenticates file tokens and refuses others", async () => {
  const store = await createTokenStore({
    tokensFile: "tok-a: alice\ntok-b: {owner: bob, roles: [client]}",
  });
  assert.equal((await store.authenticate("tok-a"))?.owner, "alice");
  assert.deepEqual([...(await store.authenticate("tok-b"))!.roles], ["client"]);
  assert.equal(await store.authenticate("tok-"), undefined);
  assert.equal(await store.authenticate("tok-aa"), undefined);
  assert.equal(await store.authenticate(""), undefined);
});

Deno.test("createTokenStore() gives admins the client role too", async () => {
  const store = await createTokenStore({ tokensFile: "tok: {owner: ops, roles: [admin]}" });
  const identity = await store.authenticate("tok");
  assert.ok(identity?.roles.has("admin") && identity.roles.has("client"));
  assert.ok(!identity?.roles.has("connect"));
});

Deno.test("verifyJwt() accepts a valid HS256 token; owner is email, else sub", async () => {
  const store = await jwtStore();
  const withEmail = await store.authenticate(await signJwt({ sub: "u1", email: "a@x.io", exp }));
  assert.equal(withEmail?.owner, "a@x.io");
  assert.equal(withEmail?.source, "jwt");
  assert.equal((await store.authenticate(await signJwt({ sub: "u1", exp })))?.owner, "u1");
  const contextForge = await signJwt({
    sub: "u2",
    user: { email: "cf@x.io", is_admin: true },
    exp,
  });
  const identity = await store.authenticate(contextForge);
  assert.equal(identity?.owner, "cf@x.io");
  assert.ok(identity?.roles.has("admin"));
});

Deno.test("verifyJwt() refuses expired tokens, tokens without exp, and not-yet-valid ones", async () => {
  const store = await jwtStore();
  assert.equal(
    await store.authenticate(await signJwt({ sub: "u", exp: NOW / 1000 - 1 })),
    undefined,
  );
  assert.equal(await store.authenticate(await signJwt({ sub: "u", exp: NOW / 1000 })), undefined);
  assert.equal(await store.authenticate(await signJwt({ sub: "u" })), undefined);
  assert.equal(
    await store.authenticate(await signJwt({ sub: "u", exp, nbf: NOW / 1000 + 60 })),
    undefined,
  );
  const lenient = await jwtStore({ allowNoExp: true });
  assert.equal((await lenient.authenticate(await signJwt({ sub: "u" })))?.owner, "u");
});

Deno.test("verifyJwt() refuses a bad signature, another algorithm and garbage", async () => {
  const store = await jwtStore();
  assert.equal(
    await store.authenticate(await signJwt({ sub: "u", exp }, { secret: "other" })),
    undefined,
  );
  assert.equal(
    await store.authenticate(await signJwt({ sub: "u", exp }, { alg: "none" })),
    undefined,
  );
  const good = await signJwt({ sub: "u", exp });
  const [h, , s] = good.split(".");
  const forged = `${h}.${b64url(encoder.encode(JSON.stringify({ sub: "admin", exp })))}.${s}`;
  assert.equal(await store.authenticate(forged), undefined);
  for (const junk of ["a.b.c", "a.b", "....", "%%%.%%%.%%%", good + "x"]) {
    assert.equal(await store.authenticate(junk), undefined, junk);
  }
});

Deno.test("verifyJwt() checks audience and issuer when configured", async () => {
  const store = await jwtStore({ audience: "mcpgateway-api", issuer: "mcpgateway" });
  const ok = { sub: "u", exp, aud: "mcpgateway-api", iss: "mcpgateway" };
  assert.equal((await store.authenticate(await signJwt(ok)))?.owner, "u");
  assert.equal(
    (await store.authenticate(await signJwt({ ...ok, aud: ["other", "mcpgateway-api"] })))?.owner,
    "u",
  );
  assert.equal(await store.authenticate(await signJwt({ ...ok, aud: "other" })), undefined);
  assert.equal(await store.authenticate(await signJwt({ ...ok, aud: undefined })), undefined);
  assert.equal(await store.authenticate(await signJwt({ ...ok, iss: "evil" })), undefined);
});

Deno.test("createTokenStore() maps ContextForge scopes.permissions to roles", async () => {
  const store = await jwtStore();
  const roles = async (permissions: string[]) =>
    [
      ...(await store.authenticate(await signJwt({ sub: "u", exp, scopes: { permissions } })))!
        .roles,
    ].sort();
  assert.deepEqual(await roles([]), ["client", "connect"]);
  assert.deepEqual(await roles(["*"]), ["client", "connect"]);
  assert.deepEqual(await roles(["servers.create"]), ["connect"]);
  assert.deepEqual(await roles(["tools.execute"]), ["client"]);
  assert.deepEqual(await roles(["resources.read"]), []);
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
  const none = await authorizeRequest(store, request(), "client");
  assert.ok(none instanceof Response && none.status === 401);
  assert.match(none.headers.get("www-authenticate") ?? "", /^Bearer/);
  await none.body?.cancel();
  const wrong = await authorizeRequest(store, request("nope"), "client");
  assert.ok(wrong instanceof Response && wrong.status === 401);
  await wrong.body?.cancel();
  const forbidden = await authorizeRequest(store, request("tok-a"), "connect");
  assert.ok(forbidden instanceof Response && forbidden.status === 403);
  await forbidden.body?.cancel();
  const ok = await authorizeRequest(store, request("tok-a"), "client");
  assert.ok(!(ok instanceof Response) && ok.owner === "a");
});
