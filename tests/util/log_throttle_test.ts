// Unit tests of LogThrottle with an injected clock.

import assert from "node:assert/strict";
import { heldBackText, LogThrottle } from "../../lib/util/log_throttle.ts";

Deno.test("LogThrottle.take() lets one occurrence a interval through and counts those held back", () => {
  let now = 0;
  const throttle = new LogThrottle({ intervalMs: 1000, now: () => now });
  assert.equal(throttle.take(), 0);
  for (let i = 0; i < 500; i++) assert.equal(throttle.take(), undefined);
  now = 999;
  assert.equal(throttle.take(), undefined);
  now = 1000;
  assert.equal(throttle.take(), 501);
  assert.equal(throttle.take(), undefined);
  now = 5000;
  assert.equal(throttle.take(), 1);
  now = 9000;
  assert.equal(throttle.take(), 0);
});

Deno.test("heldBackText() says nothing when none was held back, else how many and since when", () => {
  assert.equal(heldBackText(0), "");
  assert.equal(heldBackText(3), " (and 3 more since the last warning)");
  assert.equal(heldBackText(1, "the last line"), " (and 1 more since the last line)");
});
