import assert from "node:assert/strict";
import {
  CallTable,
  RawResponse,
  restoreProgress,
  restoreResponse,
  restoreResponseText,
} from "../../lib/serve/call_table.ts";
import { scanMessage } from "../../lib/protocol/jsonrpc.ts";

Deno.test("CallTable.add() gives overlapping caller ids distinct tunnel ids and restores them", () => {
  const table = new CallTable<string>();
  const a = table.add({ jsonrpc: "2.0", id: 1, method: "tools/call" }, "client-a");
  const b = table.add({ jsonrpc: "2.0", id: "1", method: "tools/call" }, "client-b");
  const c = table.add({ jsonrpc: "2.0", id: 1, method: "tools/list" }, "client-c");
  const ids = [a.message.id, b.message.id, c.message.id];
  assert.equal(new Set(ids).size, 3);
  assert.ok(ids.every((id) => typeof id === "number"));
  const entry = table.take(b.message.id)!;
  assert.equal(entry.route, "client-b");
  const restored = restoreResponse(
    { jsonrpc: "2.0", id: b.message.id, result: {} },
    entry.originalId,
  );
  assert.equal(restored.id, "1"); // a string stays a string
  assert.equal(
    restoreResponse({ jsonrpc: "2.0", id: 9, result: {} }, table.take(a.message.id)!.originalId).id,
    1,
  );
  assert.equal(table.take(b.message.id), undefined, "taken once");
  assert.equal(table.size, 1);
});

Deno.test("CallTable.take() accepts a tunnel id echoed back as a string of digits", () => {
  const table = new CallTable<null>();
  const { message } = table.add({ jsonrpc: "2.0", id: "x", method: "ping" }, null);
  assert.equal(table.take(String(message.id))?.originalId, "x");
  assert.equal(table.take("nope"), undefined);
  assert.equal(table.take(null), undefined);
});

Deno.test("CallTable.add() rewrites progress tokens and maps them back", () => {
  const table = new CallTable<string>();
  const params = { name: "slow", _meta: { progressToken: "tok-1", other: true } };
  const { message, entry } = table.add(
    { jsonrpc: "2.0", id: 5, method: "tools/call", params },
    "c",
  );
  const sent = message.params as { _meta: { progressToken: unknown; other: boolean } };
  assert.equal(sent._meta.progressToken, message.id);
  assert.equal(sent._meta.other, true);
  assert.equal(params._meta.progressToken, "tok-1", "the caller's object is not changed");
  const found = table.byProgressToken(sent._meta.progressToken)!;
  assert.equal(found, entry);
  const progress = restoreProgress(
    {
      jsonrpc: "2.0",
      method: "notifications/progress",
      params: { progressToken: message.id, progress: 1 },
    },
    found.progressToken!,
  );
  assert.deepEqual(progress.params, { progressToken: "tok-1", progress: 1 });
});

Deno.test("CallTable.byProgressToken() ignores calls that asked for no progress", () => {
  const table = new CallTable<string>();
  const { message } = table.add({ jsonrpc: "2.0", id: 5, method: "tools/call", params: {} }, "c");
  assert.equal(table.byProgressToken(message.id), undefined);
});

Deno.test("CallTable.drain() empties the table", () => {
  const table = new CallTable<number>();
  table.add({ jsonrpc: "2.0", id: 1, method: "a" }, 1);
  table.add({ jsonrpc: "2.0", id: 2, method: "b" }, 2);
  assert.deepEqual(table.drain().map((e) => e.route), [1, 2]);
  assert.equal(table.size, 0);
});

Deno.test("restoreResponseText() puts the caller's id in place of the tunnel's and keeps the rest as written", () => {
  const text = '{"result": {"a": [1, 2]}, "jsonrpc": "2.0", "id": 17}';
  const scanned = scanMessage(text);
  assert.ok(typeof scanned === "object");
  for (const [id, written] of [['client "7"', '"client \\"7\\""'], [-3, "-3"]] as const) {
    const raw = restoreResponseText(text, scanned.spans.get("id")!, id);
    assert.ok(raw instanceof RawResponse);
    assert.equal(raw.text, `{"result": {"a": [1, 2]}, "jsonrpc": "2.0", "id": ${written}}`);
    assert.deepEqual(raw.parse(), { result: { a: [1, 2] }, jsonrpc: "2.0", id });
  }
});
