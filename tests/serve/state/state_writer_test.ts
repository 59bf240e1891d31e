// StateWriter: callers never wait; changes of a moment become one batch with the latest per record; a
// store that fails is counted, retried with backoff and caught up; memory held for it is bounded.

import assert from "node:assert/strict";
import { MemoryStore } from "../../../lib/serve/state/memory_store.ts";
import { StateWriter } from "../../../lib/serve/state/state_writer.ts";
import type { StateStore, StateWrite } from "../../../lib/serve/state/store.ts";

/** A MemoryStore that records each batch and fails while `failing` is set. */
class FlakyStore extends MemoryStore implements StateStore {
  batches: StateWrite[][] = [];
  failing = false;
  /** Resolves when the next batch arrives. */
  #waiters: (() => void)[] = [];

  override write(batch: readonly StateWrite[]): Promise<void> {
    this.batches.push([...batch]);
    for (const waiter of this.#waiters.splice(0)) waiter();
    if (this.failing) return Promise.reject(new Error("disk full"));
    return super.write(batch);
  }

  nextBatch(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no batch within 5 s")), 5000);
      this.#waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

const k = (id: string) => ({ space: "client", id });

Deno.test("StateWriter gathers a moment's writes into one batch, the latest per record winning", async () => {
  const store = new FlakyStore();
  const writer = new StateWriter(store);
  try {
    writer.set(k("a"), "1");
    writer.set(k("b"), "1");
    writer.set(k("a"), "2");
    writer.delete(k("b"));
    assert.equal(writer.pending, 2);
    assert.equal(store.batches.length, 0, "nothing was written while the caller ran");
    await store.nextBatch();
    assert.equal(store.batches.length, 1);
    assert.deepEqual(store.batches[0]!.map((w) => [w.op, w.key.id]), [["set", "a"], [
      "delete",
      "b",
    ]]);
    await writer.flush();
    assert.equal(await store.get(k("a")), "2");
    assert.equal(await store.get(k("b")), undefined);
  } finally {
    await writer.close(1000);
    await store.close();
  }
});

Deno.test("StateWriter counts a failed batch, retries it, and a newer write of a record wins over the retry", async () => {
  const store = new FlakyStore();
  const errors: unknown[] = [];
  const writer = new StateWriter(store, {
    retryMs: { first: 10, max: 20 },
    onError: (error) => errors.push(error),
  });
  try {
    store.failing = true;
    writer.set(k("a"), "old");
    writer.set(k("b"), "kept");
    await store.nextBatch();
    await writer.flush(); // let the failure settle
    assert.ok(errors.length >= 1, "the failure was counted");
    assert.match(String(errors[0]), /disk full/);
    writer.set(k("a"), "new");
    store.failing = false;
    await writer.flush();
    assert.equal(await store.get(k("a")), "new");
    assert.equal(await store.get(k("b")), "kept", "the failed write was tried again");
    assert.equal(writer.pending, 0);
  } finally {
    await writer.close(1000);
    await store.close();
  }
});

Deno.test("StateWriter keeps at most maxPending writes while the store fails, dropping the oldest", async () => {
  const store = new FlakyStore();
  let dropped = 0;
  const writer = new StateWriter(store, {
    maxPending: 3,
    retryMs: { first: 60_000, max: 60_000 },
    onDropped: (count) => dropped += count,
  });
  try {
    store.failing = true;
    writer.set(k("first"), "x");
    await store.nextBatch();
    await writer.flush();
    for (const id of ["a", "b", "c", "d"]) writer.set(k(id), id);
    assert.equal(writer.pending, 3);
    assert.equal(dropped, 2, "'first' (retried) and 'a' went");
    store.failing = false;
    await writer.flush();
    assert.deepEqual((await store.list("client")).map((e) => e.key.id).sort(), ["b", "c", "d"]);
  } finally {
    await writer.close(1000);
    await store.close();
  }
});

Deno.test("StateWriter.close() stores what is pending; later writes are ignored", async () => {
  const store = new FlakyStore();
  const writer = new StateWriter(store, { delayMs: 60_000 });
  writer.set(k("a"), "1");
  await writer.close(1000);
  writer.set(k("b"), "1");
  try {
    assert.equal(await store.get(k("a")), "1");
    assert.equal(await store.get(k("b")), undefined);
    assert.equal(writer.pending, 0);
  } finally {
    await store.close();
  }
});

Deno.test("StateWriter.close() gives up at its deadline on a store that does not answer", async () => {
  let release: () => void = () => {};
  const hung = new Promise<void>((resolve) => release = resolve);
  const store = new MemoryStore();
  store.write = () => hung;
  const writer = new StateWriter(store);
  try {
    writer.set(k("a"), "1");
    const started = performance.now();
    await writer.close(50);
    assert.ok(performance.now() - started < 2000);
  } finally {
    release();
    await store.close();
  }
});
