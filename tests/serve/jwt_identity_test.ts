// HS256 JWTs through `jose`: each way a token can be wrong is refused with its own rejection, and verified
// claims become an owner in the `jwt:` namespace with ContextForge's roles. Tokens are signed here with
// WebCrypto, not with the library under test.

import assert from "node:assert/strict";
import {
  importJwtSecret,
  jwtIdentity,
  type JwtRejection,
  verifyJwt,
} from "../../lib/serve/jwt_identity.ts";
import { b64url, JWT_SECRET, jwtPart, signJwt } from "../fixtures/jwt.ts";

const encoder = new TextEncoder();
const SECRET = JWT_SECRET;
const NOW = Date.UTC(2026, 0, 1);
const exp = NOW / 1000 + 3600;

async function signRs256(claims: Record<string, unknown>): Promise<string> {
  const { privateKey } = await crypto.subtle.generateKey(
    {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    },
    true,
    ["sign", "verify"],
  );
  const input = `${jwtPart({ alg: "RS256", typ: "JWT" })}.${jwtPart(claims)}`;
  const signature = new Uint8Array(
    await crypto.subtle.sign("RSASSA-PKCS1-v1_5", privateKey, encoder.encode(input)),
  );
  return `${input}.${b64url(signature)}`;
}

async function verdict(
  token: string,
  options: { audience?: string; issuer?: string; allowNoExp?: boolean } = {},
): Promise<JwtRejection | "accepted"> {
  const result = await verifyJwt(token, await importJwtSecret(SECRET), { ...options, now: NOW });
  return "rejected" in result ? result.rejected : "accepted";
}

Deno.test("verifyJwt() accepts an HS256 token signed with the secret", async () => {
  const result = await verifyJwt(
    await signJwt({ sub: "u", exp }),
    await importJwtSecret(SECRET),
    { now: NOW },
  );
  assert.deepEqual(result, { claims: { sub: "u", exp } });
});

Deno.test("verifyJwt() refuses every algorithm but HS256, alg none first", async () => {
  const claims = { sub: "u", exp };
  assert.equal(
    await verdict(`${jwtPart({ alg: "none", typ: "JWT" })}.${jwtPart(claims)}.`),
    "algorithm",
    "alg none, no signature",
  );
  assert.equal(
    await verdict(await signJwt(claims, { header: { alg: "none" } })),
    "algorithm",
    "alg none with a valid HMAC",
  );
  assert.equal(
    await verdict(await signJwt(claims, { header: { alg: "HS512" }, hash: "SHA-512" })),
    "algorithm",
    "HS512 with the right secret",
  );
  assert.equal(await verdict(await signRs256(claims)), "algorithm", "a real RS256 token");
  assert.equal(
    await verdict(await signJwt(claims, { header: { alg: "RS256" } })),
    "algorithm",
    "an RS256 header on an HMAC signature",
  );
});

Deno.test("verifyJwt() refuses a bad signature and a payload swapped under a good one", async () => {
  assert.equal(await verdict(await signJwt({ sub: "u", exp }, { secret: "other" })), "signature");
  const [header, , signature] = (await signJwt({ sub: "u", exp })).split(".");
  assert.equal(
    await verdict(`${header}.${jwtPart({ sub: "admin", exp })}.${signature}`),
    "signature",
  );
});

Deno.test("verifyJwt() refuses expired and not-yet-valid tokens, without clock tolerance", async () => {
  const now = NOW / 1000;
  assert.equal(await verdict(await signJwt({ sub: "u", exp: now - 1 })), "expired");
  assert.equal(await verdict(await signJwt({ sub: "u", exp: now })), "expired");
  assert.equal(await verdict(await signJwt({ sub: "u", exp: now + 1 })), "accepted");
  assert.equal(await verdict(await signJwt({ sub: "u", exp, nbf: now + 1 })), "not-yet-valid");
  assert.equal(await verdict(await signJwt({ sub: "u", exp, nbf: now })), "accepted");
});

Deno.test("verifyJwt() requires exp unless allowNoExp", async () => {
  const token = await signJwt({ sub: "u" });
  assert.equal(await verdict(token), "no-exp");
  assert.equal(await verdict(token, { allowNoExp: true }), "accepted");
  assert.equal(
    await verdict(await signJwt({ sub: "u", exp: NOW / 1000 - 1 }), { allowNoExp: true }),
    "expired",
    "allowNoExp still checks an exp that is there",
  );
});

Deno.test("verifyJwt() checks audience and issuer when configured", async () => {
  const options = { audience: "mcpgateway-api", issuer: "mcpgateway" };
  const ok = { sub: "u", exp, aud: "mcpgateway-api", iss: "mcpgateway" };
  assert.equal(await verdict(await signJwt(ok), options), "accepted");
  assert.equal(
    await verdict(await signJwt({ ...ok, aud: ["other", "mcpgateway-api"] }), options),
    "accepted",
  );
  assert.equal(await verdict(await signJwt({ ...ok, aud: "other" }), options), "audience");
  assert.equal(await verdict(await signJwt({ ...ok, aud: undefined }), options), "audience");
  assert.equal(await verdict(await signJwt({ ...ok, iss: "evil" }), options), "issuer");
  assert.equal(await verdict(await signJwt({ ...ok, iss: undefined }), options), "issuer");
  assert.equal(await verdict(await signJwt({ sub: "u", exp, aud: "x", iss: "y" })), "accepted");
});

Deno.test("verifyJwt() calls garbage malformed", async () => {
  const good = await signJwt({ sub: "u", exp });
  for (const junk of ["a.b.c", "a.b", "....", "%%%.%%%.%%%", "", good.replace(".", "..")]) {
    assert.equal(await verdict(junk), "malformed", junk);
  }
  assert.equal(await verdict(await signJwt({ sub: "u", exp: "soon" })), "malformed");
  assert.equal(await verdict(good + "x"), "signature");
});

Deno.test("jwtIdentity() puts the owner in the jwt: namespace: email, else user.email, else sub", () => {
  const owner = (claims: Record<string, unknown>) => {
    const identity = jwtIdentity(claims);
    return "owner" in identity ? identity.owner : identity.rejected;
  };
  assert.equal(owner({ sub: "u1", email: "a@x.io" }), "jwt:a@x.io");
  assert.equal(owner({ sub: "u2", user: { email: "cf@x.io" } }), "jwt:cf@x.io");
  assert.equal(owner({ sub: "alice" }), "jwt:alice");
  assert.equal(owner({ sub: "" }), "no-subject");
  assert.equal(owner({}), "no-subject");
});

Deno.test("jwtIdentity() maps ContextForge scopes.permissions and is_admin to roles", () => {
  const roles = (claims: Record<string, unknown>) => {
    const identity = jwtIdentity({ sub: "u", ...claims });
    return "roles" in identity ? [...identity.roles].sort() : [];
  };
  assert.deepEqual(roles({}), ["client", "connect"]);
  assert.deepEqual(roles({ scopes: { permissions: [] } }), ["client", "connect"]);
  assert.deepEqual(roles({ scopes: { permissions: ["*"] } }), ["client", "connect"]);
  assert.deepEqual(roles({ scopes: { permissions: ["servers.create"] } }), ["connect"]);
  assert.deepEqual(roles({ scopes: { permissions: ["tools.execute"] } }), ["client"]);
  assert.deepEqual(roles({ scopes: { permissions: ["resources.read"] } }), []);
  assert.deepEqual(roles({ is_admin: true, scopes: { permissions: ["x"] } }), ["admin", "client"]);
  assert.deepEqual(roles({ user: { is_admin: true } }), ["admin", "client", "connect"]);
});
