// Attack: 64 calls answered as plain JSON fill every slot of a server, and their client drops all 64
// connections. serve cancels them at once (nothing could resume them), so another client of the same
// owner gets all 64 slots right away and is never told "Too many calls", while another owner is served.

import assert from "node:assert/strict";
import { brokenBounds, runAttack } from "./run_attack.ts";
import { abandonedCalls, SLOTS } from "./scenarios/abandoned_calls.ts";

Deno.test("64 JSON calls abandoned by their client free their slots at once; the owner's next client gets all 64", async () => {
  const run = await runAttack(abandonedCalls);
  assert.deepEqual(brokenBounds(run), []);
  const { inFlight, freedMs, followUp } = run.observed;
  assert.ok(inFlight >= SLOTS, `${inFlight} calls in flight`);
  // At once: serve learns of each dropped connection and cancels; nothing waits for the call timeout.
  assert.ok(freedMs < 2_000, `the slots were freed ${freedMs.toFixed(0)} ms after the drop`);
  assert.deepEqual(followUp.errors, []);
  assert.equal(followUp.ok, SLOTS);
  // 64 calls of 200 ms at once, each in a slot of its own: not one queued behind another.
  assert.ok(followUp.ms < 2_000, `the next client's 64 calls took ${followUp.ms.toFixed(0)} ms`);
});
