// A per-client server's instances: one local server (a process, or an upstream MCP session) per MCP client
// session, started on that client's `initialize` with exactly its parameters, every message routed by
// client session, at most `max_instances` at once; an instance stops when its session ends, after an idle
// timeout, or on shutdown, and one that exits fails only its own calls (its next request starts another).

import { isObject } from "../util/json_object.ts";
import type { ClientInstanceInfo } from "../protocol/frames.ts";
import { MAX_CLIENT_SESSION_LENGTH } from "../protocol/registration.ts";
import {
  classify,
  ErrorCode,
  errorResponse,
  type JsonObject,
  type JsonRpcId,
  type JsonRpcResponse,
  type MessageFacts,
} from "../protocol/jsonrpc.ts";
import type { InFlight, LocalSession, ServerMessage } from "./local_session.ts";
import type { LocalSide } from "./local_side.ts";
import type { ServerMetrics } from "./metrics.ts";
import { logEnded, logRefused, logStarted, logStartFailed } from "./instance_log.ts";

/** Client sessions remembered without a live instance (for a transparent restart), at most. */
const MAX_DORMANT = 1024;

/** How an instance is started: for a client session, with its client's `initialize` parameters. */
export interface InstanceStart {
  clientSession: string;
  params: JsonObject;
  /** False for the first start, whose client sends its own `notifications/initialized`. */
  sendInitialized: boolean;
}

/** Options of {@link ClientInstances}. */
export interface ClientInstancesOptions {
  /** The server's name for messages and logs. */
  label: string;
  /** Starts and initializes one instance, whose messages (stamped with its session) go to `onMessage`. */
  start: (
    instance: InstanceStart,
    onMessage: (message: ServerMessage) => void | Promise<void>,
  ) => Promise<LocalSession>;
  /** Live instances at most (`max_instances`). */
  maxInstances: number;
  /** An instance without a message this long stops, in milliseconds; 0 = never. */
  idleTimeoutMs: number;
  /** Messages that may wait for an instance that is starting. */
  maxPending: number;
  /** What connect itself answers for an instance (its `initialize`, errors), as server messages. */
  onMessage: (message: ServerMessage) => void | Promise<void>;
  /** Calls of an instance that ended before answering: each gets an error saying `why`. */
  onLost: (calls: InFlight[], why: string) => void;
  /** The set of live instances changed (the gateway's sessions API shows it). */
  onChange: () => void;
  metrics?: ServerMetrics | undefined;
}

interface Pending {
  payload: JsonObject;
  generation: number;
}

/** One MCP client session and its instance, if one runs. */
interface Client {
  id: string;
  /** Its client's `initialize` parameters: every instance of the session starts with them. */
  params: JsonObject;
  session: LocalSession | undefined;
  starting: Promise<void> | undefined;
  /** The client's `initialize` waiting for the first instance. */
  initializing: InFlight | undefined;
  /** What arrived while the instance starts. */
  pending: Pending[];
  startedAt: number;
  lastActive: number;
  /** Why connect stops its instance (undefined: an exit of its own). */
  stopping: string | undefined;
  idleTimer: ReturnType<typeof setTimeout> | undefined;
}

/** The instances of one per-client server, by MCP client session. */
export class ClientInstances implements LocalSide {
  #options: ClientInstancesOptions;
  #clients = new Map<string, Client>();
  /** Forgotten sessions whose instance still starts or stops: it holds its slot until its process is gone. */
  #leaving = new Set<Client>();
  #closed = false;

  constructor(options: ClientInstancesOptions) {
    this.#options = options;
  }

  /** Instances running or starting. */
  get live(): number {
    let live = this.#leaving.size;
    for (const client of this.#clients.values()) if (this.#hasInstance(client)) live++;
    return live;
  }

  get inFlightCount(): number {
    let count = 0;
    for (const client of this.#clients.values()) {
      count += (client.session?.inFlightCount ?? 0) + (client.initializing ? 1 : 0) +
        client.pending.filter((p) => classify(p.payload) === "request").length;
    }
    return count;
  }

  instances(): ClientInstanceInfo[] {
    return [...this.#clients.values()].flatMap(({ id, session, startedAt }) => {
      const pid = session?.transport.pid;
      if (session === undefined) return [];
      return [{ clientSession: id, ...(pid === undefined ? {} : { pid }), startedAt }];
    });
  }

  takeInFlight(): InFlight[] {
    const taken: InFlight[] = [];
    for (const client of this.#clients.values()) {
      if (client.initializing !== undefined) taken.push(client.initializing);
      client.initializing = undefined;
      for (const { payload, generation } of client.pending) {
        if (classify(payload) === "request") taken.push(inFlightOf(payload, generation, client.id));
      }
      client.pending = [];
      taken.push(...client.session?.takeInFlight() ?? []);
    }
    return taken;
  }

  forwardText(
    text: string,
    facts: MessageFacts | "batch",
    generation: number,
    clientSession?: string,
  ): boolean | JsonRpcResponse {
    const client = clientSession === undefined ? undefined : this.#clients.get(clientSession);
    const session = client?.session;
    if (client === undefined || session === undefined || client.stopping !== undefined) {
      return false;
    }
    const forwarded = session.forwardText(text, facts, generation);
    if (forwarded !== false) this.#touch(client);
    return forwarded;
  }

  fromTunnel(
    payload: JsonObject,
    generation: number,
    clientSession?: string,
  ): JsonRpcResponse | undefined {
    const kind = classify(payload);
    const id = kind === "request" ? payload.id as JsonRpcId : undefined;
    if (clientSession === undefined || clientSession.length > MAX_CLIENT_SESSION_LENGTH) {
      return id === undefined ? undefined : errorResponse(
        id,
        ErrorCode.InvalidRequest,
        `Server '${this.#options.label}' runs an instance per MCP client (isolation per-client): a message without a client session reaches none`,
      );
    }
    if (id !== undefined && payload.method === "initialize") {
      return this.#initialize(payload, generation, clientSession);
    }
    const client = this.#clients.get(clientSession);
    if (client === undefined) {
      return id === undefined ? undefined : errorResponse(
        id,
        ErrorCode.ServerUnavailable,
        `This MCP client session has no instance of server '${this.#options.label}' (it ended, or connect restarted): initialize again`,
      );
    }
    this.#touch(client);
    const session = client.session;
    if (session !== undefined && client.stopping === undefined) {
      return session.fromTunnel(payload, generation);
    }
    // An answer to a request of an instance that is gone: nobody asks any more.
    if (kind === "response") return undefined;
    // An instance still stopping (idle) is started again once it has ended.
    if (session === undefined && client.starting === undefined) {
      const refused = this.#start(client, { initializing: undefined });
      if (refused !== undefined) return id === undefined ? undefined : { ...refused, id };
    }
    if (client.pending.length >= this.#options.maxPending) {
      return id === undefined ? undefined : errorResponse(
        id,
        ErrorCode.ServerUnavailable,
        `Too many messages wait for the instance of server '${this.#options.label}' that is starting (limit --max-server-queue-messages ${this.#options.maxPending})`,
      );
    }
    client.pending.push({ payload, generation });
    return undefined;
  }

  reply(response: JsonRpcResponse, clientSession?: string): void {
    const client = clientSession === undefined ? undefined : this.#clients.get(clientSession);
    if (client?.session === undefined || client.stopping !== undefined) return;
    this.#touch(client);
    client.session.reply(response);
  }

  endClient(clientSession: string, reason: string): void {
    const client = this.#clients.get(clientSession);
    if (client !== undefined) void this.#forget(client, `its MCP client session ended (${reason})`);
  }

  retain(open: readonly string[]): void {
    const kept = new Set(open);
    for (const client of [...this.#clients.values()]) {
      if (!kept.has(client.id)) {
        void this.#forget(client, "its MCP client session is no longer open at the gateway");
      }
    }
  }

  /** Stops every instance (shutdown); resolves when all are stopped, their process groups reaped. */
  async stopAll(): Promise<void> {
    this.#closed = true;
    await Promise.all(
      [...this.#clients.values()].map((client) => this.#forget(client, "shutdown")),
    );
  }

  /** Kills every instance at once (a second signal). */
  killAll(): void {
    for (const client of this.#clients.values()) client.session?.transport.kill();
  }

  #hasInstance(client: Client): boolean {
    return client.session !== undefined || client.starting !== undefined;
  }

  #initialize(
    payload: JsonObject,
    generation: number,
    clientSession: string,
  ): JsonRpcResponse | undefined {
    const request = inFlightOf(payload, generation, clientSession);
    const previous = this.#clients.get(clientSession);
    if (previous !== undefined) void this.#forget(previous, "its client initialized again");
    const client: Client = {
      id: clientSession,
      params: isObject(payload.params) ? payload.params : {},
      session: undefined,
      starting: undefined,
      initializing: undefined,
      pending: [],
      startedAt: 0,
      lastActive: Date.now(),
      stopping: undefined,
      idleTimer: undefined,
    };
    const refused = this.#start(client, { initializing: request });
    if (refused !== undefined) return { ...refused, id: request.id };
    this.#clients.set(clientSession, client);
    return undefined;
  }

  /** Starts `client`'s instance, unless the cap is reached: then the error to answer with. */
  #start(client: Client, how: { initializing: InFlight | undefined }): JsonRpcResponse | undefined {
    const { maxInstances, label, metrics } = this.#options;
    if (this.#closed) {
      return errorResponse(0, ErrorCode.ServerUnavailable, "mcp-rproxy is shutting down");
    }
    if (this.live >= maxInstances) {
      metrics?.instanceRefusals.inc();
      logRefused({ server: label, clientSession: client.id }, maxInstances);
      return errorResponse(
        0,
        ErrorCode.ServerUnavailable,
        `Server '${label}' runs an instance per MCP client and ${maxInstances} are running, its limit (max_instances ${maxInstances}); retry once another client has ended its session`,
      );
    }
    if (how.initializing !== undefined) client.initializing = how.initializing;
    client.stopping = undefined;
    metrics?.instanceStarts.inc();
    const onMessage = (message: ServerMessage) => {
      client.lastActive = Date.now();
      return this.#options.onMessage(message);
    };
    client.starting = this.#options.start({
      clientSession: client.id,
      params: client.params,
      sendInitialized: how.initializing === undefined,
    }, onMessage).then(
      (session) => this.#started(client, session),
      (error: unknown) => this.#failed(client, error),
    );
    return undefined;
  }

  #started(client: Client, session: LocalSession): Promise<void> | void {
    client.starting = undefined;
    if (this.#clients.get(client.id) !== client || client.stopping !== undefined) {
      // Its session ended while it started: whoever waits for the start waits for the stop too.
      this.#options.metrics?.instanceStops.inc("session_end");
      return session.stop().then(() => session.transport.ended).then(() => {});
    }
    client.session = session;
    client.startedAt = Date.now();
    this.#options.metrics?.instances.inc();
    const pid = session.transport.pid;
    logStarted({ server: this.#options.label, clientSession: client.id }, pid);
    void session.transport.ended.then((why) => this.#ended(client, session, why));
    this.#touch(client);
    const init = client.initializing;
    client.initializing = undefined;
    if (init !== undefined) {
      this.#answer(init, { jsonrpc: "2.0", id: init.id, result: session.initializeResult });
    }
    const pending = client.pending;
    client.pending = [];
    for (const { payload, generation } of pending) {
      const immediate = session.fromTunnel(payload, generation);
      if (immediate !== undefined) {
        this.#answer(inFlightOf(payload, generation, client.id), immediate);
      }
    }
    this.#options.onChange();
  }

  #failed(client: Client, error: unknown): void {
    client.starting = undefined;
    this.#options.metrics?.error("server_start");
    const message =
      `The instance of server '${this.#options.label}' for this client could not start: ${
        error instanceof Error ? error.message : String(error)
      }`;
    logStartFailed({ server: this.#options.label, clientSession: client.id }, message);
    // A session whose first instance never started has nothing to come back to.
    if (client.session === undefined && client.startedAt === 0) this.#drop(client);
    this.#failWaiting(client, message);
  }

  /** Answers the `initialize` and the requests that waited for `client`'s instance with `why`. */
  #failWaiting(client: Client, why: string): void {
    const calls = client.initializing === undefined ? [] : [client.initializing];
    client.initializing = undefined;
    for (const { payload, generation } of client.pending) {
      if (classify(payload) === "request") calls.push(inFlightOf(payload, generation, client.id));
    }
    client.pending = [];
    if (calls.length > 0) this.#options.onLost(calls, why);
  }

  #ended(client: Client, session: LocalSession, why: string): void {
    if (client.session !== session) return;
    client.session = undefined;
    clearTimeout(client.idleTimer);
    client.idleTimer = undefined;
    const { metrics, label } = this.#options;
    metrics?.instances.dec();
    const reason = client.stopping;
    metrics?.instanceStops.inc(reason === undefined ? "exited" : stopKind(reason));
    if (reason === undefined) metrics?.error("server_exit");
    logEnded({ server: label, clientSession: client.id }, why, reason);
    const lost = session.takeInFlight();
    if (lost.length > 0) {
      this.#options.onLost(
        lost,
        `The instance of server '${label}' for this client ${
          reason === undefined ? `exited (${why})` : "stopped"
        } before answering`,
      );
    }
    this.#trimDormant();
    this.#options.onChange();
    // Messages came while an idle instance stopped: its next one starts now.
    if (this.#clients.get(client.id) === client && client.pending.length > 0) {
      const refused = this.#start(client, { initializing: undefined });
      if (refused !== undefined) this.#failWaiting(client, refused.error!.message);
    }
  }

  /** Stops `client`'s instance for `reason` and forgets the session; resolves once it is stopped. */
  async #forget(client: Client, reason: string): Promise<void> {
    this.#drop(client);
    client.stopping = reason;
    this.#failWaiting(client, `The instance was stopped: ${reason}`);
    const session = client.session;
    const gone = session === undefined
      ? client.starting
      : session.stop().then(() => session.transport.ended);
    if (gone === undefined) return;
    this.#leaving.add(client);
    await gone.finally(() => this.#leaving.delete(client));
  }

  #drop(client: Client): void {
    clearTimeout(client.idleTimer);
    client.idleTimer = undefined;
    if (this.#clients.get(client.id) === client) this.#clients.delete(client.id);
  }

  /** Forgets the least recently active sessions without an instance past {@link MAX_DORMANT}. */
  #trimDormant(): void {
    const dormant = [...this.#clients.values()].filter((c) => !this.#hasInstance(c));
    if (dormant.length <= MAX_DORMANT) return;
    dormant.sort((a, b) => a.lastActive - b.lastActive);
    for (const client of dormant.slice(0, dormant.length - MAX_DORMANT)) this.#drop(client);
  }

  /** Records activity; arms the idle timer (one per instance, re-armed only when it fires). */
  #touch(client: Client): void {
    client.lastActive = Date.now();
    const idleMs = this.#options.idleTimeoutMs;
    if (idleMs <= 0 || client.idleTimer !== undefined || client.session === undefined) return;
    const check = () => {
      client.idleTimer = undefined;
      const session = client.session;
      if (session === undefined) return;
      const quietMs = Date.now() - client.lastActive;
      if (quietMs < idleMs || session.inFlightCount > 0) {
        client.idleTimer = setTimeout(check, Math.max(idleMs - quietMs, 1000));
        return;
      }
      client.stopping = `idle for ${idleMs / 1000} s`;
      void session.stop();
    };
    client.idleTimer = setTimeout(check, idleMs);
  }

  /** An answer of connect's own for `call`, routed like the server's. */
  #answer(call: InFlight, response: JsonRpcResponse): void {
    void this.#options.onMessage({
      kind: "response",
      id: call.id,
      text: JSON.stringify({ ...response, id: call.id }),
      request: call,
      clientSession: call.clientSession!,
    });
  }
}

function inFlightOf(payload: JsonObject, generation: number, clientSession: string): InFlight {
  return {
    id: payload.id as JsonRpcId,
    method: String(payload.method),
    generation,
    clientSession,
  };
}

/** The `reason` label of a stop. */
function stopKind(reason: string): string {
  if (reason.startsWith("idle")) return "idle";
  if (reason === "shutdown") return "shutdown";
  return "session_end";
}
