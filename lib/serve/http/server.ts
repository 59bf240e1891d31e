// serve's HTTP and WebSocket listener: node:http (node:https with PEM cert/key) and the npm `ws` server,
// with every bound in-process (header, body-rate and keep-alive timeouts; frames refused at their header).
// Handlers see an `HttpRequest` (a subset of the Web `Request`), answer with a Web `Response`, and get a
// `PeerSocket` for an upgrade: nothing else in serve knows this stack.
// Why this stack and not Deno.serve: docs/architecture.md.

import http from "node:http";
import https from "node:https";
import type { Duplex } from "node:stream";
import { Buffer } from "node:buffer";
// @ts-types="@types/ws"
import { type ServerOptions, type WebSocket, WebSocketServer } from "ws";
import { logger } from "../../util/log.ts";
import type { HttpRequest } from "../http_request.ts";
import type { PeerSocket, WebSocketAccept } from "../peer_socket.ts";
import { RequestBodyTimeoutError } from "../request_body.ts";
import { BodyDeadlines } from "./body_deadlines.ts";
import { NodeRequest } from "./node_request.ts";
import { linger, writeWebResponse } from "./web_exchange.ts";
import { fromWs } from "./ws_peer_socket.ts";

const log = logger("serve", "http");

/** What is logged of a request nobody has authenticated yet (path, error text). */
export const UNAUTHENTICATED_LOG_CHARS = 200;

/** How long a WebSocket that is closing waits for the peer's close frame before dropping it. */
const WS_CLOSE_TIMEOUT_MS = 2_000;

/** Answers one request: a `Response`, or (for a WebSocket upgrade) a {@link WebSocketAccept}. */
export type HttpHandler = (request: HttpRequest) => Promise<Response | WebSocketAccept>;

/** The timeouts of {@link startHttpServer}, in milliseconds. */
export interface HttpTimeouts {
  /** A request's headers must be complete this long after its first byte (else 408). */
  headersMs: number;
  /** A body gets this long before `bodyMinBytesPerSecond` applies. */
  bodyMs: number;
  /** After `bodyMs`, a body must keep arriving at this many bytes a second (else 408). */
  bodyMinBytesPerSecond: number;
  /** An idle keep-alive connection is closed after this long. */
  keepAliveMs: number;
}

/** Options of {@link startHttpServer}. */
export interface HttpServerOptions {
  hostname: string;
  /** 0 picks a free port. */
  port: number;
  /** PEM certificate chain and key: HTTPS/WSS. */
  tls?: { cert: string; key: string };
  handler: HttpHandler;
  timeouts: HttpTimeouts;
  /** Largest WebSocket message, in bytes: a larger one is refused at its frame header (1009). */
  maxFrameBytes: number;
  /** WebSocket ping interval and pong deadline, in milliseconds; 0 = no pings. */
  wsIdleTimeoutMs: number;
}

/** A listening server. */
export interface HttpServer {
  /** The actual port. */
  readonly port: number;
  /** `http` or `https`. */
  readonly scheme: string;
  /** Accepted WebSockets that are still open. */
  readonly webSocketCount: number;
  /**
   * Stops listening and drops every connection. Close the WebSockets with a handshake first: one still
   * open here is dropped without one.
   */
  close(): Promise<void>;
}

/** The status line, headers and body of a refusal written on a socket that asked to upgrade. */
async function rawResponse(response: Response): Promise<Buffer> {
  const body = Buffer.from(await response.bytes());
  const lines = [`HTTP/1.1 ${response.status} ${http.STATUS_CODES[response.status] ?? ""}`];
  response.headers.forEach((value, name) => {
    if (name !== "connection" && name !== "content-length") lines.push(`${name}: ${value}`);
  });
  lines.push(`content-length: ${body.byteLength}`, "connection: close", "", "");
  return Buffer.concat([Buffer.from(lines.join("\r\n")), body]);
}

function jsonResponse(status: number, body: unknown): Response {
  return Response.json(body, { status });
}

/** `text` as an unauthenticated request's log line may carry it: cut to 200 characters, with its length. */
export function bounded(text: string): string {
  return text.length <= UNAUTHENTICATED_LOG_CHARS
    ? text
    : `${text.slice(0, UNAUTHENTICATED_LOG_CHARS)}… (${text.length} chars)`;
}

/**
 * A listen failure as the Deno error callers branch on (`AddrInUse`, `PermissionDenied`, `NotCapable`
 * for a missing --allow-net), whatever the stack reported it as.
 */
function listenError(error: Error & { code?: string }, address: string): Error {
  if (error instanceof Deno.errors.NotCapable) return error;
  const message = `Cannot listen on ${address}: ${error.message}`;
  if (error.code === "EADDRINUSE") return new Deno.errors.AddrInUse(message, { cause: error });
  if (error.code === "EACCES") return new Deno.errors.PermissionDenied(message, { cause: error });
  return error;
}

/** How often node:http checks the header and request timeouts: often enough to hold them within ~1 s. */
function checkingInterval(timeouts: HttpTimeouts): number {
  return Math.max(100, Math.min(1_000, timeouts.headersMs / 4));
}

/**
 * Starts listening. Resolves once the socket is bound.
 *
 * @example
 * ```ts ignore
 * const server = await startHttpServer({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   handler: () => Promise.resolve(new Response("ok")),
 *   timeouts: { headersMs: 10_000, bodyMs: 10_000, bodyMinBytesPerSecond: 1024, keepAliveMs: 5_000 },
 *   maxFrameBytes: 32 * 1024 * 1024,
 *   wsIdleTimeoutMs: 60_000,
 * });
 * await server.close();
 * ```
 */
export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const { hostname, port, tls, handler, timeouts, maxFrameBytes, wsIdleTimeoutMs } = options;
  const scheme = tls === undefined ? "http" : "https";
  const serverOptions: http.ServerOptions = {
    headersTimeout: timeouts.headersMs,
    // The body's bound is its arrival rate (web_exchange.ts), not a total: a large upload at a fair rate
    // may take longer than any fixed request timeout.
    requestTimeout: 0,
    keepAliveTimeout: timeouts.keepAliveMs,
    connectionsCheckingInterval: checkingInterval(timeouts),
  };
  const server = tls === undefined ? http.createServer(serverOptions) : https.createServer({
    ...serverOptions,
    cert: tls.cert,
    key: tls.key,
    // No ALPN: Deno's WebSocket client retries a failed wss handshake offering only "h2", which a
    // server announcing "http/1.1" answers with a no_application_protocol alert; that alert would then
    // be all a client with an untrusted certificate gets to see, instead of the certificate error.
    ALPNProtocols: [],
  });
  const wsOptions: ServerOptions & { closeTimeout: number } = {
    noServer: true,
    maxPayload: maxFrameBytes,
    perMessageDeflate: false,
    // A peer that does not finish the closing handshake is dropped after this long (ws's default is
    // 30 s; the option is in ws 8.23, not yet in @types/ws 8.18).
    closeTimeout: WS_CLOSE_TIMEOUT_MS,
  };
  const wss = new WebSocketServer(wsOptions);
  const bodyRate = {
    rate: { graceMs: timeouts.bodyMs, minBytesPerSecond: timeouts.bodyMinBytesPerSecond },
    // Checked often enough that a slow body is cut within ~a quarter of its grace, at most a second late.
    deadlines: new BodyDeadlines(Math.max(50, Math.min(1_000, timeouts.bodyMs / 4))),
  };
  let fallbackHost = `${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;

  function nodeRequest(req: http.IncomingMessage, res?: http.ServerResponse): NodeRequest {
    return new NodeRequest(req, {
      scheme,
      fallbackHost,
      bodyRate,
      ...(res === undefined ? {} : { clientGone: () => clientGone(res) }),
      onBodyTimeout(error) {
        log.debug("Dropped a request whose body arrived too slowly: {error}", {
          event: "body_timeout",
          error: error.message,
        });
        if (res === undefined || res.headersSent) {
          res?.destroy();
          return;
        }
        void writeWebResponse(res, jsonResponse(408, { error: error.message }), true);
      },
    });
  }

  /** Aborts when the connection closes before the answer was written whole: the client went away. */
  function clientGone(res: http.ServerResponse): AbortSignal {
    const controller = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) controller.abort(new Error("the client disconnected"));
    });
    return controller.signal;
  }

  async function onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let request: NodeRequest;
    try {
      request = nodeRequest(req, res);
    } catch (error) {
      log.debug("Bad request target {target}: {error}", {
        event: "bad_request",
        target: bounded(req.url ?? ""),
        error: bounded(String(error)),
      });
      await writeWebResponse(res, jsonResponse(400, { error: "Bad request target" }), true);
      return;
    }
    try {
      let answer: Response | WebSocketAccept;
      try {
        answer = await handler(request);
      } catch (error) {
        if (error instanceof RequestBodyTimeoutError) return; // answered 408 already
        throw error;
      }
      if (res.headersSent || res.destroyed) {
        if (answer instanceof Response) await answer.body?.cancel();
        return;
      }
      const response = answer instanceof Response
        ? answer
        : jsonResponse(426, { error: "Expected a WebSocket upgrade" });
      await writeWebResponse(res, response, false);
      // A body left unread is read and dropped within bounds, so that the client gets the answer.
      request.abandonBody();
      linger(req);
    } finally {
      request.dispose();
    }
  }

  async function onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    // Until ws owns the socket, an error on it (a peer that resets) must not be unhandled.
    socket.on("error", () => socket.destroy());
    let answer: Response | WebSocketAccept;
    try {
      answer = await handler(nodeRequest(req));
    } catch (error) {
      if (error instanceof TypeError) {
        log.debug("Bad upgrade target {target}", {
          event: "bad_request",
          target: bounded(req.url ?? ""),
        });
        answer = jsonResponse(400, { error: "Bad request target" });
      } else throw error;
    }
    if (socket.destroyed) return;
    if (answer instanceof Response) {
      // Dropped once written: the peer gets the status (Deno's client reports `Invalid status code: 401`).
      socket.end(await rawResponse(answer), () => socket.destroy());
      return;
    }
    const accepted = answer;
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      const peer: PeerSocket = fromWs(ws, {
        socket,
        maxFrameBytes,
        idleTimeoutMs: wsIdleTimeoutMs,
      });
      accepted.accept(peer);
    });
  }

  server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    onRequest(req, res).catch((error) => {
      log.error("Request to {path} failed: {error}", {
        event: "internal_error",
        path: bounded(req.url ?? ""),
        error: String(error),
      });
      if (!res.headersSent) {
        void writeWebResponse(res, jsonResponse(500, { error: "Internal error" }), true);
      } else res.destroy();
    });
  });
  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    onUpgrade(req, socket, head).catch((error) => {
      log.error("Upgrade to {path} failed: {error}", {
        event: "internal_error",
        path: bounded(req.url ?? ""),
        error: String(error),
      });
      socket.destroy();
    });
  });
  server.on("clientError", (error: Error & { code?: string }, socket: Duplex) => {
    // Malformed or timed-out requests: node's own answers, logged at debug only (nobody is known yet).
    log.debug("Client error {code}: {error}", {
      event: "client_error",
      code: error.code ?? "",
      error: bounded(error.message),
    });
    // As node does without a listener: a status line if nothing was written yet, then drop the socket.
    const written = (socket as Duplex & { bytesWritten?: number }).bytesWritten ?? 0;
    if (socket.writable && written === 0 && error.code !== "ECONNRESET") {
      const status = error.code === "HPE_HEADER_OVERFLOW"
        ? 431
        : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? 408
        : 400;
      socket.write(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nconnection: close\r\n\r\n`);
    }
    socket.destroy();
  });

  // node:net reports a missing --allow-net from a later tick, as an uncaught error: ask first.
  const netHost = `${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
  if (Deno.permissions.querySync({ name: "net", host: netHost }).state !== "granted") {
    throw new Deno.errors.NotCapable(
      `Requires net access to "${netHost}", run again with the --allow-net flag`,
    );
  }
  await new Promise<void>((resolve, reject) => {
    const failed = (error: Error) => reject(listenError(error, `${hostname}:${port}`));
    server.once("error", failed);
    try {
      server.listen(port, hostname, () => {
        server.off("error", failed);
        resolve();
      });
    } catch (error) {
      failed(error as Error);
    }
  });
  const address = server.address();
  const actualPort = typeof address === "object" && address !== null ? address.port : port;
  fallbackHost = `${hostname.includes(":") ? `[${hostname}]` : hostname}:${actualPort}`;

  let closing: Promise<void> | undefined;
  return {
    port: actualPort,
    scheme,
    get webSocketCount() {
      return wss.clients.size;
    },
    close() {
      closing ??= (async () => {
        // server.close() resolves once every connection is gone; upgraded sockets count, and
        // closeAllConnections() does not reach them: they are terminated here.
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        for (const ws of wss.clients) ws.terminate();
        wss.close();
        bodyRate.deadlines.close();
        await stopped;
      })();
      return closing;
    },
  };
}
