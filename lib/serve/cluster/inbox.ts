// A replica's inbox: a Redis Stream `inbox:<rid>` that others XADD sealed envelopes to and that its
// replica reads with XREAD BLOCK on a connection of its own. A stream has no pub/sub output-buffer
// limit, so a 16 MiB payload crosses whole; a send to a replica without an inbox fails at once.

import { delay } from "../../util/delay.ts";
import { LogThrottle } from "../../util/log_throttle.ts";
import { logger } from "../../util/log.ts";
import type { Envelope, EnvelopeDraft, EnvelopeRefusal, EnvelopeSeal } from "./envelope.ts";
import type { RedisClient } from "./redis_client.ts";

const log = logger("serve", "cluster");

/** The stream key of replica `rid`'s inbox. */
export function inboxKey(rid: string): string {
  return `inbox:${rid}`;
}

/** An envelope could not be handed to Redis for its target: the caller answers its origin with this. */
export class UndeliverableError extends Error {
  /** `no-inbox`: the target has no inbox (it is gone); `redis`: Redis is unreachable or refused. */
  readonly kind: "no-inbox" | "redis";
  constructor(kind: "no-inbox" | "redis", message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UndeliverableError";
    this.kind = kind;
  }
}

/** Options of {@link Inbox}. */
export interface InboxOptions {
  /** Connection for XADD, XDEL and the inbox's upkeep. */
  commands: RedisClient;
  /** Connection of its own for XREAD BLOCK (a blocked connection serves nothing else); the inbox closes it. */
  reader: RedisClient;
  /** Seals what this replica sends; opens what it receives. */
  seal: EnvelopeSeal;
  /** Entries an inbox keeps unread (XADD MAXLEN ~): the bound for a replica that stopped reading. */
  maxEntries: number;
  /** Lifetime of this replica's inbox key, renewed by {@link Inbox.upkeep}; default 10000 ms. */
  ttlMs?: number;
  /** XREAD BLOCK time in ms; default 1000. */
  blockMs?: number;
  /** Entries read at once; default 8 (each may be up to a frame's size: this bounds the memory). */
  batch?: number;
  /** Each envelope opened and checked, in the order it was sent. */
  onEnvelope: (envelope: Envelope) => void;
  /** Each refused one (bad MAC, replay, stale, malformed), for a counter; it is logged here. */
  onRefused?: (refusal: EnvelopeRefusal) => void;
}

/** Creates the stream empty when missing (XADD MAXLEN 0 keeps no entry), then renews its lifetime. */
const UPKEEP = `if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('XADD', KEYS[1], 'MAXLEN', '0', '*', 'x', '')
end
return redis.call('PEXPIRE', KEYS[1], ARGV[1])`;

type StreamReply = [string, [string, string[]][]][] | null;

/**
 * One replica's inbox, and its way to others'.
 *
 * @example
 * ```ts ignore
 * const inbox = new Inbox({ commands, reader, seal, maxEntries: 10_000, onEnvelope: (e) => route(e) });
 * await inbox.upkeep();
 * inbox.start();
 * await inbox.send({ kind: "call", target: "b", deadline, generation, sid, id, payload });
 * await inbox.close();
 * ```
 */
export class Inbox {
  readonly #options: InboxOptions;
  readonly #key: string;
  readonly #throttle = new LogThrottle({ intervalMs: 1_000 });
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #lastId = "0-0";
  /** Entries read and not deleted yet, and their size. */
  #read: string[] = [];
  #readBytes = 0;
  #trimTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: InboxOptions) {
    this.#options = options;
    this.#key = inboxKey(options.seal.replicaId);
  }

  /**
   * Seals `draft` and appends it to its target's inbox.
   *
   * @throws {UndeliverableError} The target has no inbox, or Redis is down: nothing was sent.
   */
  async send(draft: EnvelopeDraft): Promise<void> {
    const sealed = this.#options.seal.seal(draft);
    let id: string | null;
    try {
      id = await this.#options.commands.redis.xadd(
        inboxKey(draft.target),
        "NOMKSTREAM",
        "MAXLEN",
        "~",
        this.#options.maxEntries,
        "*",
        "h",
        sealed.header,
        "p",
        sealed.payload,
        "m",
        sealed.mac,
      );
    } catch (error: unknown) {
      throw new UndeliverableError(
        "redis",
        `Redis refused the envelope for replica ${draft.target}: ${
          error instanceof Error ? error.message : String(error)
        }`,
        { cause: error },
      );
    }
    if (id === null) {
      throw new UndeliverableError(
        "no-inbox",
        `Replica ${draft.target} has no inbox in Redis: it is gone or has not refreshed it`,
      );
    }
  }

  /** Creates this replica's inbox if missing and renews its lifetime: on start and each liveness beat. */
  async upkeep(): Promise<void> {
    await this.#options.commands.redis.eval(UPKEEP, 1, this.#key, this.#options.ttlMs ?? 10_000);
  }

  /** Starts reading; envelopes go to `onEnvelope` until {@link close}. */
  start(): void {
    this.#loop ??= this.#readLoop(this.#stop.signal);
  }

  /** Stops reading: closing the reader's connection ends a blocked read at once. */
  async close(): Promise<void> {
    this.#stop.abort();
    await this.#options.reader.close();
    await this.#loop;
    clearTimeout(this.#trimTimer);
    this.#trimTimer = undefined;
  }

  async #readLoop(signal: AbortSignal): Promise<void> {
    const { reader, blockMs = 1_000, batch = 8 } = this.#options;
    while (!signal.aborted) {
      let reply: StreamReply;
      try {
        reply = await reader.redis.xread(
          "COUNT",
          batch,
          "BLOCK",
          blockMs,
          "STREAMS",
          this.#key,
          this.#lastId,
        ) as StreamReply;
      } catch {
        if (signal.aborted) return;
        // Down: wait until the connection is back. Up (a refused read): pause one block time.
        if (reader.state.up) await delay(blockMs, signal).catch(() => {});
        else await reader.ready(signal).catch(() => {});
        continue;
      }
      const entries = reply?.[0]?.[1] ?? [];
      if (entries.length === 0) continue;
      for (const [id, fields] of entries) {
        this.#lastId = id;
        this.#read.push(id);
        this.#readBytes += fields.reduce((sum, field) => sum + field.length, 0);
        this.#deliver(fields);
      }
      this.#trim();
    }
    this.#trim(true);
  }

  /**
   * Deletes read entries: the inbox holds what is unread, plus what was read in the last moment. Not one
   * XDEL per envelope (that doubles Redis's work for small calls): every 64 entries, every MiB, or 50 ms.
   */
  #trim(now = false): void {
    if (this.#read.length === 0) return;
    if (!now && this.#read.length < 64 && this.#readBytes < 1 << 20) {
      this.#trimTimer ??= setTimeout(() => {
        this.#trimTimer = undefined;
        this.#trim(true);
      }, 50);
      return;
    }
    clearTimeout(this.#trimTimer);
    this.#trimTimer = undefined;
    const ids = this.#read.splice(0);
    this.#readBytes = 0;
    this.#options.commands.redis.xdel(this.#key, ...ids).catch(() => {});
  }

  #deliver(fields: string[]): void {
    const field = (name: string) => {
      const at = fields.indexOf(name);
      return at >= 0 && at % 2 === 0 ? fields[at + 1] : undefined;
    };
    const header = field("h");
    const payload = field("p");
    const mac = field("m");
    const opened = header === undefined || payload === undefined || mac === undefined
      ? { ok: false as const, refusal: "malformed" as const, detail: "an entry without h, p and m" }
      : this.#options.seal.open({ header, payload, mac });
    if (opened.ok) {
      this.#options.onEnvelope(opened.envelope);
      return;
    }
    this.#options.onRefused?.(opened.refusal);
    const held = this.#throttle.take();
    if (held === undefined) return;
    log.warning("Refused an envelope in {inbox} ({refusal}): {detail}{more}", {
      event: "envelope_refused",
      inbox: this.#key,
      refusal: opened.refusal,
      detail: opened.detail,
      more: held > 0 ? `; ${held} more refused since the last line` : "",
    });
  }
}
