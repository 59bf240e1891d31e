// The answers to a refused request: 401 (no valid token) and 403 (a valid token without the role), with
// the `WWW-Authenticate` challenge that tells a client what to send: a static token, or, with OAuth on,
// where the resource's metadata is and which scope to ask for (RFC 6750, RFC 9728, MCP authorization).

import type { Role } from "./identity.ts";
import type { ProtectedResource } from "./protected_resource.ts";
import type { Rejection } from "./token_store.ts";

/** What an OAuth challenge names: the resource asked for and the scope its role needs. */
export interface OAuthChallenge {
  resource: ProtectedResource;
  scope: string;
}

/** How to authenticate, for a client that got a 401: no OAuth here, a static token in a header. */
const HOW_TO_AUTHENTICATE =
  "This gateway takes a static bearer token, not OAuth: send the header Authorization: Bearer TOKEN";

/** Why a token was refused, for people. Quoted-string safe: no `"` or `\` (RFC 6750 §3). */
function oauthProblem(rejection: Rejection, resource: ProtectedResource): string {
  switch (rejection) {
    case "missing":
      return "No bearer token was sent.";
    case "expired":
      return "The access token has expired.";
    case "audience":
      return `The token is not for this resource: an OAuth access token must have the audience ${resource.url}.`;
    case "signature":
    case "unknown-key":
      return "The token's signature does not verify with its issuer's keys.";
    case "keys-unavailable":
      return "The issuer's keys could not be fetched; try again later.";
    case "algorithm":
      return "The token is not signed with an algorithm this gateway accepts (RS*, PS*, ES*, EdDSA).";
    case "token-type":
      return "The token's typ says it is not an access token.";
    case "no-subject":
      return "The token names no subject (sub).";
    case "not-yet-valid":
      return "The token is not valid yet (nbf).";
    default:
      return "The bearer token was not accepted (unknown, malformed, or not from a trusted issuer).";
  }
}

/**
 * The 401 answer. RFC 7235 requires `WWW-Authenticate`. Without OAuth, `error="invalid_token"` with a
 * description tells an OAuth-capable client (which would otherwise start OAuth discovery) and its user
 * that this gateway wants a static token. With OAuth, the challenge names the resource metadata and the
 * scope, which is what starts an MCP client's OAuth flow; `error` is left out when no token was sent
 * (RFC 6750 §3.1).
 *
 * @example
 * ```ts
 * import { unauthorized } from "./auth_challenge.ts";
 * unauthorized("missing").headers.get("www-authenticate")?.startsWith('Bearer realm="mcp-rproxy"'); // true
 * ```
 */
export function unauthorized(rejection: Rejection, oauth?: OAuthChallenge): Response {
  if (oauth === undefined) {
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
  const { resource, scope } = oauth;
  const description =
    `${oauthProblem(rejection, resource)} Send Authorization: Bearer TOKEN with ` +
    `a static token or an OAuth access token for ${resource.url} (scope ${scope}); ` +
    `the authorization servers are listed at ${resource.metadataUrl}`;
  const challenge = [
    `Bearer realm="mcp-rproxy"`,
    `resource_metadata="${resource.metadataUrl}"`,
    `scope="${scope}"`,
    ...(rejection === "missing"
      ? []
      : [`error="invalid_token"`, `error_description="${description}"`]),
  ].join(", ");
  return Response.json(
    {
      error: "invalid_token",
      error_description: description,
      authentication: {
        scheme: "Bearer",
        header: "Authorization: Bearer TOKEN",
        oauth: true,
        resource: resource.url,
        resource_metadata: resource.metadataUrl,
        scope,
      },
    },
    { status: 401, headers: { "www-authenticate": challenge } },
  );
}

/**
 * The 403 answer. For an OAuth access token it carries `error="insufficient_scope"` with the scope
 * needed, so that an MCP client can ask for it (a step-up authorization).
 *
 * @example
 * ```ts
 * import { forbidden } from "./auth_challenge.ts";
 * forbidden("connect").status; // 403
 * ```
 */
export function forbidden(role: Role, oauth?: OAuthChallenge): Response {
  if (oauth === undefined) {
    return Response.json(
      { error: "forbidden", message: `This token lacks the '${role}' permission` },
      { status: 403 },
    );
  }
  const { resource, scope } = oauth;
  const description = `The access token lacks the scope ${scope} ('${role}' permission)`;
  return Response.json(
    { error: "forbidden", message: description, scope },
    {
      status: 403,
      headers: {
        "www-authenticate": [
          `Bearer realm="mcp-rproxy"`,
          `error="insufficient_scope"`,
          `scope="${scope}"`,
          `resource_metadata="${resource.metadataUrl}"`,
          `error_description="${description}"`,
        ].join(", "),
      },
    },
  );
}
