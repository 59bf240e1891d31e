// ContextForge-compatible HS256 JWTs as an identity source: verified by `jose` (algorithm pinned to HS256),
// their claims turned into an owner in the `jwt:` namespace and roles.

import { errors, jwtVerify, type JWTVerifyOptions } from "jose";
import { isObject } from "../util/json_object.ts";
import { type Identity, JWT_OWNER_PREFIX, type Role } from "./identity.ts";

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

/** The only algorithm accepted: ContextForge signs with HS256, and a pinned list refuses `none`. */
const ALGORITHMS = ["HS256"];

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

/**
 * Imports an HS256 secret once, so that a request costs a verification and not a key import.
 *
 * @example
 * ```ts
 * import { importJwtSecret } from "./jwt_identity.ts";
 * const key = await importJwtSecret("s3cret");
 * key.algorithm.name; // "HMAC"
 * ```
 */
export async function importJwtSecret(secret: string): Promise<CryptoKey> {
  return await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["verify"],
  );
}

/** Maps a `jose` error to the rejection it means; anything unexpected counts as malformed. */
export function jwtRejectionOf(error: unknown): JwtRejection {
  if (error instanceof errors.JOSEAlgNotAllowed) return "algorithm";
  if (error instanceof errors.JWSSignatureVerificationFailed) return "signature";
  if (error instanceof errors.JWTExpired) return "expired";
  if (error instanceof errors.JWTClaimValidationFailed) {
    const { claim, reason } = error;
    if (claim === "exp") return reason === "missing" ? "no-exp" : "malformed";
    if (claim === "nbf" && reason === "check_failed") return "not-yet-valid";
    if (claim === "aud") return "audience";
    if (claim === "iss") return "issuer";
  }
  // JWSInvalid, JWTInvalid, JOSENotSupported (an unknown `crit` header), a claim of the wrong type, and
  // anything else a hostile token can provoke: refused, never a 500.
  return "malformed";
}

/**
 * Verifies an HS256 JWT with `jose`: the header says HS256 (`none`, HS512, RS256 and the rest are
 * refused), the signature matches, `exp` is in the future (required unless `allowNoExp`), `nbf` is not in
 * the future, and `aud` and `iss` match when configured. No clock tolerance.
 *
 * @example
 * ```ts
 * import { importJwtSecret, verifyJwt } from "./jwt_identity.ts";
 * const result = await verifyJwt("not.a.jwt", await importJwtSecret("s3cret"), { now: Date.now() });
 * "rejected" in result; // true
 * ```
 */
export async function verifyJwt(
  token: string,
  key: CryptoKey,
  options: Omit<JwtOptions, "secret"> & { now: number },
): Promise<JwtResult> {
  const { audience, issuer, allowNoExp = false, now } = options;
  const verifyOptions: JWTVerifyOptions = {
    algorithms: ALGORITHMS,
    currentDate: new Date(now),
    ...(allowNoExp ? {} : { requiredClaims: ["exp"] }),
    ...(audience === undefined ? {} : { audience }),
    ...(issuer === undefined ? {} : { issuer }),
  };
  try {
    const { payload } = await jwtVerify(token, key, verifyOptions);
    return { claims: payload as Record<string, unknown> };
  } catch (error) {
    return { rejected: jwtRejectionOf(error) };
  }
}

/** The name in verified JWT claims: `email`, ContextForge's `user.email`, else `sub`. */
function jwtSubject(claims: Record<string, unknown>): string | undefined {
  const user = isObject(claims.user) ? claims.user : {};
  for (const candidate of [claims.email, user.email, claims.sub]) {
    if (typeof candidate === "string" && candidate.trim() !== "") return candidate.trim();
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
 * The identity of verified JWT claims: owner `jwt:<email or sub>`, roles from ContextForge's claims; or
 * `no-subject` when the claims name nobody.
 *
 * @example
 * ```ts
 * import { jwtIdentity } from "./jwt_identity.ts";
 * const identity = jwtIdentity({ sub: "alice" });
 * "owner" in identity && identity.owner; // "jwt:alice"
 * ```
 */
export function jwtIdentity(
  claims: Record<string, unknown>,
  credential = "",
): Identity | { rejected: "no-subject" } {
  const subject = jwtSubject(claims);
  if (subject === undefined) return { rejected: "no-subject" };
  return {
    owner: `${JWT_OWNER_PREFIX}${subject}`,
    roles: jwtRoles(claims),
    source: "jwt",
    credential,
  };
}
