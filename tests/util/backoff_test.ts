// Unit tests of backoffDelay: full jitter over a capped exponential ceiling, and input checks; and of
// reconnectDelay: the quick schedule after a healthy link, the normal one otherwise.

import assert from "node:assert/strict";
import { backoffDelay, QUICK_RECONNECT, reconnectDelay } from "../../lib/util/backoff.ts";

/** Just below 1: the top of what `Math.random` can return. */
const TOP = 1 - Number.EPSILON;

Deno.test("backoffDelay() doubles the ceiling each attempt from baseMs", () => {
  const half = () => 0.5;
  assert.equal(backoffDelay(1, { baseMs: 1000, random: half }), 500);
  assert.equal(backoffDelay(2, { baseMs: 1000, random: half }), 1000);
  assert.equal(backoffDelay(3, { baseMs: 1000, random: half }), 2000);
  assert.equal(backoffDelay(4, { baseMs: 1000, random: half }), 4000);
});

Deno.test("backoffDelay() spans [0, ceiling) with full jitter", () => {
  assert.equal(backoffDelay(3, { baseMs: 1000, random: () => 0 }), 0);
  assert.equal(backoffDelay(3, { baseMs: 1000, random: () => TOP }), 3999);
  assert.equal(backoffDelay(1, { baseMs: 1000, random: () => TOP }), 999);
});

Deno.test("backoffDelay() caps the ceiling at maxMs", () => {
  assert.equal(backoffDelay(10, { baseMs: 1000, maxMs: 5000, random: () => 0.5 }), 2500);
  assert.equal(backoffDelay(10, { baseMs: 1000, maxMs: 5000, random: () => TOP }), 4999);
});

Deno.test("backoffDelay() caps at 60 s by default", () => {
  assert.equal(backoffDelay(30, { baseMs: 1000, random: () => 0.5 }), 30_000);
  assert.equal(backoffDelay(30, { baseMs: 1000, random: () => TOP }), 59_999);
});

Deno.test("backoffDelay() stays finite and capped for a huge attempt number", () => {
  const delay = backoffDelay(100_000, { baseMs: 1000, maxMs: 7000, random: () => 0.5 });
  assert.equal(delay, 3500);
});

Deno.test("backoffDelay() is 0 when baseMs is 0", () => {
  assert.equal(backoffDelay(5, { baseMs: 0, random: () => 0.9 }), 0);
});

Deno.test("backoffDelay() with the default random stays within [0, ceiling) and is an integer", () => {
  for (let i = 0; i < 1000; i++) {
    const delay = backoffDelay(3, { baseMs: 100 });
    assert.ok(Number.isInteger(delay) && delay >= 0 && delay < 400, `delay ${delay}`);
  }
});

Deno.test("backoffDelay() throws RangeError for an attempt that is not a positive integer", () => {
  for (const attempt of [0, -1, 1.5, Number.NaN]) {
    assert.throws(() => backoffDelay(attempt, { baseMs: 1000 }), {
      name: "RangeError",
      message:
        `Cannot compute backoff as 'attempt' must be a positive integer: current value is ${attempt}`,
    });
  }
});

Deno.test("backoffDelay() throws RangeError for a negative or NaN baseMs", () => {
  for (const baseMs of [-1, Number.NaN]) {
    assert.throws(() => backoffDelay(1, { baseMs }), {
      name: "RangeError",
      message: `Cannot compute backoff as 'baseMs' must be >= 0: current value is ${baseMs}`,
    });
  }
});

Deno.test("backoffDelay() throws RangeError for a negative or NaN maxMs", () => {
  assert.throws(() => backoffDelay(1, { baseMs: 10, maxMs: -1 }), RangeError);
  assert.throws(() => backoffDelay(1, { baseMs: 10, maxMs: NaN }), /'maxMs' must be >= 0/);
});

Deno.test("reconnectDelay() after a healthy link waits less than 50 ms for the first attempt", () => {
  for (const baseMs of [1000, 5000, 60_000]) {
    const top = reconnectDelay(1, { baseMs, afterHealthy: true, random: () => TOP });
    assert.ok(top <= 50, `first attempt after ${top} ms with a ${baseMs} ms base`);
    assert.equal(reconnectDelay(1, { baseMs, afterHealthy: true, random: () => 0 }), 0);
  }
  assert.equal(QUICK_RECONNECT.firstJitterMs, 50);
});

Deno.test("reconnectDelay() after a healthy link doubles a small ceiling up to the base, then backs off normally", () => {
  const ceilings = Array.from(
    { length: 13 },
    (_, i) => reconnectDelay(i + 1, { baseMs: 1000, afterHealthy: true, random: () => TOP }) + 1,
  );
  assert.deepEqual(
    ceilings,
    [50, 100, 200, 400, 800, 1000, 1000, 1000, 1000, 1000, 1000, 2000, 4000],
  );
});

Deno.test("reconnectDelay() after a healthy link is never slower than the normal backoff", () => {
  for (const baseMs of [10, 50, 100, 1000]) {
    for (let attempt = 1; attempt <= 20; attempt++) {
      const quick = reconnectDelay(attempt, { baseMs, afterHealthy: true, random: () => TOP });
      const normal = backoffDelay(attempt, { baseMs, random: () => TOP });
      assert.ok(quick <= normal, `attempt ${attempt}, base ${baseMs}: ${quick} > ${normal}`);
    }
  }
});

Deno.test("reconnectDelay() after a link that was not healthy is the normal backoff", () => {
  for (let attempt = 1; attempt <= 8; attempt++) {
    assert.equal(
      reconnectDelay(attempt, { baseMs: 1000, afterHealthy: false, random: () => 0.5 }),
      backoffDelay(attempt, { baseMs: 1000, random: () => 0.5 }),
    );
  }
  assert.equal(reconnectDelay(1, { baseMs: 1000, afterHealthy: false, random: () => TOP }), 999);
});

Deno.test("reconnectDelay() checks its inputs as backoffDelay does", () => {
  assert.throws(() => reconnectDelay(0, { baseMs: 1000, afterHealthy: true }), RangeError);
  assert.throws(() => reconnectDelay(1, { baseMs: -1, afterHealthy: true }), /'baseMs' must be/);
});
