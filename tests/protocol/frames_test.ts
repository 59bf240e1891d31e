// Unit tests of the wire envelopes: parsing (short frames parsed, long ones scanned in one pass), data
// frames, and the control frames both ends send.

import assert from "node:assert/strict";
import {
  encodeAck,
  encodeClientSessionEnd,
  encodeClose,
  encodeDataFrame,
  encodeError,
  encodeHeartbeat,
  encodeUnregister,
  parseFrame,
  readClose,
  readErrorMessage,
  readKeepaliveMs,
} from "../../lib/protocol/frames.ts";
import { SCAN_ABOVE_CHARS } from "../../lib/protocol/json_scan.ts";

function parsed(text: string) {
  const frame = parseFrame(text);
  if (frame instanceof Error) throw frame;
  return frame;
}

Deno.test("parseFrame() lifts the envelope's fields and keeps the rest as fields", () => {
  const frame = parsed(
    '{"type":"heartbeat","sessionId":"s1","channel":"git","clientSession":"c","seq":3,"ack":2,"extra":[1]}',
  );
  assert.equal(frame.type, "heartbeat");
  assert.equal(frame.sessionId, "s1");
  assert.equal(frame.channel, "git");
  assert.equal(frame.clientSession, "c");
  assert.equal(frame.seq, 3);
  assert.equal(frame.ack, 2);
  assert.deepEqual(frame.fields.extra, [1]);
  assert.equal(frame.payload, undefined);
});

Deno.test("parseFrame() accepts a frame without sessionId", () => {
  const frame = parsed('{"type":"register_ack","status":"success"}');
  assert.equal(frame.type, "register_ack");
  assert.equal(frame.sessionId, undefined);
  assert.equal(frame.fields.status, "success");
});

Deno.test("parseFrame() returns, not throws, a SyntaxError for text that is not JSON", () => {
  const result = parseFrame("{not json");
  assert.ok(result instanceof SyntaxError);
  assert.match(result.message, /^Frame is not valid JSON/);
});

Deno.test("parseFrame() returns a SyntaxError for JSON that is not an object", () => {
  for (const text of ["null", "[]", '[{"type":"heartbeat"}]', '"heartbeat"', "42", "true"]) {
    const result = parseFrame(text);
    assert.ok(result instanceof SyntaxError, text);
    assert.equal(result.message, "Frame is not a JSON object", text);
  }
});

Deno.test("parseFrame() returns a SyntaxError for a missing or non-string type", () => {
  for (const text of ['{"sessionId":"s"}', '{"type":1}', '{"type":null}']) {
    const result = parseFrame(text);
    assert.ok(result instanceof SyntaxError, text);
    assert.equal(result.message, "Frame has no string 'type' field", text);
  }
});

Deno.test("parseFrame() returns a SyntaxError for envelope fields of the wrong type", () => {
  const cases: [string, string][] = [
    ['{"type":"heartbeat","sessionId":7}', "Frame field 'sessionId' is not a string"],
    ['{"type":"x","sessionId":null}', "Frame field 'sessionId' is not a string"],
    ['{"type":"x","channel":1}', "Frame field 'channel' is not a string"],
    ['{"type":"x","clientSession":{}}', "Frame field 'clientSession' is not a string"],
    ['{"type":"x","seq":-1}', "Frame field 'seq' is not a non-negative integer"],
    ['{"type":"x","seq":1.5}', "Frame field 'seq' is not a non-negative integer"],
    ['{"type":"x","ack":"3"}', "Frame field 'ack' is not a non-negative integer"],
  ];
  for (const [text, message] of cases) {
    const result = parseFrame(text);
    assert.ok(result instanceof SyntaxError, text);
    assert.equal(result.message, message, text);
  }
});

Deno.test("parseFrame() never quotes the frame's text in its error (it may hold credentials)", () => {
  const result = parseFrame(
    '{"type":"request","authentication":{"Authorization":"Bearer SECRET-123"} oops',
  );
  assert.ok(result instanceof SyntaxError);
  assert.ok(!result.message.includes("SECRET-123"), result.message);
});

Deno.test("parseFrame() parses a short frame's payload", () => {
  const frame = parsed('{"type":"request","payload":{"jsonrpc":"2.0","id":4,"method":"x"}}');
  assert.equal(frame.payload?.isText, false);
  assert.deepEqual(frame.payload?.value, { jsonrpc: "2.0", id: 4, method: "x" });
  assert.deepEqual(frame.payload?.facts, { kind: "request", id: 4, method: "x" });
});

Deno.test("parseFrame() keeps a long frame's payload as text, with its facts and id found in the same pass", () => {
  const payload = {
    jsonrpc: "2.0",
    id: 9,
    method: "tools/call",
    params: { arguments: { text: "é".repeat(SCAN_ABOVE_CHARS), id: "inner" } },
  };
  const payloadJson = JSON.stringify(payload);
  const text = `{"type":"request","sessionId":"s1","seq":4,"payload":${payloadJson},"ack":2}`;
  const frame = parsed(text);
  assert.equal(frame.type, "request");
  assert.equal(frame.seq, 4);
  assert.equal(frame.ack, 2);
  assert.equal(frame.payload?.isText, true);
  assert.equal(frame.payload?.text, payloadJson);
  assert.deepEqual(frame.payload?.facts, { kind: "request", id: 9, method: "tools/call" });
  // The id's place is known: a caller's id goes in without parsing the rest.
  assert.deepEqual(JSON.parse(frame.payload!.textWithId("client-7")!), {
    ...payload,
    id: "client-7",
  });
  assert.equal(frame.payload?.isText, true, "textWithId() did not parse the payload");
  // Parsing on demand gives the same message.
  assert.deepEqual(frame.payload?.value, payload);
});

Deno.test("parseFrame() of a long frame finds a response's facts and a batch", () => {
  const result = { text: "x".repeat(SCAN_ABOVE_CHARS) };
  const response = parsed(
    JSON.stringify({ type: "response", payload: { jsonrpc: "2.0", id: "a", result } }),
  );
  assert.deepEqual(response.payload?.facts, { kind: "response", id: "a" });
  const batch = parsed(
    JSON.stringify({ type: "request", payload: [{ jsonrpc: "2.0", id: 1, method: "m", result }] }),
  );
  assert.equal(batch.payload?.facts, "batch");
  const invalid = parsed(JSON.stringify({ type: "request", payload: { id: 1, result } }));
  assert.deepEqual(invalid.payload?.facts, { kind: "invalid" });
});

Deno.test("parseFrame() refuses a long frame as it refuses a short one, and keeps odd keys as fields", () => {
  const filler = "x".repeat(SCAN_ABOVE_CHARS);
  const cut = parseFrame(`{"type":"request","payload":{"text":"${filler}"}`);
  assert.ok(cut instanceof SyntaxError);
  assert.equal(cut.message, "Frame is not valid JSON");
  const array = parseFrame(`[{"type":"request","filler":"${filler}"}]`);
  assert.ok(array instanceof SyntaxError);
  assert.equal(array.message, "Frame is not a JSON object");
  const untyped = parseFrame(`{"type":1,"payload":"${filler}"}`);
  assert.ok(untyped instanceof SyntaxError);
  assert.equal(untyped.message, "Frame has no string 'type' field");
  const odd = parsed(
    `{"type":"request","__proto__":{"polluted":true},"payloadText":"not the payload","filler":"${filler}"}`,
  );
  assert.deepEqual(Object.getPrototypeOf(odd.fields), Object.prototype);
  assert.equal((odd.fields as Record<string, unknown>).polluted, undefined);
  assert.deepEqual(Object.getOwnPropertyDescriptor(odd.fields, "__proto__")?.value, {
    polluted: true,
  });
  assert.equal(odd.fields.payloadText, "not the payload");
  assert.equal(odd.payload, undefined);
});

Deno.test("encodeDataFrame() writes the envelope around the payload text, escaping ids", () => {
  const text = encodeDataFrame({
    type: "response",
    sessionId: 's"1',
    channel: "git\n",
    clientSession: "c1",
    seq: 5,
    ack: 2,
    payloadText: '{"jsonrpc":"2.0","id":1,"result":{}}',
  });
  const frame = parsed(text);
  assert.equal(frame.sessionId, 's"1');
  assert.equal(frame.channel, "git\n");
  assert.equal(frame.clientSession, "c1");
  assert.equal(frame.seq, 5);
  assert.equal(frame.ack, 2);
  assert.deepEqual(frame.payload?.value, { jsonrpc: "2.0", id: 1, result: {} });
  const plain = parsed(
    encodeDataFrame({ type: "notification", sessionId: "s", payloadText: "{}" }),
  );
  assert.deepEqual(
    Object.keys(
      JSON.parse(encodeDataFrame({ type: "notification", sessionId: "s", payloadText: "{}" })),
    ),
    ["type", "sessionId", "payload"],
  );
  assert.equal(plain.seq, undefined);
});

Deno.test("the control frames round-trip through parseFrame() and their readers", () => {
  const heartbeat = parsed(encodeHeartbeat({ sessionId: "s", keepaliveMs: 250, ack: 3 }));
  assert.equal(heartbeat.type, "heartbeat");
  assert.equal(heartbeat.ack, 3);
  assert.equal(readKeepaliveMs(heartbeat), 250);
  assert.equal(readKeepaliveMs(parsed('{"type":"heartbeat","keepaliveMs":-5}')), undefined);
  const ack = parsed(encodeAck({ sessionId: "s", channel: "c", ack: 32 }));
  assert.deepEqual([ack.type, ack.channel, ack.ack], ["ack", "c", 32]);
  const unregister = parsed(encodeUnregister({ sessionId: "s" }));
  assert.deepEqual([unregister.type, unregister.sessionId], ["unregister", "s"]);
  const error = parsed(encodeError({ message: "bad\nframe" }));
  assert.equal(readErrorMessage(error), "bad\nframe");
  const close = parsed(
    encodeClose({ sessionId: "s", channel: "git", code: 4002, reason: "newer" }),
  );
  assert.deepEqual(readClose(close), { code: 4002, reason: "newer" });
  assert.equal(readClose(parsed('{"type":"close","code":"x"}')), undefined);
  const end = parsed(
    encodeClientSessionEnd({ sessionId: "s", clientSession: "c9", reason: "gone" }),
  );
  assert.deepEqual([end.type, end.clientSession, end.fields.reason], [
    "client_session_end",
    "c9",
    "gone",
  ]);
});
