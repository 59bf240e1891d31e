import assert from "node:assert/strict";
import { normalizeServerName, TunnelRegistry } from "../../lib/serve/tunnel_registry.ts";

type S = { id: string; owner: string; name: string };

/** Adds a session under the first free variant of `wanted` and returns the name it got. */
function add(registry: TunnelRegistry<S>, id: string, owner: string, wanted: string): string {
  const name = registry.freeName(owner, wanted);
  registry.add({ id, owner, name });
  return name;
}

Deno.test("TunnelRegistry.freeName() suffixes a colliding name and leaves the holder alone", () => {
  const registry = new TunnelRegistry<S>();
  assert.equal(add(registry, "1", "alice", "everything"), "everything");
  assert.equal(add(registry, "2", "alice", "everything"), "everything-2");
  assert.equal(add(registry, "3", "alice", "everything"), "everything-3");
  assert.equal(registry.find("alice", "everything")?.id, "1");
  assert.equal(registry.find("alice", "everything-2")?.id, "2");
});

Deno.test("TunnelRegistry.add() refuses a taken name and a repeated id", () => {
  const registry = new TunnelRegistry<S>();
  registry.add({ id: "1", owner: "alice", name: "svc" });
  assert.throws(() => registry.add({ id: "2", owner: "alice", name: "svc" }), /taken/);
  assert.throws(() => registry.add({ id: "1", owner: "alice", name: "other" }), /already/);
});

Deno.test("TunnelRegistry keeps names per owner", () => {
  const registry = new TunnelRegistry<S>();
  assert.equal(add(registry, "1", "alice", "svc"), "svc");
  assert.equal(add(registry, "2", "bob", "svc"), "svc");
  assert.equal(registry.find("bob", "svc")?.id, "2");
  assert.equal(registry.count("alice"), 1);
  assert.deepEqual(registry.list("bob").map((s) => s.id), ["2"]);
  assert.deepEqual(registry.list().map((s) => s.id), ["1", "2"]);
});

Deno.test("TunnelRegistry.remove() frees the name; a suffixed session keeps its own", () => {
  const registry = new TunnelRegistry<S>();
  add(registry, "1", "a", "svc");
  add(registry, "2", "a", "svc");
  const first = registry.get("1")!;
  assert.ok(registry.remove(first));
  assert.ok(!registry.remove(first));
  assert.equal(registry.find("a", "svc"), undefined);
  assert.equal(registry.get("2")?.name, "svc-2");
  assert.equal(add(registry, "3", "a", "svc"), "svc");
});

Deno.test("normalizeServerName() makes names URL-safe and checks length", () => {
  assert.equal(normalizeServerName("My Server/1"), "My-Server-1");
  assert.equal(normalizeServerName(" ok_name.v2~x "), "ok_name.v2~x");
  assert.equal(normalizeServerName(".."), "--");
  assert.throws(() => normalizeServerName("  "), RangeError);
  assert.throws(() => normalizeServerName("x".repeat(129)), /129 characters/);
  assert.equal(normalizeServerName("x".repeat(128)).length, 128);
});

Deno.test("TunnelRegistry.freeName() keeps suffixed names within 128 characters", () => {
  const registry = new TunnelRegistry<S>();
  const long = "n".repeat(128);
  add(registry, "1", "a", long);
  const name = add(registry, "2", "a", long);
  assert.equal(name.length, 128);
  assert.ok(name.endsWith("-2"));
});
