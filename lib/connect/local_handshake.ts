// connect's own `initialize` of a local server, once per server process or upstream session: the request
// with connect's capabilities (or, for a per-client instance, its client's own parameters), the wait for
// its answer (bounded, abortable), and the error that says what went wrong in words a user can act on.

import { deadline } from "../util/delay.ts";
import { logger, truncate } from "../util/log.ts";
import { classify, type JsonObject, type JsonRpcResponse } from "../protocol/jsonrpc.ts";
import { ServerStartError } from "./errors.ts";
import { INIT_ID, initializeRequest } from "./init_request.ts";
import type { LocalTransport } from "./local_transport.ts";

const log = logger("server");

// The request lives apart so that the early start can send it without loading logging (early_servers.ts).
export { initializeRequest, INTERNAL_ID_PREFIX } from "./init_request.ts";

/** Takes what the server writes before it is initialized, until the answer to `initialize` came. */
export class InitReply {
  readonly answer: Promise<JsonRpcResponse>;
  /** The size of an answer to `initialize` that was too long to pass, in bytes. */
  readonly oversized: Promise<number>;
  #resolve!: (response: JsonRpcResponse) => void;
  #resolveOversized!: (bytes: number) => void;

  constructor() {
    this.answer = new Promise((resolve) => this.#resolve = resolve);
    this.oversized = new Promise((resolve) => this.#resolveOversized = resolve);
  }

  /** A line too long to pass during start-up, with the ids read in it: it may be the answer awaited. */
  tooLong(ids: readonly unknown[], bytes: number): void {
    if (ids.includes(INIT_ID)) this.#resolveOversized(bytes);
  }

  /** One line from the server during start-up. */
  take(line: { text: string }): void {
    let value: unknown;
    try {
      value = JSON.parse(line.text);
    } catch {
      log.warn("Local server wrote a line that is not JSON during start-up; ignored");
      log.debug("Line: {line}", { line: truncate(line.text) });
      return;
    }
    if (classify(value) === "response" && (value as JsonRpcResponse).id === INIT_ID) {
      this.#resolve(value as JsonRpcResponse);
    } else {
      log.debug("Local server wrote before initialization completed; ignored: {line}", {
        line: truncate(line.text),
      });
    }
  }
}

/** Options of {@link initializeServer}. */
export interface HandshakeOptions {
  reply: InitReply;
  /** Deadline for the answer, in milliseconds. */
  initTimeoutMs: number;
  /** Aborting it ends the wait with the signal's reason. */
  signal?: AbortSignal | undefined;
  /** The `initialize` parameters; connect's own when absent. */
  params?: JsonObject | undefined;
  /** Send `notifications/initialized` once answered (default true; false: its client sends its own). */
  sendInitialized?: boolean;
}

/**
 * Sends `initialize` and waits for its result, then `notifications/initialized`.
 *
 * @throws {ServerStartError} when the server ends, refuses, or does not answer in time
 * @throws the signal's reason if it aborts first
 */
export async function initializeServer(
  transport: LocalTransport,
  options: HandshakeOptions,
): Promise<JsonObject> {
  const { reply, initTimeoutMs, signal, params, sendInitialized = true } = options;
  const label = transport.label;
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    if (signal === undefined) return;
    onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  aborted.catch(() => {});
  try {
    // The early start wrote connect's own initialize already (early_servers.ts): only its answer is awaited.
    const sent = params === undefined && transport.initializeSent === true
      ? Promise.resolve(true)
      : transport.send(initializeRequest(params));
    const ended = transport.ended.then((why) => ({ ended: why }));
    const outcome = await deadline(
      Promise.race([
        reply.answer,
        ended,
        reply.oversized.then((bytes) => ({ tooLong: bytes })),
        // A refused write means the transport is ending: its end says why.
        sent.then((ok) => ok ? new Promise<never>(() => {}) : ended),
        aborted,
      ]),
      initTimeoutMs,
      "initialize",
    );
    if ("tooLong" in outcome) {
      // Waiting on would end in a time-out that blames the server for an answer it gave.
      throw new ServerStartError(
        `Local server '${label}' answered initialize with ${outcome.tooLong} bytes, more than connect takes of one message: raise --max-message-bytes`,
      );
    }
    if ("ended" in outcome) {
      throw new ServerStartError(
        `Local server '${label}' ${
          transport.kind === "stdio" ? "exited" : "went away"
        } (${outcome.ended}) before answering initialize`,
      );
    }
    if (
      outcome.error !== undefined || typeof outcome.result !== "object" || outcome.result === null
    ) {
      throw new ServerStartError(
        `Local server '${label}' refused initialize: ${
          JSON.stringify(outcome.error ?? outcome.result)
        }`,
      );
    }
    const result = outcome.result as JsonObject;
    if (sendInitialized) {
      await transport.send('{"jsonrpc":"2.0","method":"notifications/initialized"}');
    }
    return result;
  } catch (error) {
    if (error instanceof ServerStartError || signal?.aborted) throw error;
    if (error instanceof DOMException && error.name === "TimeoutError") {
      throw new ServerStartError(
        `Local server '${label}' did not answer initialize within ${initTimeoutMs} ms (connect --init-timeout); is it an MCP ${
          transport.kind === "stdio"
            ? "stdio"
            : transport.kind === "http"
            ? "Streamable HTTP"
            : "SSE"
        } server?`,
        { cause: error },
      );
    }
    throw new ServerStartError(
      `Local server '${label}' failed to start: ${(error as Error).message}`,
      { cause: error },
    );
  } finally {
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
}
