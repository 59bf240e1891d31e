// Unit tests of UTF-8 length counting.

import assert from "node:assert/strict";
import { utf8Length } from "../../lib/util/utf8.ts";

const encoder = new TextEncoder();

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
