// Starting one local server as its spec says: a stdio child, a Streamable HTTP upstream or a legacy SSE
// one, initialized as a LocalSession, with the log lines that say what is being started and what came up.

import { logger } from "../util/log.ts";
import type { JsonRpcId } from "../protocol/jsonrpc.ts";
import { spawnedMsAgo } from "./early_servers.ts";
import { HttpUpstream } from "./http_upstream.ts";
import {
  LocalSession,
  type LocalSessionOptions,
  type RefusedMessage,
  type ServerMessage,
} from "./local_session.ts";
import type { LocalTransport, OpenTransport } from "./local_transport.ts";
import { CONNECT_DEFAULTS, type ConnectSettings, type ServerSpec } from "./settings.ts";
import { SseUpstream } from "./sse_upstream.ts";
import { StdioServer } from "./stdio_server.ts";

const log = logger("connect");
const serverLog = logger("server", "stderr");

/** Options of {@link startServer}. */
export interface StartServerOptions {
  settings: ConnectSettings;
  /** Aborting it during start-up stops the server. */
  signal: AbortSignal;
  /** The server's name for logs. */
  label: string;
  onQueueFull: (refused: RefusedMessage) => void;
  /** The transport, as soon as it is open (a second signal must reach it during start-up). */
  onSpawn: (transport: LocalTransport) => void;
  onMessage: (message: ServerMessage) => void | Promise<void>;
  /** A request whose answer was too large to pass. */
  onOversized: (id: JsonRpcId | undefined) => void;
  initTimeoutMs?: number;
  graceMs?: number;
  /** A stdio server's process, spawned by the early start (early_servers.ts). */
  spawned?: Deno.ChildProcess | undefined;
  /** A per-client instance: its client session and that client's `initialize` parameters. */
  instance?: LocalSessionOptions["instance"];
}

/** How to reach the server, as its spec says. */
function opener(spec: ServerSpec, options: StartServerOptions): OpenTransport {
  const { settings, graceMs } = options;
  const transport = spec.transport;
  const queueLimits = {
    maxBytes: settings.maxServerQueueBytes ?? CONNECT_DEFAULTS.maxServerQueueBytes,
    maxMessages: settings.maxServerQueueMessages ?? CONNECT_DEFAULTS.maxServerQueueMessages,
  };
  const grace = graceMs ?? (settings.shutdownGrace ?? CONNECT_DEFAULTS.shutdownGrace) * 1000;
  const maxMessageBytes = settings.maxMessageBytes ?? CONNECT_DEFAULTS.maxMessageBytes;
  if (transport.kind === "stdio") {
    return (events) =>
      StdioServer.spawn({
        command: transport.command,
        ...(transport.env === undefined ? {} : { env: transport.env }),
        ...(transport.cwd === undefined ? {} : { cwd: transport.cwd }),
        graceMs: grace,
        queueLimits,
        maxLineBytes: maxMessageBytes,
        spawned: options.spawned,
        onLine: events.onLine,
        ...(events.onOversized === undefined ? {} : { onOversized: events.onOversized }),
        ...(events.onStderr === undefined ? {} : { onStderr: events.onStderr }),
      });
  }
  const upstream = {
    url: transport.url,
    headers: transport.headers,
    ...(transport.caCert === undefined ? {} : { caCert: transport.caCert }),
    timeoutMs: transport.timeoutMs,
    queueLimits,
    maxMessageBytes,
  };
  return transport.kind === "http"
    ? (events) => HttpUpstream.open({ ...upstream, graceMs: grace }, events)
    : (events) => SseUpstream.open({ ...upstream, signal: options.signal }, events);
}

/** The command, or the URL without its query. */
function targetOf(spec: ServerSpec): string {
  const transport = spec.transport;
  return transport.kind === "stdio"
    ? transport.commandText
    : `${transport.url.origin}${transport.url.pathname}`;
}

/**
 * Starts the server (or opens its upstream) and initializes it.
 *
 * @throws {ServerStartError} when it cannot start, ends, or does not answer `initialize` in time
 * @throws the signal's reason when it aborts first
 */
export async function startServer(
  spec: ServerSpec,
  options: StartServerOptions,
): Promise<LocalSession> {
  const { settings, initTimeoutMs, label, instance } = options;
  const starting = spec.transport.kind === "stdio"
    ? "Starting local server {server}: {command}"
    : "Connecting to local server {server} at {command}";
  // A process of the early start is already running: say since when (the bench reads it).
  const ago = options.spawned === undefined ? undefined : spawnedMsAgo(options.spawned);
  const about = {
    event: "server_starting",
    server: label,
    command: targetOf(spec),
    ...(ago === undefined ? {} : { spawnedMsAgo: Math.round(ago * 10) / 10 }),
  };
  // Per-client instances come and go with their clients: their own lines say so (client_instances.ts).
  if (instance === undefined) log.info(starting, about);
  else log.debug(starting, about);
  const session = await LocalSession.start({
    open: opener(spec, options),
    signal: options.signal,
    onQueueFull: options.onQueueFull,
    onSpawn: options.onSpawn,
    // In JSON mode every stderr line must be JSON: the server's lines become records of their own.
    ...(settings.logFormat === "json"
      ? {
        onStderr: (line: string) =>
          serverLog.info("{line}", {
            event: "server_stderr",
            server: label,
            line: line.slice(0, 4096),
          }),
      }
      : {}),
    initTimeoutMs: initTimeoutMs ?? (settings.initTimeout ?? CONNECT_DEFAULTS.initTimeout) * 1000,
    onMessage: options.onMessage,
    onOversized: (_line, id) => options.onOversized(id),
    ...(instance === undefined ? {} : { instance }),
  });
  if (instance !== undefined) return session;
  const info = session.serverInfo;
  const { pid, mcpSessionId } = session.transport;
  log.info("Local server {server} is up: {name} {version} ({where})", {
    event: "server_started",
    server: label,
    name: info.name ?? "?",
    version: info.version ?? "?",
    where: pid !== undefined ? `pid ${pid}` : `session ${mcpSessionId ?? "without id"}`,
    ...(pid === undefined ? {} : { pid }),
    ...(mcpSessionId === undefined ? {} : { mcpSession: mcpSessionId }),
  });
  return session;
}
