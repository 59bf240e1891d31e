// chargedExchange and holdAnswer: a request body is charged to its owner while it is handled and refused
// (503) before it is read when the share cannot hold it; a large answer is charged while it is written,
// and replaced by a refusal when it does not fit. Other owners are untouched.

import assert from "node:assert/strict";
import { chargedExchange, holdAnswer, UNCHARGED_BYTES } from "../../lib/serve/exchange_charge.ts";
import { MemoryBudget } from "../../lib/serve/memory_budget.ts";

const MIB = 1024 * 1024;

function post(bytes: number): Request {
  return new Request("http://127.0.0.1/servers/x/mcp", {
    method: "POST",
    headers: { "content-length": String(bytes) },
    body: "x",
  });
}

Deno.test("chargedExchange charges a body while it is handled and refuses one past the share before reading it", async () => {
  const budget = new MemoryBudget({ totalBytes: 64 * MIB, perOwnerBytes: 8 * MIB });
  const who = { budget, owner: "alice", maxBodyBytes: 48 * MIB };
  let during = 0;
  const ok = await chargedExchange(post(5 * MIB), who, () => {
    during = budget.usedBy("alice");
    return Promise.resolve(new Response("{}"));
  });
  assert.equal(ok.status, 200);
  assert.equal(during, 5 * MIB, "charged while handled");
  assert.equal(budget.usedBy("alice"), 0, "released after");
  const held = budget.charge("alice", { what: "replay buffer" });
  held.resize(5 * MIB);
  let handled = false;
  const refused = await chargedExchange(post(5 * MIB), who, () => {
    handled = true;
    return Promise.resolve(new Response("{}"));
  });
  assert.equal(refused.status, 503);
  assert.equal(handled, false, "refused before it is read");
  const body = await refused.json();
  assert.match(body.error.message, /--memory-per-owner/);
  assert.equal(budget.usedBy("bob"), 0);
  held.release();
  await refused.body?.cancel().catch(() => {});
});

Deno.test("an answer past the uncharged size is charged to its owner while written, and refused past the share", async () => {
  const budget = new MemoryBudget({ totalBytes: 64 * MIB, perOwnerBytes: 8 * MIB });
  const who = { budget, owner: "alice", maxBodyBytes: 48 * MIB };
  const small = await chargedExchange(post(10), who, () => Promise.resolve(new Response("{}")));
  assert.equal(holdAnswer(small, UNCHARGED_BYTES), undefined, "small answers are not charged");
  const first = await chargedExchange(post(10), who, () => Promise.resolve(new Response("{}")));
  const hold = holdAnswer(first, 6 * MIB);
  assert.ok(hold !== undefined && "charge" in hold);
  assert.equal(budget.usedBy("alice"), 6 * MIB);
  const second = await chargedExchange(post(10), who, () => Promise.resolve(new Response("{}")));
  const refused = holdAnswer(second, 6 * MIB);
  assert.ok(refused !== undefined && "refusal" in refused);
  assert.equal(refused.refusal.status, 503);
  await refused.refusal.body?.cancel();
  hold.charge.release();
  assert.equal(budget.usedBy("alice"), 0);
  for (const r of [small, first, second]) await r.body?.cancel();
});
