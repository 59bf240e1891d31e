// LinkSendBuffer: what a link has not sent is charged while it lasts, given back as the peer takes it,
// and past the owner's share the link is told to close.

import assert from "node:assert/strict";
import { LinkSendBuffer } from "../../lib/serve/link_send_buffer.ts";
import { MemoryBudget } from "../../lib/serve/memory_budget.ts";
import { deadline } from "../../lib/util/delay.ts";

async function until(check: () => boolean, what: string): Promise<void> {
  await deadline(
    (async () => {
      while (!check()) await new Promise((resolve) => setTimeout(resolve, 20));
    })(),
    3_000,
    what,
  );
}

Deno.test("LinkSendBuffer charges what is unsent and gives it back as the peer takes it, without another send", async () => {
  const budget = new MemoryBudget({ totalBytes: 1000, perOwnerBytes: 500 });
  const socket = { bufferedAmount: 0 };
  let full = 0;
  const unsent = new LinkSendBuffer({
    socket,
    charge: budget.charge("alice", { what: "link send buffer" }),
    full: () => full++,
  });
  try {
    socket.bufferedAmount = 300;
    assert.equal(unsent.measure(), true);
    assert.equal(budget.usedBy("alice"), 300);
    socket.bufferedAmount = 0; // the peer read it all
    await until(() => budget.usedBy("alice") === 0, "the charge to follow the drain");
    assert.equal(full, 0);
  } finally {
    unsent.release();
  }
});

Deno.test("LinkSendBuffer past the owner's share calls full once and refuses; another owner is untouched", () => {
  const budget = new MemoryBudget({ totalBytes: 1000, perOwnerBytes: 500 });
  const bob = budget.charge("bob", { what: "replay buffer" });
  bob.resize(400);
  const socket = { bufferedAmount: 600 };
  let full = 0;
  const unsent = new LinkSendBuffer({
    socket,
    charge: budget.charge("alice", { what: "link send buffer" }),
    full: () => full++,
  });
  assert.equal(unsent.measure(), false);
  assert.equal(unsent.measure(), false, "a released buffer stays refused");
  assert.equal(full, 1);
  assert.equal(budget.usedBy("alice"), 0);
  assert.equal(budget.usedBy("bob"), 400);
  bob.release();
});
