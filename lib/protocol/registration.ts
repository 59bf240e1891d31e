// Registration on the wire: `register` (client), `register_ack` and `register_complete` (gateway), and the
// `resume` request a `register` may carry. Encoded and read here only; bounds are applied on reading, so
// what a gateway keeps of a registration is trimmed, bounded and copied before anything stores it.

import { isObject } from "../util/json_object.ts";
import { boundedCopy } from "../util/text.ts";
import type { Frame } from "./frames.ts";
import { Extension, type Isolation, ISOLATIONS } from "./frames.ts";

/** Longest server name (contract B's limit), in characters after trimming. */
export const MAX_NAME_LENGTH = 128;
/** Longest description kept (contract B's limit); longer ones are cut. */
export const MAX_DESCRIPTION_LENGTH = 1024;
/** Longest `protocol` value kept. */
const MAX_PROTOCOL_LENGTH = 32;
/** Extensions a client may ask for, at most; more are ignored. */
const MAX_EXTENSIONS = 32;
/** Longest `channel` a `register` may name: the gateway keeps it, as the name, for the session's life. */
export const MAX_CHANNEL_LENGTH = 256;
/**
 * Client sessions a `register_ack` may list, at most. A longer list is not read: connect then keeps every
 * instance (each stops at its session's `client_session_end` or its idle timeout).
 */
export const MAX_LISTED_CLIENT_SESSIONS = 4096;
/** Longest client-session id read from a frame (ours are UUIDs; the id is opaque to connect). */
export const MAX_CLIENT_SESSION_LENGTH = 256;

/** What a client says about the server it registers. */
export interface ServerDescription {
  name: string;
  description: string;
  /** `stdio` (A-style) or `mcp` (B-style); informational for C. */
  protocol: string;
  /** C with `client-sessions`: whether each MCP client gets an instance of its own. */
  isolation?: Isolation;
}

/** What a `register` frame's `resume` object asks for. */
export interface ResumeRequest {
  /** The session to re-attach. */
  sessionId: string;
  /** The secret issued in that session's `register_ack`. */
  token: string;
  /** Highest `seq` the client received from the gateway in order. */
  ack: number;
  /**
   * Highest `seq` of the client's own frames the gateway acknowledged: they are no longer kept, so a
   * gateway restarted from its state store takes them as received (docs/resume.md, Restart).
   */
  acked?: number;
  /** True when the client's own replay buffer overflowed: it cannot replay, so the session must end. */
  overflowed: boolean;
}

/** A `register` frame. */
export interface RegisterFrame {
  sessionId: string;
  /** C with `channels`: the channel this server's frames will name. */
  channel?: string;
  server: ServerDescription;
  resume?: ResumeRequest;
  /** Extensions the client asks for (C). */
  extensions: ReadonlySet<string>;
}

/**
 * Encodes a `register` frame. `protocol` is `mcp`: B requires it and A does not check it. A server with
 * `isolation: per-client` asks for the `client-sessions` extension with it (it cannot run without).
 *
 * @example
 * ```ts
 * import { encodeRegister } from "./registration.ts";
 * encodeRegister({ sessionId: "c1", server: { name: "git", description: "", protocol: "mcp" }, extensions: new Set() });
 * ```
 */
export function encodeRegister(frame: RegisterFrame): string {
  const { sessionId, channel, server, resume } = frame;
  const extensions = server.isolation === "per-client"
    ? new Set([...frame.extensions, Extension.ClientSessions])
    : frame.extensions;
  return JSON.stringify({
    type: "register",
    sessionId,
    ...(channel === undefined ? {} : { channel }),
    server,
    ...(resume === undefined ? {} : { resume }),
    ...(extensions.size === 0 ? {} : { extensions: [...extensions] }),
  });
}

/**
 * Reads a `register` frame, with its name trimmed and checked (1 to {@link MAX_NAME_LENGTH} characters),
 * its description trimmed and cut, every kept string copied. Returns an Error whose message says what is
 * wrong, for the gateway to send back.
 */
export function readRegister(frame: Frame): RegisterFrame | Error {
  const server = frame.fields.server;
  if (!isObject(server) || typeof server.name !== "string") {
    return new TypeError("Register needs 'server' with a string 'name'");
  }
  const trimmed = server.name.trim();
  if (trimmed.length === 0) return new RangeError("Server name is empty");
  if (trimmed.length > MAX_NAME_LENGTH) {
    return new RangeError(
      `Server name is ${trimmed.length} characters long; at most ${MAX_NAME_LENGTH} are allowed`,
    );
  }
  const channel = frame.channel;
  if (channel !== undefined && channel.length > MAX_CHANNEL_LENGTH) {
    return new RangeError(
      `Channel is ${channel.length} characters long; at most ${MAX_CHANNEL_LENGTH} are allowed`,
    );
  }
  const isolation = server.isolation;
  if (isolation !== undefined && !ISOLATIONS.includes(isolation as Isolation)) {
    return new RangeError(`Unknown isolation; expected one of ${ISOLATIONS.join(", ")}`);
  }
  const description: ServerDescription = {
    name: boundedCopy(trimmed, MAX_NAME_LENGTH),
    description: typeof server.description === "string"
      ? boundedCopy(server.description, MAX_DESCRIPTION_LENGTH)
      : "",
    protocol: typeof server.protocol === "string"
      ? boundedCopy(server.protocol, MAX_PROTOCOL_LENGTH)
      : "",
    ...(isolation === undefined ? {} : { isolation: isolation as Isolation }),
  };
  const asked = frame.fields.extensions;
  const extensions = new Set<string>();
  if (Array.isArray(asked)) {
    for (const name of asked.slice(0, MAX_EXTENSIONS)) {
      if (typeof name === "string" && name.length <= 64) extensions.add(name);
    }
  }
  const resume = readResumeRequest(frame.fields.resume);
  return {
    sessionId: frame.sessionId ?? "",
    // Copied, not trimmed: frames name the channel exactly as registered.
    ...(channel === undefined ? {} : { channel: JSON.parse(JSON.stringify(channel)) as string }),
    server: description,
    ...(resume === undefined ? {} : { resume }),
    extensions,
  };
}

/**
 * Reads the `resume` member of a `register` frame. Undefined when absent or malformed (the registration
 * is then simply fresh).
 *
 * @example
 * ```ts
 * import { readResumeRequest } from "./registration.ts";
 * readResumeRequest({ sessionId: "s", token: "t", ack: 3 })?.ack; // 3
 * ```
 */
export function readResumeRequest(value: unknown): ResumeRequest | undefined {
  if (!isObject(value)) return undefined;
  const { sessionId, token, ack, acked, overflowed } = value;
  if (typeof sessionId !== "string" || sessionId === "" || sessionId.length > 256) return undefined;
  if (typeof token !== "string" || token.length > 1024) return undefined;
  const count = (n: unknown): n is number =>
    typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
  if (!count(ack)) return undefined;
  return {
    sessionId,
    token,
    ack,
    ...(count(acked) ? { acked } : {}),
    overflowed: overflowed === true,
  };
}

/** A `register_ack` frame's fields. */
export interface RegisterAck {
  sessionId: string;
  channel?: string;
  /** A/C: `success`; B: `processing` (discovery runs, then `register_complete`); C: `evicted` on a refused resume. */
  status: string;
  /** C: the name the server got (a collision gives `name-2`). */
  name?: string;
  /** C: where MCP clients reach the server. */
  mcpUrl?: string;
  /** C: the extensions the gateway offers. */
  extensions: ReadonlySet<string>;
  /** C with `large-frames`: the largest frame the gateway takes. */
  maxFrameBytes?: number;
  /** C with `resume`: the resume credential (never logged) and how long the gateway waits. */
  resume?: { token: string; windowMs: number };
  /** C: true when the requested session was re-attached. */
  resumed?: boolean;
  /** C on resumption: the last `seq` the gateway received. */
  ack?: number;
  /** C: why a requested resumption was refused. */
  resumeError?: string;
  /**
   * C with `client-sessions`, for a per-client server: the MCP client sessions open at the gateway now.
   * connect stops the instances of any other (they ended while it was away).
   */
  clientSessions?: string[] | undefined;
}

/** Encodes a `register_ack` frame. */
export function encodeRegisterAck(ack: RegisterAck): string {
  const { extensions, ...rest } = ack;
  return JSON.stringify({ type: "register_ack", ...rest, extensions: [...extensions] });
}

/** Reads a `register_ack` frame; a missing session id falls back to `clientSessionId`. */
export function readRegisterAck(frame: Frame, clientSessionId: string): RegisterAck {
  const f = frame.fields;
  const extensions = new Set<string>(
    Array.isArray(f.extensions)
      ? f.extensions.filter((e): e is string => typeof e === "string")
      : [],
  );
  const ack: RegisterAck = {
    sessionId: frame.sessionId !== undefined && frame.sessionId !== ""
      ? frame.sessionId
      : clientSessionId,
    status: String(f.status),
    extensions,
  };
  if (frame.channel !== undefined) ack.channel = frame.channel;
  if (typeof f.name === "string") ack.name = f.name;
  if (typeof f.mcpUrl === "string") ack.mcpUrl = f.mcpUrl;
  if (typeof f.maxFrameBytes === "number") ack.maxFrameBytes = f.maxFrameBytes;
  if (isObject(f.resume) && typeof f.resume.token === "string" && f.resume.token !== "") {
    ack.resume = {
      token: f.resume.token,
      windowMs: typeof f.resume.windowMs === "number" ? f.resume.windowMs : 0,
    };
  }
  if (f.resumed === true) ack.resumed = true;
  if (frame.ack !== undefined) ack.ack = frame.ack;
  if (typeof f.resumeError === "string") ack.resumeError = f.resumeError;
  // Cut short, a list would name open sessions as ended: a longer one is not read (none is ended).
  if (Array.isArray(f.clientSessions) && f.clientSessions.length <= MAX_LISTED_CLIENT_SESSIONS) {
    ack.clientSessions = f.clientSessions.filter((
      id,
    ): id is string => typeof id === "string" && id.length <= MAX_CLIENT_SESSION_LENGTH);
  }
  return ack;
}

/** Encodes B's `register_complete`, sent once its discovery through the tunnel finished. */
export function encodeRegisterComplete(
  parts: { sessionId: string; status: "success" | "error"; message?: string },
): string {
  return JSON.stringify({ type: "register_complete", ...parts });
}

/** Reads a `register_complete` frame: success, or the gateway's reason for refusing. */
export function readRegisterComplete(frame: Frame): { ok: true } | { ok: false; message: string } {
  if (frame.fields.status === "success") return { ok: true };
  const message = frame.fields.message;
  return { ok: false, message: typeof message === "string" ? message : "no reason given" };
}
