// Bearer-token authentication of the gateway: a tokens file and/or ContextForge-compatible HS256 JWTs,
// and the roles that decide 401 (who are you?) versus 403 (you may not do that).

import { isObject } from "../util/json_object.ts";
import { createHash } from "node:crypto";
import { load } from "js-yaml";

/**
 * What a token may do.
 *
 * - `connect`: open a tunnel link at `/reverse-proxy/ws` (what `mcp-rproxy connect` needs).
 * - `client`: use the MCP endpoints `/servers/<name>/mcp` and the sessions API, for its own owner's servers.
 * - `admin`: like `client`, and see and act on every owner's sessions in the sessions API.
 */
export type Role = "connect" | "client" | "admin";

/** All roles, for messages. */
export const ROLES: readonly Role[] = ["connect", "client", "admin"];

/** Who a valid token belongs to and what it may do. */
export interface Identity {
  /** The owner: sessions and MCP endpoints belong to it. */
  owner: string;
  /** What the token may do. */
  roles: ReadonlySet<Role>;
  /** Where the token was found, for logs. Never the token itself. */
  source: "tokens-file" | "jwt";
}

/** Options of the JWT check. */
export interface JwtOptions {
  /** The HS256 shared secret (ContextForge's `JWT_SECRET_KEY`). */
  secret: string;
  /** When set, the token's `aud` (a string or a list) must contain it. */
  audience?: string;
  /** When set, the token's `iss` must equal it. */
  issuer?: string;
  /** Accept tokens without `exp`. Default false: a token that never expires is refused. */
  allowNoExp?: boolean;
}

/** Options of {@link createTokenStore}. */
export interface TokenStoreOptions {
  /** Text of a tokens file (see {@link parseTokensFile}). */
  tokensFile?: string;
  /** JWT verification; omitted = JWTs are not accepted. */
  jwt?: JwtOptions;
  /** The clock, in milliseconds since the epoch. Default `Date.now`. */
  now?: () => number;
}

/** One entry of a tokens file. */
export interface TokenEntry {
  token: string;
  owner: string;
  roles: Role[];
}

/** Verifies bearer tokens. */
export interface TokenStore {
  /** The identity of a token, or undefined if the token is unknown, malformed, expired or badly signed. */
  authenticate(token: string): Promise<Identity | undefined>;
}

const encoder = new TextEncoder();
const DEFAULT_ROLES: Role[] = ["connect", "client"];
/** Owner of tokens listed without one. */
export const DEFAULT_OWNER = "default";

/** ContextForge permissions (`scopes.permissions`) that allow opening a tunnel link. */
export const CONNECT_PERMISSIONS = ["*", "servers.create", "servers.update", "servers.manage"];
/** ContextForge permissions that allow using MCP endpoints and the sessions API. */
export const CLIENT_PERMISSIONS = [
  "*",
  "servers.use",
  "servers.read",
  "tools.execute",
  "servers.manage",
];

function parseRoles(value: unknown, where: string): Role[] {
  if (value === undefined) return [...DEFAULT_ROLES];
  if (!Array.isArray(value) || value.length === 0) {
    throw new SyntaxError(`${where}: 'roles' must be a non-empty list of ${ROLES.join(", ")}`);
  }
  return value.map((role) => {
    if (typeof role !== "string" || !(ROLES as readonly string[]).includes(role)) {
      throw new SyntaxError(
        `${where}: unknown role ${JSON.stringify(role)}; expected one of ${ROLES.join(", ")}`,
      );
    }
    return role as Role;
  });
}

/**
 * Parses a tokens file. Two formats:
 *
 * - Lines: one token per line, optionally followed by whitespace and an owner (default owner `default`);
 *   blank lines and lines starting with `#` are skipped. Such tokens have the roles `connect` and `client`.
 * - A YAML map from token to owner (`tok-abc: alice`) or to `{owner, roles}`
 *   (`tok-abc: {owner: alice, roles: [connect]}`).
 *
 * Throws a {@link SyntaxError} naming the problem (never the token).
 *
 * @example
 * ```ts
 * import { parseTokensFile } from "./token_store.ts";
 * parseTokensFile("tok-1: alice\ntok-2: {owner: bob, roles: [client]}\n").length; // 2
 * ```
 */
export function parseTokensFile(text: string): TokenEntry[] {
  let document: unknown;
  try {
    document = load(text);
  } catch {
    document = undefined; // not YAML: the lines format
  }
  const entries: TokenEntry[] = [];
  if (isObject(document)) {
    for (const [token, value] of Object.entries(document)) {
      const where = `Entry ${entries.length + 1}`;
      if (token.trim() === "") throw new SyntaxError(`${where}: the token is empty`);
      if (typeof value === "string" && value.trim() !== "") {
        entries.push({ token, owner: value.trim(), roles: [...DEFAULT_ROLES] });
      } else if (isObject(value) && typeof value.owner === "string" && value.owner.trim() !== "") {
        entries.push({ token, owner: value.owner.trim(), roles: parseRoles(value.roles, where) });
      } else {
        throw new SyntaxError(
          `${where}: the value must be an owner name or {owner, roles}; got ${
            value === null ? "nothing" : typeof value
          }`,
        );
      }
    }
    return entries;
  }
  const lines = text.split(/\r?\n/);
  for (const raw of lines) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const [token = "", owner, ...rest] = line.split(/\s+/);
    if (rest.length > 0) {
      throw new SyntaxError(
        `Line ${lines.indexOf(raw) + 1}: expected 'TOKEN' or 'TOKEN OWNER', found ${
          rest.length + 2
        } words`,
      );
    }
    entries.push({ token, owner: owner ?? DEFAULT_OWNER, roles: [...DEFAULT_ROLES] });
  }
  return entries;
}

/**
 * SHA-256 of a token. `node:crypto` hashes synchronously; WebCrypto's async digest cost a promise and an
 * op per MCP request and was the largest single item in the gateway's profile.
 */
function sha256(text: string): Uint8Array {
  return createHash("sha256").update(text).digest();
}

/** Compares two equal-length digests without an early exit. */
function digestsEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ (b[i] ?? 0);
  return diff === 0;
}

function base64UrlDecode(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return undefined;
  const base64 = text.replaceAll("-", "+").replaceAll("_", "/") +
    "=".repeat((4 - (text.length % 4)) % 4);
  try {
    return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

function decodeJsonPart(text: string): Record<string, unknown> | undefined {
  const bytes = base64UrlDecode(text);
  if (bytes === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Why a JWT was refused; for debug logs and tests. Never contains the token. */
export type JwtRejection =
  | "malformed"
  | "algorithm"
  | "signature"
  | "expired"
  | "no-exp"
  | "not-yet-valid"
  | "audience"
  | "issuer"
  | "no-subject";

/** The claims of a verified JWT, or why it was refused. */
export type JwtResult = { claims: Record<string, unknown> } | { rejected: JwtRejection };

/**
 * Verifies an HS256 JWT: the header says HS256, the signature matches (checked by WebCrypto, in constant
 * time), `exp` is in the future (required unless `allowNoExp`), `nbf` is not in the future, and `aud` and
 * `iss` match when configured.
 *
 * @example
 * ```ts
 * import { verifyJwt } from "./token_store.ts";
 * const key = await crypto.subtle.importKey("raw", new TextEncoder().encode("s3cret"),
 *   { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
 * const result = await verifyJwt("not.a.jwt", key, { now: Date.now() });
 * "rejected" in result; // true
 * ```
 */
export async function verifyJwt(
  token: string,
  key: CryptoKey,
  options: Omit<JwtOptions, "secret"> & { now: number },
): Promise<JwtResult> {
  const { audience, issuer, allowNoExp = false, now } = options;
  const parts = token.split(".");
  if (parts.length !== 3) return { rejected: "malformed" };
  const [headerPart = "", payloadPart = "", signaturePart = ""] = parts;
  const header = decodeJsonPart(headerPart);
  const claims = decodeJsonPart(payloadPart);
  const signature = base64UrlDecode(signaturePart);
  if (header === undefined || claims === undefined || signature === undefined) {
    return { rejected: "malformed" };
  }
  if (header.alg !== "HS256") return { rejected: "algorithm" };
  const valid = await crypto.subtle.verify(
    "HMAC",
    key,
    signature,
    encoder.encode(`${headerPart}.${payloadPart}`),
  );
  if (!valid) return { rejected: "signature" };
  const seconds = now / 1000;
  if (claims.exp === undefined) {
    if (!allowNoExp) return { rejected: "no-exp" };
  } else if (typeof claims.exp !== "number" || seconds >= claims.exp) {
    return { rejected: "expired" };
  }
  if (claims.nbf !== undefined && (typeof claims.nbf !== "number" || seconds < claims.nbf)) {
    return { rejected: "not-yet-valid" };
  }
  if (audience !== undefined) {
    const aud = claims.aud;
    const ok = typeof aud === "string"
      ? aud === audience
      : Array.isArray(aud) && aud.includes(audience);
    if (!ok) return { rejected: "audience" };
  }
  if (issuer !== undefined && claims.iss !== issuer) return { rejected: "issuer" };
  return { claims };
}

/** The owner of verified JWT claims: `email`, ContextForge's `user.email`, else `sub`. */
function jwtOwner(claims: Record<string, unknown>): string | undefined {
  const user = isObject(claims.user) ? claims.user : {};
  for (const candidate of [claims.email, user.email, claims.sub]) {
    if (typeof candidate === "string" && candidate !== "") return candidate;
  }
  return undefined;
}

/**
 * Roles of verified JWT claims. ContextForge tokens may narrow what they allow with
 * `scopes.permissions`; when that list is present and not empty, `connect` needs one of
 * {@link CONNECT_PERMISSIONS} and `client` one of {@link CLIENT_PERMISSIONS}. `admin` comes from
 * `is_admin: true` (or ContextForge's `user.is_admin`).
 */
function jwtRoles(claims: Record<string, unknown>): Set<Role> {
  const roles = new Set<Role>();
  const scopes = isObject(claims.scopes) ? claims.scopes : {};
  const permissions = Array.isArray(scopes.permissions)
    ? scopes.permissions.filter((p): p is string => typeof p === "string")
    : [];
  const unrestricted = permissions.length === 0;
  if (unrestricted || permissions.some((p) => CONNECT_PERMISSIONS.includes(p))) {
    roles.add("connect");
  }
  if (unrestricted || permissions.some((p) => CLIENT_PERMISSIONS.includes(p))) roles.add("client");
  const user = isObject(claims.user) ? claims.user : {};
  if (claims.is_admin === true || user.is_admin === true) {
    roles.add("admin");
    roles.add("client");
  }
  return roles;
}

/**
 * Builds a token store from a tokens file and/or a JWT secret. File tokens are compared by SHA-256 digest
 * against every entry without an early exit, so timing does not tell how much of a token matched.
 *
 * @example
 * ```ts
 * import { createTokenStore } from "./token_store.ts";
 * const store = await createTokenStore({ tokensFile: "tok-1: alice\n" });
 * (await store.authenticate("tok-1"))?.owner; // "alice"
 * ```
 */
export async function createTokenStore(options: TokenStoreOptions): Promise<TokenStore> {
  const { tokensFile, jwt, now = Date.now } = options;
  const entries = tokensFile === undefined ? [] : parseTokensFile(tokensFile);
  const hashed = entries.map((entry) => ({
    digest: sha256(entry.token),
    identity: {
      owner: entry.owner,
      roles: new Set<Role>(
        entry.roles.includes("admin") ? [...entry.roles, "client"] : entry.roles,
      ),
      source: "tokens-file",
    } satisfies Identity,
  }));
  const key = jwt === undefined ? undefined : await crypto.subtle.importKey(
    "raw",
    encoder.encode(jwt.secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["verify"],
  );
  return {
    async authenticate(token: string): Promise<Identity | undefined> {
      if (token === "") return undefined;
      const digest = sha256(token);
      let found: Identity | undefined;
      for (const entry of hashed) {
        if (digestsEqual(entry.digest, digest) && found === undefined) found = entry.identity;
      }
      if (found !== undefined) return found;
      if (key === undefined || jwt === undefined) return undefined;
      const result = await verifyJwt(token, key, { ...jwt, now: now() });
      if ("rejected" in result) return undefined;
      const owner = jwtOwner(result.claims);
      if (owner === undefined) return undefined;
      return { owner, roles: jwtRoles(result.claims), source: "jwt" };
    },
  };
}

/** The bearer token of a request's `Authorization` header; query strings are never read. */
export function bearerToken(request: Request): string | undefined {
  const header = request.headers.get("authorization");
  const match = header?.match(/^Bearer[ \t]+(\S+)[ \t]*$/i);
  return match?.[1];
}

/**
 * Authenticates a request and checks it has `role`: the identity, or the refusal to send (401 without a
 * valid token, 403 with a valid token that lacks the role).
 */
export async function authorizeRequest(
  store: TokenStore,
  request: Request,
  role: Role,
): Promise<Identity | Response> {
  const token = bearerToken(request);
  const identity = token === undefined ? undefined : await store.authenticate(token);
  if (identity === undefined) {
    return Response.json(
      { error: "unauthorized", message: "A valid bearer token is required" },
      { status: 401, headers: { "www-authenticate": 'Bearer realm="mcp-rproxy"' } },
    );
  }
  if (!identity.roles.has(role)) {
    return Response.json(
      { error: "forbidden", message: `This token lacks the '${role}' permission` },
      { status: 403 },
    );
  }
  return identity;
}
