// The lines waiting to be written to the local server's stdin, bounded in bytes and in messages: a server
// that stops reading must cost a fixed amount of memory, not whatever the gateway sends.

/** Bounds of a {@link StdinQueue}. */
export interface StdinQueueLimits {
  /** UTF-8 bytes accepted and not yet taken by the pipe, at most. */
  maxBytes: number;
  /** Messages accepted and not yet taken by the pipe, at most. */
  maxMessages: number;
}

/** Default bounds: room for a burst of large calls, bounded for memory. */
export const DEFAULT_STDIN_QUEUE_LIMITS: StdinQueueLimits = {
  maxBytes: 64 * 1024 * 1024,
  maxMessages: 10_000,
};

/** Why a line was not queued because the queue is full: which bound, and what is waiting. */
export interface QueueFull {
  kind: "full";
  /** The bound that would be passed. */
  limit: "bytes" | "messages";
  limits: StdinQueueLimits;
  /** Bytes waiting (accepted, not yet taken by the pipe). */
  bytes: number;
  /** Messages waiting. */
  messages: number;
}

/** What {@link StdinQueue.write} did with a line. */
export type QueueOutcome = { kind: "queued" } | QueueFull | { kind: "closed" };

/**
 * Why a message was refused, for its caller and the log: the server is not reading, and which bound
 * (with the flag that sets it) was reached.
 *
 * @example
 * ```ts
 * import { describeQueueFull } from "./stdin_queue.ts";
 * describeQueueFull({
 *   kind: "full",
 *   limit: "messages",
 *   limits: { maxBytes: 1024, maxMessages: 2 },
 *   bytes: 100,
 *   messages: 2,
 * }); // "The local MCP server is not reading its input: 2 message(s) (0.0 MiB) already wait for it, …"
 * ```
 */
export function describeQueueFull(full: QueueFull): string {
  const mib = (bytes: number) => `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
  const bound = full.limit === "bytes"
    ? `--max-server-queue-bytes (${mib(full.limits.maxBytes)})`
    : `--max-server-queue-messages (${full.limits.maxMessages})`;
  return `The local MCP server is not reading its input: ${full.messages} message(s) (${
    mib(full.bytes)
  }) already wait for it, the bound set by ${bound}; try again later`;
}

const encoder = new TextEncoder();
const NEWLINE = 0x0a;
/** Lines are written in batches of about this many bytes: one pipe write per burst, not per message. */
const BATCH_BYTES = 1024 * 1024;
const QUEUED: QueueOutcome = { kind: "queued" };
const CLOSED: QueueOutcome = { kind: "closed" };

/**
 * A bounded FIFO of lines in front of a writable stream (a child's stdin). A line counts from the moment
 * it is accepted until the stream has taken it; one that would pass either bound is refused at once.
 *
 * @example
 * ```ts
 * import { StdinQueue } from "./stdin_queue.ts";
 * const chunks: Uint8Array[] = [];
 * const queue = new StdinQueue(new WritableStream({ write: (c) => void chunks.push(c) }).getWriter(), {
 *   maxBytes: 1024,
 *   maxMessages: 2,
 * });
 * queue.write('{"jsonrpc":"2.0","method":"ping","id":1}').kind; // "queued"
 * ```
 */
export class StdinQueue {
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #limits: StdinQueueLimits;
  #lines: Uint8Array[] = [];
  #head = 0;
  /** Counted from acceptance until the stream took the line (its batch's write resolved). */
  #bytes = 0;
  #messages = 0;
  #closed = false;
  #flushing: Promise<boolean> | undefined;

  constructor(writer: WritableStreamDefaultWriter<Uint8Array>, limits: StdinQueueLimits) {
    if (!(limits.maxBytes >= 1) || !(limits.maxMessages >= 1)) {
      throw new RangeError(
        `Cannot create a stdin queue as its limits must be positive: current value is ${
          JSON.stringify(limits)
        }`,
      );
    }
    this.#writer = writer;
    this.#limits = limits;
  }

  /** Bytes accepted and not yet taken by the stream. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Messages accepted and not yet taken by the stream. */
  get messages(): number {
    return this.#messages;
  }

  /** True until {@link StdinQueue.close} or a failed write. */
  get open(): boolean {
    return !this.#closed;
  }

  /** Queues one line (a newline is added), or says why not: the queue is full, or closed. */
  write(text: string): QueueOutcome {
    if (this.#closed) return CLOSED;
    const line = encoder.encode(text);
    const size = line.length + 1;
    const { maxBytes, maxMessages } = this.#limits;
    if (this.#messages + 1 > maxMessages || this.#bytes + size > maxBytes) {
      return {
        kind: "full",
        limit: this.#messages + 1 > maxMessages ? "messages" : "bytes",
        limits: this.#limits,
        bytes: this.#bytes,
        messages: this.#messages,
      };
    }
    this.#lines.push(line);
    this.#bytes += size;
    this.#messages++;
    this.#flushing ??= this.#flush();
    return QUEUED;
  }

  /** Resolves when everything accepted so far is written: true, or false if the stream failed or closed. */
  drained(): Promise<boolean> {
    return this.#flushing ?? Promise.resolve(!this.#closed);
  }

  /**
   * Drops what is waiting and closes the stream without waiting: a write the reader never takes must not
   * hold anyone (the close completes, or fails, once the reader is gone).
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#lines = [];
    this.#head = 0;
    this.#writer.close().catch(() => {});
  }

  /** Closes the stream once what was accepted is written, waiting at most `ms`; then as {@link close}. */
  async closeAfter(ms: number): Promise<void> {
    if (this.#closed) return;
    const flushing = this.#flushing;
    if (flushing !== undefined) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        flushing,
        new Promise((resolve) => timer = setTimeout(resolve, ms)),
      ]).finally(() => clearTimeout(timer));
    }
    this.close();
  }

  /** The next batch: lines up to about {@link BATCH_BYTES} (at least one), each with its newline. */
  #takeBatch(): { bytes: Uint8Array; count: number } {
    let size = 0;
    let end = this.#head;
    while (end < this.#lines.length && (end === this.#head || size < BATCH_BYTES)) {
      size += this.#lines[end]!.length + 1;
      end++;
    }
    const bytes = new Uint8Array(size);
    let offset = 0;
    for (let i = this.#head; i < end; i++) {
      const line = this.#lines[i]!;
      bytes.set(line, offset);
      offset += line.length;
      bytes[offset++] = NEWLINE;
    }
    const count = end - this.#head;
    this.#head = end;
    // Compact now and then so the array does not keep taken lines alive.
    if (this.#head > 1024 && this.#head * 2 > this.#lines.length) {
      this.#lines = this.#lines.slice(this.#head);
      this.#head = 0;
    }
    return { bytes, count };
  }

  async #flush(): Promise<boolean> {
    try {
      while (!this.#closed && this.#head < this.#lines.length) {
        const { bytes, count } = this.#takeBatch();
        await this.#writer.write(bytes);
        this.#bytes -= bytes.length;
        this.#messages -= count;
      }
      return !this.#closed;
    } catch {
      this.#closed = true;
      this.#lines = [];
      this.#head = 0;
      return false;
    } finally {
      this.#flushing = undefined;
      if (this.#closed) {
        this.#bytes = 0;
        this.#messages = 0;
      }
    }
  }
}
