// A local server that speaks MCP Streamable HTTP, with connect as its MCP client: each message is a POST
// (its answer JSON or an event stream), the server's own messages come on the GET stream, the session id
// rides on every request. A session the server forgot (404) is initialized again, once, and the message
// that met the 404 is sent again on the new session; an upstream that cannot be reached ends the
// transport, which the supervisor treats like a server that exited (reconnect with backoff).

import { delay } from "../util/delay.ts";
import { logger } from "../util/log.ts";
import { type OversizedEnds, readSseEvents } from "../util/sse_reader.ts";
import {
  ErrorCode,
  errorResponse,
  factsOf,
  type MessageFacts,
  scanFacts,
} from "../protocol/jsonrpc.ts";
import { SCAN_ABOVE_CHARS } from "../protocol/json_scan.ts";
import type { LocalTransport, LocalTransportEvents } from "./local_transport.ts";
import { CONNECT_DEFAULTS, type HeaderSpec } from "./settings.ts";
import { oversizedText } from "./frame_limit.ts";
import {
  DEFAULT_STDIN_QUEUE_LIMITS,
  type QueueOutcome,
  type StdinQueueLimits,
} from "./stdin_queue.ts";
import {
  lineOf,
  readBounded,
  snippetOf,
  UpstreamFetch,
  UpstreamRequestFailed,
  UpstreamUnreachable,
} from "./upstream_fetch.ts";

const log = logger("server");
const QUEUED: QueueOutcome = { kind: "queued" };
const CLOSED: QueueOutcome = { kind: "closed" };
const INITIALIZED = '{"jsonrpc":"2.0","method":"notifications/initialized"}';

/** Options of {@link HttpUpstream.open}. */
export interface HttpUpstreamOptions {
  url: URL;
  headers: readonly HeaderSpec[];
  caCert?: string;
  /** Deadline for each answer to start, in milliseconds. */
  timeoutMs: number;
  /** Bounds of the requests in flight: their count and the size of their bodies. */
  queueLimits?: StdinQueueLimits;
  /** Time a DELETE of the session may take on stop, in milliseconds. */
  graceMs?: number;
  /** Largest message taken from the upstream, in characters of its text. Default 64 Mi. */
  maxMessageBytes?: number;
}

/** The facts of one message's text (batches count as having none). */
export function factsOfText(text: string): MessageFacts | undefined {
  try {
    if (text.length > SCAN_ABOVE_CHARS) {
      const facts = scanFacts(text);
      return typeof facts === "object" ? facts : undefined;
    }
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? undefined : factsOf(value);
  } catch {
    return undefined;
  }
}

/** A session the upstream no longer knows: 404, or the 400 of servers that answer so (the SDK's examples). */
async function sessionGone(response: Response, hadSession: boolean): Promise<boolean> {
  if (!hadSession) return false;
  if (response.status === 404) return true;
  if (response.status !== 400) return false;
  const body = await response.clone().text().catch(() => "");
  return /session/i.test(body);
}

/** The way to one Streamable HTTP upstream. */
export class HttpUpstream implements LocalTransport {
  readonly kind = "http";
  readonly label: string;
  readonly pid = undefined;
  readonly ended: Promise<string>;
  #resolveEnded!: (why: string) => void;
  #done = false;
  #fetch: UpstreamFetch;
  #events: LocalTransportEvents;
  #limits: StdinQueueLimits;
  #graceMs: number;
  #timeoutMs: number;
  #sessionId: string | undefined;
  #protocolVersion: string | undefined;
  /** The `initialize` connect sent first: sent again when the upstream forgets the session. */
  #initText: string | undefined;
  #open = new Set<AbortController>();
  #openBytes = 0;
  #get: AbortController | undefined;
  #listening = false;
  #lastEventId: string | undefined;
  #reinit: Promise<boolean> | undefined;
  #stopping: Promise<void> | undefined;
  /** Aborted when the transport ends: ends the waits between reopenings of the GET stream. */
  #life = new AbortController();

  /** Largest message taken from the upstream (`--max-message-bytes`), in characters of its text. */
  readonly #maxMessage: number;

  private constructor(options: HttpUpstreamOptions, events: LocalTransportEvents) {
    this.#fetch = new UpstreamFetch(options);
    this.label = this.#fetch.label;
    this.#events = events;
    this.#limits = options.queueLimits ?? DEFAULT_STDIN_QUEUE_LIMITS;
    this.#graceMs = options.graceMs ?? 5000;
    this.#timeoutMs = options.timeoutMs;
    this.#maxMessage = options.maxMessageBytes ?? CONNECT_DEFAULTS.maxMessageBytes;
    this.ended = new Promise((resolve) => this.#resolveEnded = resolve);
  }

  /** A transport to `options.url`; nothing is sent until the session sends `initialize`. */
  static open(options: HttpUpstreamOptions, events: LocalTransportEvents): HttpUpstream {
    return new HttpUpstream(options, events);
  }

  /** The session id the upstream gave in answer to `initialize`. */
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
    void this.#post(text, false);
    return QUEUED;
  }

  send(text: string): Promise<boolean> {
    if (this.#done) return Promise.resolve(false);
    return this.#post(text, false);
  }

  initialized(): void {
    if (this.#listening || this.#done) return;
    this.#listening = true;
    void this.#listen();
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  kill(): void {
    this.#end("killed");
  }

  async #stop(): Promise<void> {
    const session = this.#sessionId;
    if (!this.#done && session !== undefined) {
      // A polite end of the session, bounded: the upstream frees what it held for us.
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), Math.min(this.#graceMs, this.#timeoutMs));
      try {
        const response = await this.#fetch.request({
          method: "DELETE",
          headers: this.#headers(),
          signal: controller.signal,
        });
        await response.body?.cancel();
      } catch {
        // Gone already, or too slow: the session ends with the upstream's own timeout.
      } finally {
        clearTimeout(timer);
      }
    }
    this.#end("stopped");
  }

  #end(why: string): void {
    if (this.#done) return;
    this.#done = true;
    this.#life.abort();
    this.#get?.abort();
    for (const controller of this.#open) controller.abort();
    this.#fetch.close();
    this.#resolveEnded(why);
  }

  #headers(extra: Record<string, string> = {}): Record<string, string> {
    return {
      ...extra,
      ...(this.#sessionId === undefined ? {} : { "mcp-session-id": this.#sessionId }),
      ...(this.#protocolVersion === undefined
        ? {}
        : { "mcp-protocol-version": this.#protocolVersion }),
    };
  }

  /** Passes one message on; learns the protocol version from the answer to `initialize`. */
  #deliver(text: string, facts: MessageFacts | undefined): void | Promise<void> {
    if (facts?.method === "initialize") {
      try {
        const version = JSON.parse(text)?.result?.protocolVersion;
        if (typeof version === "string") this.#protocolVersion = version;
      } catch {
        // Not ours to judge here: the session reports a bad answer.
      }
    }
    return this.#events.onLine(lineOf(text));
  }

  /** Answers a request that cannot be delivered with an error, as if the server had. */
  #answerError(facts: MessageFacts | undefined, message: string): void {
    if (facts?.kind !== "request" || facts.id === undefined || facts.id === null) {
      log.warning("Could not deliver a {kind} to the local server at {url}: {message}", {
        event: "upstream_send_failed",
        kind: facts?.kind ?? "message",
        url: this.label,
        message,
      });
      return;
    }
    const response = errorResponse(facts.id, ErrorCode.ServerUnavailable, message);
    void this.#events.onLine(lineOf(JSON.stringify(response)));
  }

  /** POSTs one message and passes its answer on. True when the upstream took it. */
  async #post(text: string, retried: boolean, internal = false): Promise<boolean> {
    const facts = factsOfText(text);
    const isInit = facts?.method === "initialize" && this.#sessionId === undefined;
    // While a new session is being made, messages wait for it (its own two messages do not).
    if (this.#reinit !== undefined && !internal && !(await this.#reinit)) {
      this.#answerError(facts, `The local server at ${this.label} is not available`);
      return false;
    }
    if (isInit) this.#initText = text;
    const controller = new AbortController();
    this.#open.add(controller);
    this.#openBytes += text.length;
    try {
      const hadSession = this.#sessionId !== undefined;
      const response = await this.#fetch.request({
        method: "POST",
        body: text,
        headers: this.#headers({
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
        }),
        signal: controller.signal,
      });
      if (isInit) this.#sessionId = response.headers.get("mcp-session-id") ?? undefined;
      if (!isInit && !retried && await sessionGone(response, hadSession)) {
        await response.body?.cancel();
      } else return await this.#answer(response, facts);
    } catch (error: unknown) {
      this.#failed(error, facts);
      return false;
    } finally {
      this.#open.delete(controller);
      this.#openBytes -= text.length;
    }
    // The upstream forgot the session (restarted, expired it): a new one, then this message again.
    if (await this.#reinitialize()) return await this.#post(text, true);
    this.#answerError(facts, `The local server at ${this.label} lost its session`);
    return false;
  }

  /** Reads the answer to a POST: nothing (202), one JSON message or batch, or an event stream. */
  async #answer(response: Response, facts: MessageFacts | undefined): Promise<boolean> {
    if (response.status === 202 || response.status === 204) {
      await response.body?.cancel();
      return true;
    }
    if (!response.ok) {
      const detail = await snippetOf(response);
      this.#answerError(
        facts,
        `The local server at ${this.label} answered HTTP ${response.status}${detail}`,
      );
      return false;
    }
    const type = response.headers.get("content-type") ?? "";
    if (type.includes("text/event-stream") && response.body !== null) {
      const answered = await this.#readStream(response.body, facts);
      if (!answered && facts?.kind === "request") {
        this.#answerError(facts, `The local server at ${this.label} ended its answer stream early`);
      }
      return true;
    }
    const body = await readBounded(response, this.#maxMessage);
    if ("oversized" in body) {
      this.#events.onOversized?.({ head: "", tail: "", bytes: body.oversized });
      this.#answerError(facts, oversizedText(this.#maxMessage));
      return false;
    }
    if (body.text.trim() !== "") await this.#deliver(body.text, facts);
    return true;
  }

  /** The events of an answer stream; true when the answer to the request came among them. */
  async #readStream(
    body: ReadableStream<Uint8Array>,
    request: MessageFacts | undefined,
  ): Promise<boolean> {
    let answered = false;
    try {
      for await (const event of readSseEvents(body, this.#readerOptions())) {
        if (event.data.trim() === "") continue;
        const facts = factsOfText(event.data);
        if (facts?.kind === "response" && facts.id === request?.id) answered = true;
        await this.#deliver(event.data, answered ? request : facts);
      }
    } catch {
      // Broke off: the caller answers for the request.
    }
    return answered;
  }

  #readerOptions() {
    return {
      maxEventChars: this.#maxMessage,
      onOversized: (chars: number, ends: OversizedEnds) =>
        this.#events.onOversized?.({ ...ends, bytes: chars }),
    };
  }

  #failed(error: unknown, facts: MessageFacts | undefined): void {
    if (this.#done) return; // stopped: the session answers what is in flight
    if (error instanceof UpstreamUnreachable) {
      this.#answerError(facts, `The local server at ${this.label} cannot be reached`);
      this.#end(`unreachable: ${error.message}`);
      return;
    }
    const why = error instanceof UpstreamRequestFailed ? error.message : String(error);
    this.#answerError(facts, `The local server at ${this.label} failed: ${why}`);
  }

  /** Makes a new session once for everyone who met the 404; false when the upstream is gone. */
  #reinitialize(): Promise<boolean> {
    this.#reinit ??= (async () => {
      const old = this.#sessionId;
      this.#sessionId = undefined;
      this.#lastEventId = undefined;
      if (this.#initText === undefined || this.#done) return false;
      log.warning(
        "The local server at {url} no longer knows session {old}; initializing a new session",
        { event: "upstream_session_lost", url: this.label, old: old ?? "" },
      );
      // Its answer goes to the session, which drops it: the id is connect's own.
      const ok = await this.#post(this.#initText, true, true) &&
        await this.#post(INITIALIZED, true, true);
      this.#get?.abort(); // the GET stream reopens on the new session
      return ok && !this.#done;
    })().finally(() => this.#reinit = undefined);
    return this.#reinit;
  }

  /** Keeps the GET stream of the server's own messages open while the transport lives. */
  async #listen(): Promise<void> {
    while (!this.#done) {
      const controller = new AbortController();
      this.#get = controller;
      const opened = performance.now();
      let response: Response;
      try {
        response = await this.#fetch.request({
          method: "GET",
          headers: this.#headers({
            accept: "text/event-stream",
            ...(this.#lastEventId === undefined ? {} : { "last-event-id": this.#lastEventId }),
          }),
          signal: controller.signal,
        });
      } catch (error: unknown) {
        if (this.#done) return;
        if (error instanceof UpstreamUnreachable) {
          this.#end(`unreachable: ${error.message}`);
          return;
        }
        if (controller.signal.aborted) continue; // reopened on purpose
        await delay(1000, this.#life.signal).catch(() => {});
        continue;
      }
      if (response.status === 405) {
        // The server sends its own messages only with answers. A stop may abort the body meanwhile.
        await response.body?.cancel().catch(() => {});
        return;
      }
      if (await sessionGone(response, this.#sessionId !== undefined)) {
        await response.body?.cancel().catch(() => {});
        if (!(await this.#reinitialize())) return;
        continue;
      }
      const type = response.headers.get("content-type") ?? "";
      if (!response.ok || !type.includes("text/event-stream") || response.body === null) {
        log.warning(
          "The local server at {url} answered its event stream with HTTP {status}; its own messages arrive only with answers",
          { event: "upstream_stream_refused", url: this.label, status: response.status },
        );
        await response.body?.cancel().catch(() => {});
        return;
      }
      try {
        for await (const event of readSseEvents(response.body, this.#readerOptions())) {
          if (event.id !== undefined) this.#lastEventId = event.id;
          if (event.data.trim() !== "") await this.#deliver(event.data, undefined);
        }
      } catch {
        // Broke off: opened again below, and a down upstream shows as unreachable then.
      }
      // A server that closes the stream at once must not make this a busy loop.
      if (!this.#done && performance.now() - opened < 1000) {
        await delay(1000, this.#life.signal).catch(() => {});
      }
    }
  }
}
