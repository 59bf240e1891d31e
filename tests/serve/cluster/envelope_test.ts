import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import {
  type EnvelopeDraft,
  EnvelopeSeal,
  type OpenResult,
  type SealedEnvelope,
} from "../../../lib/serve/cluster/envelope.ts";
import { ReplayGuard } from "../../../lib/serve/cluster/replay_guard.ts";

const SECRET = "cluster-secret-of-at-least-32-chars!";

function draft(overrides: Partial<EnvelopeDraft> = {}): EnvelopeDraft {
  return {
    kind: "call",
    target: "b",
    deadline: 0,
    generation: 3,
    sid: "sess-1",
    id: "a.7",
    client: "mcp-session-9",
    payload: '{"jsonrpc":"2.0","id":"a.7","method":"tools/list"}',
    ...overrides,
  };
}

function pair(clock: { t: number }, options: { maxNonces?: number; secretB?: string } = {}) {
  const now = () => clock.t;
  const a = EnvelopeSeal.create({
    secret: SECRET,
    replicaId: "a",
    guard: new ReplayGuard({ maxNonces: 100, now }),
    now,
  });
  const b = EnvelopeSeal.create({
    secret: options.secretB ?? SECRET,
    replicaId: "b",
    guard: new ReplayGuard({ maxNonces: options.maxNonces ?? 100, now }),
    now,
  });
  return { a, b };
}

function refusal(result: OpenResult): string {
  assert.ok(!result.ok, "opened");
  return result.refusal;
}

Deno.test("EnvelopeSeal.open() returns what seal() signed, with origin, nonce and time", () => {
  const clock = { t: 1_700_000_000_000 };
  const { a, b } = pair(clock);
  const sealed = a.seal(draft());
  const opened = b.open(sealed);
  assert.ok(opened.ok);
  const { nonce, mac, ...rest } = opened.envelope;
  assert.deepEqual(rest, { ...draft(), origin: "a", ts: clock.t });
  assert.equal(nonce.length, 24);
  assert.equal(mac, sealed.mac);
  // Two seals of the same draft differ in their nonce.
  assert.notEqual(
    JSON.parse((a.seal(draft())).header).nonce,
    JSON.parse(sealed.header).nonce,
  );
});

Deno.test("EnvelopeSeal.open() refuses a changed payload, header or MAC, and another secret", () => {
  const clock = { t: 1_700_000_000_000 };
  const { a, b } = pair(clock);
  const sealed = a.seal(draft());
  const tamper = (change: Partial<SealedEnvelope>) => b.open({ ...sealed, ...change });
  assert.equal(
    refusal(tamper({ payload: sealed.payload.replace("list", "call") })),
    "bad_mac",
  );
  assert.equal(
    refusal(tamper({ header: sealed.header.replace('"generation":3', '"generation":4') })),
    "bad_mac",
  );
  // The client session decides which client's per-client instance a message reaches: signed too.
  assert.equal(
    refusal(tamper({ header: sealed.header.replace("mcp-session-9", "mcp-session-8") })),
    "bad_mac",
  );
  assert.equal(refusal(tamper({ mac: btoa("x".repeat(32)) })), "bad_mac");
  assert.equal(refusal(tamper({ mac: "not base64!" })), "malformed");
  const other = pair(clock, { secretB: `${SECRET}-other` });
  assert.equal(refusal(other.b.open(other.a.seal(draft()))), "bad_mac");
  // The untampered one still opens: the refusals did not use up its nonce.
  assert.ok((b.open(sealed)).ok);
});

Deno.test("EnvelopeSeal.open() refuses a duplicate, a stale or future time, and another target", () => {
  const clock = { t: 1_700_000_000_000 };
  const { a, b } = pair(clock);
  const sealed = a.seal(draft());
  assert.ok((b.open(sealed)).ok);
  const again = b.open(sealed);
  assert.equal(refusal(again), "replay");
  assert.ok(!again.ok && /nonce was seen already, from a/.test(again.detail));

  const old = a.seal(draft());
  clock.t += 30_001;
  const stale = b.open(old);
  assert.equal(refusal(stale), "stale");
  assert.ok(
    !stale.ok && /-?30 s from this replica's clock/.test(stale.detail),
    stale.ok ? "" : stale.detail,
  );
  clock.t -= 30_001;

  clock.t += 30_001;
  const future = a.seal(draft());
  clock.t -= 30_001;
  assert.equal(refusal(b.open(future)), "stale");

  assert.equal(refusal(b.open(a.seal(draft({ target: "c" })))), "wrong_target");
  // Within ±30 s it is fresh.
  const edge = a.seal(draft());
  clock.t += 30_000;
  assert.ok((b.open(edge)).ok);
});

Deno.test("ReplayGuard refuses past maxNonces in one window and forgets old windows", () => {
  const clock = { t: 90_000 };
  const guard = new ReplayGuard({ maxNonces: 3, now: () => clock.t });
  assert.equal(guard.check(90_000, "n1"), undefined);
  assert.equal(guard.check(90_001, "n2"), undefined);
  assert.equal(guard.check(90_002, "n3"), undefined);
  assert.equal(guard.check(90_003, "n4"), "nonce_limit");
  // Another window (timestamps of the next bucket) has room of its own.
  assert.equal(guard.check(120_000, "n4"), undefined);
  assert.equal(guard.size, 4);
  clock.t = 150_001; // bucket [90 s, 120 s) is now older than the window: forgotten
  assert.equal(guard.check(150_001, "n5"), undefined);
  assert.equal(guard.size, 2);
  assert.equal(guard.check(90_000, "n1"), "stale");
});

Deno.test("ReplayGuard refuses bad bounds", () => {
  assert.throws(() => new ReplayGuard({ maxNonces: 0 }), /'maxNonces' must be a positive integer/);
  assert.throws(() => new ReplayGuard({ maxNonces: 1, windowMs: 0 }), /'windowMs' must be > 0/);
});

Deno.test("EnvelopeSeal seals and opens a 16 MiB payload intact", () => {
  const clock = { t: 1_700_000_000_000 };
  const { a, b } = pair(clock);
  const payload = JSON.stringify({ jsonrpc: "2.0", id: 1, result: { text: "é".repeat(8 << 20) } });
  const opened = b.open(a.seal(draft({ payload })));
  assert.ok(opened.ok);
  assert.equal(opened.envelope.payload.length, payload.length);
  assert.ok(opened.envelope.payload === payload);
});

Deno.test("EnvelopeSeal's MAC is HMAC-SHA256 of header, a line feed and payload, for short and long secrets", () => {
  for (const secret of [SECRET, "s".repeat(64), `${"long secret ".repeat(12)}é`]) {
    const seal = EnvelopeSeal.create({
      secret,
      replicaId: "a",
      guard: new ReplayGuard({ maxNonces: 10 }),
    });
    const sealed = seal.seal(draft());
    const expected = createHmac("sha256", secret).update(`${sealed.header}\n${sealed.payload}`)
      .digest("base64");
    assert.equal(sealed.mac, expected, `secret of ${secret.length} characters`);
  }
});
