// The origin's verdict, with each beat, on its cross-replica calls whose holder is gone or lost their
// tunnel: a tunnel resumed under a newer generation keeps its calls (they move there and wait for the answers
// the resumed link replays); a holder gone leaves them waiting for the resume window; a session that ended
// fails them at once with a JSON-RPC error.

import type { CallRoute, CrossCalls } from "./cross_calls.ts";
import type { Owner, Server } from "./ownership.ts";

/** Options of {@link StaleCalls}. */
export interface StaleCallsOptions {
  crossCalls: CrossCalls;
  /** The directory: the session serving a server and who holds it (undefined: none; rejects: Redis down). */
  lookup: (server: Server) => Promise<{ sid: string; owner: Owner | undefined } | undefined>;
  /** Replicas alive at the last beat. */
  alive: () => ReadonlySet<string>;
  /**
   * How long calls wait on a tunnel whose holder is gone, for its client to resume it on another replica
   * (`--resume-window`, in ms), from when this replica saw it gone; 0: they fail at once.
   */
  resumeWindowMs: number;
  /**
   * Whether tunnel session `sid` can still be resumed: its record is in the shared state store (a session
   * that ended is not). Undefined: assume it can, for the window.
   */
  resumable?: (sid: string) => Promise<boolean>;
  /** Monotonic clock in ms; default `performance.now`. */
  now?: () => number;
}

/**
 * Settles or moves the calls waiting on tunnels that moved or went away.
 *
 * @example
 * ```ts ignore
 * const stale = new StaleCalls({ crossCalls, lookup, alive: () => liveness.replicas, resumeWindowMs });
 * cluster.events.addEventListener("beat", () => void stale.check());
 * ```
 */
export class StaleCalls {
  readonly #options: StaleCallsOptions;
  /** When this replica saw the holder of a route (`<sid>:<gen>`) gone. */
  readonly #goneSince = new Map<string, number>();
  readonly #now: () => number;

  constructor(options: StaleCallsOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
  }

  /** One verdict per route calls wait on (with each beat). */
  async check(): Promise<void> {
    const { crossCalls, resumeWindowMs } = this.#options;
    const routes = crossCalls.routes();
    const waited = new Set(routes.map(keyOf));
    for (const key of this.#goneSince.keys()) if (!waited.has(key)) this.#goneSince.delete(key);
    const alive = this.#options.alive();
    for (const route of routes) {
      const key = keyOf(route);
      const found = await this.#options.lookup(route).catch(() => null);
      if (found === null) continue; // Redis down: no verdict now
      const owner = found?.sid === route.sid ? found.owner : undefined;
      if (owner !== undefined && (owner.rid !== route.rid || owner.gen !== route.gen)) {
        // Resumed under a newer generation: the calls wait there (their cancellations go there too).
        this.#goneSince.delete(key);
        crossCalls.moveRoute(route, { ...route, rid: owner.rid, gen: owner.gen });
        continue;
      }
      let why: string | undefined;
      if (found !== undefined && found.sid !== route.sid) {
        why = `the tunnel it was sent to on replica ${route.rid} ended`;
      } else if (alive.has(route.rid)) {
        if (owner !== undefined) continue; // held as before
        why = `the tunnel it was sent to on replica ${route.rid} ended`;
      } else if (!(await this.#resumable(route.sid))) {
        why = `replica ${route.rid} holding its tunnel is gone and the tunnel ended`;
      } else {
        const now = this.#now();
        const since = this.#goneSince.get(key) ?? now;
        this.#goneSince.set(key, since);
        if (now - since < resumeWindowMs) continue;
        why =
          `replica ${route.rid} holding its tunnel is gone and the tunnel was not resumed within ${
            resumeWindowMs / 1000
          } s`;
      }
      this.#goneSince.delete(key);
      crossCalls.failRoute(
        route,
        `Server '${route.name}': ${why} before answering; the call may or may not have run`,
      );
    }
  }

  async #resumable(sid: string): Promise<boolean> {
    if (this.#options.resumeWindowMs === 0) return false;
    // A store that cannot be read gives no verdict: wait, as for a tunnel that may be resumed.
    return await (this.#options.resumable?.(sid) ?? Promise.resolve(true)).catch(() => true);
  }
}

function keyOf(route: CallRoute): string {
  return `${route.sid}:${route.gen}`;
}
