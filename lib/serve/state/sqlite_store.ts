// The embedded state store (the default): one SQLite file, `<state-dir>/serve.sqlite`, through `node:sqlite`,
// in WAL mode and held exclusively by one serve. Opening it says what is wrong and how to fix it when the
// directory cannot be written, the file is corrupt or newer, or another serve holds it.

import { join } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { ConfigError } from "../../util/errors.ts";
import { StateInUseError } from "../errors.ts";
import {
  checkKey,
  checkTtl,
  type StateEntry,
  type StateKey,
  type StateStore,
  StateStoreClosedError,
  type StateWrite,
} from "./store.ts";

/** The file's name inside the state directory. */
export const STATE_FILE = "serve.sqlite";

/** The schema this code writes; a file with a higher one was written by a newer mcp-rproxy. */
export const SCHEMA_VERSION = 1;

/** Expired records are deleted at most this often (reads skip them anyway). */
const PURGE_EVERY_MS = 60_000;

/** Options of {@link SqliteStore.open}. */
export interface SqliteStoreOptions {
  /** The state directory; created (mode 0700) when missing. */
  dir: string;
  /** How the directory was named, for messages: `--state-dir`, or the default's reason. */
  setting?: string;
  /** The clock, in milliseconds. Default `Date.now`. */
  now?: () => number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Values are kept as UTF-8 bytes: SQLite's TEXT binding would cut a string at its first NUL. */
function text(value: unknown): string {
  return value instanceof Uint8Array ? decoder.decode(value) : String(value);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const FIX_DIR =
  "give --state-dir a directory this user may write, or --state-dir none to keep state in memory only";

/** The user-facing error for a state directory that cannot be used. */
function unusableDir(dir: string, setting: string, error: unknown): Error {
  const why = error instanceof Deno.errors.NotCapable
    ? `Deno was not allowed to write it; run with --allow-read=${dir} --allow-write=${dir}`
    : error instanceof Deno.errors.PermissionDenied
    ? "permission denied"
    : error instanceof Deno.errors.AlreadyExists || error instanceof Deno.errors.NotADirectory
    ? "it is not a directory"
    : describe(error);
  return new ConfigError(`Cannot use state directory ${dir} (${setting}): ${why}; ${FIX_DIR}`, {
    cause: error,
  });
}

/** The user-facing error for a state file SQLite refused to open or read. */
function unusableFile(path: string, error: unknown): Error {
  const text = describe(error);
  if (/database is locked|SQLITE_BUSY/i.test(text)) {
    return new StateInUseError(
      `State file ${path} is in use by another process (another serve with the same --state-dir?); stop it, or give this serve its own --state-dir`,
      { cause: error },
    );
  }
  if (/not a database|malformed|corrupt/i.test(text)) {
    return new ConfigError(
      `State file ${path} is corrupt (${text}); move it away (serve starts with empty state: MCP clients initialize again, connect registers afresh), or use --state-dir none`,
      { cause: error },
    );
  }
  if (/readonly|read-only|unable to open|permission/i.test(text)) {
    return new ConfigError(`Cannot open state file ${path}: ${text}; ${FIX_DIR}`, {
      cause: error,
    });
  }
  return new ConfigError(`Cannot open state file ${path}: ${text}`, { cause: error });
}

/**
 * A {@link StateStore} in one SQLite file. Every call is synchronous underneath (node:sqlite), wrapped
 * as a promise; serve calls it from its state writer's flush, never from a request.
 *
 * @example
 * ```ts ignore
 * import { SqliteStore } from "./sqlite_store.ts";
 * const store = await SqliteStore.open({ dir: "/var/lib/mcp-rproxy" });
 * await store.write([{ op: "set", key: { space: "client", id: "a" }, value: "{}", ttlMs: 60_000 }]);
 * await store.close();
 * ```
 */
export class SqliteStore implements StateStore {
  readonly kind = "sqlite";
  readonly location: string;
  readonly durable = true;
  #db: DatabaseSync;
  #now: () => number;
  #closed = false;
  #purgedAt = -Infinity;
  #statements: {
    get: StatementSync;
    list: StatementSync;
    set: StatementSync;
    delete: StatementSync;
    purge: StatementSync;
  };

  private constructor(db: DatabaseSync, path: string, now: () => number) {
    this.#db = db;
    this.location = path;
    this.#now = now;
    const live = "(expires_at IS NULL OR expires_at > ?)";
    this.#statements = {
      get: db.prepare(`SELECT value FROM records WHERE space = ? AND id = ? AND ${live}`),
      list: db.prepare(`SELECT id, value FROM records WHERE space = ? AND ${live}`),
      set: db.prepare(
        "INSERT INTO records (space, id, value, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT (space, id) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
      ),
      delete: db.prepare("DELETE FROM records WHERE space = ? AND id = ?"),
      purge: db.prepare("DELETE FROM records WHERE expires_at IS NOT NULL AND expires_at <= ?"),
    };
  }

  /**
   * Opens (creating when missing) `<dir>/serve.sqlite` and takes it for this process.
   *
   * @throws {ConfigError} The directory cannot be created or written, the file is corrupt, or it was
   *   written by a newer mcp-rproxy (exit code 2).
   * @throws {StateInUseError} Another process holds the file (exit code 1).
   */
  static open(options: SqliteStoreOptions): Promise<SqliteStore> {
    const { dir, setting = "--state-dir", now = Date.now } = options;
    try {
      Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
      // mkdir of an existing path that is a file fails only on some systems: check.
      if (!Deno.statSync(dir).isDirectory) throw new Deno.errors.NotADirectory(dir);
    } catch (error: unknown) {
      return Promise.reject(unusableDir(dir, setting, error));
    }
    const path = join(dir, STATE_FILE);
    let db: DatabaseSync | undefined;
    try {
      db = new DatabaseSync(path);
      // Exclusive: this process takes the file on first access and keeps it until close, so that a
      // second serve on the same directory fails at start instead of both writing. WAL needs no -shm
      // file in this mode; NORMAL sync loses at most the last commits on power loss, never consistency.
      db.exec("PRAGMA locking_mode = EXCLUSIVE");
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("PRAGMA synchronous = NORMAL");
      const check = db.prepare("PRAGMA quick_check").get() as { quick_check?: string } | undefined;
      if (check?.quick_check !== "ok") {
        throw new Error(`database disk image is malformed (${String(check?.quick_check)})`);
      }
      migrate(db, path);
      const store = new SqliteStore(db, path, now);
      store.#purge();
      return Promise.resolve(store);
    } catch (error: unknown) {
      try {
        db?.close();
      } catch {
        // already unusable; the error below says why
      }
      if (error instanceof ConfigError) return Promise.reject(error);
      return Promise.reject(unusableFile(path, error));
    }
  }

  get(key: StateKey): Promise<string | undefined> {
    return this.#run(() => {
      checkKey(key);
      const row = this.#statements.get.get(key.space, key.id, this.#now()) as
        | { value: Uint8Array }
        | undefined;
      return row === undefined ? undefined : text(row.value);
    });
  }

  list(space: string): Promise<StateEntry[]> {
    return this.#run(() => {
      checkKey({ space, id: "-" });
      const rows = this.#statements.list.all(space, this.#now()) as {
        id: string;
        value: Uint8Array;
      }[];
      return rows.map((row) => ({ key: { space, id: row.id }, value: text(row.value) }));
    });
  }

  write(batch: readonly StateWrite[]): Promise<void> {
    return this.#run(() => {
      for (const write of batch) {
        checkKey(write.key);
        if (write.op === "set") checkTtl(write.ttlMs);
      }
      this.#transaction(() => {
        const now = this.#now();
        for (const write of batch) {
          if (write.op === "delete") this.#statements.delete.run(write.key.space, write.key.id);
          else this.#set(write.key, write.value, write.ttlMs, now);
        }
      });
      if (this.#now() - this.#purgedAt >= PURGE_EVERY_MS) this.#purge();
    });
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    try {
      this.#db.close();
      return Promise.resolve();
    } catch (error: unknown) {
      return Promise.reject(error);
    }
  }

  #set(key: StateKey, value: string, ttlMs: number | undefined, now: number): void {
    const expiresAt = ttlMs === undefined ? null : now + ttlMs;
    this.#statements.set.run(key.space, key.id, encoder.encode(value), expiresAt);
  }

  #purge(): void {
    this.#purgedAt = this.#now();
    this.#statements.purge.run(this.#purgedAt);
  }

  #transaction<T>(body: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const result = body();
      this.#db.exec("COMMIT");
      return result;
    } catch (error: unknown) {
      this.#db.exec("ROLLBACK");
      throw error;
    }
  }

  #run<T>(body: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new StateStoreClosedError(this.kind));
    try {
      return Promise.resolve(body());
    } catch (error: unknown) {
      return Promise.reject(error);
    }
  }
}

/** Creates the schema in a new file, checks the version of an existing one. */
function migrate(db: DatabaseSync, path: string): void {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS records (
      space TEXT NOT NULL,
      id TEXT NOT NULL,
      value BLOB NOT NULL,
      expires_at INTEGER,
      PRIMARY KEY (space, id)
    ) WITHOUT ROWID;`);
  const row = db.prepare("SELECT max(version) AS version FROM schema_version").get() as
    | { version: number | null }
    | undefined;
  const version = row?.version ?? null;
  if (version === null) {
    db.prepare("INSERT INTO schema_version (version) VALUES (?)").run(SCHEMA_VERSION);
    return;
  }
  if (version > SCHEMA_VERSION) {
    throw new ConfigError(
      `State file ${path} has schema version ${version}, newer than this mcp-rproxy's (${SCHEMA_VERSION}); run the newer mcp-rproxy, or move the file away to start with empty state`,
    );
  }
}
