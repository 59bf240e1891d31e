// Resume credentials of the `resume` extension (docs/resume.md): the per-session secret, its hash (all
// that is ever stored), its constant-time check, and a bounded memory of recently ended sessions so that a
// late resume learns why it cannot be.

import { createHash } from "node:crypto";

/** Why a requested resumption was refused, as `register_ack.resumeError` says it. */
export type ResumeError =
  | "unknown-session"
  | "expired"
  | "overflowed"
  | "wrong-owner"
  | "bad-token"
  | "bad-ack"
  /** Removed by its owner or an operator: the client must not come back (it exits, code 4). */
  | "evicted"
  /** A newer registration of the same server took over. */
  | "superseded";

/**
 * A fresh resume secret: 256 random bits, base64url without padding.
 *
 * @example
 * ```ts
 * import { newResumeToken } from "./resume_credentials.ts";
 * newResumeToken().length; // 43
 * ```
 */
export function newResumeToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}

/**
 * The SHA-256 of a resume secret, base64url: what a session keeps to check a presented secret, and all
 * that the state store ever holds of it. The secret has 256 random bits, so no salt or slow hash is
 * needed: the hash cannot be reversed by guessing.
 *
 * @example
 * ```ts
 * import { hashToken } from "./resume_credentials.ts";
 * hashToken("secret").length; // 43
 * ```
 */
export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("base64url");
}

/**
 * Compares a presented secret with the expected one in time that depends only on the expected length,
 * so that response timing does not reveal how much of a guess was right.
 *
 * @example
 * ```ts
 * import { sameSecret } from "./resume_credentials.ts";
 * sameSecret("abc", "abc"); // true
 * sameSecret("abc", "abd"); // false
 * ```
 */
export function sameSecret(expected: string, presented: string): boolean {
  let diff = expected.length ^ presented.length;
  for (let i = 0; i < expected.length; i++) {
    // charCodeAt past the end is NaN, which `^` treats as 0; the length check above already differs.
    diff |= expected.charCodeAt(i) ^ presented.charCodeAt(i);
  }
  return diff === 0 && expected.length > 0;
}

/** What {@link EndedSessions} needs of a session. */
export interface EndedSession {
  readonly id: string;
  readonly owner: string;
  /** True if `token` is this session's resume secret (constant time). */
  matchesToken(token: string): boolean;
}

/** Options of {@link EndedSessions}. */
export interface EndedSessionsOptions {
  /** How long an ended session is remembered, in milliseconds. */
  keepMs: number;
  /** Sessions remembered at most; the oldest is forgotten first. */
  maxEntries?: number;
  /** The clock. Default `Date.now`. */
  now?: () => number;
}

/**
 * Sessions that ended while they could still have been resumed (window expired, buffer overflowed), kept a
 * while so that a late `register` with `resume` gets the real reason instead of `unknown-session`.
 *
 * @example
 * ```ts
 * import { EndedSessions } from "./resume_credentials.ts";
 * const ended = new EndedSessions({ keepMs: 60_000 });
 * ended.add({ id: "s", owner: "alice", matchesToken: (t) => t === "secret" }, "expired");
 * ended.why("s", "alice", "secret"); // "expired"
 * ended.why("s", "bob", "secret"); // "wrong-owner"
 * ```
 */
export class EndedSessions {
  #entries = new Map<string, { session: EndedSession; reason: ResumeError; at: number }>();
  #keepMs: number;
  #maxEntries: number;
  #now: () => number;

  constructor(options: EndedSessionsOptions) {
    const { keepMs, maxEntries = 4096, now = Date.now } = options;
    if (!(keepMs >= 0) || !Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError(
        `Cannot remember ended sessions as 'keepMs' must be non-negative and 'maxEntries' a positive integer: current values are ${keepMs} and ${maxEntries}`,
      );
    }
    this.#keepMs = keepMs;
    this.#maxEntries = maxEntries;
    this.#now = now;
  }

  /** Number of sessions remembered. */
  get size(): number {
    return this.#entries.size;
  }

  /** Remembers why a session ended, `at` then (default now; earlier for one restored from the store). */
  add(session: EndedSession, reason: ResumeError, at = this.#now()): void {
    this.prune();
    this.#entries.delete(session.id);
    this.#entries.set(session.id, { session, reason, at });
    for (const id of this.#entries.keys()) {
      if (this.#entries.size <= this.#maxEntries) break;
      this.#entries.delete(id);
    }
  }

  /** Why the session `id` cannot be resumed by `owner` with `token`. */
  why(id: string, owner: string, token: string): ResumeError {
    this.prune();
    const entry = this.#entries.get(id);
    if (entry === undefined) return "unknown-session";
    if (entry.session.owner !== owner) return "wrong-owner";
    if (!entry.session.matchesToken(token)) return "bad-token";
    return entry.reason;
  }

  /** Forgets sessions older than `keepMs`. */
  prune(): void {
    const oldest = this.#now() - this.#keepMs;
    // Insertion order is age order: stop at the first young one.
    for (const [id, entry] of this.#entries) {
      if (entry.at >= oldest) break;
      this.#entries.delete(id);
    }
  }
}
