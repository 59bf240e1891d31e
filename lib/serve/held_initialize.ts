// A tunneled server's `initialize` result, learnt once through the tunnel and held for every MCP client
// of it (and kept in the state store, so that a restarted serve need not ask again). A failure is not
// held: the next caller asks again.

import { isObject } from "../util/json_object.ts";
import { logger } from "../util/log.ts";
import type { Charge } from "./memory_budget.ts";
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

  /** Where the result is charged: a server's answer is held for the session's life, so it must fit. */
  #charge: Charge | undefined;

  /**
   * `restored`: a result held by an earlier process (from the state store); not held when its owner's
   * share cannot take it (it is asked again). `charge`: where the held result is charged.
   */
  constructor(restored?: JsonObject, charge?: Charge) {
    this.#charge = charge;
    if (restored !== undefined && this.#fits(restored)) {
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
      const refused = got.error === undefined && isObject(got.result) && !this.#fits(got.result)
        ? errorResponse(
          0,
          ErrorCode.InternalError,
          `Server '${server}' answered initialize with more than its owner's memory share holds now (--memory-per-owner); retry later`,
        )
        : undefined;
      if (refused !== undefined || got.error !== undefined || !isObject(got.result)) {
        if (this.#answer === answer) this.#answer = undefined;
        const failed = refused ??
          (got.error !== undefined
            ? got
            : errorResponse(0, ErrorCode.InternalError, "Initialize returned no result object"));
        log.warning("Server {name} did not initialize: {error}", {
          event: "initialize_failed",
          name: server,
          error: failed.error?.message ?? "no result",
        });
        return failed;
      }
      this.#result = got.result;
      initialized();
      return got;
    });
    this.#answer = answer;
    return answer;
  }

  /** The session ended: the result is no longer charged. */
  release(): void {
    this.#charge?.release();
  }

  /** Charges `result` (its JSON text) to its owner; false when the owner's share cannot hold it now. */
  #fits(result: JsonObject): boolean {
    return this.#charge === undefined || this.#charge.resize(JSON.stringify(result).length);
  }
}
