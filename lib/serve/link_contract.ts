// The contract of a tunnel link: its limits, what it carries (sessions), what it asks of the gateway, and
// how it tells its sessions it is gone.

import type { RegisterFrame } from "../protocol/registration.ts";
import type { Frame } from "../protocol/frames.ts";
import type { Identity } from "./identity.ts";
import type { MemoryBudget } from "./memory_budget.ts";
import type { ServeMetrics } from "./metrics.ts";
import type { TunnelLink } from "./tunnel_link.ts";

/** Limits of one link. */
export interface LinkLimits {
  /** Largest inbound text frame, in UTF-8 bytes; a larger one closes the link with 1009. */
  maxFrameBytes: number;
  /** Malformed frames tolerated within a minute before the link is closed with 1008. */
  maxBadFrames: number;
  /**
   * A link that carries no session this long after its upgrade is closed with 4008, whatever else it
   * sends (heartbeats included), in milliseconds.
   */
  registerTimeoutMs: number;
}

/** Why a link went away, as the sessions it carried learn it. */
export interface LinkLoss {
  /** True when the link was declared dead for silence (rather than closed). */
  dead: boolean;
  /** The close code (0 when the connection dropped without one). */
  code: number;
  reason: string;
}

/** What a link carries: a registered server's session, as the link sees it. */
export interface LinkedSession {
  /** The session id the gateway minted (what frames carry). */
  readonly id: string;
  /** A data frame, `ack`, or `unregister` for this session. */
  onFrame(frame: Frame, bytes: number): void;
  /** Counts a frame sent for this session. */
  countOut(bytes: number): void;
  /** The link is gone (socket closed, or declared dead). */
  linkLost(loss: LinkLoss): void;
  /** The cumulative `ack` a heartbeat reply carries, when the session resumes. */
  heartbeatAck(): number | undefined;
  /** The client acknowledged this session's frames up to `ack` (a per-channel heartbeat ack). */
  peerAcked(ack: number): void;
}

/** What a link asks of the gateway that accepted it. */
export interface TunnelLinkHost {
  /** A `register` arrived (checked for shape): register it, resume it, or refuse it. */
  register(link: TunnelLink, frame: RegisterFrame): void;
  /** The link carries its first session: it is no longer waiting to register. Called at most once. */
  registered?(link: TunnelLink): void;
  /** The link closed; called once. */
  closed(link: TunnelLink): void;
  /** The client announced its keepalive: the link's dead-link deadline changed. */
  livenessChanged?(link: TunnelLink): void;
}

/** Options of {@link TunnelLink}. */
export interface TunnelLinkOptions {
  identity: Identity;
  /** Where MCP clients reach this gateway, as the link's client addressed it; `mcpUrl`s start with it. */
  baseUrl: string;
  limits: LinkLimits;
  host: TunnelLinkHost;
  /** The clock. Default `Date.now`. */
  now?: () => number;
  /** Counters of frames, bytes and errors. */
  metrics?: ServeMetrics;
  /** Where the frames being received are charged, against the owner's share. */
  budget?: MemoryBudget;
}
