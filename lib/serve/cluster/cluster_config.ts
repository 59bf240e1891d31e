// The replica flags of `serve` (--redis, --cluster-secret-file, --replica-id and the cluster's bounds) →
// ClusterSettings; a Redis URL's password never reaches a message or a log line (redactRedisUrl).

import { ConfigError, invalidSetting } from "../../util/errors.ts";
import { flagOrEnv, secondsMs, wholeNumber } from "../config_values.ts";
import { STATE_DIR_ENV } from "../state/state_dir.ts";

/** The environment variable of `--redis`. */
export const REDIS_URL_ENV = "MCP_RPROXY_REDIS_URL";

/** The flags of replicas, spread into serve's flag table. */
export const CLUSTER_FLAGS = {
  redis: { type: "string" },
  "cluster-secret-file": { type: "string" },
  "replica-id": { type: "string" },
  "cluster-max-nonces": { type: "string" },
  "cluster-inbox-max": { type: "string" },
  "cluster-forward-timeout": { type: "string" },
  "cluster-command-timeout": { type: "string" },
  "cluster-max-initialized": { type: "string" },
} as const;

/** Defaults of {@link ClusterSettings}. */
export const CLUSTER_DEFAULTS = {
  /** Nonces remembered per replay window (30 s); past it envelopes are refused until the window turns. */
  maxNonces: 200_000,
  /** Entries an inbox stream keeps (MAXLEN ~) when its replica does not read them. */
  inboxMaxEntries: 10_000,
  /** How long a request forwarded to the replica holding its stream waits for its answer, in ms. */
  forwardTimeoutMs: 10_000,
  /** How long a Redis command may go unanswered before it fails (Redis hung), in ms. */
  commandTimeoutMs: 10_000,
  /** Held `initialize` results of servers other replicas hold, kept at most (the oldest go first). */
  maxInitialized: 4_096,
} as const;

/** Settings of a replica, present when `--redis` is given. */
export interface ClusterSettings {
  /** The Redis URL as given (with its password: pass it to the client only, log {@link redactRedisUrl}). */
  redisUrl: string;
  /** Where the URL came from: `--redis` or the environment variable. */
  redisUrlSetting: string;
  /** File of the shared HMAC secret of the replicas. */
  secretFile: string;
  /** This replica's id: letters, digits, `-`, `_`. */
  replicaId: string;
  maxNonces: number;
  inboxMaxEntries: number;
  /** `--cluster-forward-timeout`; default {@link CLUSTER_DEFAULTS}'s. */
  forwardTimeoutMs?: number;
  /** `--cluster-command-timeout`; default {@link CLUSTER_DEFAULTS}'s. */
  commandTimeoutMs?: number;
  /** `--cluster-max-initialized`; default {@link CLUSTER_DEFAULTS}'s. */
  maxInitialized?: number;
}

/** What a replica id may hold: it is a key suffix, and a tunnel id's prefix before a `.`. */
const REPLICA_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * A Redis URL with its password (and a username's secret part) replaced by `***`, for messages and logs.
 * Text that is no URL is shown as `(not a URL)` since it might be a password pasted in the wrong place.
 *
 * @example
 * ```ts
 * import { redactRedisUrl } from "./cluster_config.ts";
 * redactRedisUrl("redis://:s3cret@redis:6379/0"); // "redis://:***@redis:6379/0"
 * ```
 */
export function redactRedisUrl(text: string): string {
  if (!URL.canParse(text)) return "(not a URL)";
  const url = new URL(text);
  if (url.password !== "") url.password = "***";
  return url.href.replace(/\/$/, "");
}

/**
 * A default replica id: the host name (what an operator recognises) and 6 random hex digits (two
 * replicas on one host, or a restarted one, never share an id).
 */
export function defaultReplicaId(hostname: string, random: () => number = Math.random): string {
  const host = hostname.replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 48) || "replica";
  const suffix = Math.floor(random() * 0x1000000).toString(16).padStart(6, "0");
  return `${host}-${suffix}`;
}

function redisUrl(setting: string, text: string): string {
  const shown = redactRedisUrl(text);
  const url = URL.canParse(text) ? new URL(text) : undefined;
  if (url === undefined || (url.protocol !== "redis:" && url.protocol !== "rediss:")) {
    throw invalidSetting({
      setting,
      value: shown,
      expected: "a redis:// or rediss:// (TLS) URL, with the password in it if Redis needs one",
      example: `${
        setting === REDIS_URL_ENV ? `${REDIS_URL_ENV}=` : "--redis "
      }redis://:PASSWORD@redis:6379/0`,
    });
  }
  if (url.hostname === "") {
    throw invalidSetting({
      setting,
      value: shown,
      problem: "it names no host",
      expected: "redis://HOST:PORT",
    });
  }
  const db = url.pathname.replace(/^\//, "");
  if (db !== "" && !/^\d{1,2}$/.test(db)) {
    throw invalidSetting({
      setting,
      value: shown,
      problem: `the path '/${db}' is no database number`,
      expected: "an optional database number as the path, such as /0",
    });
  }
  return text;
}

/** The flag values {@link parseClusterSettings} reads (from serve's parsed flags). */
export type ClusterFlagValues = { [K in keyof typeof CLUSTER_FLAGS]?: string | undefined };

/** Options of {@link parseClusterSettings}. */
export interface ClusterParseOptions {
  env: (name: string) => string | undefined;
  /** The machine's host name, for the default replica id. */
  hostname: () => string;
  random?: () => number;
}

/**
 * The cluster settings, or undefined when neither `--redis` nor its variable is set (a single serve).
 *
 * @throws {ConfigError} A bad URL (its password hidden), a replica flag without `--redis`, `--redis`
 * without `--cluster-secret-file`, a bad replica id or bound.
 *
 * @example
 * ```ts
 * import { parseClusterSettings } from "./cluster_config.ts";
 * const settings = parseClusterSettings(
 *   { redis: "redis://127.0.0.1:6379", "cluster-secret-file": "/run/secrets/cluster" },
 *   { env: () => undefined, hostname: () => "gw1" },
 * );
 * settings?.replicaId.startsWith("gw1-"); // true
 * ```
 */
export function parseClusterSettings(
  values: ClusterFlagValues,
  options: ClusterParseOptions,
): ClusterSettings | undefined {
  const source = flagOrEnv("--redis", values.redis, { name: REDIS_URL_ENV, read: options.env });
  if (source === undefined) {
    const stray = (Object.keys(CLUSTER_FLAGS) as (keyof ClusterFlagValues)[])
      .find((flag) => values[flag] !== undefined);
    if (stray !== undefined) {
      throw new ConfigError(
        `--${stray} was given without --redis: replicas share their state in Redis; give --redis redis://HOST:6379 (or set ${REDIS_URL_ENV}), or drop --${stray}`,
      );
    }
    return undefined;
  }
  const url = redisUrl(source.setting, source.text);
  const secretFile = values["cluster-secret-file"];
  if (secretFile === undefined || secretFile.trim() === "") {
    throw new ConfigError(
      `${source.setting} needs --cluster-secret-file FILE: replicas sign what they send each other with a shared secret; write one with 'openssl rand -base64 48 > cluster.secret', give the same file to every replica`,
    );
  }
  const rid = values["replica-id"];
  if (rid !== undefined && !REPLICA_ID.test(rid)) {
    throw invalidSetting({
      setting: "--replica-id",
      value: rid,
      expected: "1 to 64 letters, digits, '-' or '_' (it names the replica's keys in Redis)",
      example: "--replica-id gw-1",
    });
  }
  const count = (flag: keyof ClusterFlagValues, fallback: number) => {
    const text = values[flag];
    return text === undefined ? fallback : wholeNumber(`--${flag}`, text, 1);
  };
  const ms = (flag: keyof ClusterFlagValues, fallback: number) => {
    const text = values[flag];
    return text === undefined ? fallback : secondsMs(`--${flag}`, text);
  };
  return {
    redisUrl: url,
    redisUrlSetting: source.setting,
    secretFile,
    replicaId: rid ?? defaultReplicaId(options.hostname(), options.random),
    maxNonces: count("cluster-max-nonces", CLUSTER_DEFAULTS.maxNonces),
    inboxMaxEntries: count("cluster-inbox-max", CLUSTER_DEFAULTS.inboxMaxEntries),
    forwardTimeoutMs: ms("cluster-forward-timeout", CLUSTER_DEFAULTS.forwardTimeoutMs),
    commandTimeoutMs: ms("cluster-command-timeout", CLUSTER_DEFAULTS.commandTimeoutMs),
    maxInitialized: count("cluster-max-initialized", CLUSTER_DEFAULTS.maxInitialized),
  };
}

/** The shortest cluster secret accepted, in characters: 32 base64 characters are 192 bits. */
export const MIN_SECRET_CHARS = 32;

/**
 * The cluster secret from the text of `--cluster-secret-file`, trimmed; plus a warning when the file can
 * be read by others (a Kubernetes secret volume is 0644 by default, so that is a warning, not a refusal).
 *
 * @throws {ConfigError} An empty or short secret; the message never shows it.
 */
export function checkClusterSecret(
  text: string,
  file: { path: string; mode: number | null },
): { secret: string; warning?: string } {
  const secret = text.trim();
  if (secret.length < MIN_SECRET_CHARS) {
    throw invalidSetting({
      setting: "--cluster-secret-file",
      value: file.path,
      problem: secret === ""
        ? "the file is empty"
        : `the secret in it has ${secret.length} characters, fewer than ${MIN_SECRET_CHARS}`,
      expected: `a shared secret of at least ${MIN_SECRET_CHARS} characters`,
      example: "openssl rand -base64 48 > cluster.secret",
    });
  }
  if (file.mode !== null && (file.mode & 0o077) !== 0) {
    return {
      secret,
      warning: `${file.path} can be read by other users (mode ${
        (file.mode & 0o777).toString(8)
      }); run chmod 600 ${file.path}`,
    };
  }
  return { secret };
}

/**
 * A replica keeps no state file: what replicas share lives in Redis, and a file of its own would restore,
 * after a restart, tunnel sessions that another replica holds by then. `--state-dir` (or its variable) is
 * refused with `--redis` unless it says `none`.
 *
 * @throws {ConfigError} A state directory given together with `--redis`.
 */
export function replicaStateDir(
  flag: string | undefined,
  env: (name: string) => string | undefined,
): { dir: undefined; setting: string } {
  const given = flag ?? env(STATE_DIR_ENV)?.trim() ?? "";
  if (given !== "" && given.toLowerCase() !== "none") {
    throw new ConfigError(
      `${
        flag === undefined ? STATE_DIR_ENV : "--state-dir"
      } does not apply with --redis: replicas share their state in Redis, and a state file of one replica would restore sessions that another holds by then; drop it (or give --state-dir none)`,
    );
  }
  return { dir: undefined, setting: "--redis (replicas keep no state file)" };
}
