// Unit tests of gateway frame parsing and UTF-8 length counting.

import assert from "node:assert/strict";
import { parseFrame, PAYLOAD_TEXT, utf8Length } from "../../lib/protocol/frames.ts";
import { SCAN_ABOVE_CHARS } from "../../lib/protocol/json_scan.ts";

const encoder = new TextEncoder();

Deno.test("parseFrame() returns the frame of a JSON object with a string type", () => {
  const frame = parseFrame('{"type":"heartbeat","sessionId":"s1","extra":[1]}');
  assert.ok(!(frame instanceof Error));
  assert.deepEqual(frame, { type: "heartbeat", sessionId: "s1", extra: [1] });
});

Deno.test("parseFrame() accepts a frame without sessionId", () => {
  const frame = parseFrame('{"type":"register_ack","status":"success"}');
  assert.ok(!(frame instanceof Error));
  assert.equal(frame.type, "register_ack");
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

Deno.test("parseFrame() returns a SyntaxError for a sessionId that is not a string", () => {
  for (const text of ['{"type":"heartbeat","sessionId":7}', '{"type":"x","sessionId":null}']) {
    const result = parseFrame(text);
    assert.ok(result instanceof SyntaxError, text);
    assert.equal(result.message, "Frame field 'sessionId' is not a string", text);
  }
});

Deno.test("utf8Length() agrees with TextEncoder on mixed text with surrogate pairs", () => {
  const samples = [
    "",
    "plain ascii",
    "é",
    "ß\u07ff",
    "\u0800€中文",
    "😀",
    "a😀b𝄞c",
    "mixed: héllo, € 20, 中文, 😀👍🏽, 𝄞 and \u{10ffff}",
    JSON.stringify({ type: "response", payload: { text: "naïve 👩‍👩‍👧 ✓" } }),
    "😀".repeat(1000) + "x",
  ];
  for (const text of samples) {
    assert.equal(utf8Length(text), encoder.encode(text).length, JSON.stringify(text));
  }
});

Deno.test("utf8Length() agrees with TextEncoder on lone surrogates", () => {
  // TextEncoder writes each lone surrogate as U+FFFD (3 bytes).
  for (const text of ["\ud800", "\udc00", "\ud800a", "\ud800\ud800", "a\udc00\ud83d\ude00\ud800"]) {
    assert.equal(utf8Length(text), encoder.encode(text).length, JSON.stringify(text));
  }
});

Deno.test("parseFrame() never quotes the frame's text in its error (it may hold credentials)", () => {
  const result = parseFrame(
    '{"type":"request","authentication":{"Authorization":"Bearer SECRET-123"} oops',
  );
  assert.ok(result instanceof SyntaxError);
  assert.ok(!result.message.includes("SECRET-123"), result.message);
});

Deno.test("parseFrame() with payloadAsText keeps a long frame's payload as its text and parses the rest", () => {
  const payload = {
    jsonrpc: "2.0",
    id: 9,
    method: "tools/call",
    params: { arguments: { text: "é".repeat(SCAN_ABOVE_CHARS) } },
  };
  const payloadJson = JSON.stringify(payload);
  const text = `{"type":"request","sessionId":"s1","seq":4,"payload":${payloadJson},"ack":2}`;
  const frame = parseFrame(text, { payloadAsText: true });
  assert.ok(!(frame instanceof Error));
  assert.equal(frame[PAYLOAD_TEXT], payloadJson);
  assert.equal(frame.payload, undefined);
  assert.deepEqual(Object.fromEntries(Object.entries(frame)), {
    type: "request",
    sessionId: "s1",
    seq: 4,
    ack: 2,
  });
  // Without the option, or when short, the frame is parsed as usual.
  const parsed = parseFrame(text);
  assert.ok(!(parsed instanceof Error));
  assert.deepEqual(parsed.payload, payload);
  const short = parseFrame('{"type":"request","payload":{"jsonrpc":"2.0","method":"x"}}', {
    payloadAsText: true,
  });
  assert.ok(!(short instanceof Error));
  assert.deepEqual(short.payload, { jsonrpc: "2.0", method: "x" });
  assert.equal(short[PAYLOAD_TEXT], undefined);
});

Deno.test("parseFrame() with payloadAsText refuses a long frame as parseFrame() does, and keeps odd keys as fields", () => {
  const filler = "x".repeat(SCAN_ABOVE_CHARS);
  const cut = parseFrame(`{"type":"request","payload":{"text":"${filler}"}`, {
    payloadAsText: true,
  });
  assert.ok(cut instanceof SyntaxError);
  assert.equal(cut.message, "Frame is not valid JSON");
  const array = parseFrame(`[{"type":"request","filler":"${filler}"}]`, { payloadAsText: true });
  assert.ok(array instanceof SyntaxError);
  assert.equal(array.message, "Frame is not a JSON object");
  const untyped = parseFrame(`{"type":1,"payload":"${filler}"}`, { payloadAsText: true });
  assert.ok(untyped instanceof SyntaxError);
  assert.equal(untyped.message, "Frame has no string 'type' field");
  const odd = parseFrame(
    `{"type":"request","__proto__":{"polluted":true},"payloadText":"not the payload","filler":"${filler}"}`,
    { payloadAsText: true },
  );
  assert.ok(!(odd instanceof Error));
  assert.deepEqual(Object.getPrototypeOf(odd), Object.prototype);
  assert.equal((odd as Record<string, unknown>).polluted, undefined);
  assert.deepEqual(Object.getOwnPropertyDescriptor(odd, "__proto__")?.value, { polluted: true });
  assert.equal(odd.payloadText, "not the payload");
  assert.equal(odd[PAYLOAD_TEXT], undefined);
});
