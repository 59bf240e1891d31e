// The resolved settings of `connect`: what config resolution produces and the supervisor consumes. The
// servers are a list: one for the one-server forms (`--local-stdio`, `-- CMD`, `--local-streamable-http`,
// `--local-sse`), any number for `--server` specs and the config file's `servers:`.

import type { LogLevel } from "@logtape/logtape";
import type { Isolation, LinkTransport } from "../protocol/frames.ts";
import { DEFAULT_REPLAY_LIMITS } from "../protocol/sequenced_channel.ts";
import { DEFAULT_REPEAT_ANSWER_BYTES } from "./kept_answers.ts";
import { REMEMBERED_IDS } from "./repeated_requests.ts";
import type { LogFormat } from "../util/log_level.ts";

/** One header sent to an HTTP upstream. Its value may be a secret: never logged, never in messages. */
export interface HeaderSpec {
  /** The header name, as given. */
  name: string;
  value: string;
  /** Where the value came from, for messages: `header-env DOCS_KEY`, `header-file /run/secrets/k`. */
  source: string;
}

/** How connect reaches one local server. */
export type ServerTransportSpec =
  | {
    kind: "stdio";
    /** Program and arguments, already split (no shell). */
    command: string[];
    /** The command as the user wrote it, for messages and the default description. */
    commandText: string;
    /** Variables added to connect's own environment for the child. */
    env?: Record<string, string>;
    /** Working directory of the child. */
    cwd?: string;
  }
  | {
    /** `http`: Streamable HTTP (connect is its MCP client); `sse`: legacy HTTP+SSE (2024-11-05). */
    kind: "http" | "sse";
    url: URL;
    headers: HeaderSpec[];
    /** PEM text of an extra trusted CA for https upstreams. */
    caCert?: string;
    caCertPath?: string;
    /** Deadline for each request's answer to start (headers, or the SSE endpoint event), in milliseconds. */
    timeoutMs: number;
  };

/** One local server connect carries. */
export interface ServerSpec {
  /**
   * The configured name: registered at the gateway, the channel its frames name, and the key a reload
   * matches servers by. Undefined only for the one-server forms without `--server-name`: the server's
   * `serverInfo.name` is registered then.
   */
  name?: string;
  /** Registration description; undefined means one made from the server's serverInfo. */
  description?: string;
  /**
   * Whether MCP clients share one server instance (`shared`) or each MCP client session gets one of its
   * own (`per-client`, with our gateway only).
   */
  isolation: Isolation;
  /** Per-client: live instances at most; a new session past it is refused. Default 16. */
  maxInstances?: number;
  /** Per-client: seconds without a message after which an instance stops; 0 = never. Default 3600. */
  instanceIdleTimeout?: number;
  transport: ServerTransportSpec;
  /** Where it was defined, for messages: `--server #2`, `servers[1] in /etc/x.yaml`, `--local-stdio`. */
  origin: string;
}

/** Every setting of `connect`, validated, with defaults applied. */
export interface ConnectSettings {
  /** The local servers, at least one, with distinct names. */
  servers: ServerSpec[];
  /**
   * True when the servers came from `--server` or `servers:`: connect then asks our gateway to carry
   * them all on one link (the `channels` extension). The one-server forms keep the one-server wire.
   */
  manyServers: boolean;
  /** The gateway URL as given (for messages). */
  gateway: string;
  /** The normalized WebSocket endpoint, ending in `/reverse-proxy/ws`. */
  gatewayUrl: URL;
  /** Bearer token, or undefined for none. Never logged. */
  token?: string;
  /** Where the token came from, for the warning about `--token` on the command line. */
  tokenSource?: "flag" | "file" | "env" | "config";
  /** Base reconnect delay in seconds. Default 1. */
  reconnectDelay: number;
  /** Reconnect attempts allowed after a drop; 0 = forever. Default 0. */
  maxRetries: number;
  /** Heartbeat interval in seconds, > 0. Default 30. */
  keepalive: number;
  /** Lowest log level. Default info. */
  logLevel: LogLevel;
  /** Log format. Default text. */
  logFormat: LogFormat;
  /** PEM text of an extra trusted CA for wss, read from `--cert`. */
  caCert?: string;
  /** Path of that CA file, for messages. */
  caCertPath?: string;
  /** `HOST:PORT` for the health and metrics listener; undefined = off. */
  healthListen?: string;
  /** Servers that must be ready for `/readyz` to answer 200; undefined = all of them. */
  minReadyServers?: number;
  /** Bytes waiting for a local server, at most. Default 64 MiB. */
  maxServerQueueBytes?: number;
  /** Messages waiting for a local server, at most. Default 10,000. */
  maxServerQueueMessages?: number;
  /** Seconds from the start of a local server's stop to SIGKILL of its process group. Default 5. */
  shutdownGrace?: number;
  /** Seconds a local server has to answer connect's `initialize`. Default 30. */
  initTimeout?: number;
  /** UTF-8 bytes of frames kept per link session until the gateway acknowledges them. Default 64 MiB. */
  maxReplayBytes?: number;
  /** Frames kept per link session until the gateway acknowledges them. Default 10,000. */
  maxReplayFrames?: number;
  /** The largest message taken from a local server (a stdio line, an HTTP answer). Default 64 MiB. */
  maxMessageBytes?: number;
  /** Cross-replica request ids remembered per server, in flight and answered (each). Default 10,000. */
  maxRepeatIds?: number;
  /** UTF-8 bytes of answers kept to answer a repeated request again, all servers together. Default 8 MiB. */
  maxRepeatAnswerBytes?: number;
  /** The link transport, or `auto` (WebSocket, SSE where WebSocket cannot pass). Default auto. */
  transport?: TransportSetting;
  /** While `auto` uses the SSE link, seconds between tries of WebSocket. Default 600. */
  websocketRetry?: number;
}

/** `--transport`: a link transport, or `auto`. */
export type TransportSetting = "auto" | LinkTransport;

/** The values `--transport` takes. */
export const TRANSPORT_SETTINGS: readonly TransportSetting[] = ["auto", "websocket", "sse"];

/** Defaults of the optional settings. */
export const CONNECT_DEFAULTS = {
  reconnectDelay: 1,
  maxRetries: 0,
  keepalive: 30,
  logLevel: "info",
  logFormat: "text",
  maxServerQueueBytes: 64 * 1024 * 1024,
  maxServerQueueMessages: 10_000,
  shutdownGrace: 5,
  initTimeout: 30,
  maxReplayBytes: DEFAULT_REPLAY_LIMITS.maxBytes,
  maxReplayFrames: DEFAULT_REPLAY_LIMITS.maxFrames,
  maxMessageBytes: 64 * 1024 * 1024,
  maxRepeatIds: REMEMBERED_IDS,
  maxRepeatAnswerBytes: DEFAULT_REPEAT_ANSWER_BYTES,
  /** Seconds an HTTP upstream has to start answering a request. */
  upstreamTimeout: 30,
  transport: "auto",
  websocketRetry: 600,
  /** Live instances of a per-client server, at most. */
  maxInstances: 16,
  /** Seconds a per-client instance may go without a message before it stops (its serve TTL's default). */
  instanceIdleTimeout: 3600,
} as const;

/** The server's key: its configured name, or "" for the one-server forms without one. */
export function serverKey(spec: ServerSpec): string {
  return spec.name ?? "";
}

/** What to call a server in logs: its name, else its command or URL. */
export function serverLabel(spec: ServerSpec): string {
  if (spec.name !== undefined) return spec.name;
  const transport = spec.transport;
  return transport.kind === "stdio"
    ? transport.commandText
    : `${transport.url.origin}${transport.url.pathname}`;
}
