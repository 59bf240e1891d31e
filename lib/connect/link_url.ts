// Turns the gateway address a user gives into the WebSocket endpoint `<base>/reverse-proxy/ws` (and the
// SSE link's `<base>/reverse-proxy/sse`), keeping any path prefix, and tells loopback hosts apart for the
// clear-text warning.

/** A scheme prefix; checked by hand because `new URL("localhost:8080")` reads `localhost:` as a scheme. */
const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;
const WS_SCHEMES: Record<string, string> = { http: "ws", https: "wss", ws: "ws", wss: "wss" };
const ENDPOINT = "/reverse-proxy/ws";
/** Query parameter names (lower case, `-`/`_` removed) that carry credentials, whole. */
const SECRET_PARAMS = new Set([
  "auth",
  "authorization",
  "bearer",
  "jwt",
  "key",
  "sig",
]);
/** Parts of a parameter name that make it a credential (`x-api-key`, `client_secret`, `X-Amz-Signature`). */
const SECRET_PARTS = [
  "token",
  "apikey",
  "accesskey",
  "password",
  "passwd",
  "secret",
  "credential",
  "signature",
];

/** The address without query, fragment or user:password, safe to repeat in a message. */
function shown(text: string): string {
  const base = text.split(/[?#]/, 1)[0]!;
  return base.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^/]*@/i, "$1***@");
}

function isSecretParam(name: string): boolean {
  const flat = name.toLowerCase().replaceAll(/[-_]/g, "");
  return SECRET_PARAMS.has(flat) || SECRET_PARTS.some((part) => flat.includes(part));
}

/**
 * Normalizes a gateway address to its WebSocket endpoint, ending in `/reverse-proxy/ws`.
 *
 * Accepts `https://h`, `https://h/prefix`, `wss://h/reverse-proxy`, `…/reverse-proxy/ws`, `h:port` and
 * `h` (no scheme means `wss`), in any scheme case; `http` becomes `ws` and `https` becomes `wss`.
 * Trailing slashes are ignored and a path prefix is kept. Other query parameters are kept.
 *
 * @throws {TypeError} On an empty address, an unsupported scheme, an unparsable URL, an empty host,
 * credentials in the URL (user:password or a token-like query parameter: tokens must travel in the
 * `Authorization` header, never in a URL) or a fragment. Messages never repeat a credential.
 *
 * @example
 * ```ts
 * import { normalizeGatewayUrl } from "./link_url.ts";
 * normalizeGatewayUrl("https://gw.example.com/mcp/").href;
 * // "wss://gw.example.com/mcp/reverse-proxy/ws"
 * normalizeGatewayUrl("localhost:4444").href; // "wss://localhost:4444/reverse-proxy/ws"
 * ```
 */
export function normalizeGatewayUrl(input: string): URL {
  const text = input.trim();
  if (text === "") {
    throw new TypeError("Gateway URL is empty: give one such as https://gateway.example.com");
  }
  const match = SCHEME.exec(text);
  const scheme = match ? match[1]!.toLowerCase() : "wss";
  const wsScheme = WS_SCHEMES[scheme];
  if (wsScheme === undefined) {
    throw new TypeError(
      `Unsupported scheme '${scheme}://' in gateway URL: use https:// or wss:// (or http:// or ws:// for a local test gateway)`,
    );
  }
  const rest = match ? text.slice(match[0].length) : text;
  let url: URL;
  try {
    url = new URL(`${wsScheme}://${rest}`);
  } catch (cause) {
    throw new TypeError(
      `Gateway URL '${shown(text)}' is not a valid URL: write it as https://host[:port][/prefix]`,
      { cause },
    );
  }
  if (url.username !== "" || url.password !== "") {
    throw new TypeError(
      "Gateway URL contains user:password credentials: remove them and pass a bearer token with --token-file or REVERSE_PROXY_TOKEN",
    );
  }
  for (const name of url.searchParams.keys()) {
    if (isSecretParam(name)) {
      throw new TypeError(
        `Gateway URL carries the query parameter '${name}', which looks like a credential: tokens must never be sent in a URL; remove it and pass the token with --token-file or REVERSE_PROXY_TOKEN (it is sent as an Authorization header)`,
      );
    }
  }
  if (url.hostname === "" || /^[/?#]/.test(rest)) {
    throw new TypeError(
      `Gateway URL '${shown(text)}' has no host: write it as https://host[:port][/prefix]`,
    );
  }
  if (url.hash !== "") {
    throw new TypeError(
      `Gateway URL '${shown(text)}' has a #fragment: remove it, a WebSocket URL cannot carry one`,
    );
  }
  if (url.search === "") url.search = ""; // drops a bare trailing "?"
  const path = url.pathname.replace(/\/+$/, "");
  if (path.endsWith(ENDPOINT)) url.pathname = path;
  else if (path.endsWith("/reverse-proxy")) url.pathname = `${path}/ws`;
  else if (path.endsWith("/reverse-proxy/sse")) url.pathname = `${path.slice(0, -4)}/ws`;
  else url.pathname = `${path}${ENDPOINT}`;
  return url;
}

/**
 * The SSE link's stream for a normalized WebSocket endpoint: `http(s)` for `ws(s)`, `…/reverse-proxy/sse`
 * for `…/reverse-proxy/ws`, the query kept.
 *
 * @example
 * ```ts
 * import { sseEndpointOf } from "./link_url.ts";
 * sseEndpointOf(new URL("wss://gw.example.com/mcp/reverse-proxy/ws")).href;
 * // "https://gw.example.com/mcp/reverse-proxy/sse"
 * ```
 */
export function sseEndpointOf(wsUrl: URL): URL {
  const url = new URL(wsUrl.href.replace(/^ws/i, "http"));
  url.pathname = `${url.pathname.slice(0, -ENDPOINT.length)}/reverse-proxy/sse`;
  return url;
}

/**
 * Whether a URL points at this machine: `localhost` (and `*.localhost`), `127.0.0.0/8`, `::1`, or an
 * IPv4-mapped loopback address. Used to warn when a token would cross a network in clear text.
 *
 * @example
 * ```ts
 * import { isLoopbackHost } from "./link_url.ts";
 * isLoopbackHost(new URL("ws://127.0.0.1:4444")); // true
 * isLoopbackHost(new URL("ws://gateway.internal")); // false
 * ```
 */
export function isLoopbackHost(url: URL): boolean {
  const host = url.hostname.toLowerCase().replace(/\.$/, "");
  if (host === "localhost" || host.endsWith(".localhost")) return true;
  if (/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)) return true;
  if (host === "[::1]") return true;
  // The URL parser writes ::ffff:127.x.y.z as ::ffff:7fxx:yyzz
  return /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(host);
}

/**
 * The headers every dial of the link sends, WebSocket upgrade or SSE stream, built in one place: a socket
 * opened early (before the link dials) is taken by the first dial only if it sent what that dial would.
 *
 * @example
 * ```ts
 * import { dialHeaders } from "./link_url.ts";
 * dialHeaders("s1", undefined); // { "X-Session-ID": "s1" }
 * ```
 */
export function dialHeaders(sessionId: string, token: string | undefined): Record<string, string> {
  return {
    "X-Session-ID": sessionId,
    ...(token === undefined ? {} : { Authorization: `Bearer ${token}` }),
  };
}
