// ServeState: what serve saves, with which TTL, and what a start reads back (unreadable records dropped).

import assert from "node:assert/strict";
import { MemoryStore } from "../../../lib/serve/state/memory_store.ts";
import {
  type ClientRecord,
  type EndedRecord,
  RECORD_VERSION,
  type TunnelRecord,
} from "../../../lib/serve/state/records.ts";
import { ServeState } from "../../../lib/serve/state/serve_state.ts";

const tunnel: TunnelRecord = {
  v: RECORD_VERSION,
  id: "t1",
  owner: "alice",
  name: "git",
  requestedName: "git",
  description: "",
  protocol: "mcp",
  mcpUrl: "http://127.0.0.1:8080/servers/git/mcp",
  tokenHash: "hash",
  channel: "",
  connectedAt: 1,
  seqIn: 7,
  tunnelIdsFrom: 1_000_001,
  initializeResult: { protocolVersion: "2025-11-25", capabilities: {} },
};

function client(id: string, lastSeen: number): ClientRecord {
  return {
    v: RECORD_VERSION,
    id,
    owner: "alice",
    serverName: "git",
    protocolVersion: "2025-11-25",
    capabilities: { roots: {} },
    lastSeen,
    epoch: 0,
  };
}

Deno.test("ServeState saves records and a start reads them back", async () => {
  let clock = 1_000_000;
  const store = new MemoryStore({ now: () => clock });
  const state = new ServeState(store, {
    clientTtlMs: 60_000,
    endedKeepMs: 60_000,
    now: () => clock,
  });
  try {
    state.saveTunnel(tunnel);
    state.saveClient(client("c1", clock));
    await state.close(1000);
    const fresh = new ServeState(store, { clientTtlMs: 60_000, endedKeepMs: 60_000 });
    const loaded = await fresh.load();
    assert.deepEqual(loaded.tunnels, [tunnel]);
    assert.deepEqual(loaded.clients, [client("c1", 1_000_000)]);
    assert.deepEqual(loaded.ended, []);
    await fresh.close(1000);
    // The client record lives --mcp-session-ttl after it was last heard from.
    clock += 60_001;
    assert.equal(await store.get({ space: "client", id: "c1" }), undefined);
  } finally {
    await store.close();
  }
});

Deno.test("ServeState.endTunnel() forgets the session and keeps its mark for the rest of the keep time", async () => {
  let clock = 1_000_000;
  const store = new MemoryStore({ now: () => clock });
  const state = new ServeState(store, {
    clientTtlMs: 60_000,
    endedKeepMs: 60_000,
    now: () => clock,
  });
  try {
    state.saveTunnel(tunnel);
    const mark: EndedRecord = {
      v: RECORD_VERSION,
      id: "t1",
      owner: "alice",
      tokenHash: "hash",
      reason: "evicted",
      endedAt: clock - 10_000,
    };
    state.endTunnel(mark);
    await state.close(1000);
    assert.equal(await store.get({ space: "tunnel", id: "t1" }), undefined);
    assert.deepEqual(JSON.parse((await store.get({ space: "ended", id: "t1" }))!), mark);
    clock += 50_001; // 60 s after it ended
    assert.equal(await store.get({ space: "ended", id: "t1" }), undefined);
  } finally {
    await store.close();
  }
});

Deno.test("ServeState.load() drops records it cannot read, and deletes them from the store", async () => {
  const store = new MemoryStore();
  await store.write([
    { op: "set", key: { space: "tunnel", id: "bad" }, value: "{not json" },
    { op: "set", key: { space: "tunnel", id: "old" }, value: JSON.stringify({ ...tunnel, v: 0 }) },
    { op: "set", key: { space: "client", id: "half" }, value: JSON.stringify({ v: 1, id: "x" }) },
    { op: "set", key: { space: "tunnel", id: "t1" }, value: JSON.stringify(tunnel) },
  ]);
  const state = new ServeState(store, { clientTtlMs: 60_000, endedKeepMs: 60_000 });
  try {
    const loaded = await state.load();
    assert.deepEqual(loaded.tunnels.map((t) => t.id), ["t1"]);
    assert.deepEqual(loaded.clients, []);
    await state.close(1000);
    assert.deepEqual((await store.list("tunnel")).map((e) => e.key.id), ["t1"]);
    assert.deepEqual(await store.list("client"), []);
  } finally {
    await store.close();
  }
});

Deno.test("ServeState with a tunnel lifetime (replicas): records are saved again before it runs out, until dropped or taken over", async () => {
  let clock = 0;
  const store = new MemoryStore({ now: () => clock });
  const state = new ServeState(store, {
    clientTtlMs: 60_000,
    endedKeepMs: 60_000,
    tunnelTtlMs: 1_000,
    now: () => clock,
    writer: { delayMs: 0 },
  });
  const key = { space: "tunnel", id: tunnel.id };
  const stored = () => state.flush();
  try {
    state.saveTunnel(tunnel);
    await stored();
    clock = 200;
    state.refresh(); // not due: less than a quarter of its lifetime went by
    clock = 300;
    state.refresh(); // due: saved again, to live until 1300
    await stored();
    clock = 1_100;
    assert.deepEqual(JSON.parse((await store.get(key))!), tunnel, "refreshed before it ran out");

    // Taken over by another replica: no longer saved here, so it runs out (the new holder saves it).
    state.forgetTunnel(tunnel.id);
    clock = 1_300;
    state.refresh();
    assert.equal(state.pending, 0, "nothing saved for a session taken over");
    assert.equal(await store.get(key), undefined);

    // Dropped (ended): deleted, and not saved again.
    state.saveTunnel(tunnel);
    await stored();
    state.dropTunnel(tunnel.id);
    clock = 1_600;
    state.refresh();
    await stored();
    assert.equal(await store.get(key), undefined, "a dropped session is not saved again");
  } finally {
    await state.close(1000);
    await store.close();
  }
});
