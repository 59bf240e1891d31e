// serve's records in its state store: saved as sessions change (write-behind, never waited on), read
// back once at start so that a restarted serve keeps its MCP client sessions and lets its tunnels resume.

import { logger } from "../../util/log.ts";
import type { ServeMetrics } from "../metrics.ts";
import {
  type ClientRecord,
  type EndedRecord,
  readClientRecord,
  readEndedRecord,
  readTunnelRecord,
  recordKey,
  SPACE,
  type TunnelRecord,
} from "./records.ts";
import { StateWriter, type StateWriterOptions } from "./state_writer.ts";
import type { StateStore } from "./store.ts";

const log = logger("serve", "state");

/** Options of {@link ServeState}. */
export interface ServeStateOptions {
  /** An MCP client session is kept this long after it was last heard from (`--mcp-session-ttl`). */
  clientTtlMs: number;
  /** An ended-session mark is kept this long (the resume window, at least a minute). */
  endedKeepMs: number;
  /** The clock. Default `Date.now`. */
  now?: () => number;
  /** Counts failed writes (`state_store`) and writes dropped while the store failed (`state_dropped`). */
  metrics?: ServeMetrics;
  /**
   * Replicas: a tunnel record lives this long after it was saved, and {@link ServeState.refresh} saves it
   * again after a quarter of it, so that the records of a replica that died go away once no client can
   * resume them any more. Undefined: a record lives until its session ends (one serve).
   */
  tunnelTtlMs?: number;
  /** Batching and retry of writes (tests shorten them). */
  writer?: Omit<StateWriterOptions, "onError" | "onDropped">;
}

/** What a start finds in the store. */
export interface RestoredState {
  tunnels: TunnelRecord[];
  clients: ClientRecord[];
  ended: EndedRecord[];
}

/**
 * The records of one serve process. Saving never waits: the writer stores them soon after.
 *
 * @example
 * ```ts
 * import { MemoryStore } from "./memory_store.ts";
 * import { ServeState } from "./serve_state.ts";
 * const state = new ServeState(new MemoryStore(), { clientTtlMs: 60_000, endedKeepMs: 60_000 });
 * (await state.load()).clients.length; // 0
 * await state.close(1000);
 * await state.store.close();
 * ```
 */
export class ServeState {
  readonly store: StateStore;
  #writer: StateWriter;
  #options: ServeStateOptions;
  #now: () => number;
  /** The tunnel records saved with a lifetime, for {@link refresh}. */
  #living = new Map<string, { record: TunnelRecord; savedAt: number }>();

  constructor(store: StateStore, options: ServeStateOptions) {
    this.store = store;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    const metrics = options.metrics;
    this.#writer = new StateWriter(store, {
      ...options.writer,
      onError: () => metrics?.errors.inc("state_store"),
      onDropped: (count) => metrics?.errors.inc("state_dropped", count),
    });
  }

  /** True when what is saved outlives this process. */
  get durable(): boolean {
    return this.store.durable;
  }

  /** Records saved and not yet stored. */
  get pending(): number {
    return this.#writer.pending;
  }

  /**
   * Reads every record back, once, before serve listens. A record this version cannot read (another
   * release's, or damaged) is deleted and logged; the rest are restored.
   */
  async load(): Promise<RestoredState> {
    const read = async <T>(
      space: keyof typeof SPACE,
      parse: (text: string) => T | undefined,
    ): Promise<T[]> => {
      const found: T[] = [];
      for (const entry of await this.store.list(SPACE[space])) {
        const record = parse(entry.value);
        if (record !== undefined) found.push(record);
        else {
          log.warning("Dropped unreadable state record {space}/{id} from {store}", {
            event: "state_record_dropped",
            space: entry.key.space,
            id: entry.key.id.slice(0, 64),
            store: this.store.location,
          });
          this.#writer.delete(entry.key);
        }
      }
      return found;
    };
    return {
      tunnels: await read("tunnel", readTunnelRecord),
      clients: await read("client", readClientRecord),
      ended: await read("ended", readEndedRecord),
    };
  }

  /**
   * Replicas: the record of one tunnel session and the mark of its end, read from the shared store when
   * its client asks a replica that does not hold it to resume it. An unreadable record counts as none.
   */
  async findTunnel(id: string): Promise<{ tunnel?: TunnelRecord; ended?: EndedRecord }> {
    const [tunnel, ended] = await Promise.all([
      this.store.get(recordKey("tunnel", id)),
      this.store.get(recordKey("ended", id)),
    ]);
    const found: { tunnel?: TunnelRecord; ended?: EndedRecord } = {};
    const record = tunnel === undefined ? undefined : readTunnelRecord(tunnel);
    const mark = ended === undefined ? undefined : readEndedRecord(ended);
    if (record !== undefined) found.tunnel = record;
    if (mark !== undefined) found.ended = mark;
    return found;
  }

  /** Saves a tunnel session (it lives until it ends: a restored one the client never resumes expires). */
  saveTunnel(record: TunnelRecord): void {
    const ttlMs = this.#options.tunnelTtlMs;
    this.#writer.set(recordKey("tunnel", record.id), JSON.stringify(record), ttlMs);
    if (ttlMs !== undefined) this.#living.set(record.id, { record, savedAt: this.#now() });
  }

  /**
   * Saves again the tunnel records a quarter through their lifetime (replicas; often, cheap), or `all` of
   * them (Redis came back empty).
   */
  refresh(all = false): void {
    const ttlMs = this.#options.tunnelTtlMs;
    if (ttlMs === undefined) return;
    const due = all ? Infinity : this.#now() - ttlMs / 4;
    for (const { record, savedAt } of [...this.#living.values()]) {
      if (savedAt <= due) this.saveTunnel(record);
    }
  }

  /** Stops saving a tunnel record that another replica keeps now (its session was taken over). */
  forgetTunnel(id: string): void {
    this.#living.delete(id);
  }

  /** Forgets a tunnel session that ended without anything to tell a late resume. */
  dropTunnel(id: string): void {
    this.#living.delete(id);
    this.#writer.delete(recordKey("tunnel", id));
  }

  /** Forgets a tunnel session and keeps the mark of how it ended, for the keep time. */
  endTunnel(record: EndedRecord): void {
    this.#living.delete(record.id);
    this.#writer.delete(recordKey("tunnel", record.id));
    const left = record.endedAt + this.#options.endedKeepMs - this.#now();
    if (left >= 1) {
      this.#writer.set(recordKey("ended", record.id), JSON.stringify(record), Math.ceil(left));
    }
  }

  /** Saves an MCP client session, kept until `--mcp-session-ttl` after it was last heard from. */
  saveClient(record: ClientRecord): void {
    const left = record.lastSeen + this.#options.clientTtlMs - this.#now();
    const key = recordKey("client", record.id);
    if (left < 1) this.#writer.delete(key);
    else this.#writer.set(key, JSON.stringify(record), Math.ceil(left));
  }

  /** Forgets an MCP client session (deleted by its client, or forgotten as idle). */
  dropClient(id: string): void {
    this.#writer.delete(recordKey("client", id));
  }

  /** Stores what is pending now; resolves once tried, stored or not. */
  flush(): Promise<void> {
    return this.#writer.flush();
  }

  /** Stores what is pending, within `timeoutMs`; the store stays open (its opener closes it). */
  close(timeoutMs: number): Promise<void> {
    return this.#writer.close(timeoutMs);
  }
}
