// Attack: authenticated links that never register but keep sending heartbeats. Each is closed with 4008
// "register timeout" within --register-timeout whatever it sends, and until then it holds a place under
// its owner's --max-sessions-per-owner (the one past the limit is refused with 4029), while another
// owner's calls through a real tunnel go on.

import assert from "node:assert/strict";
import { CloseCode } from "../../lib/protocol/frames.ts";
import { brokenBounds, runAttack } from "./run_attack.ts";
import {
  heartbeatSquatters,
  REGISTER_TIMEOUT_S,
  sessionLimitSquatters,
  SQUATTERS,
} from "./scenarios/unregistered_links.ts";

Deno.test("500 links that only send heartbeats are closed 4008 within --register-timeout; another owner is served", async () => {
  const run = await runAttack(heartbeatSquatters);
  assert.deepEqual(brokenBounds(run), []);
  for (const close of run.observed.closes) {
    assert.equal(close.code, CloseCode.RegisterTimeout);
    assert.equal(close.reason, "register timeout");
    // Within the timeout, plus a little for the close to travel (500 at once on 2 cores).
    assert.ok(close.afterMs < REGISTER_TIMEOUT_S * 1000 + 1_500, `closed after ${close.afterMs}`);
  }
  // Their heartbeats were answered, and still did not keep them alive.
  const { answered } = run.observed;
  assert.ok(answered >= SQUATTERS * 0.9, `${answered} of ${SQUATTERS} links had heartbeat replies`);
  assert.ok(run.victimDuring.ok > 10);
});

Deno.test("an owner's unregistered links count against its limit: the 33rd is refused with 4029", async () => {
  const run = await runAttack(sessionLimitSquatters);
  assert.deepEqual(brokenBounds(run), []);
  assert.equal(run.observed.refused.code, CloseCode.TooManySessions);
  assert.equal(run.observed.refused.reason, "too many sessions for this owner");
  // The 32 were still up (until their register timeout), and the victim's owner was never counted.
  assert.ok(run.observed.othersOpen);
});
