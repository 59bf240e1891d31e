// The live tunnel sessions of the gateway, by id and by (owner, name), with a stable answer to name collisions.

import { MAX_NAME_LENGTH } from "../protocol/registration.ts";

/** What the registry needs to know of a session. */
export interface RegisteredSession {
  readonly id: string;
  readonly owner: string;
  readonly name: string;
}

/**
 * Turns a requested server name into one that fits in a URL path segment: characters other than
 * letters, digits, `.`, `_`, `~` and `-` become `-`. Throws a {@link RangeError} for an empty or too
 * long name.
 *
 * @example
 * ```ts
 * import { normalizeServerName } from "./tunnel_registry.ts";
 * normalizeServerName("My Server/1"); // "My-Server-1"
 * ```
 */
export function normalizeServerName(raw: string): string {
  const trimmed = raw.trim();
  if (trimmed.length === 0) throw new RangeError("Server name is empty");
  if (trimmed.length > MAX_NAME_LENGTH) {
    throw new RangeError(
      `Server name is ${trimmed.length} characters long; at most ${MAX_NAME_LENGTH} are allowed`,
    );
  }
  const name = trimmed.replace(/[^A-Za-z0-9._~-]/g, "-");
  // "." and ".." would be resolved away by URL parsers.
  return name === "." || name === ".." ? name.replaceAll(".", "-") : name;
}

function nameKey(owner: string, name: string): string {
  return `${owner}\u0000${name}`;
}

/**
 * Live sessions. Names are per owner: two owners may both have `everything`. When an owner registers a
 * name that one of its live sessions already holds, the newcomer gets the first free `name-2`, `name-3`, …;
 * the holder keeps its name (no silent takeover), and the newcomer keeps its suffixed name for its
 * lifetime.
 *
 * @example
 * ```ts
 * import { TunnelRegistry } from "./tunnel_registry.ts";
 * const registry = new TunnelRegistry<{ id: string; owner: string; name: string }>();
 * const name = registry.freeName("alice", "everything"); // "everything"
 * registry.add({ id: "1", owner: "alice", name });
 * registry.freeName("alice", "everything"); // "everything-2"
 * ```
 */
export class TunnelRegistry<S extends RegisteredSession> {
  #byId = new Map<string, S>();
  #byName = new Map<string, S>();

  /** The first free variant of `wanted` for `owner`: `wanted`, else `wanted-2`, `wanted-3`, … */
  freeName(owner: string, wanted: string): string {
    let name = wanted;
    for (let n = 2; this.#byName.has(nameKey(owner, name)); n++) {
      const suffix = `-${n}`;
      name = `${wanted.slice(0, MAX_NAME_LENGTH - suffix.length)}${suffix}`;
    }
    return name;
  }

  /** Adds a session under its name, which must be free (see {@link TunnelRegistry.freeName}). */
  add(session: S): void {
    if (this.#byId.has(session.id)) {
      throw new RangeError(`Session ${session.id} is already registered`);
    }
    const key = nameKey(session.owner, session.name);
    if (this.#byName.has(key)) {
      throw new RangeError(`Name ${session.name} of ${session.owner} is taken`);
    }
    this.#byId.set(session.id, session);
    this.#byName.set(key, session);
  }

  /** Removes a session; true if it was there. */
  remove(session: S): boolean {
    if (this.#byId.get(session.id) !== session) return false;
    this.#byId.delete(session.id);
    this.#byName.delete(nameKey(session.owner, session.name));
    return true;
  }

  /** The session with this id. */
  get(id: string): S | undefined {
    return this.#byId.get(id);
  }

  /** The session of `owner` registered as `name`. */
  find(owner: string, name: string): S | undefined {
    return this.#byName.get(nameKey(owner, name));
  }

  /** Sessions of one owner, or all when `owner` is undefined, oldest first. */
  list(owner?: string): S[] {
    const all = [...this.#byId.values()];
    return owner === undefined ? all : all.filter((session) => session.owner === owner);
  }

  /** Number of live sessions of `owner`. */
  count(owner: string): number {
    let n = 0;
    for (const session of this.#byId.values()) if (session.owner === owner) n++;
    return n;
  }
}
