// OAuth access tokens as an identity source: the scopes serve understands, the role each grants, and the
// identity of verified claims (owner `oauth:<issuer>#<sub>`).

import { type Identity, oauthOwner, type Role } from "./identity.ts";

/**
 * The scope that grants each role. `mcp:admin` also grants `client`, as the `admin` role does in a
 * tokens file.
 */
export const ROLE_SCOPES: Readonly<Record<Role, string>> = {
  connect: "mcp:connect",
  client: "mcp:client",
  admin: "mcp:admin",
};

/**
 * The scopes of verified claims: `scope` (RFC 9068, space-separated) and `scp` (a list or a
 * space-separated string, as some authorization servers write it).
 */
export function scopesOf(claims: Record<string, unknown>): Set<string> {
  const scopes = new Set<string>();
  for (const value of [claims.scope, claims.scp]) {
    const list = typeof value === "string" ? value.split(" ") : Array.isArray(value) ? value : [];
    for (const scope of list) if (typeof scope === "string" && scope !== "") scopes.add(scope);
  }
  return scopes;
}

/** Roles granted by scopes: a token without any of {@link ROLE_SCOPES} may do nothing (403). */
export function rolesOfScopes(scopes: ReadonlySet<string>): Set<Role> {
  const roles = new Set<Role>();
  if (scopes.has(ROLE_SCOPES.connect)) roles.add("connect");
  if (scopes.has(ROLE_SCOPES.client)) roles.add("client");
  if (scopes.has(ROLE_SCOPES.admin)) {
    roles.add("admin");
    roles.add("client");
  }
  return roles;
}

/**
 * The identity of a verified access token's claims: owner `oauth:<iss>#<sub>`, roles from its scopes;
 * or `no-subject` when `iss` or `sub` is missing or empty.
 *
 * @example
 * ```ts
 * import { oauthIdentity } from "./oauth_identity.ts";
 * const identity = oauthIdentity({ iss: "https://idp.example.com", sub: "alice", scope: "mcp:client" });
 * "owner" in identity && identity.owner; // "oauth:https://idp.example.com#alice"
 * ```
 */
export function oauthIdentity(
  claims: Record<string, unknown>,
  credential = "",
): Identity | { rejected: "no-subject" } {
  const { iss, sub } = claims;
  if (typeof iss !== "string" || iss === "" || typeof sub !== "string" || sub === "") {
    return { rejected: "no-subject" };
  }
  return {
    owner: oauthOwner(iss, sub),
    roles: rolesOfScopes(scopesOf(claims)),
    source: "oauth",
    credential,
  };
}
