// connect's side of a resumable session with our gateway: the session's credential and its sequenced
// channel, what the next dial asks for, the replay after a resumption, and the order of what arrives.

import { logger } from "../util/log.ts";
import { CloseCode, type DataFrameParts, encodeAck } from "../protocol/frames.ts";
import type { LinkChannel } from "./link_channel.ts";
import type { ResumeRequest } from "../protocol/registration.ts";
import {
  type Acceptance,
  type ReplayLimits,
  SequencedChannel,
} from "../protocol/sequenced_channel.ts";
import type { Registration } from "./link_outcome.ts";

const log = logger("connect");

/** The session, its secret (never logged), and both sequences. */
interface ResumeState {
  sessionId: string;
  token: string;
  channel: SequencedChannel;
}

/** What {@link Resumption.registered} found. */
export type AfterRegistration =
  /** The session was resumed: replay these frames' texts, in order. */
  | { kind: "resumed"; replay: string[] }
  /** A fresh session (resumable from now on, or not, as the gateway allows). */
  | { kind: "fresh"; refused: boolean };

/** The resumable session, when there is one. */
export class Resumption {
  #state: ResumeState | undefined;
  #limits: ReplayLimits | undefined;

  constructor(limits?: ReplayLimits) {
    this.#limits = limits;
  }

  /** True while a session can still be resumed: what is sent now reaches the gateway by replay. */
  get deliverable(): boolean {
    return this.#state !== undefined && !this.#state.channel.overflowed;
  }

  /** True while frames are numbered (a resumable session exists). */
  get active(): boolean {
    return this.#state !== undefined;
  }

  /** The session id the gateway gave, while a session exists. */
  get sessionId(): string | undefined {
    return this.#state?.sessionId;
  }

  /** The cumulative ack heartbeats carry. */
  get heartbeatAck(): number | undefined {
    return this.#state?.channel.in.last;
  }

  /** Forgets the session (a new one starts). */
  clear(): void {
    this.#state = undefined;
  }

  /**
   * What the next dial asks of the gateway: resume the session (when its replay buffer is whole), or
   * present an overflowed credential so that the gateway ends the old session and frees its name at once.
   * `fresh` says the dial starts a new session either way.
   */
  prepareDial(): { request?: ResumeRequest; fresh: boolean } {
    const state = this.#state;
    if (state === undefined) return { fresh: true };
    const overflowed = state.channel.overflowed;
    const request = {
      sessionId: state.sessionId,
      token: state.token,
      ack: state.channel.in.last,
      acked: state.channel.out.acked,
      overflowed,
    };
    if (overflowed) {
      log.warning(
        "Not resuming session {session}: the replay buffer overflowed while the link was down",
        { event: "resume_impossible", session: state.sessionId },
      );
    }
    return { request, fresh: overflowed };
  }

  /**
   * Registration completed. With a resumption `attempted`, the frames to replay; otherwise (or when the
   * gateway refused) the session is fresh, and resumable from now on when the gateway issued a credential.
   */
  registered(registration: Registration, attempted: ResumeRequest | undefined): AfterRegistration {
    const previous = this.#state;
    let refused = false;
    if (attempted !== undefined && previous !== undefined && !attempted.overflowed) {
      const replay = registration.resumed === true && registration.sessionId === attempted.sessionId
        ? previous.channel.replayAfter(registration.peerAck ?? 0)
        : undefined;
      if (replay !== undefined) {
        log.info(
          "Resumed session {session}: replaying {count} frame(s) the gateway had not received",
          { event: "resumed", session: attempted.sessionId, count: replay.length },
        );
        return { kind: "resumed", replay: replay.map((frame) => frame.text) };
      }
      log.warning(
        "The gateway could not resume session {session} ({why}); continuing as a new session",
        {
          event: "resume_refused",
          session: attempted.sessionId,
          why: registration.resumeError ??
            (registration.resumed ? "replay gap" : "no reason given"),
        },
      );
      refused = true;
    }
    this.#state = registration.resume === undefined ? undefined : {
      sessionId: registration.sessionId,
      token: registration.resume.token,
      channel: new SequencedChannel(this.#limits),
    };
    return { kind: "fresh", refused };
  }

  /** Numbers a data frame and keeps it for replay; undefined without a session. */
  send(parts: Omit<DataFrameParts, "seq" | "ack">, payloadBytes?: number): string | undefined {
    const state = this.#state;
    if (state === undefined) return undefined;
    const { text, overflowedNow } = state.channel.send(parts, payloadBytes);
    if (overflowedNow) {
      log.warning("The replay buffer is full; a link drop now would start a new session", {
        event: "replay_overflow",
        session: state.sessionId,
      });
    }
    return text;
  }

  /** Accepts an inbound `seq` (always new without a session). */
  receive(seq: number | undefined): Acceptance {
    const state = this.#state;
    if (state === undefined || seq === undefined) return "new";
    const acceptance = state.channel.receive(seq);
    if (acceptance === "gap") {
      log.warning(
        "Gateway frame {seq} arrived after {last}: a frame is missing; resuming the link",
        { event: "sequence_gap", seq, last: state.channel.in.last },
      );
    }
    return acceptance;
  }

  /**
   * Takes a frame's `seq` arriving on `link`: false when the frame must be skipped (a replayed one,
   * delivered before; after a gap, whose link is then closed to resume); sends an ack when one is due.
   */
  accept(seq: number | undefined, link: LinkChannel): boolean {
    const acceptance = this.receive(seq);
    if (acceptance === "duplicate") return false;
    if (acceptance === "gap") {
      // 1000 with a reason: a WebSocket client may not send 1002, and a resumable session outlives
      // the close of its link whatever the code (only an `unregister` ends it).
      link.closeLink(CloseCode.Normal, "sequence gap");
      return false;
    }
    const ack = this.dueAck();
    if (ack !== undefined) {
      link.sendText(encodeAck({ sessionId: this.sessionId!, channel: link.channel, ack }));
    }
    return true;
  }

  /** The ack to send on its own now, when enough frames arrived unacknowledged. */
  dueAck(): number | undefined {
    const channel = this.#state?.channel;
    return channel?.ackDue ? channel.takeAck() : undefined;
  }

  /** The gateway acknowledged our frames up to `ack`. */
  peerAcked(ack: number): void {
    this.#state?.channel.peerAcked(ack);
  }
}
