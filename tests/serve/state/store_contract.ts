// The contract every StateStore keeps (lib/serve/state/store.ts), as one set of test cases that each
// implementation's test file runs on its own store: memory_store_test.ts, sqlite_store_test.ts, and the
// Redis store's. Call `stateStoreContract()` at the top level of a test file.

import assert from "node:assert/strict";
import type { StateKey, StateStore } from "../../../lib/serve/state/store.ts";

/** How the contract gets a store to test. */
export interface StateStoreContractOptions {
  /** Prefix of every test name, e.g. `SqliteStore`. */
  name: string;
  /**
   * Opens a fresh, empty store. `now` is a clock the cases move forward to pass TTLs; a store that keeps
   * its own time (Redis) ignores it and sets `realTime`.
   */
  open(now: () => number): Promise<StateStore>;
  /** Runs after each case, once the store is closed: remove files, flush a server. */
  cleanup?(): Promise<void>;
  /** The store keeps its own time: TTL cases use short TTLs and wait (bounded) for them to pass. */
  realTime?: boolean;
}

const key = (space: string, id: string): StateKey => ({ space, id });

/**
 * Registers the contract's cases with `Deno.test`, each named `<name>: <behaviour>`.
 *
 * @example
 * ```ts ignore
 * import { MemoryStore } from "../../../lib/serve/state/memory_store.ts";
 * stateStoreContract({ name: "MemoryStore", open: (now) => Promise.resolve(new MemoryStore({ now })) });
 * ```
 */
export function stateStoreContract(options: StateStoreContractOptions): void {
  const { name, realTime = false } = options;

  /** Runs `body` on a fresh store with a clock it can move; closes and cleans up on every path. */
  function contractCase(
    what: string,
    body: (store: StateStore, passTime: (ms: number) => Promise<void>) => Promise<void>,
  ): void {
    Deno.test(`${name}: ${what}`, async () => {
      let clock = 1_700_000_000_000;
      const store = await options.open(() => clock);
      try {
        await body(store, async (ms) => {
          if (!realTime) {
            clock += ms;
            return;
          }
          // The store's own clock: wait the time out, bounded (a TTL that never passes fails the case).
          const until = performance.now() + ms + 1;
          while (performance.now() < until) {
            await new Promise((resolve) =>
              setTimeout(resolve, Math.max(1, until - performance.now()))
            );
          }
        });
      } finally {
        await store.close();
        await options.cleanup?.();
      }
    });
  }

  /** TTLs in the cases: short on a real clock, long enough on a fake one that nothing else matters. */
  const TTL = realTime ? 150 : 60_000;

  contractCase("get and list of what was never written find nothing", async (store) => {
    assert.equal(await store.get(key("tunnel", "none")), undefined);
    assert.deepEqual(await store.list("tunnel"), []);
  });

  contractCase(
    "a value written is read back byte for byte, and a second write replaces it",
    async (store) => {
      const odd = `{"text":"line\\nbreak ✓ \u0000 \u{1F600}"}\n\t${"x".repeat(1024 * 1024)}`;
      await store.write([{ op: "set", key: key("client", "a"), value: odd }]);
      const read = await store.get(key("client", "a"));
      assert.ok(read === odd, `read back ${read?.length} characters: ${read?.slice(0, 40)}…`);
      await store.write([{ op: "set", key: key("client", "a"), value: "second" }]);
      assert.equal(await store.get(key("client", "a")), "second");
      assert.deepEqual(await store.list("client"), [{ key: key("client", "a"), value: "second" }]);
    },
  );

  contractCase(
    "a batch is applied in order, and deleting a missing record is fine",
    async (store) => {
      await store.write([
        { op: "set", key: key("tunnel", "1"), value: "one" },
        { op: "set", key: key("tunnel", "2"), value: "two" },
        { op: "delete", key: key("tunnel", "1") },
        { op: "delete", key: key("tunnel", "never") },
        { op: "set", key: key("tunnel", "2"), value: "two again" },
      ]);
      assert.equal(await store.get(key("tunnel", "1")), undefined);
      assert.deepEqual(await store.list("tunnel"), [{
        key: key("tunnel", "2"),
        value: "two again",
      }]);
    },
  );

  contractCase("spaces are apart: the same id in two spaces is two records", async (store) => {
    await store.write([
      { op: "set", key: key("tunnel", "x"), value: "t" },
      { op: "set", key: key("ended", "x"), value: "e" },
      { op: "set", key: key("ended", "y"), value: "e2" },
    ]);
    assert.equal(await store.get(key("tunnel", "x")), "t");
    assert.equal(await store.get(key("ended", "x")), "e");
    assert.deepEqual(await store.list("tunnel"), [{ key: key("tunnel", "x"), value: "t" }]);
    const ended = (await store.list("ended")).map((entry) => entry.key.id).sort();
    assert.deepEqual(ended, ["x", "y"]);
  });

  contractCase(
    "a record past its TTL is gone for get and list",
    async (store, passTime) => {
      await store.write([
        { op: "set", key: key("client", "short"), value: "s", ttlMs: TTL },
        { op: "set", key: key("client", "long"), value: "l", ttlMs: TTL * 100 },
        { op: "set", key: key("client", "forever"), value: "f" },
      ]);
      assert.equal(await store.get(key("client", "short")), "s");
      await passTime(TTL + 1);
      assert.equal(await store.get(key("client", "short")), undefined);
      const left = (await store.list("client")).map((entry) => entry.key.id).sort();
      assert.deepEqual(left, ["forever", "long"]);
    },
  );

  contractCase(
    "a write without TTL removes the TTL an earlier write set",
    async (store, passTime) => {
      await store.write([{ op: "set", key: key("client", "a"), value: "1", ttlMs: TTL }]);
      await store.write([{ op: "set", key: key("client", "a"), value: "2" }]);
      await passTime(TTL + 1);
      assert.equal(await store.get(key("client", "a")), "2");
    },
  );

  contractCase(
    "bad keys and TTLs are refused with a RangeError before anything is written",
    async (store) => {
      await assert.rejects(() => store.get(key("Bad Space", "x")), RangeError);
      await assert.rejects(() => store.get(key("tunnel", "")), RangeError);
      await assert.rejects(() => store.get(key("tunnel", "x".repeat(513))), RangeError);
      await assert.rejects(() => store.list("no/slash"), RangeError);
      await assert.rejects(
        () =>
          store.write([
            { op: "set", key: key("tunnel", "ok"), value: "v" },
            { op: "set", key: key("tunnel", "bad-ttl"), value: "v", ttlMs: 0 },
          ]),
        RangeError,
      );
      assert.equal(await store.get(key("tunnel", "ok")), undefined, "the batch was refused whole");
      await assert.rejects(
        () => store.write([{ op: "set", key: key("tunnel", "x"), value: "v", ttlMs: 1.5 }]),
        RangeError,
      );
    },
  );

  Deno.test(`${name}: after close every method rejects, and close again is fine`, async () => {
    const store = await options.open(Date.now);
    try {
      await store.close();
      await store.close();
      await assert.rejects(() => store.get(key("tunnel", "x")));
      await assert.rejects(() => store.list("tunnel"));
      await assert.rejects(() => store.write([{ op: "delete", key: key("tunnel", "x") }]));
    } finally {
      await store.close();
      await options.cleanup?.();
    }
  });
}
