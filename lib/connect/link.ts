// One WebSocket link to a gateway: dial, register (contract A, B or C, told apart by what the gateway
// sends), heartbeat with a reply deadline, send frames, and report how the link ended.

import { AuthRefusedError, EvictedError } from "../util/errors.ts";
import {
  CloseCode,
  CONTRACT_B_MAX_FRAME_BYTES,
  Extension,
  type Frame,
  parseFrame,
  WEBSOCKET_MAX_MESSAGE_BYTES,
} from "../protocol/frames.ts";
import { logger } from "../util/log.ts";

const log = logger("link");

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
}

/** How a link ended. */
export interface LinkEnd {
  /** `remote`: the gateway or the network closed it; `heartbeat`: no reply in time; `local`: we closed it. */
  cause: "remote" | "heartbeat" | "local";
  code: number;
  reason: string;
}

/** Options of {@link Link.open}. */
export interface LinkOptions {
  /** The `/reverse-proxy/ws` endpoint. */
  url: URL;
  token?: string;
  /** Our `X-Session-ID` and the `sessionId` of the `register` frame. */
  clientSessionId: string;
  server: { name: string; description: string };
  /** Heartbeat interval in milliseconds. */
  keepaliveMs: number;
  /** How long a heartbeat may go without any frame from the gateway; default 2 × keepalive. */
  heartbeatDeadlineMs?: number;
  /** Extra trusted CA (PEM) for wss. */
  caCert?: string;
  /** Deadline for the WebSocket handshake, in milliseconds. */
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
  /** Called with the byte size of every frame received. */
  onFrameIn?: (bytes: number) => void;
  /**
   * Ask the gateway to re-attach this session (only after it announced `resume`). `overflowed` says our
   * replay buffer overflowed: the gateway then ends that session (failing its calls) instead.
   */
  resume?: { sessionId: string; token: string; ack: number; overflowed?: boolean };
  /** Called with the `ack` of every gateway frame that carries one. */
  onAck?: (ack: number) => void;
  /** Extra fields for heartbeat frames (the current `ack`). */
  heartbeatFields?: () => Record<string, unknown>;
  signal?: AbortSignal;
}

function resumeFields(frame: Frame): Partial<Registration> {
  const fields: Partial<Registration> = {};
  const resume = frame.resume as { token?: unknown; windowMs?: unknown } | undefined;
  if (typeof resume?.token === "string" && resume.token !== "") {
    fields.resume = {
      token: resume.token,
      windowMs: typeof resume.windowMs === "number" ? resume.windowMs : 0,
    };
  }
  if (frame.resumed === true) fields.resumed = true;
  if (typeof frame.ack === "number") fields.peerAck = frame.ack;
  if (typeof frame.resumeError === "string") fields.resumeError = frame.resumeError;
  return fields;
}

function statusFromError(message: string): number | undefined {
  const match = /status code:? (\d{3})/i.exec(message);
  return match ? Number(match[1]) : undefined;
}

/** A registered link. Open with {@link Link.open}; it ends on its own or with {@link Link.close}. */
export class Link {
  /** Resolves once, when the link is gone for whatever reason. Never rejects. */
  readonly ended: Promise<LinkEnd>;
  #ws: WebSocket;
  #options: LinkOptions;
  #registration: Registration | undefined;
  #resolveEnded!: (end: LinkEnd) => void;
  #end: LinkEnd | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #lastInboundAt = performance.now();
  #heartbeatSentAt: number | undefined;
  #lastHeartbeatAt = 0;
  #client: Deno.HttpClient | undefined;

  private constructor(ws: WebSocket, options: LinkOptions, client: Deno.HttpClient | undefined) {
    this.#ws = ws;
    this.#options = options;
    this.#client = client;
    this.ended = new Promise((resolve) => this.#resolveEnded = resolve);
  }

  /**
   * Dials the gateway and registers. Resolves when registration is complete (A and C: `register_ack`
   * success; B: `register_complete` success).
   *
   * @throws {AuthRefusedError} on HTTP 401/403 at the upgrade or a policy close (1008)
   * @throws {EvictedError} on close 4001
   * @throws {Error} when the gateway cannot be reached or registration fails otherwise
   */
  static async open(options: LinkOptions): Promise<Link> {
    const headers: Record<string, string> = { "X-Session-ID": options.clientSessionId };
    if (options.token !== undefined) headers.Authorization = `Bearer ${options.token}`;
    const client = options.caCert === undefined
      ? undefined
      : Deno.createHttpClient({ caCerts: [options.caCert] });
    let ws: WebSocket;
    try {
      ws = client === undefined
        ? new WebSocket(options.url, { headers })
        : new WebSocket(options.url, { headers, client });
    } catch (error) {
      client?.close();
      // A missing --allow-net is the user's to fix, not a network failure to retry.
      if (
        error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied
      ) throw error;
      throw new Error(
        `Cannot dial the gateway at ${options.url.href}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    const link = new Link(ws, options, client);
    await link.#register();
    return link;
  }

  /** Registration details. */
  get registration(): Registration {
    if (this.#registration === undefined) throw new Error("Link is not registered yet");
    return this.#registration;
  }

  /** Largest frame the gateway takes; known from the first registration answer on. */
  get maxFrameBytes(): number {
    return (this.#registration ?? this.#pendingB)?.maxFrameBytes ?? WEBSOCKET_MAX_MESSAGE_BYTES;
  }

  /** True if the gateway announced this extension. */
  hasExtension(name: string): boolean {
    return this.#registration?.extensions.has(name) ?? false;
  }

  /** The contract, once known. */
  get contract(): Contract | undefined {
    return (this.#registration ?? this.#pendingB)?.contract;
  }

  /** Bytes queued in the socket, for backpressure. */
  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  /** True while frames can be sent. */
  get isOpen(): boolean {
    return this.#end === undefined && this.#ws.readyState === WebSocket.OPEN;
  }

  /** Sends one frame's text. Returns false if the link is not open (the caller answers for the message). */
  sendText(text: string): boolean {
    if (!this.isOpen) return false;
    this.#ws.send(text);
    return true;
  }

  /** Sends a frame object. */
  send(frame: Frame): boolean {
    return this.sendText(JSON.stringify(frame));
  }

  /** Closes the link (without waiting for the peer: a silent peer never answers a close). */
  close(code: number = CloseCode.Normal, reason = ""): void {
    this.#finish({ cause: "local", code, reason });
  }

  #finish(end: LinkEnd): void {
    if (this.#end !== undefined) return;
    this.#end = end;
    clearInterval(this.#timer);
    this.#timer = undefined;
    try {
      if (this.#ws.readyState === WebSocket.OPEN || this.#ws.readyState === WebSocket.CONNECTING) {
        this.#ws.close(
          end.cause === "local" ? end.code : CloseCode.Normal,
          end.reason.slice(0, 120),
        );
      }
    } catch {
      // Closing a socket that is already going away.
    }
    this.#client?.close();
    this.#client = undefined;
    this.#resolveEnded(end);
  }

  #register(): Promise<void> {
    const options = this.#options;
    const ws = this.#ws;
    const openTimeoutMs = options.openTimeoutMs ?? 10_000;
    const registerTimeoutMs = options.registerTimeoutMs ?? 60_000;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let errorText = "";
      let timer = setTimeout(
        () =>
          fail(
            new Error(
              `Gateway did not complete the WebSocket handshake within ${openTimeoutMs} ms`,
            ),
          ),
        openTimeoutMs,
      );
      const onAbort = () => fail(options.signal?.reason ?? new Error("Aborted"));
      const done = () => {
        settled = true;
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
      };
      const fail = (error: Error) => {
        if (settled) return;
        done();
        this.#finish({ cause: "local", code: CloseCode.Normal, reason: "registration failed" });
        reject(error);
      };
      const succeed = (registration: Registration) => {
        if (settled) return;
        done();
        this.#registration = registration;
        this.#options.onRegistered?.(this);
        this.#startHeartbeat();
        resolve();
      };
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener("abort", onAbort, { once: true });

      ws.onopen = () => {
        clearTimeout(timer);
        timer = setTimeout(
          () =>
            fail(new Error(`Gateway did not complete registration within ${registerTimeoutMs} ms`)),
          registerTimeoutMs,
        );
        this.#lastInboundAt = performance.now();
        this.send({
          type: "register",
          sessionId: options.clientSessionId,
          server: { ...options.server, protocol: "mcp" },
          ...(options.resume ? { resume: options.resume } : {}),
        });
      };
      ws.onerror = (event) => {
        errorText = (event as ErrorEvent).message ?? "";
      };
      ws.onclose = (event) => {
        if (!settled) {
          const status = statusFromError(errorText);
          if (status === 401 || status === 403) {
            return fail(
              new AuthRefusedError(
                `Gateway refused the token: HTTP ${status}${
                  status === 401
                    ? " (missing, invalid or expired token: check --token-file or REVERSE_PROXY_TOKEN)"
                    : " (the token lacks permission to register servers)"
                }`,
              ),
            );
          }
          if (event.code === CloseCode.Policy) {
            return fail(
              new AuthRefusedError(
                `Gateway refused the registration (close 1008${
                  event.reason ? `: ${event.reason}` : ""
                })`,
              ),
            );
          }
          if (event.code === CloseCode.Evicted) {
            return fail(
              new EvictedError(
                `Gateway evicted this session${event.reason ? `: ${event.reason}` : ""}`,
              ),
            );
          }
          const detail = errorText ||
            (event.code ? `closed with code ${event.code} ${event.reason}`.trim() : "closed");
          return fail(new Error(`Cannot reach the gateway at ${options.url.href}: ${detail}`));
        }
        this.#finish({ cause: "remote", code: event.code, reason: event.reason || errorText });
      };
      ws.onmessage = (event) => {
        // A socket we gave up on (heartbeat deadline) may still deliver what it had queued: those frames
        // belong to no link any more (with `resume` the gateway replays them on the next one).
        if (this.#end !== undefined) return;
        this.#lastInboundAt = performance.now();
        if (typeof event.data !== "string") {
          log.warn("Gateway sent a binary frame; ignored (the protocol uses text frames)");
          return;
        }
        options.onFrameIn?.(event.data.length);
        // A long frame's payload stays text: it goes to the server as is, not parsed and serialized again.
        const frame = parseFrame(event.data, { payloadAsText: true });
        if (frame instanceof Error) {
          log.warn("Gateway sent a malformed frame; ignored: {error}", { error: frame.message });
          return;
        }
        if (typeof frame.ack === "number") options.onAck?.(frame.ack);
        switch (frame.type) {
          case "ack":
            return;
          case "register_ack":
            return this.#onRegisterAck(frame, succeed, fail);
          case "register_complete":
            if (frame.status === "success") {
              if (this.#registration === undefined && this.#pendingB !== undefined) {
                succeed(this.#pendingB);
              }
            } else {
              fail(
                new AuthRefusedError(
                  `Gateway rejected the registration: ${
                    String(frame.message ?? "no reason given")
                  }`,
                ),
              );
            }
            return;
          case "heartbeat":
            return this.#onHeartbeat();
          case "error":
            log.warn("Gateway reported an error: {message}", {
              message: String(frame.message ?? ""),
            });
            return;
          default:
            options.onFrame(frame, this);
        }
      };
    });
  }

  #pendingB: Registration | undefined;

  #onRegisterAck(
    frame: Frame,
    succeed: (registration: Registration) => void,
    fail: (error: Error) => void,
  ): void {
    const sessionId = typeof frame.sessionId === "string" && frame.sessionId !== ""
      ? frame.sessionId
      : this.#options.clientSessionId;
    if (frame.status === "evicted" || frame.resumeError === "evicted") {
      // Our gateway: the session we asked to resume was removed on purpose (its 4001 close may not have
      // reached us). Coming back under a new session would undo the operator's decision.
      return fail(new EvictedError("The gateway evicted this session; not registering again"));
    }
    if (frame.status === "processing") {
      // Contract B: discovery runs through the tunnel now; registration completes with register_complete.
      this.#pendingB = {
        sessionId,
        contract: "B",
        extensions: new Set(),
        maxFrameBytes: CONTRACT_B_MAX_FRAME_BYTES,
      };

      return;
    }
    if (frame.status !== "success") {
      return fail(
        new Error(`Gateway answered the registration with status '${String(frame.status)}'`),
      );
    }
    const extensions = new Set(
      Array.isArray(frame.extensions) ? frame.extensions.filter((e) => typeof e === "string") : [],
    );
    const isC = extensions.size > 0;
    const maxFrameBytes =
      extensions.has(Extension.LargeFrames) && typeof frame.maxFrameBytes === "number"
        ? Math.min(frame.maxFrameBytes, WEBSOCKET_MAX_MESSAGE_BYTES)
        : WEBSOCKET_MAX_MESSAGE_BYTES;
    succeed({
      sessionId,
      contract: isC ? "C" : "A",
      extensions,
      maxFrameBytes,
      ...(typeof frame.mcpUrl === "string" ? { mcpUrl: frame.mcpUrl } : {}),
      ...(typeof frame.name === "string" ? { name: frame.name } : {}),
      ...(extensions.has(Extension.Resume) ? resumeFields(frame) : {}),
    });
  }

  /** The session id to put in frames: the gateway's once it has given one. */
  get sessionId(): string {
    return (this.#registration ?? this.#pendingB)?.sessionId ??
      this.#options.clientSessionId;
  }

  #onHeartbeat(): void {
    // A gateway heartbeat is a reply (A and B never send one unsolicited): never answer it.
    if (this.#heartbeatSentAt !== undefined) {
      this.#options.onHeartbeatRtt?.(performance.now() - this.#heartbeatSentAt);
      this.#heartbeatSentAt = undefined;
    }
  }

  #startHeartbeat(): void {
    const keepaliveMs = this.#options.keepaliveMs;
    const deadlineMs = this.#options.heartbeatDeadlineMs ?? 2 * keepaliveMs;
    // Check often enough that a dead link is noticed soon after its deadline, without a timer per message.
    const tickMs = Math.max(10, Math.min(keepaliveMs, deadlineMs) / 4);
    this.#lastHeartbeatAt = performance.now();
    if (this.#registration?.contract === "C") {
      // Tell our gateway the interval, so that it can detect a half-open link as fast as we do.
      this.send({
        type: "heartbeat",
        sessionId: this.sessionId,
        keepaliveMs,
        ...this.#options.heartbeatFields?.(),
      });
    }
    this.#timer = setInterval(() => {
      const now = performance.now();
      // Any frame from the gateway since the heartbeat counts as liveness.
      if (this.#heartbeatSentAt !== undefined && this.#lastInboundAt >= this.#heartbeatSentAt) {
        this.#heartbeatSentAt = undefined;
      }
      if (this.#heartbeatSentAt !== undefined && now - this.#heartbeatSentAt >= deadlineMs) {
        log.warn(
          "No frame from the gateway within {deadlineMs} ms of a heartbeat; the link is dead",
          {
            deadlineMs: Math.round(deadlineMs),
          },
        );
        this.#finish({ cause: "heartbeat", code: 0, reason: "heartbeat deadline passed" });
        return;
      }
      if (now - this.#lastHeartbeatAt >= keepaliveMs) {
        this.#lastHeartbeatAt = now;
        this.#heartbeatSentAt ??= now;
        this.send({
          type: "heartbeat",
          sessionId: this.sessionId,
          ...this.#options.heartbeatFields?.(),
        });
      }
    }, tickMs);
  }
}
