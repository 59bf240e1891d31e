import assert from "node:assert/strict";
import { fullCollection, IdleCollector } from "../../lib/util/idle_gc.ts";

const MIB = 1024 * 1024;

Deno.test("IdleCollector collects once large releases stop for the quiet time, not for small ones", async () => {
  const collected = Promise.withResolvers<number>();
  const idle = new IdleCollector({
    quietMs: 30,
    minIntervalMs: 0,
    collect: () => collected.resolve(performance.now()),
    unref: false,
  });
  try {
    idle.released(1024); // small: no collection armed
    const start = performance.now();
    idle.released(8 * MIB);
    idle.released(8 * MIB); // re-arms: collection 30 ms after this one
    const at = await collected.promise;
    assert.ok(at - start >= 29, `collected after ${at - start} ms`);
  } finally {
    idle.close();
  }
});

Deno.test("IdleCollector.close() drops a collection still waiting", () => {
  let collected = 0;
  const idle = new IdleCollector({ quietMs: 10, collect: () => collected++, unref: false });
  idle.released(8 * MIB);
  idle.close();
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
