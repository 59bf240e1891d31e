// The SSE transport under a link, for networks where WebSocket cannot pass: a long-lived GET whose event
// stream carries the gateway's frames, and POSTs of our frames to the URL its first event names. Sends are
// queued and go one POST at a time, each carrying what queued meanwhile (docs/serve.md, "Links over SSE",
// says why). Failures come out typed, as from the WebSocket (link_socket.ts).

import {
  joinBatch,
  readCloseEvent,
  SSE_BATCH_BYTES,
  SSE_CLOSE_EVENT,
  SSE_ENDPOINT_EVENT,
  SSE_POST_CONTENT_TYPE,
  SSE_POST_SEQ_HEADER,
} from "../protocol/sse_link.ts";
import { WEBSOCKET_MAX_MESSAGE_BYTES } from "../protocol/frames.ts";
import { ErrorCode, errorResponse } from "../protocol/jsonrpc.ts";
import { isObject } from "../util/json_object.ts";
import { utf8Length } from "../util/utf8.ts";
import { delay } from "../util/delay.ts";
import { readSseEvents, type SseEvent } from "../util/sse_reader.ts";
import {
  classifyFailure,
  type LinkSocket,
  type LinkSocketEvents,
  type LinkSocketOptions,
  type SocketEnd,
} from "./link_socket.ts";

/** A POST cut by the network is sent again (same number: the gateway takes it once) after these waits. */
const POST_RETRY_MS = [50, 250, 1_000];
/** After close(), what is queued (an `unregister`) may still go out for this long. */
const CLOSE_FLUSH_MS = 2_000;
/** A POST refused because the link is gone: the stream's `close` event, if one is coming, wins this long. */
const CLOSE_EVENT_GRACE_MS = 1_000;

/** Options of {@link openSseSocket}: the dial's, plus how many frames one POST may carry (for measuring). */
export interface SseSocketOptions extends LinkSocketOptions {
  /** Frames one POST may carry; default: as many as fit in {@link SSE_BATCH_BYTES}. */
  maxBatchFrames?: number;
}

/** The SSE socket: a {@link LinkSocket} that also says when all its work is done. */
export interface SseLinkSocket extends LinkSocket {
  /** Resolves once the stream, every POST and the HTTP client are done with, after the socket ended. */
  readonly settled: Promise<void>;
}

/** The runtime's words for a failed fetch: its cause's message says what happened. */
function fetchFailureText(error: unknown): string {
  const cause = (error as { cause?: unknown })?.cause;
  const text = cause instanceof Error ? cause.message : error instanceof Error ? error.message : "";
  // Deno's text starts with the request and its URL (whose `reverse-proxy` must not read as a proxy
  // failure); keep what says what happened.
  return text.replace(/^error sending request[^)]*\): /, "") || String(error);
}

/** The close code a refused POST amounts to. */
function postRefusal(status: number): { code: number; reason: string } {
  if (status === 401 || status === 403) {
    return { code: 1008, reason: `the gateway refused a POST with HTTP ${status}` };
  }
  if (status === 413) return { code: 1009, reason: "the gateway refused a frame as too large" };
  return { code: 0, reason: `the gateway answered a POST with HTTP ${status}` };
}

/**
 * A response frame that a proxy on the way refused as too large (413), made to answer its call with
 * `-32002` instead: sent again, as a resumed link would, it would be refused again, and again. Undefined
 * for any other frame.
 */
function refusedAnswer(text: string): string | undefined {
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(frame) || frame.type !== "response" || !isObject(frame.payload)) return undefined;
  const id = frame.payload.id;
  if (typeof id !== "string" && typeof id !== "number") return undefined;
  const message = `The answer (${
    utf8Length(text)
  } bytes) was refused by a proxy on the way to the gateway (HTTP 413): raise that proxy's body limit (nginx: client_max_body_size), or let WebSocket pass it`;
  return JSON.stringify({
    ...frame,
    payload: errorResponse(id, ErrorCode.MessageTooLarge, message),
  });
}

/**
 * Dials the gateway's SSE link endpoint (`options.url`, ending in `/reverse-proxy/sse`).
 * {@link LinkSocketEvents.onOpen} is called when the stream names where to POST;
 * {@link LinkSocketEvents.onEnd} exactly once, typed as for a WebSocket (an HTTP status other than 200,
 * a failure with its cause, or a close with the code of the gateway's `close` event, 0 when the stream
 * just ended).
 */
export function openSseSocket(options: SseSocketOptions, events: LinkSocketEvents): SseLinkSocket {
  const { url, headers, caCert, maxBatchFrames = Infinity } = options;
  const client = caCert === undefined ? undefined : Deno.createHttpClient({ caCerts: [caCert] });
  const abort = new AbortController();
  let postUrl: URL | undefined;
  let ended = false;
  let queue: string[] = [];
  let queuedBytes = 0;
  let posting = false;
  let nextSeq = 0;
  /** A POST was refused for good: nothing more is sent, the link is ending. */
  let refused = false;
  /** A body was refused as too large (413): one frame per POST from now on. */
  let single = false;
  let graceTimer: ReturnType<typeof setTimeout> | undefined;
  const fetchOptions = (init: RequestInit): RequestInit & { client?: Deno.HttpClient } =>
    client === undefined
      ? { ...init, signal: abort.signal }
      : { ...init, signal: abort.signal, client };

  /** Work still running: the stream's reader and the POST pump. */
  const running = new Set<Promise<void>>();
  const track = (work: Promise<void>) => {
    running.add(work);
    void work.finally(() => running.delete(work));
  };
  let flushTimer: ReturnType<typeof setTimeout> | undefined;
  let released = false;
  const settled = Promise.withResolvers<void>();
  /** Stops the stream, a POST in flight and the flush; frees the HTTP client once they are done. */
  const release = () => {
    if (released) return;
    released = true;
    clearTimeout(graceTimer);
    clearTimeout(flushTimer);
    abort.abort();
    void Promise.allSettled([...running]).then(() => {
      client?.close();
      settled.resolve();
    });
  };
  const end = (result: SocketEnd) => {
    if (ended) return;
    ended = true;
    clearTimeout(graceTimer);
    events.onEnd(result);
  };
  const failed = (error: unknown, during: string) => {
    const message = fetchFailureText(error);
    end({ kind: "failed", cause: classifyFailure(message), message: message || during });
  };

  const onEvent = (event: SseEvent) => {
    if (ended) return;
    if (event.event === SSE_ENDPOINT_EVENT && postUrl === undefined) {
      const target = URL.canParse(event.data, url) ? new URL(event.data, url) : undefined;
      // The token goes with every POST: never to another origin than the stream's.
      if (target === undefined || target.origin !== url.origin) {
        end({
          kind: "failed",
          cause: "other",
          message: `the SSE link named a POST URL off the gateway's origin (${
            event.data.slice(0, 100)
          })`,
        });
        release();
        return;
      }
      postUrl = target;
      events.onOpen();
      return;
    }
    if (event.event === SSE_CLOSE_EVENT) {
      const close = readCloseEvent(event.data) ?? { code: 0, reason: "malformed close event" };
      end({ kind: "closed", ...close });
      release();
      return;
    }
    if (event.event === "message" && postUrl !== undefined) events.onMessage(event.data);
  };

  const read = async () => {
    let response: Response;
    try {
      response = await fetch(
        url,
        fetchOptions({ headers: { ...headers, accept: "text/event-stream" } }),
      );
    } catch (error) {
      failed(error, "the SSE stream could not be opened");
      return release();
    }
    if (response.status !== 200) {
      await response.body?.cancel().catch(() => {});
      end({ kind: "http-status", status: response.status });
      return release();
    }
    const type = response.headers.get("content-type") ?? "";
    if (!type.startsWith("text/event-stream") || response.body === null) {
      await response.body?.cancel().catch(() => {});
      end({
        kind: "failed",
        cause: "other",
        message: `the SSE link answered 200 with content-type '${
          type.slice(0, 64)
        }', not an event stream`,
      });
      return release();
    }
    // A frame may be as large as a WebSocket message; one larger is not held, and ends the link.
    const tooLarge = (chars: number) => {
      end({
        kind: "closed",
        code: 1009,
        reason: `the gateway sent a frame of ${chars} characters`,
      });
      release();
    };
    const stream = readSseEvents(response.body, {
      maxEventChars: WEBSOCKET_MAX_MESSAGE_BYTES,
      onOversized: tooLarge,
    });
    try {
      for await (const event of stream) onEvent(event);
      end(
        postUrl === undefined
          ? {
            kind: "failed",
            cause: "reset",
            message: "the SSE stream ended before naming its POST URL",
          }
          : { kind: "closed", code: 0, reason: "the event stream ended" },
      );
    } catch (error) {
      const reason = `the event stream failed: ${fetchFailureText(error)}`;
      if (postUrl === undefined) failed(error, "the SSE stream failed");
      else end({ kind: "closed", code: 0, reason });
    }
    release();
  };

  /** POSTs one batch, again after a network error; true once the gateway took it. */
  const post = async (body: string, seq: number): Promise<boolean | "too-large"> => {
    for (let attempt = 0;; attempt++) {
      let status: number;
      try {
        const response = await fetch(
          postUrl!,
          fetchOptions({
            method: "POST",
            headers: {
              ...headers,
              "content-type": SSE_POST_CONTENT_TYPE,
              [SSE_POST_SEQ_HEADER]: String(seq),
            },
            body,
          }),
        );
        status = response.status;
        await response.body?.cancel().catch(() => {});
      } catch (error) {
        if (abort.signal.aborted) return false;
        // Cut before an answer: sent again under the same number, which the gateway takes once.
        const wait = POST_RETRY_MS[attempt];
        if (wait === undefined) {
          end({ kind: "closed", code: 0, reason: `a POST failed: ${fetchFailureText(error)}` });
          release();
          return false;
        }
        await delay(wait, abort.signal).catch(() => {});
        continue;
      }
      if (status >= 200 && status < 300) return true;
      if (abort.signal.aborted) return false;
      // 409: the same number is still being read after a cut; once it is, this one is a duplicate.
      if (status === 409 && POST_RETRY_MS[attempt] !== undefined) {
        await delay(POST_RETRY_MS[attempt]!, abort.signal).catch(() => {});
        continue;
      }
      // Over the body limit of a proxy on the way (the gateway's own is never met: frames are checked).
      if (status === 413) return "too-large";
      const refusal = postRefusal(status);
      refused = true;
      if (status === 404 || status === 409 || status === 503) {
        // The link is gone at the gateway: its `close` event (an eviction, say) may be on its way.
        graceTimer = setTimeout(() => {
          end({ kind: "closed", ...refusal });
          release();
        }, CLOSE_EVENT_GRACE_MS);
      } else {
        end({ kind: "closed", ...refusal });
        release();
      }
      return false;
    }
  };

  const pump = async () => {
    if (posting || refused || postUrl === undefined) return;
    posting = true;
    try {
      while (queue.length > 0 && !abort.signal.aborted) {
        let count = 0;
        let bytes = 0;
        while (
          count < queue.length && count < (single ? 1 : maxBatchFrames) &&
          (count === 0 || bytes + queue[count]!.length <= SSE_BATCH_BYTES)
        ) {
          bytes += queue[count]!.length;
          count++;
        }
        const batch = queue.slice(0, count);
        const sent = await post(joinBatch(batch), nextSeq);
        if (sent === "too-large") {
          // Not taken: the frames go again, one per POST; one alone too large is answered instead.
          const answer = count === 1 ? refusedAnswer(queue[0]!) : undefined;
          if (count > 1) single = true;
          else if (answer === undefined) {
            refused = true;
            end({ kind: "closed", ...postRefusal(413) });
            release();
            return;
          } else {
            queuedBytes += answer.length - queue[0]!.length;
            queue[0] = answer;
          }
          continue;
        }
        if (!sent) return;
        nextSeq++;
        queue = queue.slice(count);
        queuedBytes -= bytes;
      }
    } finally {
      posting = false;
      // After close(): the stream is no longer needed once the queue is out.
      if (ended && queue.length === 0) release();
    }
  };

  track(read());
  return {
    settled: settled.promise,
    get bufferedAmount() {
      return queuedBytes;
    },
    get isOpen() {
      return !ended && postUrl !== undefined;
    },
    send(text) {
      if (ended || postUrl === undefined) return false;
      queue.push(text);
      queuedBytes += text.length;
      if (!posting && !refused) track(pump());
      return true;
    },
    close(code, reason) {
      end({ kind: "closed", code, reason });
      if (released) return;
      // What is queued (an `unregister` on shutdown) still goes out, for a bounded time.
      if (queue.length === 0 && !posting) return release();
      flushTimer = setTimeout(release, CLOSE_FLUSH_MS);
    },
  };
}
