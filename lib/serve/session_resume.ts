// serve's side of one tunnel session's resumability (the `resume` extension): its credential (the secret
// for `register_ack`, the hash that checks it and is all the state store keeps), its sequenced channel,
// the window it waits in without a link, and the answer to a client that asks to resume it.

import type { ResumeRequest } from "../protocol/registration.ts";
import type { Outbound } from "../protocol/sequenced_channel.ts";
import type { Charge } from "./memory_budget.ts";
import { hashToken, newResumeToken, sameSecret } from "./resume_credentials.ts";
import type { ResumeSettings, SessionEnd } from "./session_contract.ts";
import { SessionSequence } from "./session_sequence.ts";

/**
 * Tunnel ids each save of a session reserves ahead, for a serve restored from it to start past: a new
 * save is asked for once half of them are used, so an id is not reused after a crash either.
 */
export const TUNNEL_ID_RESERVE = 1_000_000;

/** What a resume request gets: the frames to replay, or the end it brings (the session cannot go on). */
export type ResumeGrant =
  | { kind: "resumed"; frames: Outbound[]; ack: number }
  | { kind: "ended"; error: "overflowed" | "bad-ack"; end: SessionEnd };

/** Options of {@link SessionResume}. */
export interface SessionResumeOptions {
  /** Where the replay buffer is charged. */
  charge?: Charge | undefined;
  /** Restored from the state store: the secret's hash and the client's frames received. */
  restored?: { tokenHash: string; seqIn: number } | undefined;
  now: () => number;
}

/** The resumability of one session. */
export class SessionResume {
  readonly sequence: SessionSequence;
  /** How long the session waits without a link, in milliseconds. */
  readonly windowMs: number;
  /** The secret (never logged); unknown to a session restored from the store, which has its hash only. */
  readonly token: string | undefined;
  /** SHA-256 of the secret. */
  readonly tokenHash: string;
  #now: () => number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #waitingSince = 0;
  /** Tunnel ids below this are covered by the reservation last saved. */
  #idsSavedUpTo = 0;

  constructor(settings: ResumeSettings, options: SessionResumeOptions) {
    const { restored, charge, now } = options;
    this.windowMs = settings.windowMs;
    this.#now = now;
    this.token = restored === undefined ? newResumeToken() : undefined;
    this.tokenHash = restored?.tokenHash ?? hashToken(this.token!);
    this.sequence = new SessionSequence(
      settings.limits,
      charge,
      restored === undefined ? undefined : { received: restored.seqIn },
    );
  }

  /** True if `token` is the session's secret (constant time, on the hashes). */
  matches(token: string): boolean {
    return sameSecret(this.tokenHash, hashToken(token));
  }

  /**
   * What the state store keeps, now: the secret's hash, the client's frames received, and the first
   * tunnel id a serve restored from it may use (past all this one hands out before it saves again).
   */
  saved(nextTunnelId: number): { tokenHash: string; seqIn: number; firstTunnelId: number } {
    this.#idsSavedUpTo = nextTunnelId + TUNNEL_ID_RESERVE / 2;
    return {
      tokenHash: this.tokenHash,
      seqIn: this.sequence.lastReceived,
      firstTunnelId: nextTunnelId + TUNNEL_ID_RESERVE,
    };
  }

  /** True once half the tunnel ids reserved by the last save are used: time to save again. */
  idsRunningOut(nextTunnelId: number): boolean {
    return nextTunnelId >= this.#idsSavedUpTo;
  }

  /** The window starts now; `expired` runs at its end unless the session is resumed or ends first. */
  wait(expired: () => void): void {
    clearTimeout(this.#timer);
    this.#waitingSince = this.#now();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      expired();
    }, this.windowMs);
  }

  /** Stops the window; returns how long the session waited (0 when it was not waiting). */
  stopWaiting(): number {
    const waited = this.#timer === undefined ? 0 : this.#now() - this.#waitingSince;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    return waited;
  }

  /**
   * What a client that asks to resume gets (its owner and secret already checked): the frames it has
   * not received, or the end of the session when it can never go on without a gap.
   */
  grant(request: ResumeRequest): ResumeGrant {
    const grant = this.sequence.grant(request.ack, request.overflowed, request.acked);
    if (grant.kind === "overflowed") {
      const whose = request.overflowed ? "the client's" : "the gateway's";
      return {
        kind: "ended",
        error: "overflowed",
        end: {
          kind: "overflowed",
          reason: `${whose} replay buffer overflowed: resuming would lose messages`,
        },
      };
    }
    if (grant.kind === "bad-ack") {
      return {
        kind: "ended",
        error: "bad-ack",
        end: {
          kind: "bad-ack",
          reason:
            `the client acknowledged ${request.ack}, outside what was sent and kept (${grant.kept})`,
        },
      };
    }
    return { kind: "resumed", frames: grant.frames, ack: grant.ack };
  }

  /** The session ended: no window, nothing kept. */
  end(): void {
    this.stopWaiting();
    this.sequence.drop();
  }
}
