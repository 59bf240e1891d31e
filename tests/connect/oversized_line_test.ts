// readOversized(): what the first and last bytes of a line too long to parse say, in the layouts real
// serializers write (the MCP TypeScript SDK puts `id` last; Python's pydantic and most others put it first).

import assert from "node:assert/strict";
import { readOversized } from "../../lib/connect/oversized_line.ts";

function line(head: string, tail: string) {
  return { head, tail, bytes: 10_000_000 };
}

Deno.test("readOversized() finds a TypeScript SDK answer's id at the end of the line", () => {
  assert.deepEqual(
    readOversized(
      line('{"result":{"content":[{"type":"text","id":9,', 'xxx"}]},"jsonrpc":"2.0","id":7}\r'),
    ),
    { ids: [7] },
  );
});

Deno.test("readOversized() finds an answer's id among the line's leading members", () => {
  assert.deepEqual(
    readOversized(line('{"jsonrpc": "2.0", "id": "a\\"b", "result": {"id": 9', 'xx"}}')),
    { ids: ['a"b'] },
  );
});

Deno.test("readOversized() takes no nested id for an answer's", () => {
  assert.deepEqual(readOversized(line('{"result":{"id":9,"text":"', 'xx"},"id":')), { ids: [] });
  assert.deepEqual(readOversized(line('{"result":{"text":"', '"x":{"id":9}}}')), { ids: [] });
});

Deno.test("readOversized() reads a server request in either layout, and a notification as neither", () => {
  assert.deepEqual(
    readOversized(
      line('{"method":"sampling/createMessage","params":{', '"jsonrpc":"2.0","id":0}\n'),
    ),
    { request: { id: 0, method: "sampling/createMessage" }, ids: [] },
  );
  assert.deepEqual(
    readOversized(line('{"jsonrpc":"2.0","id":"s-1","method":"roots/list","params":{"x', '"}}')),
    { request: { id: "s-1", method: "roots/list" }, ids: [] },
  );
  assert.deepEqual(
    readOversized(
      line('{"method":"notifications/message","params":{"data":"', '"id":3}},"jsonrpc":"2.0"}'),
    ),
    { ids: [] },
  );
});
