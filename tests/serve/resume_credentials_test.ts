// Unit tests of resume secrets, their constant-time check, and the memory of ended sessions.

import assert from "node:assert/strict";
import { EndedSessions, newResumeToken, sameSecret } from "../../lib/serve/resume_credentials.ts";

Deno.test("newResumeToken() returns distinct 256-bit base64url secrets", () => {
  const tokens = new Set(Array.from({ length: 100 }, () => newResumeToken()));
  assert.equal(tokens.size, 100);
  for (const token of tokens) assert.match(token, /^[A-Za-z0-9_-]{43}$/);
});

Deno.test("sameSecret() matches only the exact secret, whatever the length of a guess", () => {
  assert.ok(sameSecret("abcdef", "abcdef"));
  assert.ok(!sameSecret("abcdef", "abcdeg"));
  assert.ok(!sameSecret("abcdef", "abcde"));
  assert.ok(!sameSecret("abcdef", "abcdefg"));
  assert.ok(!sameSecret("abcdef", ""));
  assert.ok(!sameSecret("", ""), "an empty secret never matches");
});

Deno.test("EndedSessions.why() names the reason only to the owner with the secret, and forgets after keepMs", () => {
  let now = 1_000;
  const ended = new EndedSessions({ keepMs: 500, now: () => now });
  const session = { id: "s1", owner: "alice", matchesToken: (t: string) => t === "secret" };
  ended.add(session, "expired");
  assert.equal(ended.why("s1", "alice", "secret"), "expired");
  assert.equal(ended.why("s1", "bob", "secret"), "wrong-owner");
  assert.equal(ended.why("s1", "alice", "guess"), "bad-token");
  assert.equal(ended.why("s2", "alice", "secret"), "unknown-session");
  now += 501;
  assert.equal(ended.why("s1", "alice", "secret"), "unknown-session");
  assert.equal(ended.size, 0);
});

Deno.test("EndedSessions.add() keeps at most maxEntries, dropping the oldest", () => {
  const ended = new EndedSessions({ keepMs: 60_000, maxEntries: 2 });
  for (const id of ["a", "b", "c"]) {
    ended.add({ id, owner: "o", matchesToken: () => true }, "overflowed");
  }
  assert.equal(ended.size, 2);
  assert.equal(ended.why("a", "o", "x"), "unknown-session");
  assert.equal(ended.why("c", "o", "x"), "overflowed");
});

Deno.test("EndedSessions() rejects a negative keepMs", () => {
  assert.throws(() => new EndedSessions({ keepMs: -1 }), RangeError);
});
