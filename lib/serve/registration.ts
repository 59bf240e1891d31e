// The gateway's answer to `register`: resume the session a client asks for, or register its server afresh
// under a free name within the owner's limits, or refuse. Also remembers how sessions ended, so that a
// late resume learns why it cannot be.

import { logger } from "../util/log.ts";
import { CloseCode, encodeClose, encodeError, Extension } from "../protocol/frames.ts";
import { encodeRegisterAck, type RegisterFrame } from "../protocol/registration.ts";
import type { JsonRpcNotification, JsonRpcRequest, JsonRpcResponse } from "../protocol/jsonrpc.ts";
import type { Payload } from "../protocol/payload.ts";
import type { MemoryBudget } from "./memory_budget.ts";
import type { ServeMetrics } from "./metrics.ts";
import { EndedSessions, hashToken, type ResumeError, sameSecret } from "./resume_credentials.ts";
import type { EndedReason, TunnelRecord } from "./state/records.ts";
import type { RestoredState, ServeState } from "./state/serve_state.ts";
import { endedRecord, endedSession, restoredTunnel, tunnelRecord } from "./state/tunnel_records.ts";
import type { CallLimits } from "./call_contract.ts";
import type { LinkLoss } from "./link_contract.ts";
import type { TunnelLink } from "./tunnel_link.ts";
import { normalizeServerName, type TunnelRegistry } from "./tunnel_registry.ts";
import type { ResumeSettings, SessionEnd, TunnelSessionOptions } from "./session_contract.ts";
import { TunnelSession } from "./tunnel_session.ts";

const log = logger("serve", "registration");

/** Extensions of contract C announced in `register_ack` (resume is added when it is on). */
export const GATEWAY_EXTENSIONS: readonly string[] = [
  Extension.ServerRequests,
  Extension.LargeFrames,
  Extension.EvictClose,
  Extension.Channels,
  Extension.ClientSessions,
];

/**
 * Where a session's server messages go: the MCP endpoint. `clientSession` is set for the messages of a
 * per-client instance.
 */
export interface ServerMessageRouter {
  serverNotification(
    session: TunnelSession,
    message: JsonRpcNotification,
    clientSession?: string,
  ): void;
  serverRequest(
    session: TunnelSession,
    request: JsonRpcRequest,
    signal: AbortSignal,
    clientSession?: string,
  ): Promise<JsonRpcResponse>;
  /** The MCP client sessions open now for (owner, server name); undefined when not known now. */
  clientSessionsOf?(owner: string, name: string): string[] | undefined;
  /** Replicas: a message for a call another replica sent (see `ServerMessageSink.foreign`). */
  foreign?(session: TunnelSession, type: string, payload: Payload): boolean;
}

/** Options of {@link Registrar}. */
export interface RegistrarOptions {
  /** Live sessions, detached ones included, by id and by (owner, name). */
  registry: TunnelRegistry<TunnelSession>;
  /** Live sessions one owner may hold, counting its links that have not registered yet. */
  maxSessionsPerOwner: number;
  /** Links of `owner` accepted and not registered yet (each holds a place under the limit). */
  pendingLinks?: (owner: string) => number;
  limits: CallLimits & { maxFrameBytes: number };
  /** Turns the `resume` extension on. */
  resume?: ResumeSettings;
  router: ServerMessageRouter;
  /** Version of this gateway. */
  version: string;
  now?: () => number;
  metrics?: ServeMetrics;
  /** Where replay buffers are charged, against each owner's memory share. */
  budget?: MemoryBudget;
  /** Where sessions are saved, so that a restarted gateway lets their clients resume them. */
  state?: ServeState;
  /**
   * Replicas: `state` is shared with the other replicas. A resume for a session not held here is looked up
   * in it; a session superseded by another replica's leaves its record to the new holder.
   */
  sharedState?: boolean;
  /** Replicas: claims a new session in Redis; its `register_ack` waits for it, so that all can find it. */
  claim?: (session: TunnelSession) => Promise<void>;
}

/** The close reason of {@link CloseCode.TooManySessions}: the error frame before it names owner and limit. */
export const TOO_MANY_SESSIONS_REASON = "too many sessions for this owner";

/** The error frame's text when an owner's sessions and waiting links fill its limit. */
export function tooManySessions(owner: string, limit: number): string {
  return `Too many sessions for owner ${owner} (limit ${limit}; links not registered yet count too); end one first, or retry later`;
}

/** Session ends that say why a resume cannot be, remembered for a late resume. */
const REMEMBERED: ReadonlySet<SessionEnd["kind"]> = new Set([
  "evicted",
  "expired",
  "overflowed",
  "bad-ack",
  "superseded",
]);

/** Registers servers and resumes sessions; owns the registry of live sessions. */
export class Registrar {
  readonly registry: TunnelRegistry<TunnelSession>;
  #options: RegistrarOptions;
  #ended: EndedSessions;
  #extensions: readonly string[];

  constructor(options: RegistrarOptions) {
    this.#options = options;
    this.registry = options.registry;
    const { resume, now = Date.now } = options;
    this.#ended = new EndedSessions({ keepMs: Math.max(resume?.windowMs ?? 0, 60_000), now });
    this.#extensions = resume === undefined
      ? GATEWAY_EXTENSIONS
      : [...GATEWAY_EXTENSIONS, Extension.Resume];
  }

  /** Forgets ended sessions older than their keep time. */
  prune(): void {
    this.#ended.prune();
    this.#options.state?.refresh();
  }

  /** Answers a `register` that arrived on `link`. */
  register(link: TunnelLink, frame: RegisterFrame): void {
    let wanted: string;
    try {
      wanted = normalizeServerName(frame.server.name);
    } catch (error) {
      link.refuse((error as Error).message);
      return;
    }
    const channel = link.channels ? frame.channel : undefined;
    const request = this.#options.resume === undefined ? undefined : frame.resume;
    if (request === undefined) return this.#admit(link, frame, wanted, undefined);
    const target = this.registry.get(request.sessionId);
    if (target === undefined && this.#options.sharedState === true) {
      // Another replica may have held it: its record in the shared store says (not waited on by others).
      // A store that cannot be read (Redis down) leaves it unknown: the client registers afresh.
      void this.#resumeShared(link, frame, wanted).catch(() => {
        if (!link.closed) this.#resumed(link, frame, wanted, "unknown-session");
      });
      return;
    }
    const outcome = target === undefined
      ? this.#ended.why(request.sessionId, link.owner, request.token)
      : target.adopt(link, request, channel);
    this.#resumed(link, frame, wanted, outcome);
  }

  /**
   * Replicas: a resume for a session this replica does not hold. Its record in the shared store (the
   * holder's, alive or dead) restores it here, detached, and the link adopts it; the claim that follows
   * takes a newer generation, and the old holder, if alive, closes its link with 4002.
   */
  async #resumeShared(link: TunnelLink, frame: RegisterFrame, wanted: string): Promise<void> {
    const request = frame.resume!;
    const found = await this.#options.state!.findTunnel(request.sessionId);
    if (link.closed) return;
    const channel = link.channels ? frame.channel : undefined;
    const here = this.registry.get(request.sessionId); // resumed here meanwhile
    if (here !== undefined) {
      return this.#resumed(link, frame, wanted, here.adopt(link, request, channel));
    }
    const record = found.tunnel;
    if (
      record !== undefined && record.owner === link.owner &&
      sameSecret(record.tokenHash, hashToken(request.token)) &&
      this.registry.find(record.owner, record.name) === undefined
    ) {
      const session = this.#restoreOne(record);
      const outcome = session.adopt(link, request, channel);
      if (outcome === "resumed") {
        void this.#options.claim?.(session).catch(() => {});
        log.info("Session {session} of {owner} ({name}) resumed here from the shared state store", {
          event: "session_resumed_elsewhere",
          session: session.id,
          owner: session.owner,
          name: session.name,
        });
      }
      return this.#resumed(link, frame, wanted, outcome);
    }
    if (found.ended !== undefined) {
      this.#ended.add(endedSession(found.ended), found.ended.reason, found.ended.endedAt);
    }
    this.#resumed(
      link,
      frame,
      wanted,
      this.#ended.why(request.sessionId, link.owner, request.token),
    );
  }

  /** What a resume request led to: nothing more, the evicted answer, or a fresh registration. */
  #resumed(
    link: TunnelLink,
    frame: RegisterFrame,
    wanted: string,
    outcome: "resumed" | ResumeError,
  ): void {
    if (outcome === "resumed") return;
    const request = frame.resume!;
    if (outcome === "evicted") {
      // An evicted session's client may not register again under its credential: say so twice (the
      // answer and the close code), so that it exits even if one of them is lost.
      link.sendText(encodeRegisterAck({
        sessionId: request.sessionId,
        status: "evicted",
        resumed: false,
        resumeError: outcome,
        extensions: new Set(),
      }));
      link.close(CloseCode.Evicted, "session was evicted");
      return;
    }
    log.warning(
      "Could not resume session {resumeSession} for {owner} ({resumeError}); registering afresh",
      {
        event: "resume_refused",
        resumeSession: request.sessionId,
        owner: link.owner,
        resumeError: outcome,
      },
    );
    this.#admit(link, frame, wanted, outcome);
  }

  /** Registers afresh within the owner's limit. */
  #admit(
    link: TunnelLink,
    frame: RegisterFrame,
    wanted: string,
    resumeError: ResumeError | undefined,
  ): void {
    const { metrics, maxSessionsPerOwner, pendingLinks } = this.#options;
    // Other links still waiting to register hold their places; this one's place becomes the session.
    const waiting = (pendingLinks?.(link.owner) ?? 0) - (link.registered ? 0 : 1);
    if (this.registry.count(link.owner) + Math.max(0, waiting) >= maxSessionsPerOwner) {
      metrics?.linksRefused.inc("registration");
      const message = tooManySessions(link.owner, maxSessionsPerOwner);
      if (link.channels && link.registered && frame.channel !== undefined) {
        // The link carries other servers: refuse this one alone, with a close frame for its channel.
        link.sendText(encodeError({ sessionId: "", message }));
        link.sendText(encodeClose({
          sessionId: "",
          channel: frame.channel,
          code: CloseCode.TooManySessions,
          reason: TOO_MANY_SESSIONS_REASON,
        }));
        return;
      }
      link.refuse(message, { code: CloseCode.TooManySessions, reason: TOO_MANY_SESSIONS_REASON });
      return;
    }
    this.#create(link, frame, wanted, resumeError);
  }

  #create(
    link: TunnelLink,
    frame: RegisterFrame,
    wanted: string,
    resumeError: ResumeError | undefined,
  ): void {
    const name = this.registry.freeName(link.owner, wanted);
    const channel = link.channels ? frame.channel : undefined;
    const session = this.#newSession(link, {
      owner: link.owner,
      name,
      requestedName: frame.server.name,
      description: frame.server.description,
      protocol: frame.server.protocol,
      mcpUrl: `${link.baseUrl}/servers/${encodeURIComponent(name)}/mcp`,
      ...(channel === undefined ? {} : { channel }),
      // Per-client only when the client asked for the extension it needs to carry client sessions.
      ...(frame.server.isolation === "per-client" &&
          frame.extensions.has(Extension.ClientSessions)
        ? { isolation: "per-client" as const }
        : {}),
    });
    this.registry.add(session);
    this.#options.metrics?.linksAccepted.inc();
    const acknowledge = () => {
      if (!session.closed) session.acknowledge(resumeError ? { resumed: false, resumeError } : {});
    };
    const claimed = this.#options.claim?.(session);
    if (claimed === undefined) acknowledge();
    else void claimed.then(acknowledge, acknowledge);
    this.#save(session);
    log.info("Session {session} of {owner} registered {name} at {url}", {
      event: "session_registered",
      session: session.id,
      owner: session.owner,
      name,
      url: session.mcpUrl,
      ...(name !== wanted ? { requested: wanted } : {}),
      ...(session.perClient ? { isolation: "per-client" } : {}),
    });
  }

  /** A new session on `link`, or restored from its record without one. */
  #newSession(
    link: TunnelLink | undefined,
    what: Pick<
      TunnelSessionOptions,
      | "owner"
      | "name"
      | "requestedName"
      | "description"
      | "protocol"
      | "mcpUrl"
      | "channel"
      | "isolation"
    >,
    restored?: TunnelRecord,
  ): TunnelSession {
    const { limits, resume, version, now, metrics, router, budget } = this.#options;
    const session: TunnelSession = new TunnelSession(link, {
      ...what,
      ...(what.isolation === "per-client"
        ? { clientSessions: () => router.clientSessionsOf?.(what.owner, what.name) }
        : {}),
      limits,
      extensions: this.#extensions,
      version,
      ...(resume === undefined ? {} : { resume }),
      ...(restored === undefined ? {} : { restored: restoredTunnel(restored) }),
      ...(now === undefined ? {} : { now }),
      ...(metrics === undefined ? {} : { metrics }),
      ...(budget === undefined ? {} : { budget }),
      host: {
        serverNotification: (message, clientSession) =>
          router.serverNotification(session, message, clientSession),
        serverRequest: (request, signal, clientSession) =>
          router.serverRequest(session, request, signal, clientSession),
        foreign: (type, payload) => router.foreign?.(session, type, payload) ?? false,
        sessionClosed: (closed, end) => this.#closed(closed, end),
        sessionDetached: (_detached, loss) => this.#detached(loss),
        sessionChanged: (changed) => this.#save(changed),
      },
    });
    return session;
  }

  #detached(loss: LinkLoss): void {
    this.#options.metrics?.errors.inc(loss.dead ? "heartbeat_timeout" : "link_lost");
  }

  /** Saves what a restarted gateway needs to let the session's client resume it. */
  #save(session: TunnelSession): void {
    const record = this.#options.state === undefined ? undefined : tunnelRecord(session);
    if (record !== undefined && !session.closed) this.#options.state!.saveTunnel(record);
  }

  /** Forgets a closed session in the store, leaving the mark of how it ended when a resume must learn it. */
  #forget(session: TunnelSession, end: SessionEnd): void {
    const state = this.#options.state;
    // A session released at shutdown stays in the store: the next gateway restores it. One superseded
    // by another replica lives on there, which keeps its record up to date.
    if (state === undefined || end.kind === "shutdown") return;
    if (end.kind === "superseded" && this.#options.sharedState === true) {
      return state.forgetTunnel(session.id);
    }
    const mark = REMEMBERED.has(end.kind)
      ? endedRecord(session, end.kind as EndedReason, (this.#options.now ?? Date.now)())
      : undefined;
    if (mark === undefined) state.dropTunnel(session.id);
    else state.endTunnel(mark);
  }

  /**
   * Restores what a gateway before this one saved: sessions wait detached for their clients to resume
   * them (their window starts now), ended sessions are remembered for the rest of their keep time.
   * Before the gateway listens. Returns how many sessions were restored.
   */
  restore(saved: RestoredState): number {
    for (const mark of [...saved.ended].sort((a, b) => a.endedAt - b.endedAt)) {
      this.#ended.add(endedSession(mark), mark.reason, mark.endedAt);
    }
    let restored = 0;
    for (const record of saved.tunnels) {
      const taken = this.registry.find(record.owner, record.name) !== undefined;
      if (this.#options.resume === undefined || taken || this.registry.get(record.id)) {
        // Resumption is off now (nothing could resume it), or a record of the same name came first.
        this.#options.state?.dropTunnel(record.id);
        continue;
      }
      this.#restoreOne(record);
      restored++;
    }
    return restored;
  }

  /** A session restored from its record, detached (its window starts now), in the registry. */
  #restoreOne(record: TunnelRecord): TunnelSession {
    const { owner, name, requestedName, description, protocol, mcpUrl, channel, isolation } =
      record;
    const session = this.#newSession(
      undefined,
      {
        owner,
        name,
        requestedName,
        description,
        protocol,
        mcpUrl,
        channel,
        ...(isolation === undefined ? {} : { isolation }),
      },
      record,
    );
    this.registry.add(session);
    log.info(
      "Session {session} of {owner} ({name}) restored: waiting for its client to resume it",
      {
        event: "session_restored",
        session: session.id,
        owner: session.owner,
        name: session.name,
      },
    );
    return session;
  }

  /**
   * The gateway stops with its state kept: every session is saved as it stands and released (its calls
   * fail at once, its link is closed next without a word to it), so that its client resumes it on the
   * next gateway.
   */
  releaseAll(reason: string): void {
    for (const session of this.registry.list()) {
      this.#save(session);
      session.release(reason);
    }
  }

  #closed(session: TunnelSession, end: SessionEnd): void {
    this.registry.remove(session);
    this.#forget(session, end);
    const metrics = this.#options.metrics;
    if (REMEMBERED.has(end.kind)) {
      this.#ended.add(session, end.kind as ResumeError);
      if (end.kind !== "evicted" && end.kind !== "superseded") {
        metrics?.errors.inc(`resume_${end.kind}`);
      }
    } else if (end.kind === "dead-link") metrics?.errors.inc("heartbeat_timeout");
    else if (end.kind === "link-lost") metrics?.errors.inc("link_lost");
  }
}
