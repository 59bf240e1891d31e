// Unit tests of JSON-RPC classification, ids and error replies.

import assert from "node:assert/strict";
import {
  classify,
  ErrorCode,
  errorResponse,
  idKey,
  idOf,
  isJsonRpc,
  methodOf,
} from "../../lib/protocol/jsonrpc.ts";

Deno.test("classify() tells requests, notifications and responses apart", () => {
  assert.equal(classify({ jsonrpc: "2.0", id: 1, method: "ping" }), "request");
  assert.equal(classify({ jsonrpc: "2.0", id: "a", method: "tools/call", params: {} }), "request");
  assert.equal(classify({ jsonrpc: "2.0", method: "notifications/initialized" }), "notification");
  assert.equal(classify({ jsonrpc: "2.0", id: 1, result: {} }), "response");
  assert.equal(classify({ jsonrpc: "2.0", id: "x", result: null }), "response");
  assert.equal(
    classify({ jsonrpc: "2.0", id: 2, error: { code: -32601, message: "nope" } }),
    "response",
  );
});

Deno.test("classify() accepts a response with id null (error before the id was known)", () => {
  assert.equal(
    classify({ jsonrpc: "2.0", id: null, error: { code: -32700, message: "Parse error" } }),
    "response",
  );
});

Deno.test("classify() refuses a request with id null or a non-scalar id", () => {
  assert.equal(classify({ jsonrpc: "2.0", id: null, method: "ping" }), "invalid");
  assert.equal(classify({ jsonrpc: "2.0", id: {}, method: "ping" }), "invalid");
  assert.equal(classify({ jsonrpc: "2.0", id: [1], method: "ping" }), "invalid");
  assert.equal(classify({ jsonrpc: "2.0", id: Number.NaN, method: "ping" }), "invalid");
  assert.equal(classify({ jsonrpc: "2.0", id: true, result: {} }), "invalid");
});

Deno.test("classify() calls invalid whatever is not a JSON-RPC 2.0 object", () => {
  for (
    const value of [
      null,
      undefined,
      42,
      "text",
      [],
      [{ jsonrpc: "2.0", id: 1, method: "ping" }],
      { id: 1, method: "ping" },
      { jsonrpc: "1.0", id: 1, method: "ping" },
      { jsonrpc: "2.0", id: 1 },
      { jsonrpc: "2.0", id: 1, method: 5 },
      { jsonrpc: "2.0", result: {} },
    ]
  ) {
    assert.equal(classify(value), "invalid", JSON.stringify(value));
  }
});

Deno.test("isJsonRpc() accepts one message or a non-empty batch of valid messages", () => {
  assert.equal(isJsonRpc({ jsonrpc: "2.0", id: 1, method: "ping" }), true);
  assert.equal(
    isJsonRpc([
      { jsonrpc: "2.0", id: 1, method: "ping" },
      { jsonrpc: "2.0", method: "notifications/progress" },
      { jsonrpc: "2.0", id: 2, result: {} },
    ]),
    true,
  );
});

Deno.test("isJsonRpc() refuses an empty batch, a batch with one bad element, and non-messages", () => {
  assert.equal(isJsonRpc([]), false);
  assert.equal(isJsonRpc([{ jsonrpc: "2.0", id: 1, method: "ping" }, { id: 2 }]), false);
  assert.equal(isJsonRpc({ hello: "world" }), false);
  assert.equal(isJsonRpc(null), false);
});

Deno.test('idKey() tells 1 and "1" apart', () => {
  assert.notEqual(idKey(1), idKey("1"));
  assert.equal(idKey(1), idKey(1));
  assert.equal(idKey("a"), idKey("a"));
  const pending = new Map([[idKey(1), "number"], [idKey("1"), "string"]]);
  assert.equal(pending.size, 2);
  assert.equal(pending.get(idKey(1)), "number");
  assert.equal(pending.get(idKey("1")), "string");
});

Deno.test("idKey() cannot be fooled by a string that looks like a number key", () => {
  assert.notEqual(idKey("n:1"), idKey(1));
  assert.notEqual(idKey(`n:1`), idKey("1"));
});

Deno.test("errorResponse() builds a JSON-RPC error response without data when none is given", () => {
  const response = errorResponse(7, ErrorCode.MethodNotFound, "Method not found");
  assert.deepEqual(response, {
    jsonrpc: "2.0",
    id: 7,
    error: { code: -32601, message: "Method not found" },
  });
  assert.equal("data" in response.error!, false);
  assert.equal("result" in response, false);
  assert.equal(classify(response), "response");
});

Deno.test("errorResponse() keeps data and an id of null", () => {
  assert.deepEqual(errorResponse(null, ErrorCode.ParseError, "Parse error", { line: 3 }), {
    jsonrpc: "2.0",
    id: null,
    error: { code: -32700, message: "Parse error", data: { line: 3 } },
  });
});

Deno.test("ErrorCode has the standard JSON-RPC codes", () => {
  assert.equal(ErrorCode.ParseError, -32700);
  assert.equal(ErrorCode.InvalidRequest, -32600);
  assert.equal(ErrorCode.MethodNotFound, -32601);
  assert.equal(ErrorCode.InvalidParams, -32602);
  assert.equal(ErrorCode.InternalError, -32603);
});

Deno.test("idOf() and methodOf() read id and method, and nothing else", () => {
  assert.equal(idOf({ jsonrpc: "2.0", id: "abc", result: {} }), "abc");
  assert.equal(idOf({ jsonrpc: "2.0", id: 0, method: "ping" }), 0);
  assert.equal(idOf({ jsonrpc: "2.0", id: null, result: {} }), undefined);
  assert.equal(idOf([{ id: 1 }]), undefined);
  assert.equal(methodOf({ jsonrpc: "2.0", method: "tools/list" }), "tools/list");
  assert.equal(methodOf({ jsonrpc: "2.0", id: 1, result: {} }), undefined);
  assert.equal(methodOf("tools/list"), undefined);
});
