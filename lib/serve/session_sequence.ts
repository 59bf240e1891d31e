// serve's side of a resumable session: the sequenced channel, and whether the client takes part in it
// (undecided until its first data frame or ack, then yes or no for good).

import type { DataFrameParts } from "../protocol/frames.ts";
import type { Charge } from "./memory_budget.ts";
import {
  type Outbound,
  type ReplayLimits,
  SequencedChannel,
  type Stamped,
} from "../protocol/sequenced_channel.ts";

/** What a resume request can be granted. */
export type ReplayGrant =
  | { kind: "replay"; frames: Outbound[]; ack: number }
  | { kind: "overflowed" }
  | { kind: "bad-ack"; kept: string };

/**
 * Numbers and keeps what the gateway sends to a client that resumes, and orders what it receives. A
 * client that sends a data frame without `seq` before any ack does not resume: nothing is kept for it.
 */
export class SessionSequence {
  #channel: SequencedChannel | undefined;
  /** True once the client used `seq`/`ack`; false once it sent a data frame without `seq` first. */
  #resumable: boolean | undefined;
  /** What the replay buffer holds, charged against the owner's memory share. */
  #charge: Charge | undefined;

  constructor(limits: ReplayLimits, charge?: Charge) {
    this.#channel = new SequencedChannel(limits);
    this.#charge = charge;
  }

  /** Charges what the replay buffer holds now; when the owner's share cannot hold it, gives it up. */
  #account(): boolean {
    const out = this.#channel?.out;
    if (this.#charge === undefined || out === undefined) return true;
    if (this.#charge.resize(out.size)) return true;
    out.abandon();
    this.#charge.resize(0);
    return false;
  }

  /** True while a dropped link can be resumed without a gap. */
  get canResume(): boolean {
    return this.#resumable === true && this.#channel !== undefined && !this.#channel.overflowed;
  }

  /** True once the client showed it resumes. */
  get resumable(): boolean {
    return this.#resumable === true;
  }

  /** The client acknowledged our frames up to `ack`. */
  peerAcked(ack: number): void {
    if (this.#channel === undefined) return;
    this.#resumable ??= true;
    if (this.#resumable) {
      this.#channel.peerAcked(ack);
      this.#account();
    }
  }

  /**
   * Orders an inbound data frame: `new` to process, `duplicate` to drop (replayed), `gap` when a frame is
   * missing (the link must be dropped so that the client resumes).
   */
  receive(seq: number | undefined): "new" | "duplicate" | "gap" {
    if (this.#channel === undefined && this.#resumable !== true) return "new";
    if (seq === undefined) {
      if (this.#resumable === undefined) {
        // A client without the extension: stop numbering and keeping frames for it.
        this.#resumable = false;
        this.#channel = undefined;
        this.#charge?.release();
      }
      return "new";
    }
    this.#resumable ??= true;
    if (!this.#resumable || this.#channel === undefined) return "new";
    return this.#channel.receive(seq);
  }

  /** The last `seq` received in order, for messages. */
  get lastReceived(): number {
    return this.#channel?.in.last ?? 0;
  }

  /** Numbers a data frame and keeps it; undefined when the client does not resume (send it plain). */
  send(parts: Omit<DataFrameParts, "seq" | "ack">): Stamped | undefined {
    if (this.#channel === undefined || this.#resumable === false) return undefined;
    const wasOverflowed = this.#channel.overflowed;
    const stamped = this.#channel.send(parts);
    // Past the owner's memory share the session stops keeping frames, as if its own bound was reached.
    if (!this.#account() && !wasOverflowed) return { ...stamped, overflowedNow: true };
    return stamped;
  }

  /** A standalone ack to send now, when enough frames arrived unacknowledged. */
  dueAck(): number | undefined {
    const channel = this.#channel;
    return this.#resumable === true && channel !== undefined && channel.ackDue
      ? channel.takeAck()
      : undefined;
  }

  /** The ack a heartbeat reply carries (recorded as sent). */
  heartbeatAck(): number | undefined {
    return this.#resumable === true ? this.#channel?.takeAck() : undefined;
  }

  /**
   * What a client that resumes having received up to `ack` gets: the frames to replay, or why the session
   * can never be resumed without a gap.
   */
  grant(ack: number, clientOverflowed: boolean): ReplayGrant {
    const channel = this.#channel;
    if (channel === undefined || channel.overflowed || clientOverflowed) {
      return { kind: "overflowed" };
    }
    const frames = channel.replayAfter(ack);
    if (frames === undefined) {
      return { kind: "bad-ack", kept: `${channel.out.acked}..${channel.out.lastSeq}` };
    }
    this.#resumable = true;
    const last = channel.in.last;
    channel.in.acked();
    return { kind: "replay", frames, ack: last };
  }

  /** Forgets everything kept (the session ended). */
  drop(): void {
    this.#channel = undefined;
    this.#charge?.release();
  }
}
