// The JSON-RPC message a data frame carries, either parsed (a short frame) or as the JSON text it came in (a
// long frame, scanned but not built): one shape for both, so that a large result passes through unparsed.

import type { Span } from "./json_scan.ts";
import { factsOf, type JsonRpcId, type MessageFacts } from "./jsonrpc.ts";

/**
 * A frame's `payload`. Built by the frame parser: from the parsed value of a short frame, or from the text
 * and the facts the parser's single scan found in a long one. The other form is made only when asked for.
 *
 * @example
 * ```ts
 * import { Payload } from "./payload.ts";
 * const payload = Payload.fromValue({ jsonrpc: "2.0", id: 1, result: {} });
 * payload.facts; // { kind: "response", id: 1 }
 * payload.text; // '{"jsonrpc":"2.0","id":1,"result":{}}'
 * ```
 */
export class Payload {
  #value: unknown;
  #text: string | undefined;
  #facts: MessageFacts | "batch" | undefined;
  #idSpan: Span | undefined;
  #parsed: boolean;

  private constructor(
    value: unknown,
    text: string | undefined,
    facts: MessageFacts | "batch" | undefined,
    idSpan: Span | undefined,
  ) {
    this.#value = value;
    this.#text = text;
    this.#facts = facts;
    this.#idSpan = idSpan;
    this.#parsed = text === undefined;
  }

  /** A payload of a parsed value (a short frame, or a message built here). */
  static fromValue(value: unknown): Payload {
    return new Payload(value, undefined, undefined, undefined);
  }

  /**
   * A payload kept as text. `text` must be valid JSON (the frame parser checked it); `facts` and `idSpan`
   * (relative to `text`) are what the scan found.
   */
  static fromText(text: string, facts: MessageFacts | "batch", idSpan?: Span): Payload {
    return new Payload(undefined, text, facts, idSpan);
  }

  /** True when the payload came as text and has not been parsed. */
  get isText(): boolean {
    return !this.#parsed;
  }

  /** Kind, id and method; `"batch"` for a JSON array. */
  get facts(): MessageFacts | "batch" {
    this.#facts ??= Array.isArray(this.#value) ? "batch" : factsOf(this.#value);
    return this.#facts;
  }

  /** The parsed value (parsed now if it came as text). */
  get value(): unknown {
    if (!this.#parsed) {
      this.#value = JSON.parse(this.#text!);
      this.#parsed = true;
    }
    return this.#value;
  }

  /** The JSON text (serialized now if it came parsed). */
  get text(): string {
    this.#text ??= JSON.stringify(this.#value);
    return this.#text;
  }

  /**
   * The text with `id` in place of the message's own id, without parsing or serializing the rest: for a
   * long answer going back to its caller under the caller's id. Undefined when the id's place is unknown.
   */
  textWithId(id: JsonRpcId): string | undefined {
    const span = this.#idSpan;
    if (span === undefined || this.#text === undefined) return undefined;
    const text = this.#text;
    return text.slice(0, span.start) + JSON.stringify(id) + text.slice(span.end);
  }
}
