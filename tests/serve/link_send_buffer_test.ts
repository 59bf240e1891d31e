// LinkSendBuffer: what a link has not sent past its free part is charged while it lasts, given back as the
// peer takes it, and past the owner's share the link is told to close.

import assert from "node:assert/strict";
import { FREE_UNSENT_BYTES, LinkSendBuffer } from "../../lib/serve/link_send_buffer.ts";
import { MemoryBudget } from "../../lib/serve/memory_budget.ts";
import { deadline } from "../../lib/util/delay.ts";

const MIB = 1024 * 1024;

async function until(check: () => boolean, what: string): Promise<void> {
  await deadline(
    (async () => {
      while (!check()) await new Promise((resolve) => setTimeout(resolve, 10));
    })(),
    3_000,
    what,
  );
}

Deno.test("LinkSendBuffer charges what is unsent past the free part, after the turn, and gives it back as the peer takes it", async () => {
  const budget = new MemoryBudget({ totalBytes: 64 * MIB, perOwnerBytes: 16 * MIB });
  const socket = { bufferedAmount: FREE_UNSENT_BYTES };
  let full = 0;
  const unsent = new LinkSendBuffer({
    socket,
    charge: budget.charge("alice", { what: "link send buffer" }),
    full: () => full++,
  });
  try {
    unsent.sent();
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(budget.usedBy("alice"), 0, "the free part is not charged");
    socket.bufferedAmount = 3 * MIB;
    unsent.sent();
    assert.equal(budget.usedBy("alice"), 0, "measured after the turn, not at the send");
    await until(() => budget.usedBy("alice") === 3 * MIB, "the charge to follow the unsent bytes");
    socket.bufferedAmount = 0; // the peer read it all
    await until(() => budget.usedBy("alice") === 0, "the charge to follow the drain");
    assert.equal(full, 0);
  } finally {
    unsent.release();
  }
});

Deno.test("LinkSendBuffer past the owner's share calls full once and refuses; another owner is untouched", async () => {
  const budget = new MemoryBudget({ totalBytes: 64 * MIB, perOwnerBytes: 4 * MIB });
  const bob = budget.charge("bob", { what: "replay buffer" });
  bob.resize(3 * MIB);
  const socket = { bufferedAmount: 5 * MIB };
  let full = 0;
  const unsent = new LinkSendBuffer({
    socket,
    charge: budget.charge("alice", { what: "link send buffer" }),
    full: () => full++,
  });
  unsent.sent();
  await until(() => full > 0, "the link to be found full");
  assert.equal(unsent.measure(), false, "a released buffer stays refused");
  assert.equal(full, 1);
  assert.equal(budget.usedBy("alice"), 0);
  assert.equal(budget.usedBy("bob"), 3 * MIB);
  bob.release();
});
