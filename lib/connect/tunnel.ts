// `connect`: keeps one local server running and one registered link to the gateway, reconnecting with
// backoff, restarting the server if it dies, and routing every message between the two.

import { backoffDelay } from "../util/backoff.ts";
import { delay } from "../util/delay.ts";
import {
  AuthRefusedError,
  EvictedError,
  RetriesExhaustedError,
  ServerStartError,
} from "../util/errors.ts";
import {
  CloseCode,
  Extension,
  type Frame,
  PAYLOAD_TEXT,
  utf8Length,
  WEBSOCKET_MAX_MESSAGE_BYTES,
} from "../protocol/frames.ts";
import {
  ErrorCode,
  errorResponse,
  type JsonObject,
  type JsonRpcId,
  type JsonRpcResponse,
} from "../protocol/jsonrpc.ts";
import { Link, type LinkEnd, type Registration } from "./link.ts";
import { describeExit, LocalSession, type ServerMessage } from "./local_session.ts";
import { logger, truncate } from "../util/log.ts";
import type { ConnectSettings } from "./settings.ts";
import type { ServerExit, StdioServer } from "./stdio_server.ts";
import type { ConnectMetrics } from "./metrics.ts";
import {
  ReceiveWindow,
  ReplayBuffer,
  type ReplayLimits,
  sequencedFrame,
} from "../protocol/sequenced_channel.ts";

const log = logger("connect");
const serverLog = logger("server", "stderr");

/** Options of {@link runConnect}. */
export interface ConnectOptions {
  settings: ConnectSettings;
  /** Aborting it starts a clean shutdown: unregister, close 1000, stop the server. */
  signal: AbortSignal;
  /** Returns a number in [0, 1) for backoff jitter; injected by tests. */
  random?: () => number;
  /** A link that stayed up this long resets the reconnect counter, in milliseconds. */
  healthyAfterMs?: number;
  /** Deadline for the server's `initialize` reply, in milliseconds. */
  initTimeoutMs?: number;
  /** Grace between SIGTERM and SIGKILL when stopping the server, in milliseconds. */
  graceMs?: number;
  /** Updated on every state change and message; optional so that tests and the demo can leave it out. */
  metrics?: ConnectMetrics;
  /** Bounds of the replay buffer kept for resumption (docs/resume.md). */
  replayLimits?: ReplayLimits;
  /** Called after every successful registration. */
  onRegistered?: (registration: Registration) => void;
}

/** Bytes queued on the socket above which the server's output is no longer read. */
const HIGH_WATER_BYTES = 8 * 1024 * 1024;
/** Data frames received before a standalone ack goes back (acks also ride on every frame we send). */
const ACK_EVERY = 32;

/** What lets a dropped link be resumed with our gateway: the session, its secret, and both sequences. */
interface ResumeState {
  sessionId: string;
  token: string;
  out: ReplayBuffer;
  in: ReceiveWindow;
}
const LOW_WATER_BYTES = 1024 * 1024;

/** Methods a server may send as requests that only a client (not the proxy) can answer. */
function localAnswer(message: ServerMessage, why: string): JsonRpcResponse {
  const id = message.id as JsonRpcId;
  if (message.method === "ping") return { jsonrpc: "2.0", id, result: {} };
  return errorResponse(
    id,
    ErrorCode.MethodNotFound,
    `mcp-rproxy cannot deliver '${String(message.method)}' to a client: ${why}`,
  );
}

/** The running tunnel: the local session, the current link, and the routing between them. */
export class Tunnel {
  #settings: ConnectSettings;
  #options: ConnectOptions;
  #session: LocalSession | undefined;
  #link: Link | undefined;
  #generation = 0;
  #clientSessionId = crypto.randomUUID().replaceAll("-", "");
  /** Server-initiated requests sent to the gateway and not answered yet (C only). */
  #serverRequests = new Map<string, JsonRpcId>();
  #undeliverable = 0;
  #resume: ResumeState | undefined;
  /** Payload logging costs a serialization per message: decide once whether anyone will read it. */
  #debug = log.isEnabledFor("debug");

  constructor(options: ConnectOptions) {
    this.#options = options;
    this.#settings = options.settings;
  }

  /** Process id of the local server, if one is running. */
  get serverPid(): number | undefined {
    return this.#session?.server.pid;
  }

  /** True when registered with a link up and the server alive. */
  get ready(): boolean {
    return this.#link?.isOpen === true && this.#session?.alive === true;
  }

  /** Kills the server's process group at once (a second signal). */
  kill(): void {
    (this.#session?.server ?? this.#spawning)?.kill();
  }

  /** The server being started, before its session exists: a second signal must reach it too. */
  #spawning: StdioServer | undefined;

  async #startServer(): Promise<LocalSession> {
    const { settings, initTimeoutMs, graceMs } = this.#options;
    log.info("Starting local server: {command}", {
      event: "server_starting",
      command: settings.commandText,
    });
    const session = await LocalSession.start({
      command: settings.command,
      signal: this.#options.signal,
      onSpawn: (server) => this.#spawning = server,
      // In JSON mode every stderr line must be JSON: the server's lines become records of their own.
      ...(settings.logFormat === "json"
        ? {
          onStderr: (line: string) =>
            serverLog.info("{line}", { event: "server_stderr", line: line.slice(0, 4096) }),
        }
        : {}),
      ...(initTimeoutMs === undefined ? {} : { initTimeoutMs }),
      ...(graceMs === undefined ? {} : { graceMs }),
      onMessage: (message) => this.#fromServer(message),
      onOversized: (_line, id) => {
        if (id !== undefined) {
          this.#sendPayload(
            "response",
            errorResponse(
              id,
              ErrorCode.MessageTooLarge,
              "The local server's answer exceeded 64 MiB",
            ),
          );
        }
      },
    });
    const info = session.serverInfo;
    log.info("Local server {name} {version} is up (pid {pid})", {
      event: "server_started",
      name: info.name ?? "?",
      version: info.version ?? "?",
      pid: session.server.pid,
    });
    return session;
  }

  /** Runs until the signal aborts (resolves) or a fatal condition (rejects with a typed error). */
  async run(): Promise<void> {
    const { settings, signal, metrics } = this.#options;
    const healthyAfterMs = this.#options.healthyAfterMs ?? 30_000;
    try {
      this.#session = await this.#startServer();
    } catch (error) {
      if (signal.aborted) return; // shut down during start-up: the server was stopped
      throw error;
    }

    let attempt = 0;
    let lastError = "";
    try {
      while (!signal.aborted) {
        if (!this.#session.alive) {
          await this.#restartServer();
          if (signal.aborted) break;
        }
        const session = this.#session;
        let link: Link | undefined;
        const dialStart = performance.now();
        try {
          link = await this.#dial(session);
        } catch (error) {
          if (
            error instanceof AuthRefusedError || error instanceof EvictedError ||
            error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied
          ) throw error;
          if (signal.aborted) break;
          lastError = (error as Error).message;
          metrics?.errors.inc(
            /did not complete registration/.test(lastError) ? "registration" : "dial",
          );
          log.warn("Cannot connect to the gateway: {error}", {
            event: "connect_failed",
            error: lastError,
          });
        }
        if (link) {
          const registration = link.registration;
          metrics?.linkConnects.inc();
          metrics?.registrationDuration.observe((performance.now() - dialStart) / 1000);
          metrics?.linkUp.set(1);
          log.info("Registered with the gateway (contract {contract}) as {name}", {
            event: "registered",
            session: registration.sessionId,
            contract: registration.contract,
            name: registration.name ?? this.#serverName(session),
            ...(registration.mcpUrl ? { mcpUrl: registration.mcpUrl } : {}),
          });
          this.#options.onRegistered?.(registration);
          // A resumed session proves the gateway is up and has our calls waiting: the next drop should
          // be retried quickly again, not after a backoff grown by earlier drops.
          if (registration.resumed === true) attempt = 0;
          if (this.#undeliverable > 0) {
            log.info(
              "{count} message(s) from the server could not be delivered while the link was down",
              {
                event: "undelivered",
                count: this.#undeliverable,
              },
            );
            this.#undeliverable = 0;
          }
          const outcome = await this.#hold(link, session);
          this.#dropLink(link, outcome);
          metrics?.linkUp.set(0);
          if (outcome === "aborted") break;
          if (outcome === "server") {
            // The server died under a live link: restart it and register afresh right away.
            attempt = 0;
            continue;
          }
          if (outcome.code === CloseCode.Evicted) {
            throw new EvictedError(
              `The gateway evicted this session${outcome.reason ? `: ${outcome.reason}` : ""}`,
            );
          }
          if (outcome.code === CloseCode.Policy) {
            throw new AuthRefusedError(
              `The gateway closed the link for a policy violation (1008${
                outcome.reason ? `: ${outcome.reason}` : ""
              })`,
            );
          }
          lastError = outcome.cause === "heartbeat"
            ? "no heartbeat reply in time"
            : `closed with code ${outcome.code}${outcome.reason ? ` (${outcome.reason})` : ""}`;
          metrics?.errors.inc(outcome.cause === "heartbeat" ? "heartbeat_timeout" : "link_lost");
          log.warn("Lost the link to the gateway: {error}", {
            event: "link_lost",
            error: lastError,
          });
          if (performance.now() - dialStart >= healthyAfterMs) attempt = 0;
        }
        attempt++;
        const { maxRetries } = settings;
        if (maxRetries > 0 && attempt > maxRetries) {
          throw new RetriesExhaustedError(
            `Giving up after ${maxRetries} reconnect attempt${
              maxRetries === 1 ? "" : "s"
            }; last error: ${lastError}`,
          );
        }
        const waitMs = backoffDelay(attempt, {
          baseMs: settings.reconnectDelay * 1000,
          ...(this.#options.random ? { random: this.#options.random } : {}),
        });
        log.info("Reconnecting in {seconds} s (attempt {attempt}{of})", {
          event: "reconnect_scheduled",
          seconds: (waitMs / 1000).toFixed(2),
          attempt,
          of: maxRetries > 0 ? ` of ${maxRetries}` : "",
        });
        await delay(waitMs, signal).catch(() => {});
        if (!signal.aborted) metrics?.linkReconnects.inc();
      }
    } finally {
      await this.#shutdown();
    }
  }

  async #restartServer(): Promise<void> {
    const { signal, settings, metrics } = this.#options;
    for (let attempt = 1; !signal.aborted; attempt++) {
      const waitMs = backoffDelay(attempt, {
        baseMs: settings.reconnectDelay * 1000,
        ...(this.#options.random ? { random: this.#options.random } : {}),
      });
      log.info("Restarting the local server in {seconds} s", {
        event: "server_restart_scheduled",
        seconds: (waitMs / 1000).toFixed(2),
      });
      await delay(waitMs, signal).catch(() => {});
      if (signal.aborted) return;
      try {
        this.#session = await this.#startServer();
        metrics?.serverRestarts.inc();
        return;
      } catch (error) {
        if (signal.aborted) return;
        if (!(error instanceof ServerStartError)) throw error;
        metrics?.errors.inc("server_start");
        log.error("{error}", { event: "server_start_failed", error: error.message });
      }
    }
  }

  #serverName(session: LocalSession): string {
    const name = this.#settings.serverName ?? session.serverInfo.name ?? "mcp-server";
    return name.slice(0, 128) || "mcp-server";
  }

  #serverDescription(session: LocalSession): string {
    const info = session.serverInfo;
    const description = this.#settings.serverDescription ??
      `${info.title ?? info.name ?? "MCP server"}${
        info.version ? ` ${info.version}` : ""
      } via mcp-rproxy`;
    return description.slice(0, 1024);
  }

  async #dial(session: LocalSession): Promise<Link> {
    const { settings, signal, metrics } = this.#options;
    const previous = this.#resume;
    const resume = previous !== undefined && !previous.out.overflowed ? previous : undefined;
    if (previous !== undefined && resume === undefined) {
      log.warn(
        "Not resuming session {session}: the replay buffer overflowed while the link was down",
        {
          event: "resume_impossible",
          session: previous.sessionId,
        },
      );
    }
    // A fresh session starts a new generation now (B's discovery arrives before registration completes).
    if (resume === undefined) this.#freshSession();
    log.info("Connecting to {url}", { event: "connecting", url: settings.gatewayUrl.href });
    const link = await Link.open({
      url: settings.gatewayUrl,
      ...(settings.token === undefined ? {} : { token: settings.token }),
      ...(settings.caCert === undefined ? {} : { caCert: settings.caCert }),
      clientSessionId: this.#clientSessionId,
      server: { name: this.#serverName(session), description: this.#serverDescription(session) },
      keepaliveMs: settings.keepalive * 1000,
      signal,
      onFrame: (frame, link) => {
        // Frames that arrive during registration (B's discovery) need the link before `open` resolves.
        this.#link ??= link;
        if (this.#link === link) this.#fromGateway(frame);
      },
      onRegistered: (link) => this.#afterRegistration(link, resume),
      onAck: (ack) => this.#resume?.out.ack(ack),
      heartbeatFields: () => this.#resume ? { ack: this.#resume.in.last } : {},
      ...(resume
        ? { resume: { sessionId: resume.sessionId, token: resume.token, ack: resume.in.last } }
        : previous
        // Still present the credential: the gateway then ends the old session (failing its calls)
        // and frees its name for this registration, instead of waiting out the resume window.
        ? {
          resume: {
            sessionId: previous.sessionId,
            token: previous.token,
            ack: previous.in.last,
            overflowed: true,
          },
        }
        : {}),
      ...(metrics
        ? {
          onHeartbeatRtt: (ms: number) => metrics.heartbeatRtt.observe(ms / 1000),
          onFrameIn: (bytes: number) => {
            metrics.framesIn.inc();
            metrics.bytesIn.inc(bytes);
          },
        }
        : {}),
    }).catch((error) => {
      this.#link = undefined;
      throw error;
    });
    this.#link = link;
    return link;
  }

  /** Forgets the previous session: its calls in flight can no longer be answered through the gateway. */
  #freshSession(): void {
    this.#generation++;
    const lost = this.#session?.takeInFlight() ?? [];
    if (lost.length > 0) {
      log.warn("{count} call(s) of the previous session cannot be answered on a new session", {
        event: "calls_lost",
        count: lost.length,
      });
    }
    this.#failServerRequests("The link to the gateway dropped before the client answered");
    this.#resume = undefined;
  }

  /** Replays what the gateway has not seen after a resumption, or sets up resumption for a fresh session. */
  #afterRegistration(link: Link, attempted: ResumeState | undefined): void {
    const registration = link.registration;
    if (attempted !== undefined) {
      const replay = registration.resumed === true && registration.sessionId === attempted.sessionId
        ? attempted.out.replayAfter(registration.peerAck ?? 0)
        : undefined;
      if (replay !== undefined) {
        log.info(
          "Resumed session {session}: replaying {count} frame(s) the gateway had not received",
          {
            event: "resumed",
            session: attempted.sessionId,
            count: replay.length,
          },
        );
        for (const frame of replay) link.sendText(frame.text);
        return;
      }
      log.warn(
        "The gateway could not resume session {session} ({why}); continuing as a new session",
        {
          event: "resume_refused",
          session: attempted.sessionId,
          why: registration.resumeError ??
            (registration.resumed ? "replay gap" : "no reason given"),
        },
      );
      this.#freshSession();
    }
    if (registration.resume !== undefined && link.hasExtension(Extension.Resume)) {
      this.#resume = {
        sessionId: registration.sessionId,
        token: registration.resume.token,
        out: new ReplayBuffer(this.#options.replayLimits),
        in: new ReceiveWindow(),
      };
    }
  }

  /** Waits until the link ends, the server exits, or shutdown is requested. */
  async #hold(link: Link, session: LocalSession): Promise<LinkEnd | "server" | "aborted"> {
    const { signal } = this.#options;
    let onAbort: (() => void) | undefined;
    let holding = true;
    const aborted = new Promise<"aborted">((resolve) => {
      onAbort = () => resolve("aborted");
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    });
    try {
      const outcome = await Promise.race([
        link.ended,
        session.server.exited.then((exit): "server" => {
          if (holding) this.#onServerDeath(exit);
          return "server";
        }),
        aborted,
      ]);
      return outcome;
    } finally {
      holding = false;
      if (onAbort) signal.removeEventListener("abort", onAbort);
    }
  }

  #onServerDeath(exit: ServerExit): void {
    this.#options.metrics?.errors.inc("server_exit");
    log.error(
      "Local server exited unexpectedly ({exit}); answering its calls in flight with errors",
      {
        event: "server_exited",
        exit: describeExit(exit),
      },
    );
    this.#failInFlight("The local MCP server exited before answering; it is being restarted");
    // The gateway must forget this server: it will register afresh once the new process is initialized.
    this.#link?.send({ type: "unregister", sessionId: this.#link.sessionId });
  }

  #dropLink(link: Link, outcome: LinkEnd | "server" | "aborted"): void {
    if (outcome === "aborted") return;
    link.close(CloseCode.Normal, outcome === "server" ? "local server restarting" : "");
    this.#link = undefined;
    if (outcome === "server") {
      // A new server process means a new session at the gateway.
      this.#freshSession();
    } else if (this.#resume === undefined) {
      // Without resumption, answers to calls of this link can never reach their callers.
      this.#freshSession();
    }
  }

  #failInFlight(message: string): void {
    const session = this.#session;
    if (!session) return;
    for (const request of session.takeInFlight()) {
      if (request.generation === this.#generation) {
        this.#sendPayload(
          "response",
          errorResponse(request.id, ErrorCode.ServerUnavailable, message),
        );
      }
    }
    this.#options.metrics?.callsInFlight.set(0);
  }

  #failServerRequests(message: string): void {
    const session = this.#session;
    for (const id of this.#serverRequests.values()) {
      void session?.reply(errorResponse(id, ErrorCode.TunnelUnavailable, message));
    }
    this.#serverRequests.clear();
  }

  async #shutdown(): Promise<void> {
    const link = this.#link;
    this.#link = undefined;
    const session = this.#session;
    if (link?.isOpen) {
      // Answer what is still in flight so that no caller waits for a response that will never come.
      for (const request of session?.takeInFlight() ?? []) {
        link.sendText(
          this.#frameText(
            "response",
            JSON.stringify(
              errorResponse(request.id, ErrorCode.ServerUnavailable, "mcp-rproxy is shutting down"),
            ),
            link.sessionId,
          ),
        );
      }
      link.send({ type: "unregister", sessionId: link.sessionId });
      link.close(CloseCode.Normal, "shutting down");
      this.#options.metrics?.linkUp.set(0);
      log.info("Unregistered and closed the link", {
        event: "unregistered",
        session: link.sessionId,
      });
    }
    this.#failServerRequests("mcp-rproxy is shutting down");
    if (session) {
      const exit = await session.stop();
      log.info("Local server stopped ({exit})", {
        event: "server_stopped",
        exit: describeExit(exit),
      });
    }
  }

  #frameText(type: string, payloadText: string, sessionId: string): string {
    if (sessionId !== this.#quotedFor) {
      this.#quotedFor = sessionId;
      this.#quotedSessionId = JSON.stringify(sessionId);
    }
    return `{"type":"${type}","sessionId":${this.#quotedSessionId},"payload":${payloadText}}`;
  }

  #quotedFor = "";
  #quotedSessionId = '""';

  /** Sends a payload object; returns false if there is no link. */
  #sendPayload(type: "response" | "notification" | "request", payload: JsonObject): boolean {
    return this.#sendText(type, JSON.stringify(payload), undefined, undefined);
  }

  /**
   * Sends a payload already in JSON text (the server's own line: never re-serialized). A response too
   * large for the gateway becomes an error response with the same id.
   */
  #sendText(
    type: "response" | "notification" | "request",
    payloadText: string,
    payloadBytes: number | undefined,
    id: JsonRpcId | undefined,
  ): boolean {
    const link = this.#link;
    const resume = this.#resume;
    if (!link?.isOpen && (resume === undefined || resume.out.overflowed)) return false;
    const sessionId = resume?.sessionId ?? link!.sessionId;
    const limit = link?.maxFrameBytes ?? WEBSOCKET_MAX_MESSAGE_BYTES;
    // The envelope around the payload: type, session id, seq and ack (ASCII).
    const overhead = 100 + sessionId.length;
    // A UTF-16 unit is at most 3 bytes in UTF-8: only count when the frame could be over the limit.
    if ((payloadText.length + overhead) * 3 > limit) {
      const bytes = (payloadBytes ?? utf8Length(payloadText)) + overhead;
      if (bytes > limit) {
        this.#options.metrics?.errors.inc("frame_too_large");
        if (type === "response" && id !== undefined) {
          log.warn(
            "An answer of {bytes} bytes exceeds the gateway's frame limit of {limit} bytes; sent an error",
            {
              event: "frame_too_large",
              bytes,
              limit,
            },
          );
          return this.#sendText(
            "response",
            JSON.stringify(errorResponse(
              id,
              ErrorCode.MessageTooLarge,
              `The result (${bytes} bytes) exceeds the gateway's message limit of ${limit} bytes`,
            )),
            undefined,
            undefined,
          );
        }
        log.warn(
          "A {type} of {bytes} bytes exceeds the gateway's frame limit of {limit} bytes; not forwarded",
          {
            event: "frame_too_large",
            type,
            bytes,
            limit,
          },
        );
        return false;
      }
    }
    if (resume !== undefined) return this.#sendSequenced(type, payloadText, resume, link);
    const text = this.#frameText(type, payloadText, sessionId);
    const metrics = this.#options.metrics;
    if (metrics) {
      metrics.framesOut.inc();
      metrics.bytesOut.inc(text.length);
    }
    return link!.sendText(text);
  }

  /** Sends (or, while the link is down, only keeps) a data frame with the next `seq` and our current `ack`. */
  #sendSequenced(
    type: "response" | "notification" | "request",
    payloadText: string,
    resume: ResumeState,
    link: Link | undefined,
  ): boolean {
    const seq = resume.out.nextSeq();
    const text = sequencedFrame({
      type,
      sessionId: resume.sessionId,
      seq,
      ack: resume.in.last,
      payloadText,
    });
    resume.in.acked();
    const wasOverflowed = resume.out.overflowed;
    if (!resume.out.keep({ seq, text, size: text.length }) && !wasOverflowed) {
      log.warn("The replay buffer is full; a link drop now would start a new session", {
        event: "replay_overflow",
        session: resume.sessionId,
      });
    }
    if (!link?.isOpen) return true;
    const metrics = this.#options.metrics;
    if (metrics) {
      metrics.framesOut.inc();
      metrics.bytesOut.inc(text.length);
    }
    return link.sendText(text);
  }

  #fromServer(message: ServerMessage): void | Promise<void> {
    const link = this.#link;
    if (message.kind === "request") return this.#serverRequest(message);
    if (message.kind === "response") {
      this.#options.metrics?.callsInFlight.set(this.#session?.inFlightCount ?? 0);
      const request = message.request;
      // While a resumable link is down, answers are kept for replay; otherwise they cannot be routed.
      const deliverable = link?.isOpen ||
        (this.#resume !== undefined && !this.#resume.out.overflowed);
      if (request === undefined || request.generation !== this.#generation || !deliverable) {
        this.#undeliverable++;
        log.warn("Dropped an answer the gateway can no longer route (id {id}: {why})", {
          event: "response_dropped",
          id: JSON.stringify(message.id),
          why: request === undefined ? "no such call in flight" : "its link is gone",
        });
        return;
      }
      if (this.#debug) {
        log.debug("→ gateway response {payload}", { payload: truncate(message.text) });
      }
      this.#sendText("response", message.text, message.bytes, request.id);
    } else {
      const resumable = this.#resume !== undefined && !this.#resume.out.overflowed;
      if (!link?.isOpen && !resumable) {
        // Nobody is listening; the gateway learns the server's state again when it registers.
        this.#undeliverable++;
        log.debug("No link: a {method} notification from the server was not delivered", {
          event: "notification_dropped",
          method: String(message.method),
        });
        return;
      }
      if (this.#debug) {
        log.debug("→ gateway notification {payload}", { payload: truncate(message.text) });
      }
      this.#sendText("notification", message.text, message.bytes, undefined);
    }
    if (link !== undefined && link.bufferedAmount > HIGH_WATER_BYTES) return this.#drain(link);
  }

  /** Pauses reading the server's output until the socket has sent most of what is queued. */
  async #drain(link: Link): Promise<void> {
    const { signal } = this.#options;
    for (
      let i = 0;
      i < 60_000 && link.isOpen && link.bufferedAmount > LOW_WATER_BYTES && !signal.aborted;
      i++
    ) {
      await delay(5);
    }
  }

  #serverRequest(message: ServerMessage): void {
    const link = this.#link;
    const session = this.#session;
    const id = message.id as JsonRpcId;
    if (link?.isOpen && link.hasExtension(Extension.ServerRequests)) {
      this.#serverRequests.set(JSON.stringify(id), id);
      if (this.#debug) {
        log.debug("→ gateway request {payload}", { payload: truncate(message.text) });
      }
      if (this.#sendText("request", message.text, message.bytes, undefined)) return;
      this.#serverRequests.delete(JSON.stringify(id));
    }
    const why = link?.isOpen
      ? `the gateway (contract ${link.contract ?? "?"}) does not relay server-initiated requests`
      : "the link to the gateway is down";
    log.info("Answered the server's {method} request locally: {why}", {
      event: "server_request_answered",
      method: String(message.method),
      why,
    });
    void session?.reply(localAnswer(message, why));
  }

  #fromGateway(frame: Frame): void {
    const link = this.#link;
    const session = this.#session;
    if (!session || !link) return;
    const resume = this.#resume;
    if (resume !== undefined && typeof frame.seq === "number") {
      const acceptance = resume.in.accept(frame.seq);
      if (acceptance === "duplicate") return; // replayed, and delivered before
      if (acceptance === "gap") {
        log.warn(
          "Gateway frame {seq} arrived after {last}: a frame is missing; resuming the link",
          {
            event: "sequence_gap",
            seq: frame.seq,
            last: resume.in.last,
          },
        );
        link.close(CloseCode.ProtocolError, "sequence gap");
        return;
      }
      if (resume.in.unacked >= ACK_EVERY) {
        link.send({ type: "ack", sessionId: resume.sessionId, ack: resume.in.last });
        resume.in.acked();
      }
    }
    const generation = this.#generation;
    let payload = frame.payload;
    const payloadText = frame[PAYLOAD_TEXT];
    if (payloadText !== undefined) {
      if (frame.type === "request" && session.forwardText(payloadText, generation)) {
        if (this.#debug) {
          log.debug("← gateway request {payload}", { payload: truncate(payloadText) });
        }
        this.#options.metrics?.callsInFlight.set(session.inFlightCount);
        return;
      }
      payload = JSON.parse(payloadText); // valid JSON: the frame was checked whole
    }
    if (typeof payload !== "object" || payload === null) {
      log.warn("Gateway sent a '{type}' frame without a JSON object payload; ignored", {
        type: frame.type,
      });
      return;
    }
    // Never log `frame.authentication`: it carries downstream credentials.
    if (frame.type === "request") {
      if (this.#debug) {
        log.debug("← gateway request {payload}", { payload: truncate(JSON.stringify(payload)) });
      }
      if (Array.isArray(payload)) {
        for (const element of payload) {
          this.#requestFromGateway(element as JsonObject, session, generation);
        }
      } else {
        this.#requestFromGateway(payload as JsonObject, session, generation);
      }
      return;
    }
    if (frame.type === "response") {
      // The answer to a server-initiated request (C's `server-requests` extension).
      const id = (payload as JsonObject).id;
      if (typeof id === "string" || typeof id === "number") {
        this.#serverRequests.delete(JSON.stringify(id));
      }
      void session.reply(payload as JsonRpcResponse);
      return;
    }
    log.warn("Gateway sent an unknown frame type '{type}'; ignored", { type: frame.type });
  }

  #requestFromGateway(payload: JsonObject, session: LocalSession, generation: number): void {
    const immediate = session.fromTunnel(payload, generation);
    if (immediate) this.#sendPayload("response", immediate);
    this.#options.metrics?.callsInFlight.set(session.inFlightCount);
  }
}

/**
 * Runs `connect` until the signal aborts (resolves) or a condition that reconnecting cannot fix (rejects
 * with {@link AuthRefusedError}, {@link EvictedError}, {@link RetriesExhaustedError} or
 * {@link ServerStartError}). The local server is stopped on every path.
 */
export async function runConnect(options: ConnectOptions): Promise<void> {
  await new Tunnel(options).run();
}
