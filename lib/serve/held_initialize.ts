// A tunneled server's `initialize` result, learnt once through the tunnel and held for every MCP client
// of it (and kept in the state store, so that a restarted serve need not ask again). A failure is not
// held: the next caller asks again.

import { isObject } from "../util/json_object.ts";
import { logger } from "../util/log.ts";
import {
  ErrorCode,
  errorResponse,
  type JsonObject,
  type JsonRpcResponse,
} from "../protocol/jsonrpc.ts";

const log = logger("serve", "calls");

/**
 * The held result, or the question in flight.
 *
 * @example
 * ```ts
 * import { HeldInitialize } from "./held_initialize.ts";
 * const held = new HeldInitialize({ protocolVersion: "2025-11-25", capabilities: {} });
 * held.result?.protocolVersion; // "2025-11-25"
 * ```
 */
export class HeldInitialize {
  #answer: Promise<JsonRpcResponse> | undefined;
  #result: JsonObject | undefined;

  /** `restored`: a result held by an earlier process (from the state store). */
  constructor(restored?: JsonObject) {
    if (restored !== undefined) {
      this.#result = restored;
      this.#answer = Promise.resolve({ jsonrpc: "2.0", id: 0, result: restored });
    }
  }

  /** The result once learnt. */
  get result(): JsonObject | undefined {
    return this.#result;
  }

  /**
   * The held answer, else asks with `ask` (once for concurrent callers). `initialized` runs once the
   * server's answer was good (the gateway then sends `notifications/initialized`).
   */
  get(
    server: string,
    ask: () => Promise<JsonRpcResponse | undefined>,
    initialized: () => void,
  ): Promise<JsonRpcResponse> {
    if (this.#answer !== undefined) return this.#answer;
    const answer: Promise<JsonRpcResponse> = ask().then((response) => {
      const got = response ??
        errorResponse(0, ErrorCode.TunnelUnavailable, "Initialize was cancelled");
      if (got.error !== undefined || !isObject(got.result)) {
        if (this.#answer === answer) this.#answer = undefined;
        log.warning("Server {name} did not initialize: {error}", {
          event: "initialize_failed",
          name: server,
          error: got.error?.message ?? "no result",
        });
        return got.error !== undefined
          ? got
          : errorResponse(0, ErrorCode.InternalError, "Initialize returned no result object");
      }
      this.#result = got.result;
      initialized();
      return got;
    });
    this.#answer = answer;
    return answer;
  }
}
