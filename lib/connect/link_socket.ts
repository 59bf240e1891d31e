// The transport under a link, behind one small interface: today Deno's WebSocket client. What Deno reports
// only as text (a refused upgrade is `Invalid status code: 401`, a TLS mismatch a rustls message) is
// parsed here, once, into a typed outcome that the link and the supervisor switch on.

/** Why a socket never opened, or how an open one ended. */
export type SocketEnd =
  /** The gateway answered the upgrade with an HTTP status other than 101. */
  | { kind: "http-status"; status: number }
  /** The connection could not be made or the handshake failed; `cause` says why, `message` for humans. */
  | { kind: "failed"; cause: FailureCause; message: string }
  /** An open socket closed (by the peer, the network, or us): its close code (0 when none arrived). */
  | { kind: "closed"; code: number; reason: string };

/** What a failed dial amounts to, read from the runtime's message. */
export type FailureCause =
  | "dns"
  | "refused"
  | "reset"
  | "tls-plain-http"
  | "tls-untrusted"
  | "tls-expired"
  | "tls-name"
  | "tls-other"
  | "proxy"
  | "other";

/** Callbacks of a {@link LinkSocket}; each is called on the socket's own task, never re-entrantly. */
export interface LinkSocketEvents {
  /** The handshake completed: frames may be sent. */
  onOpen(): void;
  /** One text frame, or the byte size of a binary frame (which the protocol does not use). */
  onMessage(data: string | { binary: number }): void;
  /** Called once: the socket never opened, or it ended. */
  onEnd(end: SocketEnd): void;
}

/** How to dial. */
export interface LinkSocketOptions {
  url: URL;
  headers: Record<string, string>;
  /** Extra trusted CA (PEM). */
  caCert?: string;
}

/** An open (or opening) connection to the gateway. */
export interface LinkSocket {
  /** Bytes queued and not yet written to the network, for backpressure. */
  readonly bufferedAmount: number;
  /** True while frames can be sent. */
  readonly isOpen: boolean;
  /** Sends one text frame; false when the socket is not open (the caller answers for the message). */
  send(text: string): boolean;
  /** Starts the close without waiting for the peer (a silent peer never answers a close). */
  close(code: number, reason: string): void;
}

/**
 * Reads a Deno network error message into a cause, with a sentence that names the likely fix.
 *
 * @example
 * ```ts
 * import { classifyFailure } from "./link_socket.ts";
 * classifyFailure("received corrupt message of type InvalidContentType").cause; // "tls-plain-http"
 * ```
 */
export function classifyFailure(message: string): { cause: FailureCause; hint: string } {
  const text = message.toLowerCase();
  if (text.includes("invalidcontenttype") || text.includes("wrong version number")) {
    return {
      cause: "tls-plain-http",
      hint: "it answered plain HTTP to a TLS handshake: use http:// or ws:// for this gateway",
    };
  }
  if (text.includes("unknownissuer") || text.includes("unknown issuer")) {
    return {
      cause: "tls-untrusted",
      hint:
        "its TLS certificate is not signed by a trusted CA: pass the CA with --cert CA.pem (or fix the certificate)",
    };
  }
  if (text.includes("expired")) {
    return {
      cause: "tls-expired",
      hint: "its TLS certificate has expired: renew it on the gateway",
    };
  }
  if (text.includes("notvalidforname") || text.includes("not valid for name")) {
    return {
      cause: "tls-name",
      hint: "its TLS certificate does not name this host: use the host name the certificate is for",
    };
  }
  if (text.includes("certificate") || text.includes("tls") || text.includes("handshake")) {
    return { cause: "tls-other", hint: "the TLS handshake failed" };
  }
  if (
    text.includes("dns error") || text.includes("failed to lookup") ||
    text.includes("name or service not known") || text.includes("no address associated") ||
    text.includes("name resolution")
  ) {
    return { cause: "dns", hint: "its host name does not resolve: check the gateway URL" };
  }
  if (text.includes("proxy")) {
    return {
      cause: "proxy",
      hint:
        "the proxy (HTTPS_PROXY/HTTP_PROXY) refused the connection: check the proxy or NO_PROXY",
    };
  }
  if (text.includes("connection refused") || text.includes("tcp connect error")) {
    return {
      cause: "refused",
      hint: "nothing listens there: is the gateway running, and is the port right?",
    };
  }
  if (text.includes("reset") || text.includes("broken pipe") || text.includes("unexpected eof")) {
    return { cause: "reset", hint: "the connection was cut during the handshake" };
  }
  return { cause: "other", hint: "the connection failed" };
}

/** `Invalid status code: 401` → 401. */
function statusOf(message: string): number | undefined {
  const match = /status code:? (\d{3})/i.exec(message);
  return match ? Number(match[1]) : undefined;
}

/**
 * Dials the gateway over WebSocket. Events arrive through `events`; {@link LinkSocketEvents.onEnd} is
 * called exactly once, typed.
 *
 * @throws the runtime's permission error when `--allow-net` does not cover the URL (an input to fix)
 */
export function openWebSocket(options: LinkSocketOptions, events: LinkSocketEvents): LinkSocket {
  const { url, headers, caCert } = options;
  let client = caCert === undefined ? undefined : Deno.createHttpClient({ caCerts: [caCert] });
  let ws: WebSocket;
  try {
    ws = client === undefined
      ? new WebSocket(url, { headers })
      : new WebSocket(url, { headers, client });
  } catch (error) {
    client?.close();
    throw error;
  }
  let opened = false;
  let ended = false;
  let errorText = "";
  const end = (result: SocketEnd) => {
    if (ended) return;
    ended = true;
    client?.close();
    client = undefined;
    events.onEnd(result);
  };
  ws.onopen = () => {
    opened = true;
    events.onOpen();
  };
  ws.onerror = (event) => {
    errorText = (event as ErrorEvent).message ?? "";
  };
  ws.onclose = (event) => {
    if (opened) return end({ kind: "closed", code: event.code, reason: event.reason || errorText });
    const status = statusOf(errorText);
    if (status !== undefined) return end({ kind: "http-status", status });
    if (event.code !== 0 && event.code !== 1006) {
      return end({ kind: "closed", code: event.code, reason: event.reason });
    }
    const { cause } = classifyFailure(errorText);
    end({ kind: "failed", cause, message: errorText || "connection closed during the handshake" });
  };
  ws.onmessage = (event) => {
    if (ended) return;
    if (typeof event.data === "string") events.onMessage(event.data);
    else {
      const data = event.data as ArrayBuffer | Blob;
      events.onMessage({ binary: data instanceof ArrayBuffer ? data.byteLength : data.size });
    }
  };
  return {
    get bufferedAmount() {
      return ws.bufferedAmount;
    },
    get isOpen() {
      return !ended && ws.readyState === WebSocket.OPEN;
    },
    send(text) {
      if (ended || ws.readyState !== WebSocket.OPEN) return false;
      ws.send(text);
      return true;
    },
    close(code, reason) {
      try {
        if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) {
          ws.close(code, reason);
        }
      } catch {
        // Closing a socket that is already going away.
      }
      // Never wait for the peer's close: a half-open link never sends one.
      end({ kind: "closed", code, reason });
    },
  };
}
