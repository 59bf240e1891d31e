// Who a bearer token belongs to and what it may do: roles, identities, and the owner namespace of each
// identity source.

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

/**
 * Where an identity came from. Each source owns a namespace of owners, so that the same name from two
 * sources is two owners: tokens-file owners are taken as written (`alice`), JWT owners are
 * `jwt:<email or sub>` ({@link JWT_OWNER_PREFIX}), OAuth owners are `oauth:<issuer>#<sub>`
 * ({@link oauthOwner}). The namespaces meet only where a tokens file names a prefixed owner (`jwt:alice`,
 * `oauth:https://idp.example.com#alice`) on purpose.
 */
export type IdentitySource = "tokens-file" | "jwt" | "oauth";

/** Prefix of owners whose identity comes from a JWT. */
export const JWT_OWNER_PREFIX = "jwt:";

/** Prefix of owners whose identity comes from an OAuth access token. */
export const OAUTH_OWNER_PREFIX = "oauth:";

/**
 * The owner of an OAuth access token: its issuer and subject, so that the same `sub` from two
 * authorization servers is two owners.
 *
 * @example
 * ```ts
 * import { oauthOwner } from "./identity.ts";
 * oauthOwner("https://idp.example.com", "alice"); // "oauth:https://idp.example.com#alice"
 * ```
 */
export function oauthOwner(issuer: string, subject: string): string {
  return `${OAUTH_OWNER_PREFIX}${issuer}#${subject}`;
}

/** Who a valid token belongs to and what it may do. */
export interface Identity {
  /** The owner: sessions and MCP endpoints belong to it. */
  owner: string;
  /** What the token may do. */
  roles: ReadonlySet<Role>;
  /** Where the token was found, for logs. Never the token itself. */
  source: IdentitySource;
  /**
   * Which credential was presented: the same for every request with the same token, different for two
   * tokens of one owner (a prefix of its SHA-256, never the token). Per-token limits count by it.
   */
  credential: string;
}
