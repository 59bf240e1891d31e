// Unit tests of scanJson and scanFacts: they must accept exactly what JSON.parse accepts and find the same
// top-level fields, checked on edge cases and on thousands of generated and mutated texts.

import assert from "node:assert/strict";
import { scanJson } from "../../lib/protocol/json_scan.ts";
import { factsOf, scanFacts } from "../../lib/protocol/jsonrpc.ts";

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

const ALL = new Set(["jsonrpc", "id", "method", "result", "error", "params", "a", "b"]);

/** Asserts the scan agrees with JSON.parse: validity, and each wanted top-level field's value. */
function agrees(text: string): void {
  const scan = scanJson(text, ALL);
  const valid = parses(text);
  assert.equal(scan !== undefined, valid, `validity of ${JSON.stringify(text.slice(0, 200))}`);
  if (scan === undefined) return;
  const value: unknown = JSON.parse(text);
  const root = Array.isArray(value)
    ? "array"
    : typeof value === "object" && value !== null
    ? "object"
    : "scalar";
  assert.equal(scan.root, root);
  if (root !== "object") return;
  const object = value as Record<string, unknown>;
  const expected = Object.keys(object).filter((k) => ALL.has(k)).sort();
  assert.deepEqual([...scan.fields.keys()].sort(), expected, `fields of ${text.slice(0, 200)}`);
  for (const [name, span] of scan.fields) {
    assert.deepEqual(JSON.parse(text.slice(span.start, span.end)), object[name]);
  }
}

Deno.test("scanJson() accepts and refuses exactly what JSON.parse does, on edge cases", () => {
  const cases = [
    "",
    " ",
    "{}",
    "[]",
    " { } ",
    "\t[\r\n]\n",
    "0",
    "-0",
    "01",
    "1.",
    ".5",
    "1e",
    "1e+",
    "1E5",
    "-1.5e-3",
    "-",
    "--1",
    "+1",
    "1 2",
    "true",
    "tru",
    "true1",
    "nul",
    "null",
    "false",
    '"a"',
    '"a',
    '"\\u00e9"',
    '"\\u00G9"',
    '"\\x"',
    '"\\/\\b\\f\\n\\r\\t\\"\\\\"',
    '"tab\there"',
    '"\u0001"',
    '"\ud800 lone surrogate"',
    "[1,]",
    "[,1]",
    "[1 2]",
    '{"a":1,}',
    '{"a" 1}',
    '{"a":}',
    "{a:1}",
    '{"a":1 "b":2}',
    '{"a":1,"a":2}',
    '{"a":{"a":3},"b":[{"a":4}]}',
    '{"\\u0061":5}',
    '{"a":[1,{"b":null}],"b":"}"}',
    "[[[]]]",
    "[[[]]",
    "{}}",
    "\u00a0{}",
    "{}\u00a0",
  ];
  for (const text of cases) agrees(text);
});

Deno.test("scanJson() keeps the last of duplicate keys and ignores nested keys of the same name", () => {
  const text = '{"a":{"b":1},"b":[{"a":2}],"a":"last"}';
  const scan = scanJson(text, new Set(["a", "b"]));
  assert.ok(scan);
  const a = scan.fields.get("a")!;
  assert.equal(text.slice(a.start, a.end), '"last"');
  const b = scan.fields.get("b")!;
  assert.equal(text.slice(b.start, b.end), '[{"a":2}]');
});

Deno.test("scanJson() handles deep nesting without recursion", () => {
  const depth = 200_000;
  assert.ok(scanJson("[".repeat(depth) + "]".repeat(depth), ALL));
  assert.equal(scanJson("[".repeat(depth) + "]".repeat(depth - 1), ALL), undefined);
  assert.ok(scanJson('{"a":'.repeat(depth) + "1" + "}".repeat(depth), ALL));
});

Deno.test("scanJson() validates a 16 MiB string in place", () => {
  const big = "x".repeat(16 * 1024 * 1024);
  const text = `{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"${big}"}]}}`;
  const scan = scanJson(text, ALL);
  assert.ok(scan);
  const id = scan.fields.get("id")!;
  assert.equal(text.slice(id.start, id.end), "1");
  // One control character far inside the string makes it invalid, as for JSON.parse.
  const bad = text.slice(0, 10_000_000) + "\u0007" + text.slice(10_000_001);
  assert.equal(scanJson(bad, ALL), undefined);
  assert.equal(parses(bad), false);
});

/** A small deterministic PRNG (mulberry32), so that a failure can be replayed. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomValue(random: () => number, depth: number): unknown {
  const pick = Math.floor(random() * (depth > 3 ? 5 : 7));
  const keys = ["jsonrpc", "id", "method", "result", "error", "params", "a", "b", "x", "é"];
  switch (pick) {
    case 0:
      return null;
    case 1:
      return random() < 0.5;
    case 2:
      return [0, -1, 1.5, 1e21, -2.5e-7, 42][Math.floor(random() * 6)];
    case 3:
      return ["", "2.0", 'q"uote', "back\\slash", "é€😀", "\n\t", "\u0001"][
        Math.floor(random() * 7)
      ];
    case 4:
      return String(Math.floor(random() * 1000));
    case 5:
      return Array.from({ length: Math.floor(random() * 4) }, () => randomValue(random, depth + 1));
    default: {
      const object: Record<string, unknown> = {};
      for (let i = Math.floor(random() * 5); i > 0; i--) {
        object[keys[Math.floor(random() * keys.length)]!] = randomValue(random, depth + 1);
      }
      return object;
    }
  }
}

function mutate(text: string, random: () => number): string {
  const at = Math.floor(random() * (text.length + 1));
  const noise = ['"', "\\", "{", "}", "[", "]", ",", ":", "1", "-", ".", "e", " ", "n", "\u0000"];
  switch (Math.floor(random() * 4)) {
    case 0:
      return text.slice(0, at) + text.slice(at + 1);
    case 1:
      return text.slice(0, at) + noise[Math.floor(random() * noise.length)] + text.slice(at);
    case 2:
      return text.slice(0, at);
    default:
      return text;
  }
}

Deno.test("scanJson() agrees with JSON.parse on 20,000 generated and mutated texts", () => {
  const random = prng(20261125);
  let invalid = 0;
  for (let i = 0; i < 20_000; i++) {
    const value = randomValue(random, 0);
    const spaced = random() < 0.3 ? JSON.stringify(value, null, 1) : JSON.stringify(value);
    const text = mutate(spaced, random);
    if (!parses(text)) invalid++;
    agrees(text);
  }
  // The corpus must exercise both answers.
  assert.ok(invalid > 2_000, `only ${invalid} invalid texts`);
  assert.ok(invalid < 18_000, `only ${20_000 - invalid} valid texts`);
});

Deno.test("scanFacts() gives what factsOf(JSON.parse()) gives, and 'batch' for an array", () => {
  const random = prng(7);
  const ids = [1, "a", null, 1.5, true, {}, "mcp-1"];
  const methods = ["ping", 3, null, "notifications/x"];
  for (let i = 0; i < 5_000; i++) {
    const message: Record<string, unknown> = {};
    if (random() < 0.9) message.jsonrpc = random() < 0.9 ? "2.0" : "1.0";
    if (random() < 0.6) message.id = ids[Math.floor(random() * ids.length)];
    if (random() < 0.5) message.method = methods[Math.floor(random() * methods.length)];
    if (random() < 0.4) message.result = randomValue(random, 2);
    if (random() < 0.2) message.error = { code: -1, message: "e" };
    if (random() < 0.3) message.params = randomValue(random, 2);
    const text = JSON.stringify(message);
    assert.deepEqual(scanFacts(text), factsOf(message), text);
  }
  assert.equal(scanFacts('[{"jsonrpc":"2.0","method":"a"}]'), "batch");
  assert.equal(scanFacts('{"jsonrpc":"2.0","id":1,"result":'), undefined);
  assert.deepEqual(scanFacts("42"), { kind: "invalid" });
  assert.deepEqual(scanFacts('{"jsonrpc":"2.0","\\u0069d":7,"result":{}}'), {
    kind: "response",
    id: 7,
  });
});
