import assert from "node:assert/strict";
import { normalizeServerName, SessionRegistry } from "../../lib/serve/tunnel_registry.ts";

type S = { id: string; owner: string };

Deno.test("SessionRegistry.add() suffixes a colliding name and leaves the holder alone", () => {
  const registry = new SessionRegistry<S>();
  const first = { id: "1", owner: "alice" };
  const second = { id: "2", owner: "alice" };
  const third = { id: "3", owner: "alice" };
  assert.equal(registry.add(first, "everything"), "everything");
  assert.equal(registry.add(second, "everything"), "everything-2");
  assert.equal(registry.add(third, "everything"), "everything-3");
  assert.equal(registry.find("alice", "everything"), first);
  assert.equal(registry.find("alice", "everything-2"), second);
});

Deno.test("SessionRegistry.add() keeps names per owner", () => {
  const registry = new SessionRegistry<S>();
  assert.equal(registry.add({ id: "1", owner: "alice" }, "svc"), "svc");
  assert.equal(registry.add({ id: "2", owner: "bob" }, "svc"), "svc");
  assert.equal(registry.find("bob", "svc")?.id, "2");
  assert.equal(registry.count("alice"), 1);
  assert.deepEqual(registry.list("bob").map((s) => s.id), ["2"]);
  assert.deepEqual(registry.list().map((s) => s.id), ["1", "2"]);
});

Deno.test("SessionRegistry.remove() frees the name; a suffixed session keeps its own", () => {
  const registry = new SessionRegistry<S>();
  const first = { id: "1", owner: "a" };
  const second = { id: "2", owner: "a" };
  registry.add(first, "svc");
  registry.add(second, "svc");
  assert.ok(registry.remove(first));
  assert.ok(!registry.remove(first));
  assert.equal(registry.find("a", "svc"), undefined);
  assert.equal(registry.nameOf(second), "svc-2");
  assert.equal(registry.add({ id: "3", owner: "a" }, "svc"), "svc");
  assert.equal(registry.get("2"), second);
});

Deno.test("normalizeServerName() makes names URL-safe and checks length", () => {
  assert.equal(normalizeServerName("My Server/1"), "My-Server-1");
  assert.equal(normalizeServerName(" ok_name.v2~x "), "ok_name.v2~x");
  assert.equal(normalizeServerName(".."), "--");
  assert.throws(() => normalizeServerName("  "), RangeError);
  assert.throws(() => normalizeServerName("x".repeat(129)), /129 characters/);
  assert.equal(normalizeServerName("x".repeat(128)).length, 128);
});

Deno.test("SessionRegistry.add() keeps suffixed names within 128 characters", () => {
  const registry = new SessionRegistry<S>();
  const long = "n".repeat(128);
  registry.add({ id: "1", owner: "a" }, long);
  const name = registry.add({ id: "2", owner: "a" }, long);
  assert.equal(name.length, 128);
  assert.ok(name.endsWith("-2"));
});
