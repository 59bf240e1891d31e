// Who a bearer token belongs to and what it may do: the identity sources (tokens file, OAuth access tokens,
// HS256 JWTs) behind one store, and the answer to a request that lacks the identity (401) or the role (403).

import { type HttpRequest, pathOf } from "./http_request.ts";
import { createHash } from "node:crypto";
import { logger } from "../util/log.ts";
import {
  importJwtSecret,
  jwtIdentity,
  type JwtOptions,
  type JwtRejection,
  verifyJwt,
} from "./jwt_identity.ts";
import { parseTokensFile, type TokenEntry } from "./tokens_file.ts";
import type { Identity, Role } from "./identity.ts";
import { oauthIdentity, ROLE_SCOPES } from "./oauth_identity.ts";
import { OAuthIssuer, type OAuthRejection, unverifiedIssuer } from "./oauth_issuer.ts";
import { protectedResourceOf } from "./protected_resource.ts";
import { forbidden, unauthorized } from "./auth_challenge.ts";

const log = logger("serve", "auth");

// The gateway's modules take the identity from the store that makes it.
export type { Identity, Role } from "./identity.ts";

/** Why a token was refused: none sent, not in the tokens file (and no JWT secret), or the JWT's fault. */
export type Rejection = "missing" | "unknown" | JwtRejection | OAuthRejection;

/** The identity of a token, or why it has none. */
export type Authentication = { identity: Identity } | { rejected: Rejection };

/** Options of {@link createTokenStore}. */
export interface TokenStoreOptions {
  /** Text of a tokens file (see `parseTokensFile`). */
  tokensFile?: string;
  /** JWT verification; omitted = JWTs are not accepted. */
  jwt?: JwtOptions;
  /** OAuth access tokens (serve as a resource server); omitted = not accepted. */
  oauth?: OAuthOptions;
  /** The clock, in milliseconds since the epoch. Default `Date.now`. */
  now?: () => number;
}

/** OAuth access tokens: who issues them and how their keys are kept. */
export interface OAuthOptions {
  /** Issuer URLs of the trusted authorization servers (`--oauth-issuer`); at least one. */
  issuers: string[];
  /**
   * Shortest time between two fetches of an issuer's JWKS caused by an unknown key (and between two
   * discovery attempts after a failure), in milliseconds. Default {@link OAUTH_DEFAULTS}.
   */
  jwksCooldownMs?: number;
  /** Keys older than this are fetched again before use, in milliseconds. Default {@link OAUTH_DEFAULTS}. */
  jwksMaxAgeMs?: number;
}

/** Defaults of {@link OAuthOptions}. */
export const OAUTH_DEFAULTS = { jwksCooldownMs: 30_000, jwksMaxAgeMs: 600_000 } as const;

/** Verifies bearer tokens. */
export interface TokenStore {
  /**
   * The identity of a token, or undefined if the token is unknown, malformed, expired or badly signed.
   * OAuth access tokens need a resource (see {@link TokenStore.check}) and are refused here.
   */
  authenticate(token: string): Promise<Identity | undefined>;
  /**
   * Like {@link TokenStore.authenticate}, saying why a token was refused. `resource` is the URL of what
   * the token is used for: an OAuth access token's audience must contain it (RFC 8707).
   */
  check(token: string, resource?: string): Promise<Authentication>;
  /** The trusted OAuth issuers; empty when OAuth is off. */
  readonly oauthIssuers: readonly OAuthIssuer[];
  /**
   * Replaces the tokens-file entries with those of `text` (a reload). Throws a {@link SyntaxError} naming
   * the problem when `text` is not a valid tokens file; the entries in use then stay. Returns how many
   * tokens are now in use.
   */
  replaceTokensFile(text: string): number;
}

/** A tokens-file entry ready for lookup: the token's digest, never the token. */
interface HashedEntry {
  digest: Uint8Array;
  identity: Identity;
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

/** The credential id of a token's digest: enough to tell tokens apart, nothing to guess one with. */
function credentialOf(digest: Uint8Array): string {
  let hex = "";
  for (let i = 0; i < 8; i++) hex += digest[i]!.toString(16).padStart(2, "0");
  return hex;
}

function hashEntries(text: string): HashedEntry[] {
  return parseTokensFile(text).map((entry) => {
    const digest = sha256(entry.token);
    return { digest, identity: identityOf(entry, credentialOf(digest)) };
  });
}

function identityOf(entry: TokenEntry, credential: string): Identity {
  return {
    owner: entry.owner,
    roles: new Set<Role>(
      entry.roles.includes("admin") ? [...entry.roles, "client"] : entry.roles,
    ),
    source: "tokens-file",
    credential,
  };
}

/**
 * Builds a token store from a tokens file and/or a JWT secret. A token is looked up in the tokens file
 * first, then verified as a JWT. File tokens are compared by SHA-256 digest against every entry without an
 * early exit, so timing does not tell how much of a token matched.
 *
 * @example
 * ```ts
 * import { createTokenStore } from "./token_store.ts";
 * const store = await createTokenStore({ tokensFile: "tok-1: alice\n" });
 * (await store.authenticate("tok-1"))?.owner; // "alice"
 * ```
 */
export async function createTokenStore(options: TokenStoreOptions): Promise<TokenStore> {
  const { tokensFile, jwt, oauth, now = Date.now } = options;
  let entries = tokensFile === undefined ? [] : hashEntries(tokensFile);
  const key = jwt === undefined ? undefined : await importJwtSecret(jwt.secret);
  const issuers = (oauth?.issuers ?? []).map((url) =>
    new OAuthIssuer({
      url,
      cooldownMs: oauth?.jwksCooldownMs ?? OAUTH_DEFAULTS.jwksCooldownMs,
      maxAgeMs: oauth?.jwksMaxAgeMs ?? OAUTH_DEFAULTS.jwksMaxAgeMs,
    })
  );

  function fromTokensFile(token: string): Identity | undefined {
    const digest = sha256(token);
    let found: Identity | undefined;
    for (const entry of entries) {
      if (digestsEqual(entry.digest, digest) && found === undefined) found = entry.identity;
    }
    return found;
  }

  async function fromJwt(token: string): Promise<Authentication> {
    if (key === undefined || jwt === undefined) return { rejected: "unknown" };
    const result = await verifyJwt(token, key, { ...jwt, now: now() });
    if ("rejected" in result) return result;
    const identity = jwtIdentity(result.claims, credentialOf(sha256(token)));
    return "rejected" in identity ? identity : { identity };
  }

  /**
   * A JWT whose `iss` names a trusted issuer is that issuer's to verify, and only its: it never falls
   * through to the HS256 secret, so that the secret cannot mint `oauth:` owners, nor the issuer `jwt:`
   * ones. Undefined when no trusted issuer claims the token.
   */
  async function fromOAuth(
    token: string,
    resource: string | undefined,
  ): Promise<Authentication | undefined> {
    if (issuers.length === 0) return undefined;
    const iss = unverifiedIssuer(token);
    const issuer = iss === undefined ? undefined : issuers.find((i) => i.names(iss));
    if (issuer === undefined) return undefined;
    if (resource === undefined) return { rejected: "audience" };
    const result = await issuer.verify(token, { audience: resource, now: now() });
    if ("rejected" in result) return result;
    const identity = oauthIdentity(result.claims, credentialOf(sha256(token)));
    return "rejected" in identity ? identity : { identity };
  }

  // Sources in order, the cheapest first.
  async function check(token: string, resource?: string): Promise<Authentication> {
    if (token === "") return { rejected: "missing" };
    const identity = fromTokensFile(token);
    if (identity !== undefined) return { identity };
    return await fromOAuth(token, resource) ?? await fromJwt(token);
  }

  return {
    check,
    oauthIssuers: issuers,
    async authenticate(token: string): Promise<Identity | undefined> {
      const result = await check(token);
      return "identity" in result ? result.identity : undefined;
    },
    replaceTokensFile(text: string): number {
      entries = hashEntries(text); // throws before the swap: a bad file leaves the old tokens
      return entries.length;
    },
  };
}

/** The bearer token of a request's `Authorization` header; query strings are never read. */
export function bearerToken(request: HttpRequest): string | undefined {
  const header = request.headers.get("authorization");
  const match = header?.match(/^Bearer[ \t]+(\S+)[ \t]*$/i);
  return match?.[1];
}

/** Options of {@link authorizeRequest}. */
export interface AuthorizeOptions {
  /** The role the request needs. */
  role: Role;
  /**
   * The gateway's base URL for OAuth (no trailing slash): the request path under it is the resource URL
   * an OAuth access token must be issued for. Without it OAuth access tokens are refused.
   */
  base?: string;
}

/**
 * Authenticates a request and checks it has the role: the identity, or the refusal to send (401 without a
 * valid token, 403 with a valid token that lacks the role). With OAuth on, both carry the challenge that
 * starts an MCP client's OAuth flow (`resource_metadata`, `scope`).
 *
 * @example
 * ```ts
 * import { authorizeRequest, createTokenStore } from "./token_store.ts";
 * const store = await createTokenStore({ tokensFile: "tok-1: alice\n" });
 * const refused = await authorizeRequest(store, new Request("http://gw/"), { role: "client" });
 * refused instanceof Response && refused.status; // 401
 * ```
 */
export async function authorizeRequest(
  store: TokenStore,
  request: HttpRequest,
  options: AuthorizeOptions,
): Promise<Identity | Response> {
  const { role, base } = options;
  const oauth = store.oauthIssuers.length === 0 || base === undefined
    ? undefined
    : protectedResourceOf(base, pathOf(request));
  const token = bearerToken(request);
  const result = await store.check(token ?? "", oauth?.url);
  if ("rejected" in result) {
    log.debug("Refused a bearer token: {reason}", {
      event: "token_refused",
      reason: result.rejected,
    });
    return unauthorized(
      result.rejected,
      oauth === undefined ? undefined : { resource: oauth, scope: ROLE_SCOPES[role] },
    );
  }
  const { identity } = result;
  if (!identity.roles.has(role)) {
    return forbidden(
      role,
      oauth === undefined || identity.source !== "oauth"
        ? undefined
        : { resource: oauth, scope: ROLE_SCOPES[role] },
    );
  }
  return identity;
}
