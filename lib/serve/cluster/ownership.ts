// Ownership of tunnel sessions across replicas: `o:<sid>` = `<rid>:<gen>` with a TTL, the generation from
// `INCR g:<sid>`. A claim always takes a new generation (newest wins); the holder renews by compare-and-set
// on its generation, and a write fenced by a generation is refused once a newer one exists. Every check is
// one Lua script, so it is atomic in Redis. A directory entry `n:<owner>:<name>` names the session, and its
// server's isolation after a tab when it is per-client (so that every replica serves its clients as such).

import type { RedisClient } from "./redis_client.ts";

/** The owner key of tunnel session `sid`. */
export function ownerKey(sid: string): string {
  return `o:${sid}`;
}

/** The generation counter of tunnel session `sid`. */
export function generationKey(sid: string): string {
  return `g:${sid}`;
}

/** The directory key of server `name` of `owner`: the id of the tunnel session that serves it. */
export function directoryKey(owner: string, name: string): string {
  return `n:${owner}:${name}`;
}

/** Who holds a tunnel session, under which generation. */
export interface Owner {
  rid: string;
  gen: number;
}

/** The outcome of a renewal: still ours (`renewed`, or `reasserted` into an empty Redis), or not. */
export type Renewal =
  | { kind: "renewed" }
  | { kind: "reasserted" }
  | { kind: "superseded"; by: Owner | undefined };

/** A fenced write refused: a newer generation holds the session. */
export class StaleGenerationError extends Error {
  constructor(readonly sid: string, readonly gen: number, readonly current: Owner | undefined) {
    super(
      `Refused a write for session ${sid} under generation ${gen}: ${
        current === undefined
          ? "it has no owner"
          : `replica ${current.rid} holds generation ${current.gen}`
      }`,
    );
    this.name = "StaleGenerationError";
  }
}

/** Counters outlive owner keys by far: a day, renewed with the owner. */
const GENERATION_TTL_MS = 86_400_000;

/**
 * KEYS: owner, generation, directory; ARGV: rid, ttl, generation ttl, sid. Returns the new generation and
 * the previous owner ('' when none).
 */
const CLAIM = `local prev = redis.call('GET', KEYS[1]) or ''
local gen = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. gen, 'PX', ARGV[2])
redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[2])
return {gen, prev}`;

/**
 * Ours → renew. Absent while the counter is not past ours (an empty Redis, an expired key) → take it back
 * and raise the counter to ours, so that the next claim is newer. Otherwise → superseded, with the owner.
 */
const RENEW = `local mine = ARGV[1] .. ':' .. ARGV[2]
local cur = redis.call('GET', KEYS[1])
local renewal = nil
if cur == mine then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  renewal = 'renewed'
else
  local g = tonumber(redis.call('GET', KEYS[2]) or '0')
  if not cur and g <= tonumber(ARGV[2]) then
    redis.call('SET', KEYS[1], mine, 'PX', ARGV[3])
    redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[4])
    renewal = 'reasserted'
  end
end
if not renewal then return cur or '' end
local dir = redis.call('GET', KEYS[3])
if dir == ARGV[5] then redis.call('PEXPIRE', KEYS[3], ARGV[3])
elseif not dir then redis.call('SET', KEYS[3], ARGV[5], 'PX', ARGV[3]) end
return renewal`;

/** Deletes the owner key only if it is still ours, and the directory entry only if it names the session. */
const RELEASE = `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
return redis.call('DEL', KEYS[1])`;

/** The session a directory entry names (before a tab), its owner ('' when none) and the entry. */
const LOOKUP = `local entry = redis.call('GET', KEYS[1])
if not entry then return false end
local sid = string.match(entry, '^[^\t]*')
return {sid, redis.call('GET', 'o:' .. sid) or '', entry}`;

/** SETs KEYS[2] to ARGV[2] (with PX ARGV[3] when > 0) only while KEYS[1] holds ARGV[1]. */
const FENCED_SET = `local cur = redis.call('GET', KEYS[1])
if cur ~= ARGV[1] then return cur or '' end
if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
else redis.call('SET', KEYS[2], ARGV[2]) end
return 'OK'`;

/** `<rid>:<gen>` → Owner; undefined for "" or nonsense. */
export function parseOwner(text: string | null | undefined): Owner | undefined {
  const match = /^([A-Za-z0-9_-]+):(\d+)$/.exec(text ?? "");
  return match === null ? undefined : { rid: match[1]!, gen: Number(match[2]) };
}

/** A server as the directory names it: its owner (the token's) and its name; per-client or shared. */
export interface Server {
  owner: string;
  name: string;
  /** Each MCP client session has an instance of its own (frames name the client session). */
  perClient?: boolean;
}

/** The directory entry of session `sid` of `server`: the sid, then a tab and `per-client` when it is. */
export function directoryEntry(sid: string, server: Server): string {
  return server.perClient === true ? `${sid}\tper-client` : sid;
}

/** Options of {@link Ownership}. */
export interface OwnershipOptions {
  commands: RedisClient;
  replicaId: string;
  /** Lifetime of an owner key, renewed every liveness beat; default 10000 ms. */
  ttlMs?: number;
}

/**
 * Claims, renews and checks ownership of tunnel sessions for one replica.
 *
 * @example
 * ```ts ignore
 * const ownership = new Ownership({ commands, replicaId: "gw-1" });
 * const server = { owner: "alice", name: "everything" };
 * const { gen } = await ownership.claim("sess-1", server);
 * await ownership.renew("sess-1", gen, server); // { kind: "renewed" }
 * ```
 */
export class Ownership {
  readonly #commands: RedisClient;
  readonly #rid: string;
  readonly #ttlMs: number;

  constructor(options: OwnershipOptions) {
    this.#commands = options.commands;
    this.#rid = options.replicaId;
    this.#ttlMs = options.ttlMs ?? 10_000;
  }

  /**
   * Takes session `sid` with a new generation, whoever held it, and points the directory entry of its
   * server (`owner`, `name`) at it; resolves with that generation and whoever held it before.
   */
  async claim(sid: string, server: Server): Promise<{ gen: number; previous: Owner | undefined }> {
    const [gen, previous] = await this.#commands.redis.eval(
      CLAIM,
      3,
      ownerKey(sid),
      generationKey(sid),
      directoryKey(server.owner, server.name),
      this.#rid,
      this.#ttlMs,
      GENERATION_TTL_MS,
      directoryEntry(sid, server),
    ) as [number, string];
    return { gen: Number(gen), previous: parseOwner(previous) };
  }

  /**
   * Renews this replica's hold on `sid` under `gen` and the directory entry with it (made again when
   * missing); says when a newer generation took the session over.
   */
  async renew(sid: string, gen: number, server: Server): Promise<Renewal> {
    const reply = String(
      await this.#commands.redis.eval(
        RENEW,
        3,
        ownerKey(sid),
        generationKey(sid),
        directoryKey(server.owner, server.name),
        this.#rid,
        gen,
        this.#ttlMs,
        GENERATION_TTL_MS,
        directoryEntry(sid, server),
      ),
    );
    if (reply === "renewed" || reply === "reasserted") return { kind: reply };
    return { kind: "superseded", by: parseOwner(reply) };
  }

  /** Who holds `sid` now, if anyone. */
  async owner(sid: string): Promise<Owner | undefined> {
    return parseOwner(await this.#commands.redis.get(ownerKey(sid)));
  }

  /** Gives `sid` up if this replica still holds it under `gen` (its tunnel ended here). */
  async release(sid: string, gen: number, server: Server): Promise<boolean> {
    const deleted = await this.#commands.redis.eval(
      RELEASE,
      2,
      ownerKey(sid),
      directoryKey(server.owner, server.name),
      `${this.#rid}:${gen}`,
      directoryEntry(sid, server),
    );
    return Number(deleted) === 1;
  }

  /** The tunnel session serving `owner`'s server `name`, who holds it (if anyone), and its isolation. */
  async lookup(
    server: Server,
  ): Promise<{ sid: string; owner: Owner | undefined; perClient: boolean } | undefined> {
    const reply = await this.#commands.redis.eval(
      LOOKUP,
      1,
      directoryKey(server.owner, server.name),
    ) as [string, string, string] | null;
    if (reply === null) return undefined;
    return {
      sid: reply[0],
      owner: parseOwner(reply[1]),
      perClient: reply[2] === directoryEntry(reply[0], { ...server, perClient: true }),
    };
  }

  /**
   * Sets `key` to `value` only while this replica holds `sid` under `gen`.
   *
   * @throws {StaleGenerationError} A newer generation (or none) holds `sid`: nothing was written.
   */
  async fencedSet(
    fence: { sid: string; gen: number },
    write: { key: string; value: string; ttlMs?: number },
  ): Promise<void> {
    const reply = String(
      await this.#commands.redis.eval(
        FENCED_SET,
        2,
        ownerKey(fence.sid),
        write.key,
        `${this.#rid}:${fence.gen}`,
        write.value,
        write.ttlMs ?? 0,
      ),
    );
    if (reply !== "OK") throw new StaleGenerationError(fence.sid, fence.gen, parseOwner(reply));
  }
}
