// Who a bearer token belongs to and what it may do: the identity sources (tokens file, HS256 JWTs) behind
// one store, and the answer to a request that lacks the identity (401) or the role (403).

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

const log = logger("serve", "auth");

// The gateway's modules take the identity from the store that makes it.
export type { Identity, Role } from "./identity.ts";

/** Why a token was refused: none sent, not in the tokens file (and no JWT secret), or the JWT's fault. */
export type Rejection = "missing" | "unknown" | JwtRejection;

/** The identity of a token, or why it has none. */
export type Authentication = { identity: Identity } | { rejected: Rejection };

/** Options of {@link createTokenStore}. */
export interface TokenStoreOptions {
  /** Text of a tokens file (see `parseTokensFile`). */
  tokensFile?: string;
  /** JWT verification; omitted = JWTs are not accepted. */
  jwt?: JwtOptions;
  /** The clock, in milliseconds since the epoch. Default `Date.now`. */
  now?: () => number;
}

/** Verifies bearer tokens. */
export interface TokenStore {
  /** The identity of a token, or undefined if the token is unknown, malformed, expired or badly signed. */
  authenticate(token: string): Promise<Identity | undefined>;
  /** Like {@link TokenStore.authenticate}, saying why a token was refused. */
  check(token: string): Promise<Authentication>;
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
  const { tokensFile, jwt, now = Date.now } = options;
  let entries = tokensFile === undefined ? [] : hashEntries(tokensFile);
  const key = jwt === undefined ? undefined : await importJwtSecret(jwt.secret);

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

  // Sources in order, the cheapest first. An OAuth source would sit before the HS256 one: a JWT whose
  // `iss` is a configured OAuth issuer is checked against that issuer's keys, giving `oauth:<issuer>#<sub>`.
  async function check(token: string): Promise<Authentication> {
    if (token === "") return { rejected: "missing" };
    const identity = fromTokensFile(token);
    if (identity !== undefined) return { identity };
    return await fromJwt(token);
  }

  return {
    check,
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
export function bearerToken(request: Request): string | undefined {
  const header = request.headers.get("authorization");
  const match = header?.match(/^Bearer[ \t]+(\S+)[ \t]*$/i);
  return match?.[1];
}

/** How to authenticate, for a client that got a 401: no OAuth here, a static token in a header. */
const HOW_TO_AUTHENTICATE =
  "This gateway takes a static bearer token, not OAuth: send the header Authorization: Bearer TOKEN";

/**
 * The 401 answer. RFC 7235 requires `WWW-Authenticate`; `error="invalid_token"` with a description tells an
 * OAuth-capable client (which would otherwise start OAuth discovery) and its user what this gateway wants.
 * The description is a quoted-string: no `"` or `\` in it (RFC 6750 §3).
 */
function unauthorized(rejection: Rejection): Response {
  const problem = rejection === "missing"
    ? "No bearer token was sent."
    : "The bearer token was not accepted (unknown, expired, or not signed with this gateway's key).";
  const description = `${problem} ${HOW_TO_AUTHENTICATE}`;
  return Response.json(
    {
      error: "invalid_token",
      error_description: description,
      authentication: { scheme: "Bearer", header: "Authorization: Bearer TOKEN", oauth: false },
    },
    {
      status: 401,
      headers: {
        "www-authenticate":
          `Bearer realm="mcp-rproxy", error="invalid_token", error_description="${description}"`,
      },
    },
  );
}

/**
 * Authenticates a request and checks it has `role`: the identity, or the refusal to send (401 without a
 * valid token, 403 with a valid token that lacks the role).
 *
 * @example
 * ```ts
 * import { authorizeRequest, createTokenStore } from "./token_store.ts";
 * const store = await createTokenStore({ tokensFile: "tok-1: alice\n" });
 * const refused = await authorizeRequest(store, new Request("http://gw/"), "client");
 * refused instanceof Response && refused.status; // 401
 * ```
 */
export async function authorizeRequest(
  store: TokenStore,
  request: Request,
  role: Role,
): Promise<Identity | Response> {
  const token = bearerToken(request);
  const result = await store.check(token ?? "");
  if ("rejected" in result) {
    log.debug("Refused a bearer token: {reason}", {
      event: "token_refused",
      reason: result.rejected,
    });
    return unauthorized(result.rejected);
  }
  const { identity } = result;
  if (!identity.roles.has(role)) {
    return Response.json(
      { error: "forbidden", message: `This token lacks the '${role}' permission` },
      { status: 403 },
    );
  }
  return identity;
}
