// The resolved settings of `connect`: what config resolution produces and the tunnel consumes.

import type { LogLevel } from "@logtape/logtape";
import type { LogFormat } from "../util/log.ts";

/** Every setting of `connect`, validated, with defaults applied. */
export interface ConnectSettings {
  /** The local server command, already split into program and arguments (no shell). */
  command: string[];
  /** The command as the user wrote it, for messages and the default description. */
  commandText: string;
  /** The gateway URL as given (for messages). */
  gateway: string;
  /** The normalized WebSocket endpoint, ending in `/reverse-proxy/ws`. */
  gatewayUrl: URL;
  /** Bearer token, or undefined for none. Never logged. */
  token?: string;
  /** Where the token came from, for the warning about `--token` on the command line. */
  tokenSource?: "flag" | "file" | "env" | "config";
  /** Registration name; undefined means the server's `serverInfo.name`. */
  serverName?: string;
  /** Registration description; undefined means one derived from the command. */
  serverDescription?: string;
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
  /** Bytes waiting for the local server's stdin, at most. Default 64 MiB. */
  maxServerQueueBytes?: number;
  /** Messages waiting for the local server's stdin, at most. Default 10,000. */
  maxServerQueueMessages?: number;
  /** Seconds from the start of the local server's stop to SIGKILL of its process group. Default 5. */
  shutdownGrace?: number;
}

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
} as const;
