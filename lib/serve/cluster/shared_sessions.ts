// MCP client sessions shared by the replicas: `c:<id>` holds what any replica needs to take a request of
// that session (owner, server, what the client declared), with the session TTL renewed as the session is
// used; so no sticky sessions are needed at the load balancer. `cs:<owner>` ranks an owner's sessions by
// when they were last written, so that Redis holds at most `--max-mcp-sessions-per-owner` of them for the
// whole cluster: each replica's own cap would let an owner keep that many per replica, and sessions a
// replica forgot for room stayed in Redis for their whole TTL. A per-client server's sessions are also in
// `p:<owner>:<name>` (a sorted set scored by when each runs out), so that whichever replica holds its
// tunnel can list them in `register_ack` (connect stops the instances of sessions not listed).

import { isObject, type JsonObject } from "../../util/json_object.ts";
import { SessionsUnavailableError } from "../shared_session_hooks.ts";
import { LIVENESS_DEFAULTS } from "./liveness.ts";
import type { RedisClient } from "./redis_client.ts";
import { MAX_LISTED_CLIENT_SESSIONS } from "../../protocol/registration.ts";

/** The key of MCP client session `id`. */
export function clientKey(id: string): string {
  return `c:${id}`;
}

/** The key ranking `owner`'s MCP client sessions by when their records were last written. */
export function ownerSessionsKey(owner: string): string {
  return `cs:${owner}`;
}

/**
 * KEYS: the record, the owner's ranking; ARGV: record, ttl ms, id, limit. Writes the record, ranks it
 * newest (Redis's clock), drops what expired, and past the limit forgets the owner's least recently
 * written sessions: record, rank and place in their per-client server's list. Returns how many it forgot.
 */
const PUBLISH = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[2]))
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, over - 1)) do
    local text = redis.call('GET', 'c:' .. id)
    if text then
      local ok, record = pcall(cjson.decode, text)
      if ok and type(record) == 'table' and record.perClient == true then
        redis.call('ZREM', 'p:' .. record.owner .. ':' .. record.serverName, id)
      end
    end
    redis.call('DEL', 'c:' .. id)
    redis.call('ZREM', KEYS[2], id)
  end
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return math.max(over, 0)`;

/** The key of the open MCP client sessions of a per-client server. */
export function perClientKey(owner: string, serverName: string): string {
  return `p:${owner}:${serverName}`;
}

/**
 * Client sessions a per-client server's list is read up to: one past what a `register_ack` may list, so
 * that a longer list reaches connect as one it does not read (it then keeps every instance).
 */
export const MAX_READ_OPEN = MAX_LISTED_CLIENT_SESSIONS + 1;

/** What another replica needs to go on with an MCP client session. */
export interface SharedClientSession {
  id: string;
  owner: string;
  serverName: string;
  capabilities: JsonObject;
  protocolVersion: string;
  /** Its server is per-client: the session is listed in `p:<owner>:<name>` too. */
  perClient?: boolean | undefined;
}

/** Options of {@link SharedSessions}. */
export interface SharedSessionsOptions {
  commands: RedisClient;
  /** An MCP client session unused this long is forgotten (`--mcp-session-ttl`), in ms. */
  ttlMs: number;
  /**
   * Sessions one owner keeps in Redis, for all replicas together (`--max-mcp-sessions-per-owner`); past
   * it the least recently used are forgotten. Default 1024.
   */
  maxPerOwner?: number;
  /** Sessions of `owner` were forgotten for room (logged by the caller). */
  onEvicted?: (owner: string, count: number) => void;
  /** Sessions remembered here (to renew and to publish again); past it the least recent are forgotten. */
  maxTracked?: number;
  /**
   * For this long after Redis came back, a missing record may be one an empty Redis lost and a replica
   * has not published again yet (each does at its next beat), in ms. Default: two default beats and a
   * second (`Liveness.recoveringMs` for the beat in use).
   */
  recoveringMs?: number;
}

/** Reads a record; undefined when it is not one. */
function readRecord(text: string | null): SharedClientSession | undefined {
  if (text === null) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(value)) return undefined;
  const { id, owner, serverName, capabilities, protocolVersion, perClient } = value;
  if (
    typeof id !== "string" || typeof owner !== "string" || typeof serverName !== "string" ||
    !isObject(capabilities) || typeof protocolVersion !== "string"
  ) return undefined;
  return {
    id,
    owner,
    serverName,
    capabilities,
    protocolVersion,
    ...(perClient === true ? { perClient } : {}),
  };
}

/**
 * The shared records of MCP client sessions. Writes never hold a request up: they go out and their
 * failure is the record's loss (the client then initializes again), counted by the Redis client.
 *
 * @example
 * ```ts ignore
 * const shared = new SharedSessions({ commands, ttlMs: 3_600_000 });
 * shared.opened({ id, owner, serverName, capabilities, protocolVersion });
 * await shared.find(id); // on another replica
 * ```
 */
export class SharedSessions {
  readonly #options: SharedSessionsOptions;
  /** Sessions known here, with when each record was last written or renewed (performance.now()). */
  readonly #known = new Map<string, { record: SharedClientSession; renewed: number }>();
  /** Records being written for sessions just opened here. */
  readonly #publishing = new Map<string, Promise<void>>();

  constructor(options: SharedSessionsOptions) {
    this.#options = options;
  }

  /** Publishes a session opened here; {@link published} resolves once Redis has it (or refused). */
  opened(session: SharedClientSession): void {
    this.#mark(session);
    const done = this.#publish(session).finally(() => this.#publishing.delete(session.id));
    this.#publishing.set(session.id, done);
  }

  /** Resolves when the record of session `id` opened here is written (or could not be). */
  published(id: string): Promise<void> {
    return this.#publishing.get(id) ?? Promise.resolve();
  }

  /** The session was used here: renews its record at most every quarter TTL (writes it if it is gone). */
  used(id: string): void {
    const known = this.#known.get(id);
    if (known === undefined) return;
    if (performance.now() - known.renewed < this.#options.ttlMs / 4) return;
    this.#mark(known.record);
    this.#publish(known.record);
  }

  /** Redis lost its data: every session known here is published again. */
  reassert(): void {
    for (const { record } of this.#known.values()) this.#publish(record);
  }

  /**
   * The session's record, when another replica opened it (and it is not past its TTL). While Redis is
   * unreachable a session seen here before is taken as it was (a DELETE elsewhere meanwhile cannot be
   * known); any other cannot be told from a gone one, and neither can a missing record just after Redis
   * came back (it may have lost it): both throw rather than answer "no such session".
   *
   * @throws {SessionsUnavailableError} Whether the session exists cannot be known now.
   */
  async find(id: string): Promise<SharedClientSession | undefined> {
    if (id.length > 128) return undefined;
    const { commands } = this.#options;
    const known = this.#known.get(id)?.record;
    let record: SharedClientSession | undefined;
    try {
      const state = commands.state;
      if (!state.up) throw new Error(state.reason);
      record = readRecord(await commands.redis.get(clientKey(id)));
    } catch (error: unknown) {
      if (known !== undefined) return known;
      throw new SessionsUnavailableError(
        `Redis is unreachable (${
          error instanceof Error ? error.message : String(error)
        }), so this replica cannot find the MCP session; retry in a moment`,
      );
    }
    if (record !== undefined) {
      this.#mark(record);
      // Taken here without `perClient`: only the replica that opened it holds early messages for its GET.
      const { perClient: _, ...taken } = record;
      return taken;
    }
    const recoveringMs = this.#options.recoveringMs ?? 2 * LIVENESS_DEFAULTS.beatMs + 1_000;
    if (performance.now() - commands.upSince < recoveringMs) {
      throw new SessionsUnavailableError(
        "Redis came back a moment ago and the replicas are publishing their MCP sessions again; retry in a moment",
      );
    }
    return undefined;
  }

  /** The client ended the session: every replica forgets it (each on its next lookup). */
  deleted(id: string): void {
    const record = this.#known.get(id)?.record;
    this.#known.delete(id);
    const multi = this.#options.commands.redis.multi().del(clientKey(id));
    if (record !== undefined) multi.zrem(ownerSessionsKey(record.owner), id);
    if (record?.perClient === true) multi.zrem(perClientKey(record.owner, record.serverName), id);
    multi.exec().catch(() => {});
  }

  /**
   * Whether session `id` lives on (its record was renewed within the TTL by some replica); undefined
   * when Redis cannot say now.
   */
  async alive(id: string): Promise<boolean | undefined> {
    try {
      return await this.#options.commands.redis.exists(clientKey(id)) === 1;
    } catch {
      return undefined;
    }
  }

  /**
   * The open MCP client sessions of a per-client server, opened on any replica: at most
   * {@link MAX_READ_OPEN}, those past their TTL left out.
   */
  async openOf(owner: string, serverName: string): Promise<string[]> {
    return await this.#options.commands.redis.zrangebyscore(
      perClientKey(owner, serverName),
      Date.now(),
      "+inf",
      "LIMIT",
      0,
      MAX_READ_OPEN,
    );
  }

  #publish(record: SharedClientSession): Promise<void> {
    const { commands, ttlMs, maxPerOwner = 1024, onEvicted } = this.#options;
    const multi = commands.redis.multi().eval(
      PUBLISH,
      2,
      clientKey(record.id),
      ownerSessionsKey(record.owner),
      JSON.stringify(record),
      ttlMs,
      record.id,
      maxPerOwner,
    );
    if (record.perClient === true) {
      // Scored by when it runs out; those past it are trimmed at each write, and the set goes with its
      // last session: it holds no more than the server's sessions open within one TTL.
      const key = perClientKey(record.owner, record.serverName);
      const now = Date.now();
      multi.zadd(key, now + ttlMs, record.id).zremrangebyscore(key, "-inf", now).pexpire(
        key,
        ttlMs,
      );
    }
    return multi.exec().then((replies) => {
      const evicted = Number(replies?.[0]?.[1] ?? 0);
      if (evicted > 0) onEvicted?.(record.owner, evicted);
    }, () => {});
  }

  /** Remembers `record` as just renewed, most recent last; the oldest go past `maxTracked`. */
  #mark(record: SharedClientSession): void {
    this.#known.delete(record.id);
    this.#known.set(record.id, { record, renewed: performance.now() });
    const max = this.#options.maxTracked ?? 100_000;
    if (this.#known.size > max) this.#known.delete(this.#known.keys().next().value!);
  }
}
