// The answers of cross-replica calls answered lately, kept so that a call sent again after its holder
// died (having taken the answer from the link but not passed it on) is answered again instead of left
// waiting. One store per connect, shared by its servers: the byte bound holds for the process in total.

import { utf8Length } from "../util/utf8.ts";

/** Default bound of the kept answers, in UTF-8 bytes, for all servers of a connect together. */
export const DEFAULT_REPEAT_ANSWER_BYTES = 8 * 1024 * 1024;

/** Options of {@link KeptAnswers}. */
export interface KeptAnswersOptions {
  /** UTF-8 bytes of answer text kept at most, oldest dropped first; default 8 MiB. */
  maxBytes?: number;
}

interface Kept {
  text: string;
  bytes: number;
}

/**
 * Answer texts by (server, id), oldest dropped first once their total passes `maxBytes`. An answer larger
 * than the whole bound is not kept.
 *
 * @example
 * ```ts
 * import { KeptAnswers } from "./kept_answers.ts";
 * const answers = new KeptAnswers({ maxBytes: 1024 });
 * const space = answers.space();
 * answers.keep(space, "r1.7", '{"jsonrpc":"2.0","id":"r1.7","result":{}}');
 * answers.get(space, "r1.7"); // the text again
 * ```
 */
export class KeptAnswers {
  readonly #kept = new Map<string, Kept>();
  readonly #maxBytes: number;
  #bytes = 0;
  #spaces = 0;

  constructor(options: KeptAnswersOptions = {}) {
    const { maxBytes = DEFAULT_REPEAT_ANSWER_BYTES } = options;
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
      throw new RangeError(
        `Cannot keep answers as 'maxBytes' must be a whole number of bytes: current value is ${maxBytes}`,
      );
    }
    this.#maxBytes = maxBytes;
  }

  /** The bound, in UTF-8 bytes. */
  get maxBytes(): number {
    return this.#maxBytes;
  }

  /** UTF-8 bytes kept now. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Answers kept now. */
  get size(): number {
    return this.#kept.size;
  }

  /** A new key space (one per server): ids of two servers never meet. */
  space(): number {
    return ++this.#spaces;
  }

  /** Keeps `text` as the answer of `id`; `bytes` is its UTF-8 length when known. */
  keep(space: number, id: string, text: string, bytes?: number): void {
    const key = `${space}:${id}`;
    this.forget(space, id);
    // A text of n UTF-16 units is at least n bytes: a long one over the bound is never counted.
    if (text.length > this.#maxBytes) return;
    const size = bytes ?? utf8Length(text);
    if (size > this.#maxBytes) return;
    this.#kept.set(key, { text, bytes: size });
    this.#bytes += size;
    // Maps iterate in insertion order: the first is the oldest.
    for (const [oldest, kept] of this.#kept) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#kept.delete(oldest);
      this.#bytes -= kept.bytes;
    }
  }

  /** The answer kept for `id`, if it still is. */
  get(space: number, id: string): string | undefined {
    return this.#kept.get(`${space}:${id}`)?.text;
  }

  /** Drops the answer of `id` (its id is no longer remembered). */
  forget(space: number, id: string): void {
    const key = `${space}:${id}`;
    const kept = this.#kept.get(key);
    if (kept === undefined) return;
    this.#kept.delete(key);
    this.#bytes -= kept.bytes;
  }
}
