// Unit tests of Deadlines: one timer for many keys, expiry in time, deletion, re-arming, and no timer left.

import assert from "node:assert/strict";
import { type DeadlineClock, Deadlines } from "../../lib/util/deadlines.ts";
import { deadline } from "../../lib/util/delay.ts";

/** A clock that only moves when told, and records the timers armed on it. */
class FakeClock implements DeadlineClock {
  time = 0;
  armed = 0;
  #timers = new Map<number, { at: number; callback: () => void }>();
  #next = 1;

  now(): number {
    return this.time;
  }
  setTimeout(callback: () => void, ms: number): unknown {
    this.armed++;
    const id = this.#next++;
    this.#timers.set(id, { at: this.time + ms, callback });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }
  get pending(): number {
    return this.#timers.size;
  }
  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const until = this.time + ms;
    for (let guard = 0; guard < 10_000; guard++) {
      const due = [...this.#timers].filter(([, t]) =>
        t.at <= until
      ).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      this.#timers.delete(due[0]);
      this.time = due[1].at;
      due[1].callback();
    }
    this.time = until;
  }
}

Deno.test("Deadlines arms no timer per call for a thousand calls answered in time", () => {
  const clock = new FakeClock();
  const deadlines = new Deadlines<number>(clock);
  const expired: number[] = [];
  for (let i = 0; i < 1000; i++) {
    clock.time = i; // one call per millisecond, each with the same timeout
    deadlines.add(i, 30_000, () => expired.push(i));
  }
  assert.equal(clock.armed, 1);
  // All but three are answered in time.
  for (let i = 0; i < 1000; i++) if (i !== 10 && i !== 500 && i !== 999) deadlines.delete(i);
  clock.advance(30_000 - 1000 + 10 - 1); // t = 30,009: nothing is due yet
  assert.deepEqual(expired, []);
  clock.advance(2_000);
  assert.deepEqual(expired, [10, 500, 999]);
  assert.equal(deadlines.size, 0);
  // The first timer, then one for each call that did time out: none for the 997 answered ones.
  assert.ok(clock.armed <= 4, `armed ${clock.armed} timers`);
  assert.equal(clock.pending, 0);
});

Deno.test("Deadlines re-arms for an earlier deadline and for what remains after a firing", () => {
  const clock = new FakeClock();
  const deadlines = new Deadlines<string>(clock);
  const expired: string[] = [];
  deadlines.add("long", 1000, () => expired.push("long"));
  deadlines.add("short", 100, () => expired.push("short"));
  clock.advance(100);
  assert.deepEqual(expired, ["short"]);
  assert.equal(clock.pending, 1, "armed again for the long one");
  // A callback may add a key; it is honoured too.
  deadlines.add("chained", 50, () => {
    expired.push("chained");
    deadlines.add("after", 10, () => expired.push("after"));
  });
  clock.advance(50);
  clock.advance(10);
  assert.deepEqual(expired, ["short", "chained", "after"]);
  clock.advance(840);
  assert.deepEqual(expired, ["short", "chained", "after", "long"]);
  assert.equal(clock.pending, 0);
});

Deno.test("Deadlines.clear() forgets every key and stops the timer", () => {
  const clock = new FakeClock();
  const deadlines = new Deadlines<number>(clock);
  let fired = 0;
  deadlines.add(1, 10, () => fired++);
  deadlines.add(2, 20, () => fired++);
  deadlines.clear();
  assert.equal(clock.pending, 0);
  clock.advance(100);
  assert.equal(fired, 0);
  assert.equal(deadlines.size, 0);
});

Deno.test("Deadlines on the real clock expires a key in time and leaves no timer behind", async () => {
  const deadlines = new Deadlines<string>();
  const started = performance.now();
  const expired = new Promise<number>((resolve) =>
    deadlines.add("call", 30, () => resolve(performance.now() - started))
  );
  deadlines.add("answered", 10, () => assert.fail("a deleted key expired"));
  deadlines.delete("answered");
  const after = await deadline(expired, 5_000, "the deadline");
  assert.ok(after >= 29, `expired after ${after} ms`);
  deadlines.clear(); // the sanitizers check that no timer is left
});
