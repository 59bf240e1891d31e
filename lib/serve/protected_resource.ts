// The gateway as OAuth protected resources (RFC 9728): each MCP endpoint, the sessions API and the tunnel
// endpoint is a resource named by its URL under the gateway's base URL, the audience its tokens must carry
// (RFC 8707), with its metadata at `/.well-known/oauth-protected-resource<path>`.

import type { HttpRequest } from "./http_request.ts";
import type { Role } from "./identity.ts";
import { ROLE_SCOPES } from "./oauth_identity.ts";

/** The path prefix of RFC 9728 metadata. */
export const METADATA_PREFIX = "/.well-known/oauth-protected-resource";

/** One protected resource of the gateway. */
export interface ProtectedResource {
  /** Its path under the base URL, e.g. `/servers/files/mcp`. */
  path: string;
  /** The resource URL: the audience its tokens must carry. */
  url: string;
  /** Where its RFC 9728 metadata is served. */
  metadataUrl: string;
  /** The role its requests need, and so the scope a client should ask for. */
  role: Role;
  /** Scopes that mean something here, for `scopes_supported`. */
  scopes: string[];
  /** For people: what the resource is. */
  name: string;
}

/**
 * The protected resource that a request path belongs to, under `base` (the gateway's base URL without a
 * trailing slash); undefined for paths that are no resource. MCP server names are taken decoded and written
 * encoded, so one server has one resource URL however its path was spelled.
 *
 * @example
 * ```ts
 * import { protectedResourceOf } from "./protected_resource.ts";
 * protectedResourceOf("https://gw.example.com", "/servers/files/mcp")?.metadataUrl;
 * // "https://gw.example.com/.well-known/oauth-protected-resource/servers/files/mcp"
 * ```
 */
export function protectedResourceOf(base: string, path: string): ProtectedResource | undefined {
  const segments = path.split("/").filter((s) => s !== "");
  const make = (
    canonical: string,
    role: Role,
    scopes: string[],
    name: string,
  ): ProtectedResource => ({
    path: canonical,
    url: `${base}${canonical}`,
    metadataUrl: `${base}${METADATA_PREFIX}${canonical}`,
    role,
    scopes,
    name,
  });
  const endpoint = segments[2];
  if (segments[0] === "servers" && endpoint !== undefined && segments.length === 3) {
    // The legacy transport is a resource of its own, named by its `/sse` URL: the one its clients ask
    // a token for (the SDK refuses metadata naming another resource). Its POSTs to `/messages` use it.
    const legacy = endpoint === "sse" || endpoint === "messages";
    if (endpoint !== "mcp" && !legacy) return undefined;
    let name: string;
    try {
      name = decodeURIComponent(segments[1]!);
    } catch {
      return undefined;
    }
    return make(
      `/servers/${encodeURIComponent(name)}/${legacy ? "sse" : "mcp"}`,
      "client",
      [ROLE_SCOPES.client],
      `MCP server ${name}${legacy ? ", legacy HTTP+SSE" : ""} (mcp-rproxy)`,
    );
  }
  if (segments[0] === "reverse-proxy" && segments[1] === "sessions") {
    return make(
      "/reverse-proxy/sessions",
      "client",
      [ROLE_SCOPES.client, ROLE_SCOPES.admin],
      "mcp-rproxy sessions API",
    );
  }
  // An SSE link (its stream and its POSTs) is the tunnel endpoint by another transport: connect falls
  // back to it with the token it has, so it is the same resource.
  const sseLink = segments[1] === "sse" && segments.length <= 3;
  if (
    segments[0] === "reverse-proxy" && ((segments[1] === "ws" && segments.length === 2) || sseLink)
  ) {
    return make("/reverse-proxy/ws", "connect", [ROLE_SCOPES.connect], "mcp-rproxy tunnel links");
  }
  return undefined;
}

/** CORS for the metadata: a public document that browser-based MCP clients read from other origins. */
const METADATA_CORS = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, OPTIONS",
  "access-control-allow-headers": "mcp-protocol-version",
};

/**
 * Answers a request under {@link METADATA_PREFIX}: the RFC 9728 metadata of the resource named by the rest
 * of the path, 404 when it names none (the bare prefix included: the gateway is many resources, and a
 * client that fell back to it would ask for a token no endpoint accepts), 405 for methods other than GET
 * and HEAD. No authentication: the document is what a client reads before it has a token.
 *
 * @example
 * ```ts
 * import { protectedResourceMetadata } from "./protected_resource.ts";
 * const answer = protectedResourceMetadata(
 *   new Request("https://gw.example.com/.well-known/oauth-protected-resource/servers/files/mcp"),
 *   { base: "https://gw.example.com", authorizationServers: ["https://idp.example.com"] },
 * );
 * answer.status; // 200
 * ```
 */
export function protectedResourceMetadata(
  request: HttpRequest,
  options: { base: string; authorizationServers: readonly string[] },
): Response {
  const path = new URL(request.url).pathname;
  const resource = path.startsWith(`${METADATA_PREFIX}/`)
    ? protectedResourceOf(options.base, path.slice(METADATA_PREFIX.length))
    : undefined;
  if (resource === undefined) {
    return Response.json({ error: "Not found" }, { status: 404, headers: METADATA_CORS });
  }
  if (request.method === "OPTIONS") {
    return new Response(null, { status: 204, headers: METADATA_CORS });
  }
  if (request.method !== "GET" && request.method !== "HEAD") {
    return Response.json({ error: "Method not allowed" }, {
      status: 405,
      headers: { ...METADATA_CORS, allow: "GET, HEAD, OPTIONS" },
    });
  }
  return Response.json({
    resource: resource.url,
    authorization_servers: options.authorizationServers,
    scopes_supported: resource.scopes,
    bearer_methods_supported: ["header"],
    resource_name: resource.name,
  }, { headers: { ...METADATA_CORS, "cache-control": "max-age=300" } });
}
