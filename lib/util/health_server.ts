// The optional HTTP listener for liveness, readiness and Prometheus metrics (`--health-listen`),
// and the client side of it for a container HEALTHCHECK.

import { listenError } from "./errors.ts";
import { formatHostPort, parseHostPort } from "./host_port.ts";

/** Options of {@link startHealthServer}. */
export interface HealthServerOptions {
  /** `HOST:PORT` to listen on (see host_port.ts); `[::1]:9090` for IPv6; port 0 picks a free one. */
  listen: string;
  /** True when `/readyz` should answer 200; called on every request. */
  ready: () => boolean;
  /** Lines that follow `ready` or `not ready` in the `/readyz` body (one per part, say). */
  readyDetail?: () => string;
  /** Source of the `/metrics` body. */
  metrics: { render(): string };
  /** Aborting it closes the server. */
  signal?: AbortSignal;
}

/** A running health server. */
export interface HealthServer {
  /** Base URL with the port actually bound, for example `http://127.0.0.1:9090`. */
  url: string;
  /** Stops listening and waits for open requests to finish. Safe to call twice. */
  close(): Promise<void>;
}

/** Content type of the text exposition format. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

function text(body: string, status: number, headers: Record<string, string> = {}): Response {
  return new Response(body, {
    status,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      "cache-control": "no-store",
      ...headers,
    },
  });
}

function handle(request: Request, options: HealthServerOptions): Response {
  const { pathname } = new URL(request.url);
  if (pathname !== "/healthz" && pathname !== "/readyz" && pathname !== "/metrics") {
    return text("not found\n", 404);
  }
  if (request.method !== "GET" && request.method !== "HEAD") {
    return text("method not allowed\n", 405, { allow: "GET, HEAD" });
  }
  try {
    if (pathname === "/healthz") return text("ok\n", 200);
    if (pathname === "/readyz") {
      const detail = options.readyDetail?.() ?? "";
      const more = detail === "" ? "" : `${detail}\n`;
      return options.ready() ? text(`ready\n${more}`, 200) : text(`not ready\n${more}`, 503);
    }
    return text(options.metrics.render(), 200, { "content-type": METRICS_CONTENT_TYPE });
  } catch (error: unknown) {
    return text(`error: ${error instanceof Error ? error.message : String(error)}\n`, 500);
  }
}

/**
 * Starts the health server: `/healthz` (200 while the process runs), `/readyz` (200 when `ready()`, else
 * 503), `/metrics` (Prometheus text format 0.0.4), 404 for other paths. It writes nothing to stdout, which
 * is the MCP channel of `connect`.
 *
 * @example
 * ```ts
 * import { startHealthServer } from "./health_server.ts";
 * const server = await startHealthServer({
 *   listen: "127.0.0.1:0",
 *   ready: () => true,
 *   metrics: { render: () => "" },
 * });
 * await fetch(`${server.url}/healthz`).then((r) => r.text()); // "ok\n"
 * await server.close();
 * ```
 */
export function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  try {
    return Promise.resolve(listen(options));
  } catch (error: unknown) {
    return Promise.reject(error);
  }
}

function listen(options: HealthServerOptions): HealthServer {
  const { hostname, port } = parseHostPort(options.listen);
  const { signal } = options;
  signal?.throwIfAborted();
  const controller = new AbortController();
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname,
      port,
      signal: controller.signal,
      onListen: () => {}, // the default prints to stdout
      onError: (error) => text(`error: ${String(error)}\n`, 500),
    }, (request) => handle(request, options));
  } catch (error: unknown) {
    throw listenError(error, { address: options.listen, setting: "--health-listen" }) ?? error;
  }
  const onAbort = () => controller.abort();
  signal?.addEventListener("abort", onAbort, { once: true });
  return {
    url: `http://${formatHostPort(server.addr)}`,
    close: async () => {
      signal?.removeEventListener("abort", onAbort);
      controller.abort();
      await server.finished;
    },
  };
}

/** Options of {@link checkHealth}. */
export interface CheckHealthOptions {
  /** Give up after this many milliseconds. Default 3000. */
  timeoutMs?: number;
}

/** What a health probe found: whether it passed, and in a few words what answered. */
export interface HealthProbe {
  /** True for a 2xx answer in time. */
  ok: boolean;
  /** `HTTP 200`, `HTTP 503`, `no answer within 3000 ms`, or the connection error. */
  detail: string;
}

/**
 * Requests `url` and says whether it answered 2xx in time: the probe behind the `healthcheck` command
 * for images without curl. Never throws.
 *
 * @example
 * ```ts
 * import { checkHealth } from "./health_server.ts";
 * const probe = await checkHealth("http://127.0.0.1:1/readyz", { timeoutMs: 500 });
 * probe.ok; // false
 * ```
 */
export async function checkHealth(
  url: string,
  options: CheckHealthOptions = {},
): Promise<HealthProbe> {
  const { timeoutMs = 3000 } = options;
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await response.body?.cancel();
    return { ok: response.ok, detail: `HTTP ${response.status}` };
  } catch (error: unknown) {
    if (error instanceof DOMException && error.name === "TimeoutError") {
      return { ok: false, detail: `no answer within ${timeoutMs} ms` };
    }
    // fetch says only "fetch failed"; the reason ("Connection refused", "dns error") is in the cause
    const cause = error instanceof Error ? error.cause : undefined;
    const reason = cause instanceof Error ? cause.message : String(error);
    return { ok: false, detail: reason.replace(/^.*client error \(Connect\): /, "") };
  }
}
