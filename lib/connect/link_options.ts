// What a link is opened with: where to dial, what to register, heartbeat timing, and the callbacks that
// carry frames, acks and per-channel ends to the tunnels of the servers on it.

import type { Frame, Isolation, LinkTransport } from "../protocol/frames.ts";
import type { ResumeRequest } from "../protocol/registration.ts";
import type { Link } from "./link.ts";
import type { LinkSocket, LinkSocketEvents, LinkSocketOptions } from "./link_socket.ts";

/** What a `register` says of a server; `isolation` only when it is `per-client`. */
export interface ServerDescription {
  name: string;
  description: string;
  isolation?: Isolation;
}

/** Options of `Link.open`. */
export interface LinkOptions {
  /** The `/reverse-proxy/ws` endpoint (or `/reverse-proxy/sse` with the SSE socket). */
  url: URL;
  /** Opens the transport: WebSocket by default, `openSseSocket` for the SSE link. */
  openSocket?: (options: LinkSocketOptions, events: LinkSocketEvents) => LinkSocket;
  /** Which transport `openSocket` opens, for logs. Default `websocket`. */
  transport?: LinkTransport;
  token?: string;
  /** Our `X-Session-ID` and the `sessionId` of the `register` frame. */
  clientSessionId: string;
  server: ServerDescription;
  /**
   * Ask our gateway to carry many servers on this link (the `channels` extension), the first on this
   * channel. A and B ignore the ask; so does a gateway without the extension.
   */
  channel?: string;
  /** Heartbeat interval in milliseconds. */
  keepaliveMs: number;
  /** How long a heartbeat may go without any frame from the gateway; default 2 × keepalive. */
  heartbeatDeadlineMs?: number;
  /** Extra trusted CA (PEM) for wss. */
  caCert?: string;
  /** The file `caCert` came from, for messages. */
  caCertPath?: string;
  /** Deadline for the handshake, in milliseconds. */
  openTimeoutMs?: number;
  /** Deadline from handshake to completed registration (B runs discovery in between), in milliseconds. */
  registerTimeoutMs?: number;
  /**
   * Called once registration completes, synchronously: before any later frame is handled and before the
   * first heartbeat. Deno may deliver the frames that follow `register_ack` before `open` resolves, so
   * state they depend on (the `resume` sequence numbers) must be set up here.
   */
  onRegistered?: (link: Link) => void;
  /** Gateway frames other than registration and heartbeats; called in order, also during registration. */
  onFrame: (frame: Frame, link: Link) => void;
  /** Called when a heartbeat reply arrives, with the round trip in milliseconds. */
  onHeartbeatRtt?: (ms: number) => void;
  /** Called with the size of every frame received. */
  onFrameIn?: (bytes: number) => void;
  /**
   * Ask the gateway to re-attach this session (only after it announced `resume`). `overflowed` says our
   * replay buffer overflowed: the gateway then ends that session (failing its calls) instead.
   */
  resume?: ResumeRequest;
  /** Called with the `ack` of every gateway frame that carries one, and the channel it is for. */
  onAck?: (ack: number, channel: string | undefined) => void;
  /** The cumulative `ack` to put on heartbeats, when resuming is in use (a link without channels). */
  heartbeatAck?: () => number | undefined;
  /** With channels: each channel's cumulative ack, for heartbeats. */
  heartbeatAcks?: () => Record<string, number>;
  /** With channels: the gateway ended one server's session with a `close` frame; the link goes on. */
  onChannelClosed?: (channel: string, code: number, reason: string) => void;
  signal?: AbortSignal;
}
