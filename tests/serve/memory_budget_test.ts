import assert from "node:assert/strict";
import { MemoryBudget } from "../../lib/serve/memory_budget.ts";

Deno.test("MemoryBudget refuses growth past an owner's share and leaves the charge as it was", () => {
  const budget = new MemoryBudget({ totalBytes: 1000, perOwnerBytes: 600 });
  const a = budget.charge("alice", { what: "replay buffer" });
  assert.equal(a.resize(500), true);
  assert.equal(a.resize(601), false);
  assert.equal(a.bytes, 500);
  assert.equal(budget.usedBy("alice"), 500);
  const b = budget.charge("alice", { what: "frame" });
  assert.equal(b.resize(101), false, "two holders of one owner share one share");
  assert.equal(b.resize(100), true);
  assert.equal(budget.used, 600);
});

Deno.test("MemoryBudget refuses growth past the total although the owner is within its share", () => {
  const budget = new MemoryBudget({ totalBytes: 1000, perOwnerBytes: 600 });
  assert.ok(budget.charge("alice", { what: "x" }).resize(600));
  const bob = budget.charge("bob", { what: "x" });
  assert.equal(bob.resize(401), false);
  assert.equal(bob.resize(400), true);
});

Deno.test("MemoryBudget cuts the owner's oldest evictable holders first, never another owner's", () => {
  const budget = new MemoryBudget({ totalBytes: 10_000, perOwnerBytes: 300 });
  const cut: string[] = [];
  const stream = (owner: string, name: string) =>
    budget.charge(owner, { what: "SSE stream", evict: () => cut.push(name) });
  // Bob's stream is the oldest of all: room for alice must still not come out of it.
  const bobs = stream("bob", "bob's");
  const old = stream("alice", "old");
  const mid = stream("alice", "mid");
  assert.ok(old.resize(100));
  assert.ok(mid.resize(100));
  assert.ok(bobs.resize(300));
  const fresh = stream("alice", "fresh");
  assert.equal(fresh.resize(200), true, "room was made by cutting the oldest");
  assert.deepEqual(cut, ["old"]);
  assert.equal(old.released, true);
  assert.equal(mid.bytes, 100);
  assert.equal(budget.usedBy("alice"), 300);
  assert.equal(budget.usedBy("bob"), 300);
});

Deno.test("MemoryBudget does not cut holders that cannot be cut, and refuses instead", () => {
  const budget = new MemoryBudget({ totalBytes: 10_000, perOwnerBytes: 300 });
  const replay = budget.charge("alice", { what: "replay buffer" });
  assert.ok(replay.resize(250));
  const frame = budget.charge("alice", { what: "frame" });
  assert.equal(frame.resize(100), false);
  assert.equal(replay.bytes, 250);
});

Deno.test("Charge.release() gives everything back, and a released charge stays at zero", () => {
  const budget = new MemoryBudget({ totalBytes: 1000, perOwnerBytes: 1000 });
  const charge = budget.charge("alice", { what: "x" });
  charge.resize(700);
  charge.release();
  assert.equal(budget.used, 0);
  assert.equal(budget.owners, 0);
  assert.equal(charge.resize(10), false);
  assert.equal(charge.resize(0), true);
  assert.equal(budget.used, 0);
});

Deno.test("MemoryBudget refuses a share larger than the total", () => {
  assert.throws(() => new MemoryBudget({ totalBytes: 100, perOwnerBytes: 200 }), RangeError);
  assert.throws(() => new MemoryBudget({ totalBytes: 0, perOwnerBytes: 0 }), RangeError);
});
