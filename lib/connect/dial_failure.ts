// What a failed dial means to the person running connect: one sentence that names the cause and the fix,
// built from the typed cause the socket adapter read out of the runtime's error text.

import type { FailureCause } from "./link_socket.ts";

/** What {@link describeFailure} needs besides the cause. */
export interface FailureContext {
  /** The endpoint dialed. */
  url: URL;
  /** The runtime's own words, quoted at the end for whoever searches for them. */
  runtimeText: string;
  /** The `--cert` file, when one was given: an untrusted certificate then means a different CA. */
  caCertPath?: string;
}

/** `host:port`, with the scheme's default port spelled out (a user compares it with a listener). */
function hostPort(url: URL): string {
  const port = url.port || (url.protocol === "wss:" ? "443" : "80");
  return `${url.hostname}:${port}`;
}

/** The `not valid after <unix seconds>` of rustls' expiry message, as an ISO date. */
function expiredAt(runtimeText: string): string | undefined {
  const seconds = /not valid after (\d+)/.exec(runtimeText)?.[1];
  return seconds === undefined ? undefined : new Date(Number(seconds) * 1000).toISOString();
}

/**
 * One sentence for a dial that failed before the WebSocket opened: what happened, then what to change.
 *
 * @example
 * ```ts
 * import { describeFailure } from "./dial_failure.ts";
 * describeFailure("tls-plain-http", {
 *   url: new URL("wss://127.0.0.1:8080/reverse-proxy/ws"),
 *   runtimeText: "received corrupt message of type InvalidContentType",
 * });
 * // "The gateway at wss://127.0.0.1:8080/reverse-proxy/ws answered plain HTTP: use http:// or ws://
 * //  in --gateway (received corrupt message of type InvalidContentType)"
 * ```
 */
export function describeFailure(cause: FailureCause, context: FailureContext): string {
  const { url, runtimeText, caCertPath } = context;
  const at = `The gateway at ${url.href}`;
  let sentence: string;
  switch (cause) {
    case "tls-plain-http":
      sentence = `${at} answered plain HTTP: use http:// or ws:// in --gateway`;
      break;
    case "tls-expected":
      sentence =
        `${at} did not answer plain HTTP; it most likely expects TLS: use https:// or wss:// in --gateway`;
      break;
    case "refused":
      sentence = `Nothing accepts connections at ${
        hostPort(url)
      } (connection refused): start the gateway, or fix the host and port in --gateway (behind HTTPS_PROXY/HTTP_PROXY: check the proxy's address)`;
      break;
    case "dns":
      sentence =
        `The host name '${url.hostname}' does not resolve (DNS lookup failed): check the host in --gateway`;
      break;
    case "proxy":
      sentence = `The proxy (HTTPS_PROXY/HTTP_PROXY) refused to open a tunnel to ${
        hostPort(url)
      }: allow that port on the proxy, or bypass the proxy for this host with NO_PROXY=${url.hostname}`;
      break;
    case "tls-expired": {
      const when = expiredAt(runtimeText);
      sentence = `${at} presented a TLS certificate that expired${
        when === undefined ? "" : ` on ${when}`
      }: renew the certificate on the gateway`;
      break;
    }
    case "tls-untrusted":
      sentence = caCertPath === undefined
        ? `${at} presented a TLS certificate not signed by a CA this machine trusts: pass the CA that signed it with --cert CA.pem`
        : `${at} presented a TLS certificate not signed by the CA in --cert ${caCertPath} (nor by a public CA): pass the CA that signed the gateway's certificate`;
      break;
    case "tls-name":
      sentence =
        `${at} presented a TLS certificate that is not valid for '${url.hostname}': use a host name the certificate names in --gateway`;
      break;
    case "tls-other":
      sentence = `The TLS handshake with the gateway at ${url.href} failed`;
      break;
    case "reset":
      sentence = `The connection to ${hostPort(url)} was cut during the handshake`;
      break;
    default:
      sentence = `Cannot connect to the gateway at ${url.href}`;
  }
  return `${sentence} (${runtimeText})`;
}

/**
 * One sentence for an upgrade the gateway (or something in front of it) answered with a status other
 * than 101 and other than an auth refusal.
 *
 * @example
 * ```ts
 * import { describeStatus } from "./dial_failure.ts";
 * describeStatus(404, new URL("wss://gw.example.com/reverse-proxy/ws"));
 * ```
 */
export function describeStatus(status: number, url: URL): string {
  if (url.pathname.endsWith("/reverse-proxy/sse")) return describeSseStatus(status, url);
  const at = `The gateway at ${url.href} answered the WebSocket upgrade with HTTP ${status}`;
  // 426: our gateway saw no Upgrade header; 200: a web server answered the request as a plain GET.
  if (status === 200 || status === 426) {
    return `${at}: something in between dropped the upgrade (a proxy in HTTP_PROXY/HTTPS_PROXY, or a web server that does not forward WebSocket): bypass the proxy with NO_PROXY=${url.hostname}, or let it pass WebSocket`;
  }
  if (status === 404) {
    return `${at}: nothing serves that path: check the path prefix in --gateway (connect adds /reverse-proxy/ws)`;
  }
  if (status === 502 || status === 503 || status === 504) {
    return `${at}: a proxy or load balancer in front of it cannot reach it: check that the gateway runs`;
  }
  return at;
}

/** {@link describeStatus} for the SSE link's stream. */
function describeSseStatus(status: number, url: URL): string {
  const at = `The gateway at ${url.href} answered the SSE link's stream with HTTP ${status}`;
  if (status === 404 || status === 405) {
    return `${at}: it has no SSE link endpoint (ContextForge gateways, contracts A and B, offer only WebSocket): use --transport websocket or auto`;
  }
  if (status === 502 || status === 503 || status === 504) {
    return `${at}: a proxy or load balancer in front of it cannot reach it: check that the gateway runs`;
  }
  return at;
}
