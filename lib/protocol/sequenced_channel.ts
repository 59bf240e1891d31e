// Sequence numbers, cumulative acknowledgements and the bounded replay buffer of the `resume` extension:
// what lets `connect` and `serve` re-attach a session after a link drop with nothing lost or duplicated.
// Both ends use the one SequencedChannel; see docs/resume.md for the wire protocol.

import { utf8Length } from "../util/utf8.ts";
import { type DataFrameParts, encodeDataFrame } from "./frames.ts";

/** A data frame kept until the peer acknowledges it. */
export interface Outbound {
  seq: number;
  /** The frame's JSON text as sent (with its `seq`). */
  text: string;
  /** UTF-8 bytes of `text`, what the byte bound counts. */
  size: number;
}

/** Bounds of a {@link ReplayBuffer}. */
export interface ReplayLimits {
  /** Frames kept at most. */
  maxFrames: number;
  /** Total `size` (UTF-8 bytes) kept at most. */
  maxBytes: number;
}

/** Default bounds: generous for bursts of calls, bounded for memory. */
export const DEFAULT_REPLAY_LIMITS: ReplayLimits = {
  maxFrames: 10_000,
  maxBytes: 64 * 1024 * 1024,
};

/**
 * The sender's side: numbers data frames 1, 2, 3, … and keeps each until a cumulative `ack` covers it.
 * Once a frame had to be refused for lack of room, the buffer is `overflowed` for good: the session can
 * no longer be resumed without a gap, and both ends must say so.
 *
 * @example
 * ```ts
 * import { ReplayBuffer } from "./sequenced_channel.ts";
 * const out = new ReplayBuffer({ maxFrames: 10, maxBytes: 1000 });
 * const seq = out.nextSeq();
 * out.keep({ seq, text: `{"seq":${seq}}`, size: 9 });
 * out.ack(1);
 * out.pending; // 0
 * ```
 */
export class ReplayBuffer {
  #limits: ReplayLimits;
  #frames: Outbound[] = [];
  #head = 0;
  #size = 0;
  #lastSeq = 0;
  #acked = 0;
  #overflowed = false;

  constructor(limits: ReplayLimits = DEFAULT_REPLAY_LIMITS) {
    if (!(limits.maxFrames >= 1) || !(limits.maxBytes >= 1)) {
      throw new RangeError(
        `Cannot create a replay buffer as its limits must be positive: current value is ${
          JSON.stringify(limits)
        }`,
      );
    }
    this.#limits = limits;
  }

  /** The sequence number of the next frame. */
  nextSeq(): number {
    return ++this.#lastSeq;
  }

  /** The last sequence number handed out. */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** Highest sequence number the peer acknowledged. */
  get acked(): number {
    return this.#acked;
  }

  /** Frames kept, not yet acknowledged. */
  get pending(): number {
    return this.#frames.length - this.#head;
  }

  /** Total size kept. */
  get size(): number {
    return this.#size;
  }

  /** True once a frame could not be kept: resuming would leave a gap. */
  get overflowed(): boolean {
    return this.#overflowed;
  }

  /** Keeps a frame for replay. Returns false (and marks the buffer overflowed) when it does not fit. */
  keep(frame: Outbound): boolean {
    if (this.#overflowed) return false;
    if (
      this.pending + 1 > this.#limits.maxFrames || this.#size + frame.size > this.#limits.maxBytes
    ) {
      this.#overflowed = true;
      this.#frames = [];
      this.#head = 0;
      this.#size = 0;
      return false;
    }
    this.#frames.push(frame);
    this.#size += frame.size;
    return true;
  }

  /**
   * Continues a numbering that another process began and the peer saw up to `seq`: the next frame is
   * `seq + 1`, and nothing up to `seq` can be replayed (a serve restarted from its state store). Only
   * on a buffer that has not numbered anything yet.
   */
  restartAt(seq: number): void {
    if (this.#lastSeq !== 0 || !Number.isSafeInteger(seq) || seq < 0) {
      throw new RangeError(
        `Cannot restart a replay buffer at ${seq}: it must be unused (last seq ${this.#lastSeq}) and the seq a whole number`,
      );
    }
    this.#lastSeq = seq;
    this.#acked = seq;
  }

  /**
   * Gives up keeping frames: drops them and marks the buffer overflowed, as when one did not fit. For a
   * keeper whose memory was refused elsewhere (serve's memory budget).
   */
  abandon(): void {
    this.#overflowed = true;
    this.#frames = [];
    this.#head = 0;
    this.#size = 0;
  }

  /**
   * Drops every frame up to and including `seq`. Acks that go backwards or repeat are ignored; an ack
   * beyond what was sent is clamped (a confused peer must not make us forget frames we never sent).
   */
  ack(seq: number): void {
    if (!Number.isInteger(seq) || seq <= this.#acked) return;
    const upTo = Math.min(seq, this.#lastSeq);
    this.#acked = upTo;
    while (this.#head < this.#frames.length && this.#frames[this.#head]!.seq <= upTo) {
      this.#size -= this.#frames[this.#head]!.size;
      this.#head++;
    }
    // Compact now and then so the array does not grow without bound.
    if (this.#head > 1024 && this.#head * 2 > this.#frames.length) {
      this.#frames = this.#frames.slice(this.#head);
      this.#head = 0;
    }
  }

  /**
   * The frames the peer has not seen, given the peer's cumulative ack, in order. Undefined when they are
   * not all here any more (overflow, or an ack older than what was already dropped): resumption is
   * impossible.
   */
  replayAfter(peerAck: number): Outbound[] | undefined {
    if (
      this.#overflowed || !Number.isInteger(peerAck) || peerAck < this.#acked ||
      peerAck > this.#lastSeq
    ) {
      return undefined;
    }
    this.ack(peerAck);
    return this.#frames.slice(this.#head);
  }
}

/** What {@link ReceiveWindow.accept} decided about an inbound sequence number. */
export type Acceptance = "new" | "duplicate" | "gap";

/**
 * The receiver's side: accepts data frames strictly in order, drops replayed duplicates, and reports a
 * gap (a frame missing before this one) so the caller can drop the link and resume from its ack.
 *
 * @example
 * ```ts
 * import { ReceiveWindow } from "./sequenced_channel.ts";
 * const inbound = new ReceiveWindow();
 * inbound.accept(1); // "new"
 * inbound.accept(1); // "duplicate"
 * inbound.accept(3); // "gap"
 * ```
 */
export class ReceiveWindow {
  #last: number;
  #unacked = 0;

  /** `last`: frames up to it were received before (by a process this one was restored from). */
  constructor(last = 0) {
    this.#last = last;
  }

  /** Highest sequence number received in order: the cumulative ack to send. */
  get last(): number {
    return this.#last;
  }

  /** Frames accepted since the last {@link ReceiveWindow.acked}. */
  get unacked(): number {
    return this.#unacked;
  }

  accept(seq: number): Acceptance {
    if (!Number.isInteger(seq) || seq <= this.#last) return "duplicate";
    if (seq !== this.#last + 1) return "gap";
    this.#last = seq;
    this.#unacked++;
    return "new";
  }

  /** Records that the current `last` was sent to the peer as an ack. */
  acked(): void {
    this.#unacked = 0;
  }
}

/** Data frames received before a standalone `ack` goes back (acks also ride on every frame sent). */
export const ACK_EVERY = 32;

/** What {@link SequencedChannel.send} made of a data frame. */
export interface Stamped {
  /** The frame's text, with its `seq` and the current `ack`. */
  text: string;
  /** True when this frame did not fit in the replay buffer: from now on the session cannot be resumed. */
  overflowedNow: boolean;
}

/**
 * One side of a resumable session: numbers what it sends and keeps it until acknowledged, accepts what it
 * receives strictly in order, and decides when an acknowledgement is due. connect's tunnel and serve's
 * tunnel session use it alike.
 *
 * @example
 * ```ts
 * import { SequencedChannel } from "./sequenced_channel.ts";
 * const channel = new SequencedChannel();
 * const { text } = channel.send({ type: "response", sessionId: "s", payloadText: "{}" });
 * channel.receive(1); // "new"
 * channel.peerAcked(1);
 * channel.out.pending; // 0
 * ```
 */
export class SequencedChannel {
  readonly out: ReplayBuffer;
  readonly in: ReceiveWindow;

  /** `received`: the peer's frames up to it were received before (a serve restored from its store). */
  constructor(limits: ReplayLimits = DEFAULT_REPLAY_LIMITS, received = 0) {
    this.out = new ReplayBuffer(limits);
    this.in = new ReceiveWindow(received);
  }

  /** True once a frame could not be kept: the session can no longer be resumed without a gap. */
  get overflowed(): boolean {
    return this.out.overflowed;
  }

  /**
   * Numbers a data frame and keeps it for replay; the current `ack` rides along. `payloadBytes`, when the
   * caller knows it, saves counting the payload's UTF-8 length.
   */
  send(parts: Omit<DataFrameParts, "seq" | "ack">, payloadBytes?: number): Stamped {
    const seq = this.out.nextSeq();
    const text = encodeDataFrame({ ...parts, seq, ack: this.in.last });
    this.in.acked();
    const size = payloadBytes === undefined
      ? utf8Length(text)
      : payloadBytes + (text.length - parts.payloadText.length);
    const wasOverflowed = this.out.overflowed;
    const kept = this.out.keep({ seq, text, size });
    return { text, overflowedNow: !kept && !wasOverflowed };
  }

  /** Accepts an inbound data frame's `seq`: new, a replayed duplicate (drop it), or a gap (resume). */
  receive(seq: number): Acceptance {
    return this.in.accept(seq);
  }

  /** True when enough frames arrived since the last ack went out that a standalone one is due. */
  get ackDue(): boolean {
    return this.in.unacked >= ACK_EVERY;
  }

  /** The cumulative ack to send now, recorded as sent. */
  takeAck(): number {
    this.in.acked();
    return this.in.last;
  }

  /** The peer acknowledged everything up to `seq`: those frames are no longer kept. */
  peerAcked(seq: number): void {
    this.out.ack(seq);
  }

  /** What to replay to a peer that resumes having received up to `peerAck`; undefined if impossible. */
  replayAfter(peerAck: number): Outbound[] | undefined {
    return this.out.replayAfter(peerAck);
  }
}
