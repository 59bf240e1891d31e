// MemoryStore keeps the StateStore contract (store_contract.ts) and holds nothing beyond its process.

import assert from "node:assert/strict";
import { MemoryStore } from "../../../lib/serve/state/memory_store.ts";
import { stateStoreContract } from "./store_contract.ts";

stateStoreContract({
  name: "MemoryStore",
  open: (now) => Promise.resolve(new MemoryStore({ now })),
});

Deno.test("MemoryStore is not durable: another instance starts empty", async () => {
  const first = new MemoryStore();
  await first.write([{ op: "set", key: { space: "client", id: "a" }, value: "1" }]);
  const second = new MemoryStore();
  try {
    assert.equal(first.durable, false);
    assert.equal(await second.get({ space: "client", id: "a" }), undefined);
  } finally {
    await first.close();
    await second.close();
  }
});
