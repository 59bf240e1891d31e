// How a link to the gateway turned out, as types to switch on: the registration it established, how it
// ended, and why a dial did not end registered (read once from what the gateway and the runtime said).

import { CloseCode, Extension, WEBSOCKET_MAX_MESSAGE_BYTES } from "../protocol/frames.ts";
import type { RegisterAck } from "../protocol/registration.ts";
import { describeStatus } from "./dial_failure.ts";
import type { FailureCause } from "./link_socket.ts";

/** Which gateway contract the link speaks. */
export type Contract = "A" | "B" | "C";

/** What registration established. */
export interface Registration {
  /** The session id the gateway assigned; used in every frame from now on. */
  sessionId: string;
  contract: Contract;
  /** Extensions the gateway announced (C only). */
  extensions: ReadonlySet<string>;
  /** Largest frame the gateway accepts, in bytes. */
  maxFrameBytes: number;
  /** Where MCP clients reach the server (C only). */
  mcpUrl?: string;
  /** The resume credential the gateway issued (C with `resume`). Never logged. */
  resume?: { token: string; windowMs: number };
  /** True when the gateway re-attached the previous session (docs/resume.md). */
  resumed?: boolean;
  /** On resumption: the last `seq` the gateway received from us. */
  peerAck?: number;
  /** Why a requested resumption was refused. */
  resumeError?: string;
  /** The name the gateway registered the server under (C only; may differ after a collision). */
  name?: string;
  /** C with `client-sessions`, for a per-client server: the MCP client sessions open at the gateway. */
  clientSessions?: readonly string[];
}

/** How a registered link ended. */
export type LinkEnd =
  /** The gateway or the network closed it (code 0 when no close frame arrived). */
  | { kind: "closed"; code: number; reason: string }
  /** No frame from the gateway within the deadline after a heartbeat: the link is dead. */
  | { kind: "heartbeat" }
  /** We closed it. */
  | { kind: "local"; code: number; reason: string };

/** Why a dial did not end registered. */
export type DialFailure =
  /** The gateway refused the token: HTTP 401/403 at the upgrade, a 1008 close, or B's failed registration. */
  | "auth"
  /** Our gateway: the session was evicted (close 4001, or a resume answered `evicted`). */
  | "evicted"
  /** Our gateway: the owner holds all the sessions it may (close 4029); retry later. */
  | "too-many-sessions"
  /** The gateway could not be reached, or the handshake failed (see `cause`). */
  | "unreachable"
  /** The gateway answered the upgrade with an HTTP status that is not an auth refusal. */
  | "http-status"
  /** No handshake within the deadline. */
  | "handshake-timeout"
  /** No registration answer within the deadline. */
  | "register-timeout"
  /** The gateway closed or answered the registration otherwise. */
  | "registration-failed"
  /** A per-client server on a gateway that offers only shared isolation (contract B). */
  | "shared-only";

/** A dial that did not end registered, with what happened as a kind to switch on. */
export class DialError extends Error {
  readonly kind: DialFailure;
  /** The HTTP status of a refused upgrade, when there was one. */
  readonly status: number | undefined;
  /** For `unreachable`: what the runtime's error amounts to (DNS, refused, TLS, …). */
  readonly failure: FailureCause | undefined;

  constructor(
    kind: DialFailure,
    message: string,
    options: { status?: number; failure?: FailureCause } = {},
  ) {
    super(message);
    this.name = "DialError";
    this.kind = kind;
    this.status = options.status;
    this.failure = options.failure;
  }
}

/** The failure a refused upgrade status amounts to. */
export function refusal(status: number, url: URL): DialError {
  if (status === 401 || status === 403) {
    return new DialError(
      "auth",
      `Gateway refused the token: HTTP ${status}${
        status === 401
          ? " (missing, invalid or expired token: check --token-file or REVERSE_PROXY_TOKEN)"
          : " (the token lacks permission to register servers)"
      }`,
      { status },
    );
  }
  return new DialError("http-status", describeStatus(status, url), { status });
}

/** The failure a close before registration amounts to. */
export function closedDuringRegistration(code: number, reason: string, url: URL): DialError {
  const detail = reason ? `: ${reason}` : "";
  switch (code) {
    case CloseCode.Policy:
      return new DialError("auth", `Gateway refused the registration (close 1008${detail})`);
    case CloseCode.Evicted:
      return new DialError("evicted", `Gateway evicted this session${detail}`);
    case CloseCode.TooManySessions:
      return new DialError(
        "too-many-sessions",
        `Gateway refused the registration: too many sessions for this token's owner (close 4029${detail}); an older session of the same owner must end first, or the gateway's per-owner limit be raised`,
      );
    default:
      return new DialError(
        "registration-failed",
        `Gateway at ${url.href} closed the link during registration (code ${code}${detail})`,
      );
  }
}

/** The registration a successful `register_ack` establishes: A without extensions, C with them. */
export function registrationOf(ack: RegisterAck): Registration {
  const { extensions } = ack;
  const isC = extensions.size > 0;
  const maxFrameBytes = extensions.has(Extension.LargeFrames) && ack.maxFrameBytes !== undefined
    ? Math.min(ack.maxFrameBytes, WEBSOCKET_MAX_MESSAGE_BYTES)
    : WEBSOCKET_MAX_MESSAGE_BYTES;
  const registration: Registration = {
    sessionId: ack.sessionId,
    contract: isC ? "C" : "A",
    extensions,
    maxFrameBytes,
  };
  if (ack.mcpUrl !== undefined) registration.mcpUrl = ack.mcpUrl;
  if (ack.name !== undefined) registration.name = ack.name;
  if (extensions.has(Extension.ClientSessions) && ack.clientSessions !== undefined) {
    registration.clientSessions = ack.clientSessions;
  }
  if (extensions.has(Extension.Resume)) {
    if (ack.resume !== undefined) registration.resume = ack.resume;
    if (ack.resumed === true) registration.resumed = true;
    if (ack.ack !== undefined) registration.peerAck = ack.ack;
    if (ack.resumeError !== undefined) registration.resumeError = ack.resumeError;
  }
  return registration;
}
