// HTTP requests to a local server that speaks MCP over HTTP: its headers (secrets never logged), its CA,
// a deadline for each answer to start, bounded reading of answers, and failures told apart: the upstream
// cannot be reached (it is down) or it is slow (one request fails).

import { utf8Length } from "../util/utf8.ts";
import { classifyFailure } from "./link_socket.ts";
import type { HeaderSpec } from "./settings.ts";

/** Options of {@link UpstreamFetch}. */
export interface UpstreamFetchOptions {
  url: URL;
  headers: readonly HeaderSpec[];
  /** Extra trusted CA (PEM) for https. */
  caCert?: string;
  /** Deadline for an answer's status and headers, in milliseconds. */
  timeoutMs: number;
}

/** The upstream could not be reached at all: refused, no such host. It is down. */
export class UpstreamUnreachable extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UpstreamUnreachable";
  }
}

/** The upstream did not start answering in time, or the exchange broke: this request fails. */
export class UpstreamRequestFailed extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UpstreamRequestFailed";
  }
}

/** Redirects on the upstream's own origin followed for one request, at most. */
const MAX_REDIRECTS = 5;

/** What fetch reports, without its prefixes: the reason is in the cause. */
function reasonOf(error: unknown): string {
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  const text = cause instanceof Error ? cause.message : String(cause);
  return text.replace(/^.*client error \((Connect|SendRequest)\): /, "").slice(0, 300);
}

/** Requests to one upstream. Close it once the upstream is no longer used. */
export class UpstreamFetch {
  /** The URL without query (which may carry a credential), for messages. */
  readonly label: string;
  readonly url: URL;
  #headers: Record<string, string> = {};
  #client: Deno.HttpClient | undefined;
  #timeoutMs: number;

  constructor(options: UpstreamFetchOptions) {
    this.url = options.url;
    this.label = `${options.url.origin}${options.url.pathname}`;
    for (const header of options.headers) this.#headers[header.name] = header.value;
    this.#timeoutMs = options.timeoutMs;
    if (options.caCert !== undefined) {
      this.#client = Deno.createHttpClient({ caCerts: [options.caCert] });
    }
  }

  /**
   * Sends a request; resolves once the status and headers came.
   *
   * @throws {UpstreamUnreachable} when the connection cannot be made
   * @throws {UpstreamRequestFailed} when no answer starts within the timeout, the exchange broke, or
   * the upstream redirects to another origin (its headers, secrets among them, go to its own only)
   * @throws the signal's reason when it aborts
   */
  async request(init: {
    method: string;
    url?: URL;
    body?: string;
    headers: Record<string, string>;
    signal?: AbortSignal;
  }): Promise<Response> {
    // A timer of our own, cleared once the headers came: the body may stream for as long as it takes.
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), this.#timeoutMs);
    const signal = init.signal === undefined
      ? timeout.signal
      : AbortSignal.any([init.signal, timeout.signal]);
    let url = init.url ?? this.url;
    try {
      // Redirects are followed here: fetch would send the headers (all but Authorization) elsewhere too.
      for (let hops = 0;; hops++) {
        const response = await fetch(url, {
          method: init.method,
          headers: { ...this.#headers, ...init.headers },
          ...(init.body === undefined ? {} : { body: init.body }),
          signal,
          redirect: "manual",
          ...(this.#client === undefined ? {} : { client: this.#client }),
        });
        const location = response.headers.get("location");
        if (response.status < 300 || response.status > 399 || location === null) return response;
        await response.body?.cancel();
        const next = URL.parse(location, url);
        if (next === null || next.origin !== this.url.origin || hops === MAX_REDIRECTS) {
          throw new UpstreamRequestFailed(
            next === null || next.origin !== this.url.origin
              ? `it redirected to another origin (${
                next?.origin ?? location.slice(0, 100)
              }), where its headers are not sent: give the URL it redirects to`
              : `it redirected more than ${MAX_REDIRECTS} times`,
          );
        }
        url = next;
      }
    } catch (error: unknown) {
      if (error instanceof UpstreamRequestFailed) throw error;
      if (init.signal?.aborted) throw init.signal.reason;
      if (timeout.signal.aborted) {
        throw new UpstreamRequestFailed(
          `it did not answer within ${this.#timeoutMs / 1000} s (the server's timeout setting)`,
          { cause: error },
        );
      }
      const reason = reasonOf(error);
      const cause = classifyFailure(reason);
      if (cause === "refused" || cause === "dns" || cause.startsWith("tls")) {
        throw new UpstreamUnreachable(reason, { cause: error });
      }
      throw new UpstreamRequestFailed(reason, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }

  /** Releases the connection pool of a private CA. */
  close(): void {
    this.#client?.close();
    this.#client = undefined;
  }
}

/**
 * A response body as text, or the size it reached when it passed `maxChars` (it is then dropped).
 *
 * @throws {UpstreamRequestFailed} when the body breaks off
 */
export async function readBounded(
  response: Response,
  maxChars: number,
): Promise<{ text: string } | { oversized: number }> {
  const body = response.body;
  if (body === null) return { text: "" };
  const decoder = new TextDecoder();
  const pieces: string[] = [];
  let chars = 0;
  const reader = body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const piece = decoder.decode(value, { stream: true });
      chars += piece.length;
      if (chars > maxChars) return { oversized: chars };
      pieces.push(piece);
    }
    pieces.push(decoder.decode());
    return { text: pieces.join("") };
  } catch (error: unknown) {
    throw new UpstreamRequestFailed(`its answer broke off: ${reasonOf(error)}`, { cause: error });
  } finally {
    await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/** The first 200 characters of an error answer's body, for a message. */
export async function snippetOf(response: Response): Promise<string> {
  try {
    const read = await readBounded(response, 4096);
    if (!("text" in read)) return "";
    const text = read.text.replace(/\s+/g, " ").trim();
    return text === "" ? "" : `: ${text.slice(0, 200)}`;
  } catch {
    return "";
  }
}

/** A message's JSON text with its UTF-8 size, as transports report it. */
export function lineOf(text: string): { text: string; bytes: number } {
  return { text, bytes: utf8Length(text) };
}
