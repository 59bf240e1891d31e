// The contract of a tunnel session: what it is given (options, its host) and what it reports (how it
// ended, as a kind to switch on, and what it has done).

import type { Isolation } from "../protocol/frames.ts";
import type { JsonObject } from "../util/json_object.ts";
import type { ReplayLimits } from "../protocol/sequenced_channel.ts";
import type { MemoryBudget } from "./memory_budget.ts";
import type { ServeMetrics } from "./metrics.ts";
import type { CallLimits, ServerMessageSink } from "./call_contract.ts";
import type { LinkLoss } from "./link_contract.ts";
import type { TunnelSession } from "./tunnel_session.ts";

/** How a session ended, as a kind to switch on and a reason for people. */
export interface SessionEnd {
  kind:
    /** The client said goodbye (`unregister`, or a normal close of its link). */
    | "unregistered"
    /** An owner or operator removed it. */
    | "evicted"
    /** A newer registration of the same server took over. */
    | "superseded"
    /** Refused after all: its owner's sessions on all replicas filled `--max-sessions-per-owner`. */
    | "refused"
    /** The gateway is shutting down. */
    | "shutdown"
    /** Its link closed or died and the session could not wait to be resumed. */
    | "link-lost"
    /** Its link went silent past its deadline and the session could not wait to be resumed. */
    | "dead-link"
    /** It waited to be resumed for the whole window. */
    | "expired"
    /** A replay buffer overflowed: it can never be resumed without a gap. */
    | "overflowed"
    /** A resume acknowledged frames that were never sent or are no longer kept. */
    | "bad-ack";
  reason: string;
}

/** What a session has done, for the sessions API and metrics. */
export interface SessionStats {
  /** Last frame for this session (ms since epoch). */
  lastActivity: number;
  /** Frames both ways. */
  messages: number;
  /** Bytes of frames both ways. */
  bytes: number;
  /** Calls in flight. */
  callsInFlight: number;
  /** Times the session was resumed on a new link. */
  resumes: number;
  /** True while the session waits, without a link, to be resumed. */
  detached: boolean;
}

/** The `resume` extension's settings; absent = extension off. */
export interface ResumeSettings {
  /** How long a session whose link dropped waits to be resumed, in milliseconds. */
  windowMs: number;
  /** Bounds of the replay buffer of each session. */
  limits: ReplayLimits;
}

/** What a session tells the gateway that holds it. */
export interface SessionHost extends ServerMessageSink {
  /** The session ended, for whatever reason. Called once. */
  sessionClosed(session: TunnelSession, end: SessionEnd): void;
  /** The session lost its link and waits to be resumed. */
  sessionDetached?(session: TunnelSession, loss: LinkLoss): void;
  /** Something the state store keeps changed (what was acknowledged, the held `initialize`, a resume). */
  sessionChanged?(session: TunnelSession): void;
}

/** What a session restored from the state store starts from (serve restarted; lib/serve/state/). */
export interface RestoredTunnel {
  id: string;
  connectedAt: number;
  /** SHA-256 of the resume secret: the secret itself was never stored. */
  tokenHash: string;
  /** The client's data frames received in order by the process that saved it. */
  seqIn: number;
  /** Past every tunnel id that process could have used: answers to lower ids are late. */
  firstTunnelId: number;
  initializeResult: JsonObject | undefined;
}

/** Options of {@link TunnelSession}. */
export interface TunnelSessionOptions {
  owner: string;
  /** The final name, after collisions were resolved. */
  name: string;
  requestedName: string;
  description: string;
  protocol: string;
  mcpUrl: string;
  /** The link's channel for this session ("" without channels). */
  channel?: string;
  /** `per-client` when the client asked for it and for `client-sessions`; default shared. */
  isolation?: Isolation;
  /**
   * A per-client server's MCP client sessions open now (listed in `register_ack`); undefined when they
   * cannot be known now (none is listed: connect keeps every instance).
   */
  clientSessions?: () => string[] | undefined;
  limits: CallLimits & { maxFrameBytes: number };
  host: SessionHost;
  /** Extensions announced in `register_ack`. */
  extensions: readonly string[];
  /** Turns the `resume` extension on. */
  resume?: ResumeSettings;
  /** A session restored from the state store, without a link (needs `resume`). */
  restored?: RestoredTunnel;
  /** Where the replay buffer is charged, against the owner's memory share. */
  budget?: MemoryBudget;
  /** Version of this gateway, for the `clientInfo` of its `initialize`. */
  version: string;
  now?: () => number;
  metrics?: ServeMetrics;
}
