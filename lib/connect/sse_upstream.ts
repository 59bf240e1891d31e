// A local server that speaks the legacy HTTP+SSE transport of MCP 2024-11-05: a GET opens the event
// stream, whose first `endpoint` event says where to POST messages; every message from the server comes
// as a `message` event on that stream. The stream is the session: when it ends the transport ends, and
// the supervisor reconnects with backoff (a new stream, a new `initialize`).

import { logger } from "../util/log.ts";
import { readSseEvents, type SseEvent } from "../util/sse_reader.ts";
import { ErrorCode, errorResponse, type MessageFacts } from "../protocol/jsonrpc.ts";
import { ServerStartError } from "./errors.ts";
import { factsOfText } from "./http_upstream.ts";
import type { LocalTransport, LocalTransportEvents } from "./local_transport.ts";
import { CONNECT_DEFAULTS, type HeaderSpec } from "./settings.ts";
import {
  DEFAULT_STDIN_QUEUE_LIMITS,
  type QueueOutcome,
  type StdinQueueLimits,
} from "./stdin_queue.ts";
import {
  lineOf,
  snippetOf,
  UpstreamFetch,
  UpstreamRequestFailed,
  UpstreamUnreachable,
} from "./upstream_fetch.ts";

const log = logger("server");
const QUEUED: QueueOutcome = { kind: "queued" };
const CLOSED: QueueOutcome = { kind: "closed" };

/** Options of {@link SseUpstream.open}. */
export interface SseUpstreamOptions {
  url: URL;
  headers: readonly HeaderSpec[];
  caCert?: string;
  /** Deadline for the stream's `endpoint` event and for each POST's answer, in milliseconds. */
  timeoutMs: number;
  queueLimits?: StdinQueueLimits;
  signal?: AbortSignal;
  /** Largest event taken from the stream, in characters. Default 64 Mi. */
  maxMessageBytes?: number;
}

/** The way to one legacy SSE upstream. */
export class SseUpstream implements LocalTransport {
  readonly kind = "sse";
  readonly label: string;
  readonly pid = undefined;
  readonly ended: Promise<string>;
  #resolveEnded!: (why: string) => void;
  #done = false;
  #fetch: UpstreamFetch;
  #events: LocalTransportEvents;
  #limits: StdinQueueLimits;
  #stream = new AbortController();
  #postUrl!: URL;
  #sessionId: string | undefined;
  #open = new Set<AbortController>();
  #openBytes = 0;

  private constructor(options: SseUpstreamOptions, events: LocalTransportEvents) {
    this.#fetch = new UpstreamFetch(options);
    this.label = this.#fetch.label;
    this.#events = events;
    this.#limits = options.queueLimits ?? DEFAULT_STDIN_QUEUE_LIMITS;
    this.ended = new Promise((resolve) => this.#resolveEnded = resolve);
  }

  /**
   * Opens the event stream and waits for its `endpoint` event.
   *
   * @throws {ServerStartError} when the stream cannot be opened or says no endpoint in time
   */
  static async open(
    options: SseUpstreamOptions,
    events: LocalTransportEvents,
  ): Promise<SseUpstream> {
    const upstream = new SseUpstream(options, events);
    try {
      await upstream.#connect(options);
      return upstream;
    } catch (error: unknown) {
      upstream.#end("could not open");
      if (options.signal?.aborted) throw options.signal.reason;
      throw new ServerStartError(
        `Cannot open the event stream of the local server at ${upstream.label}: ${
          (error as Error).message
        }`,
        { cause: error },
      );
    }
  }

  /** The session id the endpoint URL carries, when it has one (for logs and tests). */
  get mcpSessionId(): string | undefined {
    return this.#sessionId;
  }

  get writable(): boolean {
    return !this.#done;
  }

  write(text: string): QueueOutcome {
    if (this.#done) return CLOSED;
    const { maxMessages, maxBytes } = this.#limits;
    if (this.#open.size + 1 > maxMessages || this.#openBytes + text.length > maxBytes) {
      return {
        kind: "full",
        limit: this.#open.size + 1 > maxMessages ? "messages" : "bytes",
        limits: this.#limits,
        bytes: this.#openBytes,
        messages: this.#open.size,
      };
    }
    void this.#post(text);
    return QUEUED;
  }

  send(text: string): Promise<boolean> {
    return this.#done ? Promise.resolve(false) : this.#post(text);
  }

  initialized(): void {}

  stop(): Promise<void> {
    this.#end("stopped");
    return Promise.resolve();
  }

  kill(): void {
    this.#end("killed");
  }

  #end(why: string): void {
    if (this.#done) return;
    this.#done = true;
    this.#stream.abort();
    for (const controller of this.#open) controller.abort();
    this.#fetch.close();
    this.#resolveEnded(why);
  }

  async #connect(options: SseUpstreamOptions): Promise<void> {
    const signal = options.signal === undefined
      ? this.#stream.signal
      : AbortSignal.any([options.signal, this.#stream.signal]);
    const response = await this.#fetch.request({
      method: "GET",
      headers: { accept: "text/event-stream" },
      signal,
    });
    const type = response.headers.get("content-type") ?? "";
    if (!response.ok || !type.includes("text/event-stream") || response.body === null) {
      const detail = await snippetOf(response);
      throw new Error(
        `it answered HTTP ${response.status} (${type || "no content type"})${detail}`,
      );
    }
    const events = readSseEvents(response.body, {
      maxEventChars: options.maxMessageBytes ?? CONNECT_DEFAULTS.maxMessageBytes,
      onOversized: (chars, ends) => this.#events.onOversized?.({ ...ends, bytes: chars }),
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const first = await Promise.race([
      events.next(),
      new Promise<"timeout">((resolve) =>
        timer = setTimeout(() => resolve("timeout"), options.timeoutMs)
      ),
    ]).finally(() => clearTimeout(timer));
    if (first === "timeout" || first.done || first.value.event !== "endpoint") {
      await events.return(undefined);
      throw new Error(
        first === "timeout"
          ? `no endpoint event within ${options.timeoutMs / 1000} s`
          : "its first event is not the endpoint event (is it a 2024-11-05 SSE server?)",
      );
    }
    const postUrl = URL.parse(first.value.data.trim(), this.#fetch.url);
    // Its headers (a bearer token) go with every POST: never to another origin than the stream's.
    if (postUrl === null || postUrl.origin !== this.#fetch.url.origin) {
      await events.return(undefined);
      throw new Error(
        `its endpoint event names ${
          postUrl === null ? "no valid URL" : `another origin (${postUrl.origin})`
        }; messages go only to the server's own origin`,
      );
    }
    this.#postUrl = postUrl;
    this.#sessionId = this.#postUrl.searchParams.get("sessionId") ??
      this.#postUrl.searchParams.get("session_id") ?? undefined;
    void this.#pump(events);
  }

  async #pump(events: AsyncGenerator<SseEvent>): Promise<void> {
    let why = "the server closed its event stream";
    try {
      for await (const event of events) {
        if (event.event !== "message" || event.data.trim() === "") continue;
        await this.#events.onLine(lineOf(event.data));
      }
    } catch (error: unknown) {
      why = `its event stream broke off (${error instanceof Error ? error.message : error})`;
    }
    if (!this.#done) {
      log.warning("The local server at {url} ended the session: {why}", {
        event: "upstream_stream_ended",
        url: this.label,
        why,
      });
    }
    this.#end(why);
  }

  #answerError(facts: MessageFacts | undefined, message: string): void {
    if (facts?.kind !== "request" || facts.id === undefined || facts.id === null) return;
    const response = errorResponse(facts.id, ErrorCode.ServerUnavailable, message);
    void this.#events.onLine(lineOf(JSON.stringify(response)));
  }

  /** POSTs one message; its answer comes on the stream. True when the upstream took it. */
  async #post(text: string): Promise<boolean> {
    const controller = new AbortController();
    this.#open.add(controller);
    this.#openBytes += text.length;
    try {
      const response = await this.#fetch.request({
        method: "POST",
        url: this.#postUrl,
        body: text,
        headers: { "content-type": "application/json" },
        signal: controller.signal,
      });
      if (response.ok) {
        await response.body?.cancel();
        return true;
      }
      const detail = await snippetOf(response);
      this.#answerError(
        factsOfText(text),
        `The local server at ${this.label} answered HTTP ${response.status}${detail}`,
      );
      return false;
    } catch (error: unknown) {
      if (this.#done) return false;
      const facts = factsOfText(text);
      if (error instanceof UpstreamUnreachable) {
        this.#answerError(facts, `The local server at ${this.label} cannot be reached`);
        this.#end(`unreachable: ${error.message}`);
      } else {
        const why = error instanceof UpstreamRequestFailed ? error.message : String(error);
        this.#answerError(facts, `The local server at ${this.label} failed: ${why}`);
      }
      return false;
    } finally {
      this.#open.delete(controller);
      this.#openBytes -= text.length;
    }
  }
}
