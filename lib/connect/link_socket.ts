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
  | "tls-expected"
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
  /**
   * Resolves once the socket is done with the network after it ended: what was sent before the close,
   * and the close itself, went out. A silent peer may never settle it: whoever waits bounds the wait.
   */
  readonly settled: Promise<void>;
}

/**
 * Reads a Deno network error message into a cause. Each pattern is what Deno 2.9 reports for that
 * failure, checked for real in tests/e2e/dial_errors_test.ts (the texts are not a stable API).
 *
 * @example
 * ```ts
 * import { classifyFailure } from "./link_socket.ts";
 * classifyFailure("received corrupt message of type InvalidContentType"); // "tls-plain-http"
 * ```
 */
export function classifyFailure(message: string): FailureCause {
  const text = message.toLowerCase();
  // TLS to a plain-HTTP port: rustls reads the HTTP answer as a TLS record.
  if (text.includes("invalidcontenttype") || text.includes("wrong version number")) {
    return "tls-plain-http";
  }
  // Plain HTTP to a TLS port: the answer (a TLS alert) is not HTTP.
  if (text.includes("invalid http version")) return "tls-expected";
  if (text.includes("certificate expired") || text.includes("expired")) return "tls-expired";
  if (text.includes("unknownissuer") || text.includes("unknown issuer")) return "tls-untrusted";
  if (text.includes("notvalidforname") || text.includes("not valid for name")) return "tls-name";
  if (text.includes("certificate") || text.includes("tls") || text.includes("handshake")) {
    return "tls-other";
  }
  // A proxy that answers CONNECT with anything but 200.
  if (text.includes("unsuccessful tunnel") || text.includes("proxy")) return "proxy";
  if (
    text.includes("dns error") || text.includes("failed to lookup") ||
    text.includes("name or service not known") || text.includes("no address associated") ||
    text.includes("name resolution")
  ) {
    return "dns";
  }
  if (text.includes("connection refused") || text.includes("tcp connect error")) return "refused";
  if (
    text.includes("reset") || text.includes("broken pipe") || text.includes("unexpected eof") ||
    text.includes("connection closed before message completed")
  ) {
    return "reset";
  }
  return "other";
}

/** `text` cut to at most `max` bytes of UTF-8, never inside a character. */
function truncateUtf8(text: string, max: number): string {
  const encoder = new TextEncoder();
  if (text.length * 3 <= max || encoder.encode(text).length <= max) return text;
  let cut = text.slice(0, max);
  while (encoder.encode(cut).length > max) cut = cut.slice(0, -1);
  return cut;
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
  // WebSocket's close event comes once the close handshake is done or the connection dropped.
  const settled = Promise.withResolvers<void>();
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
    settled.resolve();
    if (opened) return end({ kind: "closed", code: event.code, reason: event.reason || errorText });
    const status = statusOf(errorText);
    if (status !== undefined) return end({ kind: "http-status", status });
    if (event.code !== 0 && event.code !== 1006) {
      return end({ kind: "closed", code: event.code, reason: event.reason });
    }
    // Deno prefixes every dial failure alike: keep only what says what happened.
    const message = errorText.replace(/^(NetworkError: )?failed to connect to WebSocket: /i, "");
    end({
      kind: "failed",
      cause: classifyFailure(message),
      message: message || "connection closed during the handshake",
    });
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
    settled: settled.promise,
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
      // A client may send only 1000 and 3000-4999: any other code throws and would leave the socket open.
      const sendable = code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000;
      try {
        if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) {
          // The reason may hold at most 123 bytes of UTF-8.
          ws.close(sendable, truncateUtf8(reason, 123));
        }
      } catch {
        // Closing a socket that is already going away.
      }
      // Never wait for the peer's close: a half-open link never sends one.
      end({ kind: "closed", code, reason });
    },
  };
}
