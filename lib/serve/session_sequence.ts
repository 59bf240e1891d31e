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

/** Parts of a data frame waiting for its number (see {@link SessionSequence} `restored`). */
type Parts = Omit<DataFrameParts, "seq" | "ack">;

/**
 * Numbers and keeps what the gateway sends to a client that resumes, and orders what it receives. A
 * client that sends a data frame without `seq` before any ack does not resume: nothing is kept for it.
 *
 * A sequence restored from the state store (serve restarted) knows what it had received (`received`) but
 * not how far the client got with the old process's frames: what it sends before the client resumes is
 * held unnumbered, and numbered after the client's ack once it does.
 */
export class SessionSequence {
  #channel: SequencedChannel | undefined;
  #limits: ReplayLimits;
  /** True once the client used `seq`/`ack`; false once it sent a data frame without `seq` first. */
  #resumable: boolean | undefined;
  /** What the replay buffer holds, charged against the owner's memory share. */
  #charge: Charge | undefined;
  /** Restored and not resumed yet: frames to number once the client says what it received. */
  #held: { parts: Parts; size: number }[] | undefined;
  #heldBytes = 0;

  constructor(limits: ReplayLimits, charge?: Charge, restored?: { received: number }) {
    this.#limits = limits;
    this.#channel = new SequencedChannel(limits, restored?.received);
    this.#charge = charge;
    if (restored !== undefined) {
      this.#resumable = true;
      this.#held = [];
    }
  }

  /** Charges what the replay buffer holds now; when the owner's share cannot hold it, gives it up. */
  #account(): boolean {
    const out = this.#channel?.out;
    if (this.#charge === undefined || out === undefined) return true;
    if (this.#charge.resize(out.size + this.#heldBytes)) return true;
    out.abandon();
    this.#dropHeld();
    this.#charge.resize(0);
    return false;
  }

  #dropHeld(): void {
    if (this.#held !== undefined) this.#held = [];
    this.#heldBytes = 0;
  }

  /** Holds a frame of a restored sequence until the client resumes; marks it overflowed past the bounds. */
  #hold(held: { parts: Parts; size: number }[], parts: Parts): Stamped {
    const channel = this.#channel!;
    if (channel.overflowed) return { text: "", overflowedNow: false };
    const size = parts.payloadText.length + 128;
    if (
      held.length + 1 > this.#limits.maxFrames || this.#heldBytes + size > this.#limits.maxBytes
    ) {
      channel.out.abandon();
      this.#dropHeld();
      return { text: "", overflowedNow: true };
    }
    held.push({ parts, size });
    this.#heldBytes += size;
    return { text: "", overflowedNow: !this.#account() };
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

  /**
   * Numbers a data frame and keeps it; undefined when the client does not resume (send it plain). A
   * restored sequence not resumed yet holds it instead (its `text` is empty: nothing can be sent yet).
   */
  send(parts: Parts): Stamped | undefined {
    if (this.#channel === undefined || this.#resumable === false) return undefined;
    if (this.#held !== undefined) return this.#hold(this.#held, parts);
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
  grant(ack: number, clientOverflowed: boolean, clientAcked = 0): ReplayGrant {
    if (this.#channel === undefined || this.#channel.overflowed || clientOverflowed) {
      return { kind: "overflowed" };
    }
    if (this.#held !== undefined) this.#continue(this.#held, ack, clientAcked);
    const channel = this.#channel;
    const frames = channel.replayAfter(ack);
    if (frames === undefined) {
      return { kind: "bad-ack", kept: `${channel.out.acked}..${channel.out.lastSeq}` };
    }
    this.#resumable = true;
    const last = channel.in.last;
    channel.in.acked();
    return { kind: "replay", frames, ack: last };
  }

  /**
   * A restored sequence meets its client: the old process's frames count as sent up to the client's
   * `ack`, its own frames as received up to what was stored or what the old process acknowledged
   * (`clientAcked`: the client no longer keeps those); the held frames are numbered after `ack`.
   */
  #continue(held: { parts: Parts }[], ack: number, clientAcked: number): void {
    const received = Math.max(this.#channel!.in.last, clientAcked);
    const channel = new SequencedChannel(this.#limits, received);
    channel.out.restartAt(ack);
    this.#held = undefined;
    this.#heldBytes = 0;
    this.#channel = channel;
    for (const { parts } of held) channel.send(parts);
    this.#account();
  }

  /** Forgets everything kept (the session ended). */
  drop(): void {
    this.#channel = undefined;
    this.#dropHeld();
    this.#charge?.release();
  }
}
