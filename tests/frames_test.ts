// Unit tests of gateway frame parsing and UTF-8 length counting.

import assert from "node:assert/strict";
import { parseFrame, utf8Length } from "../lib/frames.ts";

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
