// Envelopes between replicas, written and read in one place: a header (kind, origin, target, deadline,
// generation, sid, id, client, nonce, ts) and a payload carried as its own text, signed together with HMAC-SHA256
// under the cluster secret, and checked against the replay guard when opened. The MAC is computed in the
// calling thread (node:crypto), not by Web Crypto's asynchronous sign: envelopes must reach Redis in the
// order they were sent (a call's progress notifications, then its answer), and an asynchronous sign let a
// later envelope overtake an earlier one under load.

import { Buffer } from "node:buffer";
import { createHash, type Hash, randomBytes, timingSafeEqual } from "node:crypto";
import type { ReplayGuard, ReplayRefusal } from "./replay_guard.ts";

/** What an envelope asks of its target. */
export type EnvelopeKind =
  /** A JSON-RPC request for a tunnel session the target holds; `id` is the call's tunnel id. */
  | "call"
  /** The answer of a call, back to its origin. */
  | "answer"
  /** A progress (or other call-bound) notification, back to the call's origin. */
  | "progress"
  /** The origin's client cancelled the call `id`. */
  | "cancel"
  /** The envelope `id` could not be delivered; the payload says why. */
  | "undeliverable"
  /** The MCP client session `client` of a per-client server ended: the holder stops its instance. */
  | "client_end"
  /** A server's notification for the target's clients of that server. */
  | "notify"
  /** A server-initiated request for a client on the target; its answer comes back as `server_answer`. */
  | "server_request"
  | "server_answer"
  /** A newer generation took the tunnel session `sid` over: the target closes its link with 4002. */
  | "supersede"
  /** A legacy SSE POST for a session whose stream the target holds; answered by `forward_answer`. */
  | "forward"
  /** A POST of an SSE link whose stream the target holds; answered by `forward_answer`. */
  | "link_post"
  /** A client resumes a stream the target holds (its Last-Event-ID); answered by `forward_answer`. */
  | "resume"
  | "forward_answer"
  /** Bytes of a resumed stream, from its holder to the replica holding the client's connection. */
  | "stream_data"
  /** The resumed stream's connection at its holder ended. */
  | "stream_end"
  /** The client's connection of a resumed stream ended: the holder stops relaying. */
  | "stream_cancel";

/** What a sender fills in; the seal adds origin, nonce, ts and mac. */
export interface EnvelopeDraft {
  kind: EnvelopeKind;
  /** Replica id of the receiver. */
  target: string;
  /** Wall-clock ms after which the receiver drops the work (and says so to the origin). 0 = none. */
  deadline: number;
  /** Ownership generation the sender acted under (0 when none applies). */
  generation: number;
  /** Tunnel session id (or MCP session id for client-side kinds); "" when none. */
  sid: string;
  /** Correlation id: a call's tunnel id, a request id; "" when none. */
  id: string;
  /**
   * The MCP client session a message belongs to, for a per-client server's instance ("" or absent when
   * none): signed with the rest, as it decides which client's instance a message reaches.
   */
  client?: string;
  /** The message carried (a JSON-RPC message's text), or "". */
  payload: string;
}

/** An envelope as received and checked. */
export interface Envelope extends EnvelopeDraft {
  origin: string;
  nonce: string;
  ts: number;
  mac: string;
}

/** An envelope on the wire: the header JSON, the payload text, the MAC (base64). */
export interface SealedEnvelope {
  header: string;
  payload: string;
  mac: string;
}

/** Why an envelope was refused when opened. */
export type EnvelopeRefusal = "malformed" | "bad_mac" | "wrong_target" | ReplayRefusal;

/** The outcome of {@link EnvelopeSeal.open}. */
export type OpenResult =
  | { ok: true; envelope: Envelope }
  | { ok: false; refusal: EnvelopeRefusal; detail: string };

const KINDS: ReadonlySet<string> = new Set<EnvelopeKind>([
  "call",
  "answer",
  "progress",
  "cancel",
  "undeliverable",
  "client_end",
  "notify",
  "server_request",
  "server_answer",
  "supersede",
  "forward",
  "link_post",
  "resume",
  "forward_answer",
  "stream_data",
  "stream_end",
  "stream_cancel",
]);

/** 32 bytes in base64 with its padding: what {@link EnvelopeSeal.seal} writes, and all `open` decodes. */
const MAC_BASE64 = /^[A-Za-z0-9+/]{43}=$/;

/** SHA-256's block size: HMAC pads its key to it (RFC 2104). */
const BLOCK = 64;

/**
 * HMAC-SHA256 under one key, built from two SHA-256 states that have absorbed the padded key already
 * (RFC 2104: H(K ^ opad || H(K ^ ipad || m))). Each MAC copies them: node:crypto's createHmac under Deno
 * costs about 15 µs for an envelope-sized message, two copied hashes about 6, and an envelope takes two
 * MACs each way.
 */
class Hmac {
  readonly #inner: Hash;
  readonly #outer: Hash;

  constructor(secret: string) {
    const utf8 = Buffer.from(secret, "utf8");
    // A key longer than a block is hashed first (RFC 2104).
    const key = utf8.length > BLOCK ? createHash("sha256").update(utf8).digest() : utf8;
    const inner = Buffer.alloc(BLOCK, 0x36);
    const outer = Buffer.alloc(BLOCK, 0x5c);
    for (let i = 0; i < key.length; i++) {
      inner[i]! ^= key[i]!;
      outer[i]! ^= key[i]!;
    }
    this.#inner = createHash("sha256").update(inner);
    this.#outer = createHash("sha256").update(outer);
  }

  /** The signed bytes: the header JSON holds no raw line feed, so the split is unambiguous. */
  of(header: string, payload: string): Buffer {
    const inner = this.#inner.copy().update(header).update("\n").update(payload).digest();
    return this.#outer.copy().update(inner).digest();
  }
}

type Header = Omit<Envelope, "payload" | "mac"> & { client: string };

function readHeader(text: string): Header | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const h = value as Record<string, unknown>;
  const strings = ["kind", "origin", "target", "sid", "id", "client", "nonce"] as const;
  const numbers = ["deadline", "generation", "ts"] as const;
  if (strings.some((k) => typeof h[k] !== "string")) return undefined;
  if (numbers.some((k) => typeof h[k] !== "number" || !Number.isFinite(h[k]))) return undefined;
  if (!KINDS.has(h.kind as string)) return undefined;
  return h as unknown as Header;
}

/** Options of {@link EnvelopeSeal.create}. */
export interface EnvelopeSealOptions {
  /** The shared cluster secret. */
  secret: string;
  /** This replica's id: the origin of what it seals, the only target it opens. */
  replicaId: string;
  /** Refuses replays and stale envelopes. */
  guard: ReplayGuard;
  /** Wall clock in ms. */
  now?: () => number;
}

/**
 * Seals envelopes this replica sends and opens those sent to it.
 *
 * @example
 * ```ts
 * import { EnvelopeSeal } from "./envelope.ts";
 * import { ReplayGuard } from "./replay_guard.ts";
 * const secret = "x".repeat(32);
 * const a = EnvelopeSeal.create({ secret, replicaId: "a", guard: new ReplayGuard({ maxNonces: 10 }) });
 * const b = EnvelopeSeal.create({ secret, replicaId: "b", guard: new ReplayGuard({ maxNonces: 10 }) });
 * const sealed = a.seal({
 *   kind: "call", target: "b", deadline: 0, generation: 1, sid: "s", id: "a.1", payload: "{}",
 * });
 * b.open(sealed).ok; // true
 * ```
 */
export class EnvelopeSeal {
  readonly #mac: Hmac;
  readonly #replicaId: string;
  readonly #guard: ReplayGuard;
  readonly #now: () => number;

  private constructor(mac: Hmac, options: EnvelopeSealOptions) {
    this.#mac = mac;
    this.#replicaId = options.replicaId;
    this.#guard = options.guard;
    this.#now = options.now ?? Date.now;
  }

  /** Takes the secret as the HMAC-SHA256 key. */
  static create(options: EnvelopeSealOptions): EnvelopeSeal {
    return new EnvelopeSeal(new Hmac(options.secret), options);
  }

  /** This replica's id. */
  get replicaId(): string {
    return this.#replicaId;
  }

  /**
   * Adds origin, a fresh nonce and the time, and signs header and payload, synchronously: envelopes
   * sealed in order are sent in order.
   */
  seal(draft: EnvelopeDraft): SealedEnvelope {
    const header: Header = {
      kind: draft.kind,
      origin: this.#replicaId,
      target: draft.target,
      deadline: draft.deadline,
      generation: draft.generation,
      sid: draft.sid,
      id: draft.id,
      client: draft.client ?? "",
      nonce: randomBytes(16).toString("base64"),
      ts: this.#now(),
    };
    const text = JSON.stringify(header);
    return {
      header: text,
      payload: draft.payload,
      mac: this.#mac.of(text, draft.payload).toString("base64"),
    };
  }

  /**
   * Checks the MAC first (nothing unsigned is parsed further), then the target, then the replay guard.
   * A refusal says why; the caller counts and logs it.
   */
  open(sealed: SealedEnvelope): OpenResult {
    if (!MAC_BASE64.test(sealed.mac)) {
      return { ok: false, refusal: "malformed", detail: "the MAC is not 32 bytes of base64" };
    }
    const mac = Buffer.from(sealed.mac, "base64");
    if (!timingSafeEqual(this.#mac.of(sealed.header, sealed.payload), mac)) {
      return { ok: false, refusal: "bad_mac", detail: "the MAC does not match (another secret?)" };
    }
    const header = readHeader(sealed.header);
    if (header === undefined) {
      return { ok: false, refusal: "malformed", detail: "the header is not an envelope header" };
    }
    if (header.target !== this.#replicaId) {
      return {
        ok: false,
        refusal: "wrong_target",
        detail: `it is for replica ${header.target}, from ${header.origin}`,
      };
    }
    const replay = this.#guard.check(header.ts, header.nonce);
    if (replay !== undefined) {
      const skew = Math.round((this.#now() - header.ts) / 1000);
      const detail = replay === "stale"
        ? `its time is ${skew} s from this replica's clock, from ${header.origin}`
        : replay === "replay"
        ? `its nonce was seen already, from ${header.origin}`
        : `more nonces than --cluster-max-nonces in one window, from ${header.origin}`;
      return { ok: false, refusal: replay, detail };
    }
    return { ok: true, envelope: { ...header, payload: sealed.payload, mac: sealed.mac } };
  }
}
