// One OAuth authorization server that serve trusts: its metadata found by OpenID discovery or RFC 8414,
// its keys fetched from `jwks_uri` by `jose` (cached, refreshed when a token names an unknown key), and the
// verification of the access tokens it issues for one resource URL.

import { createRemoteJWKSet, decodeJwt, errors, jwtVerify, type JWTVerifyGetKey } from "jose";
import { isObject } from "../util/json_object.ts";
import { logger } from "../util/log.ts";
import { type JwtRejection, jwtRejectionOf } from "./jwt_identity.ts";

const log = logger("serve", "oauth");

/**
 * Asymmetric signatures only. An HMAC key would have to be shared with the authorization server, and
 * `none` is no signature: both are refused whatever the JWKS holds.
 */
export const OAUTH_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519",
];

/**
 * `typ` header values of an access token (RFC 9068 `at+jwt`, and plain `JWT` as most authorization
 * servers write it). Other types (`logout+jwt`, `secevent+jwt`, …) are tokens for other purposes.
 */
const ACCESS_TOKEN_TYPES = ["jwt", "at+jwt", "application/at+jwt"];

/** Discovery documents and JWKS are small; a larger answer is refused rather than held. */
export const MAX_METADATA_BYTES = 1024 * 1024;

/** Why an OAuth access token was refused. Never contains the token. */
export type OAuthRejection = JwtRejection | "unknown-key" | "keys-unavailable" | "token-type";

/** The claims of a verified access token, or why it was refused. */
export type OAuthResult = { claims: Record<string, unknown> } | { rejected: OAuthRejection };

/** Options of {@link OAuthIssuer}. */
export interface OAuthIssuerOptions {
  /** The issuer URL as configured (`--oauth-issuer`). */
  url: string;
  /**
   * Shortest time between two JWKS fetches caused by a token signed with an unknown key, and between
   * two discovery attempts after a failure, in milliseconds. Bounds what forged tokens can make serve
   * fetch.
   */
  cooldownMs: number;
  /** Cached keys older than this are fetched again before use, in milliseconds. Default 600000. */
  maxAgeMs?: number;
  /** Deadline of one discovery or JWKS request, in milliseconds. Default 5000. */
  fetchTimeoutMs?: number;
}

/** What discovery found. */
export interface IssuerMetadata {
  /** The `issuer` of the metadata: tokens' `iss` must equal it. */
  issuer: string;
  jwksUri: string;
}

function withoutTrailingSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

/** An issuer or key URL serve may fetch: https, or http on the loopback interface (tests, local AS). */
export function isFetchableUrl(text: string): boolean {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return false;
  }
  if (url.protocol === "https:") return true;
  const host = url.hostname;
  return url.protocol === "http:" &&
    (host === "localhost" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host));
}

/** The discovery URLs of an issuer, in the order tried: OpenID Connect Discovery, then RFC 8414. */
export function discoveryUrls(issuer: string): string[] {
  const url = new URL(issuer);
  const path = withoutTrailingSlash(url.pathname);
  return [
    `${withoutTrailingSlash(issuer)}/.well-known/openid-configuration`,
    `${url.origin}/.well-known/oauth-authorization-server${path}`,
  ];
}

/** GETs a JSON object, at most {@link MAX_METADATA_BYTES}; throws an Error saying what went wrong. */
async function fetchJsonObject(url: string, timeoutMs: number): Promise<Record<string, unknown>> {
  const response = await fetch(url, {
    headers: { accept: "application/json" },
    redirect: "error",
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (response.status !== 200) {
    await response.body?.cancel();
    throw new Error(`HTTP ${response.status}`);
  }
  const decoder = new TextDecoder();
  let text = "";
  let total = 0;
  for await (const chunk of response.body ?? []) {
    total += chunk.length;
    if (total > MAX_METADATA_BYTES) throw new Error(`over ${MAX_METADATA_BYTES} bytes`);
    text += decoder.decode(chunk, { stream: true });
  }
  text += decoder.decode();
  const json: unknown = JSON.parse(text);
  if (!isObject(json)) throw new Error("not a JSON object");
  return json;
}

/**
 * An authorization server serve trusts. Discovery runs on first use (or {@link OAuthIssuer.discover}) and
 * is kept; after a failure it is tried again at most once per cooldown, and until then its tokens are
 * refused as `keys-unavailable`.
 *
 * @example
 * ```ts ignore
 * import { OAuthIssuer } from "./oauth_issuer.ts";
 * const issuer = new OAuthIssuer({ url: "https://idp.example.com", cooldownMs: 30_000 });
 * const result = await issuer.verify(token, {
 *   audience: "https://gw.example.com/servers/files/mcp",
 *   now: Date.now(),
 * });
 * ```
 */
export class OAuthIssuer {
  /** The issuer URL as configured. */
  readonly url: string;
  #cooldownMs: number;
  #maxAgeMs: number;
  #fetchTimeoutMs: number;
  #discovery: Promise<{ metadata: IssuerMetadata; keys: JWTVerifyGetKey }> | undefined;
  #failedAt = -Infinity;

  constructor(options: OAuthIssuerOptions) {
    const { url, cooldownMs, maxAgeMs = 600_000, fetchTimeoutMs = 5_000 } = options;
    if (!isFetchableUrl(url) || new URL(url).search !== "" || new URL(url).hash !== "") {
      throw new TypeError(
        `Cannot trust OAuth issuer as its URL must be https:// (http:// only on loopback) without query or fragment: current value is ${
          JSON.stringify(url)
        }`,
      );
    }
    for (const [name, value] of [["cooldownMs", cooldownMs], ["maxAgeMs", maxAgeMs]] as const) {
      if (!Number.isFinite(value) || value < 0) {
        throw new RangeError(
          `Cannot trust OAuth issuer as '${name}' must be a non-negative number: current value is ${value}`,
        );
      }
    }
    this.url = url;
    this.#cooldownMs = cooldownMs;
    this.#maxAgeMs = maxAgeMs;
    this.#fetchTimeoutMs = fetchTimeoutMs;
  }

  /** Whether a token's `iss` names this issuer (trailing slashes aside, as metadata often differs so). */
  names(iss: string): boolean {
    return withoutTrailingSlash(iss) === withoutTrailingSlash(this.url);
  }

  /**
   * Finds the issuer's metadata and key set, once; a failure is retried at most once per cooldown.
   * Throws an Error naming each URL tried and what it answered.
   */
  async discover(): Promise<IssuerMetadata> {
    return (await this.#discovered()).metadata;
  }

  #discovered(): Promise<{ metadata: IssuerMetadata; keys: JWTVerifyGetKey }> {
    const retry = performance.now() - this.#failedAt >= this.#cooldownMs;
    if (this.#discovery === undefined || (this.#failedAt > -Infinity && retry)) {
      this.#failedAt = -Infinity;
      const discovery = this.#discover();
      this.#discovery = discovery;
      discovery.catch((error: unknown) => {
        if (this.#discovery !== discovery) return;
        this.#failedAt = performance.now();
        log.error("OAuth issuer {issuer} could not be discovered: {error}", {
          event: "oauth_discovery_failed",
          issuer: this.url,
          error: error instanceof Error ? error.message : String(error),
        });
      });
    }
    return this.#discovery;
  }

  async #discover(): Promise<{ metadata: IssuerMetadata; keys: JWTVerifyGetKey }> {
    const problems: string[] = [];
    for (const url of discoveryUrls(this.url)) {
      let document: Record<string, unknown>;
      try {
        document = await fetchJsonObject(url, this.#fetchTimeoutMs);
      } catch (error: unknown) {
        problems.push(`${url}: ${error instanceof Error ? error.message : String(error)}`);
        continue;
      }
      const { issuer, jwks_uri: jwksUri } = document;
      // RFC 8414 §3.3: metadata for another issuer is a mix-up, never a fallback.
      if (typeof issuer !== "string" || !this.names(issuer)) {
        throw new Error(
          `${url} describes issuer ${
            JSON.stringify(issuer)
          }, not ${this.url}; check --oauth-issuer`,
        );
      }
      if (typeof jwksUri !== "string" || !isFetchableUrl(jwksUri)) {
        throw new Error(
          `${url} has no usable jwks_uri (an https:// URL): ${JSON.stringify(jwksUri)}`,
        );
      }
      const keys = createRemoteJWKSet(new URL(jwksUri), {
        cooldownDuration: this.#cooldownMs,
        cacheMaxAge: this.#maxAgeMs,
        timeoutDuration: this.#fetchTimeoutMs,
      });
      log.info("OAuth issuer {issuer}: keys at {jwksUri}", {
        event: "oauth_discovered",
        issuer,
        jwksUri,
      });
      return { metadata: { issuer, jwksUri }, keys };
    }
    throw new Error(`no discovery document (${problems.join("; ")})`);
  }

  /**
   * Verifies an access token of this issuer for `audience`: signed by a key of the issuer's JWKS with an
   * asymmetric algorithm, `iss` equal to the issuer's metadata, `aud` containing `audience`, `exp` in the
   * future, `nbf` not, `sub` present, and an access-token `typ` (or none). No clock tolerance.
   */
  async verify(token: string, options: { audience: string; now: number }): Promise<OAuthResult> {
    let discovered: { metadata: IssuerMetadata; keys: JWTVerifyGetKey };
    try {
      discovered = await this.#discovered();
    } catch {
      return { rejected: "keys-unavailable" };
    }
    try {
      const { payload, protectedHeader } = await jwtVerify(token, discovered.keys, {
        algorithms: OAUTH_ALGORITHMS,
        issuer: discovered.metadata.issuer,
        audience: options.audience,
        requiredClaims: ["exp", "sub"],
        currentDate: new Date(options.now),
      });
      const type = protectedHeader.typ?.toLowerCase();
      if (type !== undefined && !ACCESS_TOKEN_TYPES.includes(type)) {
        return { rejected: "token-type" };
      }
      return { claims: payload as Record<string, unknown> };
    } catch (error: unknown) {
      return { rejected: oauthRejectionOf(error) };
    }
  }
}

/** Maps an error of verification to its rejection: key trouble is told apart from a bad token. */
function oauthRejectionOf(error: unknown): OAuthRejection {
  if (error instanceof errors.JWKSNoMatchingKey) return "unknown-key";
  if (error instanceof errors.JWTClaimValidationFailed && error.claim === "sub") {
    return "no-subject";
  }
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid) {
    return "keys-unavailable";
  }
  // The JWKS answered other than 200 (jose's generic error), or could not be reached (fetch's TypeError).
  if (error instanceof TypeError) return "keys-unavailable";
  if (error instanceof errors.JOSEError && error.code === errors.JOSEError.code) {
    return "keys-unavailable";
  }
  return jwtRejectionOf(error);
}

/**
 * The `iss` of a token that looks like a JWT, read without verifying anything: it only picks which
 * issuer verifies the token. Undefined for anything else.
 */
export function unverifiedIssuer(token: string): string | undefined {
  if (token.split(".").length !== 3) return undefined;
  try {
    const { iss } = decodeJwt(token);
    return typeof iss === "string" ? iss : undefined;
  } catch {
    return undefined;
  }
}
