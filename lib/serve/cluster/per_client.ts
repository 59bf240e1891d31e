// Per-client servers across replicas, the parts no call carries: an MCP client session that ends on any
// replica stops its instance at connect (through the replica holding the tunnel, by `client_end`), and the
// holder's `register_ack` lists the sessions opened through every replica (read from Redis, kept fresh
// each beat), so that a resumed or new link does not make connect stop the instances of other replicas'
// clients.

import type { TunnelSession } from "../tunnel_session.ts";
import type { TunnelRegistry } from "../tunnel_registry.ts";
import type { Cluster } from "./cluster.ts";
import type { CallRoute } from "./cross_calls.ts";
import type { Envelope } from "./envelope.ts";
import { MAX_READ_OPEN, type SharedSessions } from "./shared_sessions.ts";

/** Per-client servers whose lists are kept here at most (each is one held here, or was lately). */
const MAX_LISTS = 4_096;

/** Options of {@link PerClientSessions}. */
export interface PerClientSessionsOptions {
  cluster: Cluster;
  shared: SharedSessions;
  /** The tunnel sessions held here. */
  registry: TunnelRegistry<TunnelSession>;
  /** Where a server another replica holds is, and whether it is per-client. */
  lookup: (owner: string, name: string) => Promise<CallRoute | undefined>;
}

/**
 * The open client sessions of one per-client server held here: as last read from Redis, and those whose
 * messages this replica passed on to their instances (a session Redis does not list, such as a legacy
 * SSE one, or one opened after the read), less those that ended.
 */
interface OpenList {
  ids: Set<string>;
  seen: Set<string>;
  /** When it was read (performance.now()); -Infinity before the first read. */
  at: number;
  /** Sessions that ended while it was being read (Redis may have answered before they left it). */
  dropped?: Set<string>;
}

/** The MCP client session a table of sessions ended. */
interface EndedSession {
  id: string;
  owner: string;
  serverName: string;
  /** A legacy SSE session: it lives on its one connection, so its end is final (no record in Redis). */
  legacy?: boolean;
}

function keyOf(owner: string, name: string): string {
  return `${owner}\u0000${name}`;
}

/**
 * Ends and lists the MCP client sessions of per-client servers across replicas.
 *
 * @example
 * ```ts ignore
 * const perClient = new PerClientSessions({ cluster, shared, registry, lookup });
 * perClient.ended(session, "deleted by the client", true); // its instance stops, wherever its tunnel is
 * perClient.list(owner, name, localIds); // for register_ack; undefined when not known lately
 * ```
 */
export class PerClientSessions {
  readonly #options: PerClientSessionsOptions;
  readonly #lists = new Map<string, OpenList>();

  constructor(options: PerClientSessionsOptions) {
    this.#options = options;
    const { cluster, registry } = options;
    cluster.on("client_end", (envelope) => this.#onEnd(envelope));
    cluster.events.addEventListener("beat", () => {
      for (const session of registry.list()) {
        if (session.perClient) void this.refresh(session.owner, session.name);
      }
    });
  }

  /**
   * What a `register_ack` of the server lists: the sessions open here (`local`) and those Redis lists for
   * every replica, read within two beats and a second; undefined when no such read is at hand (connect
   * then keeps every instance, each stopping at its own end or idle timeout), and a read is started.
   */
  list(owner: string, name: string, local: string[]): string[] | undefined {
    const list = this.#lists.get(keyOf(owner, name));
    if (
      list === undefined ||
      performance.now() - list.at > this.#options.cluster.liveness.recoveringMs
    ) {
      void this.refresh(owner, name);
      return undefined;
    }
    return [...new Set([...local, ...list.ids, ...list.seen])];
  }

  /** Reads the server's open client sessions from Redis (a failed read leaves the list as it was). */
  async refresh(owner: string, name: string): Promise<void> {
    const key = keyOf(owner, name);
    let list = this.#lists.get(key);
    if (list === undefined) {
      list = { ids: new Set(), seen: new Set(), at: -Infinity };
      this.#lists.set(key, list);
      if (this.#lists.size > MAX_LISTS) this.#lists.delete(this.#lists.keys().next().value!);
    }
    const dropped = new Set<string>();
    list.dropped = dropped;
    try {
      const ids = new Set(await this.#options.shared.openOf(owner, name));
      for (const id of dropped) ids.delete(id);
      list.ids = ids;
      list.at = performance.now();
    } catch {
      // Redis cannot say now: the list grows stale, and is then not sent.
    } finally {
      if (list.dropped === dropped) delete list.dropped;
    }
  }

  /** A message of client session `client` reached its instance of `session`'s server (held here). */
  seen(session: TunnelSession, client: string): void {
    const list = this.#lists.get(keyOf(session.owner, session.name));
    // Past the bound the list is one connect does not read (it keeps every instance).
    if (list !== undefined && list.seen.size < MAX_READ_OPEN) list.seen.add(client);
  }

  /** The server's tunnel session is not held here any more. */
  forgetServer(owner: string, name: string): void {
    this.#lists.delete(keyOf(owner, name));
  }

  /**
   * A table of sessions ended `session` (`byClient`: its client's DELETE; else idleness or room). A
   * per-client server's instance stops then, through whichever replica holds its tunnel; for idleness or
   * room only once Redis says the session ran out everywhere (the client may go on through another
   * replica, which renews it).
   */
  ended(session: EndedSession, reason: string, byClient: boolean): void {
    void this.#end(session, reason, byClient).catch(() => {});
  }

  async #end(session: EndedSession, reason: string, byClient: boolean): Promise<void> {
    const { owner, serverName, id } = session;
    const local = this.#options.registry.find(owner, serverName);
    const route = local === undefined ? await this.#options.lookup(owner, serverName) : undefined;
    if (local === undefined ? route?.perClient !== true : !local.perClient) return;
    const final = byClient || session.legacy === true;
    if (!final && await this.#options.shared.alive(id) !== false) return;
    if (local !== undefined) {
      this.#drop(owner, serverName, id);
      local.endClientSession(id, reason);
      return;
    }
    const { cluster } = this.#options;
    if (route === undefined || route.rid === cluster.replicaId) return;
    await cluster.inbox.send({
      kind: "client_end",
      target: route.rid,
      deadline: 0,
      generation: route.gen,
      sid: route.sid,
      id: "",
      client: id,
      payload: reason.slice(0, 256),
    });
  }

  /** `client_end`: a client session of a per-client server held here ended on another replica. */
  #onEnd(envelope: Envelope): void {
    const session = this.#options.registry.get(envelope.sid);
    const client = envelope.client;
    if (session === undefined || !session.perClient || !client) return;
    this.#drop(session.owner, session.name, client);
    session.endClientSession(client, envelope.payload || "ended on another replica");
  }

  #drop(owner: string, name: string, id: string): void {
    const list = this.#lists.get(keyOf(owner, name));
    if (list === undefined) return;
    list.ids.delete(id);
    list.seen.delete(id);
    if (list.dropped !== undefined && list.dropped.size < MAX_READ_OPEN) list.dropped.add(id);
  }
}
