// What a local MCP session needs of the way it reaches its server, whatever that way is: a child process
// on stdio (stdio_server.ts), a Streamable HTTP upstream (http_upstream.ts) or a legacy HTTP+SSE one
// (sse_upstream.ts). Routing above it (LocalSession, Tunnel) never asks which.

import type { OversizedLine } from "../util/line_splitter.ts";
import type { QueueOutcome, StdinQueueLimits } from "./stdin_queue.ts";

/** How connect reaches a local server, as the config names it. */
export type LocalTransportKind = "stdio" | "http" | "sse";

/** An open way to one local server. */
export interface LocalTransport {
  readonly kind: LocalTransportKind;
  /** What to call the server in messages: its command, or its URL (without query or credentials). */
  readonly label: string;
  /** Process id of a stdio server (its process group too); undefined for HTTP upstreams. */
  readonly pid: number | undefined;
  /** The MCP session id an HTTP upstream gave (it changes when the upstream forgets a session). */
  readonly mcpSessionId: string | undefined;
  /** True until the transport ended (the process exited, the upstream is gone) or was stopped. */
  readonly writable: boolean;
  /** connect's own `initialize` was written already (the early start's process): wait for its answer. */
  readonly initializeSent?: boolean;
  /** Resolves once, when the transport ended, with what happened in a few words ("code 1"). */
  readonly ended: Promise<string>;
  /** Queues one message (JSON text) for the server, or says at once why not. */
  write(text: string): QueueOutcome;
  /** Writes one message and resolves when it went out: true, or false when refused or gone. */
  send(text: string): Promise<boolean>;
  /** The MCP session is initialized: an HTTP upstream opens its stream of server messages now. */
  initialized(): void;
  /** Stops the server or closes the upstream session, within the grace period. Idempotent. */
  stop(): Promise<unknown>;
  /** Ends it at once (a second signal). */
  kill(): void;
}

/** What a transport reports: each message the server sent, in order. */
export interface LocalTransportEvents {
  /**
   * One message's JSON text (a single message or a batch), with its UTF-8 size when known. May return a
   * promise to pause reading.
   */
  onLine: (line: { text: string; bytes: number }) => void | Promise<void>;
  /** A message over the size limit, not passed on. */
  onOversized?: (line: OversizedLine) => void;
  /** A stdio server's stderr line. */
  onStderr?: (line: string) => void;
}

/** What every transport is opened with. */
export interface LocalTransportLimits {
  /** Bounds of what waits to go to the server (stdin bytes and lines; HTTP requests in flight). */
  queueLimits?: StdinQueueLimits;
  /** Grace between asking the server to stop and ending it, in milliseconds. */
  graceMs?: number;
}

/** Opens a transport to the local server; stdio spawns at once, HTTP upstreams may need a round trip. */
export type OpenTransport = (
  events: LocalTransportEvents,
) => LocalTransport | Promise<LocalTransport>;
