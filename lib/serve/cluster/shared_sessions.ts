// MCP client sessions shared by the replicas: `c:<id>` holds what any replica needs to take a request of
// that session (owner, server, what the client declared), with the session TTL renewed as the session is
// used; so no sticky sessions are needed at the load balancer.

import { isObject, type JsonObject } from "../../util/json_object.ts";
import type { RedisClient } from "./redis_client.ts";

/** The key of MCP client session `id`. */
export function clientKey(id: string): string {
  return `c:${id}`;
}

/** What another replica needs to go on with an MCP client session. */
export interface SharedClientSession {
  id: string;
  owner: string;
  serverName: string;
  capabilities: JsonObject;
  protocolVersion: string;
}

/** Options of {@link SharedSessions}. */
export interface SharedSessionsOptions {
  commands: RedisClient;
  /** An MCP client session unused this long is forgotten (`--mcp-session-ttl`), in ms. */
  ttlMs: number;
  /** Sessions whose last renewal time is remembered; past it the oldest are renewed again early. */
  maxTracked?: number;
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
  const { id, owner, serverName, capabilities, protocolVersion } = value;
  if (
    typeof id !== "string" || typeof owner !== "string" || typeof serverName !== "string" ||
    !isObject(capabilities) || typeof protocolVersion !== "string"
  ) return undefined;
  return { id, owner, serverName, capabilities, protocolVersion };
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
  /** When each session's record was last written or renewed here (performance.now()). */
  readonly #renewed = new Map<string, number>();

  constructor(options: SharedSessionsOptions) {
    this.#options = options;
  }

  /** Publishes a session opened here. */
  opened(session: SharedClientSession): void {
    this.#mark(session.id);
    this.#options.commands.redis.set(
      clientKey(session.id),
      JSON.stringify(session),
      "PX",
      this.#options.ttlMs,
    ).catch(() => {});
  }

  /** The session was used here: renews its record at most every quarter TTL. */
  used(id: string): void {
    const last = this.#renewed.get(id);
    if (last !== undefined && performance.now() - last < this.#options.ttlMs / 4) return;
    this.#mark(id);
    this.#options.commands.redis.pexpire(clientKey(id), this.#options.ttlMs).catch(() => {});
  }

  /** The session's record, when another replica opened it (and it is not past its TTL). */
  async find(id: string): Promise<SharedClientSession | undefined> {
    if (!this.#options.commands.state.up || id.length > 128) return undefined;
    try {
      const record = readRecord(await this.#options.commands.redis.get(clientKey(id)));
      if (record !== undefined) this.#mark(id);
      return record;
    } catch {
      return undefined;
    }
  }

  /** The client ended the session: every replica forgets it (each on its next lookup). */
  deleted(id: string): void {
    this.#renewed.delete(id);
    this.#options.commands.redis.del(clientKey(id)).catch(() => {});
  }

  #mark(id: string): void {
    this.#renewed.delete(id);
    this.#renewed.set(id, performance.now());
    const max = this.#options.maxTracked ?? 100_000;
    if (this.#renewed.size > max) this.#renewed.delete(this.#renewed.keys().next().value!);
  }
}
