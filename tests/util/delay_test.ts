// Unit tests of delay(), deadline() and settleWithin(): abort and timeout paths, and no timer or listener left behind
// (the op sanitizer fails a test that leaves a timer running).

import assert from "node:assert/strict";
import { deadline, delay, settleWithin } from "../../lib/util/delay.ts";

/** Counts the abort listeners added to and removed from a signal. */
function countListeners(signal: AbortSignal): { added: number; removed: number } {
  const counts = { added: 0, removed: 0 };
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = (...args: Parameters<typeof add>) => {
    counts.added++;
    add(...args);
  };
  signal.removeEventListener = (...args: Parameters<typeof remove>) => {
    counts.removed++;
    remove(...args);
  };
  return counts;
}

Deno.test("delay() resolves after the time has passed", async () => {
  const start = performance.now();
  await deadline(delay(30), 5000, "delay");
  assert.ok(performance.now() - start >= 25);
});

Deno.test("delay() rejects with the signal's reason on abort and leaves no timer", async () => {
  const controller = new AbortController();
  const reason = new Error("stop now");
  const waiting = delay(60_000, controller.signal);
  controller.abort(reason);
  await assert.rejects(deadline(waiting, 1000, "delay"), (error) => error === reason);
});

Deno.test("delay() rejects at once with the reason of an already aborted signal", async () => {
  const reason = new Error("already");
  await assert.rejects(
    deadline(delay(60_000, AbortSignal.abort(reason)), 1000, "delay"),
    (error) => error === reason,
  );
});

Deno.test("delay() rejects with the default AbortError when aborted without a reason", async () => {
  const controller = new AbortController();
  const waiting = delay(60_000, controller.signal);
  controller.abort();
  await assert.rejects(deadline(waiting, 1000, "delay"), { name: "AbortError" });
});

Deno.test("delay() removes its abort listener when the time passes", async () => {
  const controller = new AbortController();
  const counts = countListeners(controller.signal);
  await deadline(delay(1, controller.signal), 5000, "delay");
  assert.deepEqual(counts, { added: 1, removed: 1 });
  // A later abort must not reach a settled delay.
  controller.abort(new Error("late"));
});

Deno.test("deadline() resolves with the value when the promise wins and leaves no timer", async () => {
  assert.equal(await deadline(Promise.resolve(42), 60_000, "answer"), 42);
});

Deno.test("deadline() passes the promise's rejection through and leaves no timer", async () => {
  const failure = new Error("boom");
  await assert.rejects(deadline(Promise.reject(failure), 60_000), (error) => error === failure);
});

Deno.test("deadline() rejects with a TimeoutError naming what timed out", async () => {
  const never = new Promise<never>(() => {});
  await assert.rejects(deadline(never, 20, "gateway handshake"), (error) => {
    assert.ok(error instanceof DOMException);
    assert.equal(error.name, "TimeoutError");
    assert.equal(error.message, "gateway handshake timed out after 20 ms");
    return true;
  });
});

Deno.test("deadline() names an operation when not told what", async () => {
  await assert.rejects(deadline(new Promise<never>(() => {}), 10), {
    name: "TimeoutError",
    message: "operation timed out after 10 ms",
  });
});

Deno.test("settleWithin() waits for its promises, rejected ones too, and no longer than its bound", async () => {
  const order: string[] = [];
  const late = delay(20).then(() => order.push("settled"));
  await settleWithin([late, Promise.reject(new Error("refused"))], 5_000);
  order.push("returned");
  assert.deepEqual(order, ["settled", "returned"]);
  // One that never settles holds it for the bound only, and leaves no timer (the sanitizer checks).
  const start = performance.now();
  await deadline(settleWithin([new Promise(() => {})], 30), 5_000, "settleWithin");
  assert.ok(performance.now() - start >= 25);
});
