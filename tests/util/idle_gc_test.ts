import assert from "node:assert/strict";
import { fullCollection, IdleCollector } from "../../lib/util/idle_gc.ts";
import { deadline } from "../../lib/util/delay.ts";

const MIB = 1024 * 1024;

Deno.test("IdleCollector collects once large releases stop for the quiet time", async () => {
  const collected = Promise.withResolvers<number>();
  const idle = new IdleCollector({
    quietMs: 30,
    minIntervalMs: 0,
    collect: () => collected.resolve(performance.now()),
    unref: false,
  });
  try {
    const start = performance.now();
    idle.released(8 * MIB);
    idle.released(8 * MIB); // re-arms: collection 30 ms after this one
    const at = await collected.promise;
    assert.ok(at - start >= 29, `collected after ${at - start} ms`);
  } finally {
    idle.close();
  }
});

Deno.test("IdleCollector adds small releases up: 64 KiB pieces arm a collection once they pass the threshold", async () => {
  const collected = Promise.withResolvers<void>();
  const idle = new IdleCollector({
    thresholdBytes: MIB,
    quietMs: 10,
    minIntervalMs: 0,
    collect: () => collected.resolve(),
    unref: false,
  });
  try {
    for (let i = 0; i < 15; i++) idle.released(64 * 1024);
    assert.equal(idle.armed, false, "15 × 64 KiB is under 1 MiB");
    idle.released(64 * 1024);
    assert.equal(idle.armed, true, "16 × 64 KiB is 1 MiB");
    await deadline(collected.promise, 5_000, "the collection");
    // What was counted went with the collection: the next piece starts a new sum.
    idle.released(64 * 1024);
    assert.equal(idle.armed, false);
  } finally {
    idle.close();
  }
});

Deno.test("IdleCollector collects during a flood that never pauses, once floodBytes were released", async () => {
  const collected = Promise.withResolvers<void>();
  const idle = new IdleCollector({
    thresholdBytes: MIB,
    floodBytes: 4 * MIB,
    // A collection waiting for quiet would not come within this test.
    quietMs: 60_000,
    minIntervalMs: 0,
    collect: () => collected.resolve(),
    unref: false,
  });
  try {
    for (let i = 0; i < 64; i++) idle.released(64 * 1024);
    await deadline(collected.promise, 5_000, "a collection in the middle of the flood");
  } finally {
    idle.close();
  }
});

Deno.test("IdleCollector.close() drops a collection still waiting, and arms none after", () => {
  let collected = 0;
  const idle = new IdleCollector({ quietMs: 10, collect: () => collected++, unref: false });
  idle.released(8 * MIB);
  idle.close();
  // Releases after the close (a gateway's connections ending) arm nothing.
  idle.released(128 * MIB);
  assert.equal(idle.armed, false);
  // A timer left behind would fail this test (the op sanitizer); none ran.
  assert.equal(collected, 0);
});

Deno.test("fullCollection() gives V8's collector, which returns the memory of dropped large strings", () => {
  const collect = fullCollection();
  assert.equal(typeof collect, "function");
  let big: string[] | undefined = Array.from(
    { length: 4 },
    (_, i) => JSON.parse(JSON.stringify(String.fromCharCode(65 + i).repeat(16 * MIB))),
  );
  const held = Deno.memoryUsage().heapUsed;
  assert.ok(big.length === 4);
  big = undefined;
  collect!();
  const after = Deno.memoryUsage().heapUsed;
  assert.ok(held - after > 48 * MIB, `heap went from ${held >> 20} to ${after >> 20} MiB`);
});
