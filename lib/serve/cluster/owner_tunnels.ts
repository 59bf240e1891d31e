// Tunnel sessions per owner for the whole cluster: `ts:<owner>` ranks the owner's sessions by when their
// holder last renewed them (Redis's clock). A registration that would take the owner past
// `--max-sessions-per-owner`, counting every replica's sessions, is refused with 4029 on whichever replica
// it lands; each replica's own count (with its links not registered yet) is checked first, as without
// replicas. A session resumed or taken over keeps its place: it is the same member.

import { CloseCode } from "../../protocol/frames.ts";
import { logger } from "../../util/log.ts";
import type { ServeMetrics } from "../metrics.ts";
import { TOO_MANY_SESSIONS_REASON } from "../registration.ts";
import type { TunnelSession } from "../tunnel_session.ts";
import type { RedisClient } from "./redis_client.ts";

const log = logger("serve", "cluster");

/** The key ranking `owner`'s tunnel sessions. */
export function ownerTunnelsKey(owner: string): string {
  return `ts:${owner}`;
}

/** Redis's clock in ms, in a script. */
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

/**
 * KEYS: the ranking; ARGV: sid, ttl ms, limit. Drops sessions not renewed within the ttl, then takes a
 * place for `sid` unless the owner has `limit` other sessions. Returns {admitted (1/0), sessions}.
 */
const ADMIT = `${NOW}redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
local count = redis.call('ZCARD', KEYS[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and count >= tonumber(ARGV[3]) then
  return {0, count}
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, redis.call('ZCARD', KEYS[1])}`;

/** KEYS: the ranking; ARGV: sid, ttl ms. Ranks `sid` as renewed now (put back if Redis lost it). */
const RENEW = `${NOW}redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

/** The outcome of {@link OwnerTunnels.admit}. */
export interface Admission {
  admitted: boolean;
  /** The owner's sessions on all replicas (with this one, when admitted). */
  sessions: number;
}

/** Options of {@link OwnerTunnels}. */
export interface OwnerTunnelsOptions {
  commands: RedisClient;
  /** Sessions one owner may hold on all replicas together (`--max-sessions-per-owner`). */
  maxPerOwner: number;
  /** A session not renewed this long no longer counts (the ownership TTL), in ms. */
  ttlMs: number;
}

/**
 * The owners' places across replicas.
 *
 * @example
 * ```ts ignore
 * const places = new OwnerTunnels({ commands, maxPerOwner: 32, ttlMs: 10_000 });
 * const { admitted } = await places.admit("alice", "sess-1");
 * places.renew("alice", "sess-1"); // each beat, for every session held here
 * places.release("alice", "sess-1"); // it ended here
 * ```
 */
export class OwnerTunnels {
  readonly #options: OwnerTunnelsOptions;

  constructor(options: OwnerTunnelsOptions) {
    this.#options = options;
  }

  /**
   * Takes a place for session `sid` of `owner`, unless the owner's sessions on all replicas fill its limit.
   *
   * @throws {Error} Redis refused or is unreachable (the caller decides).
   */
  async admit(owner: string, sid: string): Promise<Admission> {
    const { commands, ttlMs, maxPerOwner } = this.#options;
    const [admitted, sessions] = await commands.redis.eval(
      ADMIT,
      1,
      ownerTunnelsKey(owner),
      sid,
      ttlMs,
      maxPerOwner,
    ) as [number, number];
    return { admitted: Number(admitted) === 1, sessions: Number(sessions) };
  }

  /**
   * Closes `session`, just registered here, with 4029 when its owner's sessions on all replicas fill the
   * limit, and says so. A place that cannot be asked for (Redis failed this once) is not refused: this
   * replica's own count held, and the next beat's {@link renewHeld} takes it.
   */
  async refuses(session: TunnelSession, metrics?: ServeMetrics): Promise<boolean> {
    const admission = await this.admit(session.owner, session.id).catch(() => undefined);
    if (admission?.admitted !== false) return false;
    metrics?.linksRefused.inc("registration");
    log.info(
      "Refused session {session} of {owner} ({name}): the owner holds {sessions} on all replicas (limit {limit}, --max-sessions-per-owner)",
      {
        event: "registration_refused",
        session: session.id,
        owner: session.owner,
        name: session.name,
        sessions: admission.sessions,
        limit: this.#options.maxPerOwner,
      },
    );
    session.close(CloseCode.TooManySessions, { kind: "refused", reason: TOO_MANY_SESSIONS_REASON });
    return true;
  }

  /** Renews the places of the `sessions` this replica holds (`held`: its claim landed). */
  renewHeld(sessions: Iterable<TunnelSession>, held: (sid: string) => boolean): void {
    for (const session of sessions) if (held(session.id)) this.renew(session.owner, session.id);
  }

  /** Session `sid` of `owner` is still held here: it keeps its place for another ttl. */
  renew(owner: string, sid: string): void {
    const { commands, ttlMs } = this.#options;
    commands.redis.eval(RENEW, 1, ownerTunnelsKey(owner), sid, ttlMs).catch(() => {});
  }

  /** Session `sid` of `owner` ended here: its place is free. */
  release(owner: string, sid: string): void {
    this.#options.commands.redis.zrem(ownerTunnelsKey(owner), sid).catch(() => {});
  }
}
