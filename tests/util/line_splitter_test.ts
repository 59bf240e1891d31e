// Unit tests of LineSplitter: chunk boundaries, CRLF, empty lines, huge lines, the line limit, the last line.

import assert from "node:assert/strict";
import {
  type Line,
  LineSplitter,
  type LineSplitterOptions,
  type OversizedLine,
} from "../../lib/util/line_splitter.ts";

const encoder = new TextEncoder();

async function split(
  chunks: (string | Uint8Array)[],
  options?: LineSplitterOptions,
): Promise<Line[]> {
  const bytes = chunks.map((c) => typeof c === "string" ? encoder.encode(c) : c);
  return await Array.fromAsync(ReadableStream.from(bytes).pipeThrough(new LineSplitter(options)));
}

/** Splits `text` into chunks of `size` bytes, cutting through lines and multi-byte characters alike. */
function chunksOf(text: string, size: number): Uint8Array[] {
  const bytes = encoder.encode(text);
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.slice(i, i + size));
  return chunks;
}

Deno.test("LineSplitter() joins lines split across chunks", async () => {
  const lines = await split(['{"a":', "1}\n{", '"b":2}\n']);
  assert.deepEqual(lines.map((l) => l.text), ['{"a":1}', '{"b":2}']);
});

Deno.test("LineSplitter() splits several lines in one chunk, in order", async () => {
  const lines = await split(["one\ntwo\nthree\n"]);
  assert.deepEqual(lines.map((l) => l.text), ["one", "two", "three"]);
});

Deno.test("LineSplitter() decodes a multi-byte character cut between chunks", async () => {
  const text = "héllo €uro 😀 done\n";
  for (let size = 1; size <= 5; size++) {
    const lines = await split(chunksOf(text, size));
    assert.deepEqual(lines.map((l) => l.text), ["héllo €uro 😀 done"], `chunk size ${size}`);
  }
});

Deno.test("LineSplitter() strips CRLF, also when the CR ends one chunk and the LF starts the next", async () => {
  const lines = await split(["a\r\nb\r", "\nc\r\n"]);
  assert.deepEqual(lines.map((l) => l.text), ["a", "b", "c"]);
  assert.deepEqual(lines.map((l) => l.bytes), [1, 1, 1]);
});

Deno.test("LineSplitter() skips empty lines, CRLF-only lines included", async () => {
  const lines = await split(["\n\nx\n\r\n\n", "\ny\n"]);
  assert.deepEqual(lines.map((l) => l.text), ["x", "y"]);
});

Deno.test("LineSplitter() reports the byte length of each line without its newline", async () => {
  const lines = await split(["é€😀\nab\n"]);
  assert.deepEqual(lines, [{ text: "é€😀", bytes: 2 + 3 + 4 }, { text: "ab", bytes: 2 }]);
});

Deno.test("LineSplitter() flushes a final line that has no newline", async () => {
  const lines = await split(["first\nlas", "t"]);
  assert.deepEqual(lines.map((l) => l.text), ["first", "last"]);
});

Deno.test("LineSplitter() keeps its own copy of an unfinished line when the writer reuses its buffer", async () => {
  const splitter = new LineSplitter();
  const reading = Array.fromAsync(splitter.readable);
  const writer = splitter.writable.getWriter();
  const buffer = encoder.encode("abc");
  await writer.write(buffer);
  buffer.set(encoder.encode("XYZ"));
  await writer.write(encoder.encode("def\n"));
  await writer.close();
  assert.deepEqual((await reading).map((l) => l.text), ["abcdef"]);
});

Deno.test("LineSplitter() passes a 16 MiB line in 64 KiB chunks intact", async () => {
  const size = 16 * 1024 * 1024;
  const big = new Uint8Array(size);
  // A pattern that changes every byte, so that a misplaced or dropped chunk changes the text.
  for (let i = 0; i < size; i++) big[i] = 0x21 + (i * 7 + (i >> 16)) % 90;
  const chunks: Uint8Array[] = [encoder.encode("before\n")];
  for (let i = 0; i < size; i += 64 * 1024) chunks.push(big.subarray(i, i + 64 * 1024));
  chunks.push(encoder.encode("\nafter\n"));
  const lines = await split(chunks);
  assert.equal(lines.length, 3);
  assert.equal(lines[0]?.text, "before");
  assert.equal(lines[1]?.bytes, size);
  assert.equal(lines[1]?.text, new TextDecoder().decode(big));
  assert.equal(lines[2]?.text, "after");
});

Deno.test("LineSplitter() keeps a line of exactly maxLineBytes and reports one byte longer", async () => {
  const oversized: { head: string; bytes: number }[] = [];
  const lines = await split(["12345\n123456\nok\n"], {
    maxLineBytes: 5,
    onOversized: (line) => oversized.push(line),
  });
  assert.deepEqual(lines.map((l) => l.text), ["12345", "ok"]);
  assert.equal(oversized.length, 1);
  assert.equal(oversized[0]?.head, "123456");
  assert.equal(oversized[0]?.bytes, 6);
});

Deno.test("LineSplitter() reports an oversized line once with its head and skips to the next line", async () => {
  const long = `{"jsonrpc":"2.0","id":42,"result":"${"x".repeat(200)}"}`;
  const oversized: { head: string; bytes: number }[] = [];
  const lines = await split(chunksOf(`short\n${long}\nafter\n`, 7), {
    maxLineBytes: 50,
    onOversized: (line) => oversized.push(line),
  });
  assert.deepEqual(lines.map((l) => l.text), ["short", "after"]);
  assert.equal(oversized.length, 1);
  assert.ok(oversized[0]!.bytes > 50, `bytes ${oversized[0]!.bytes}`);
  // The head must hold the start of the line, however the line was chunked, so that its id can be found.
  assert.ok(
    oversized[0]!.head.startsWith('{"jsonrpc":"2.0","id":42'),
    `head ${JSON.stringify(oversized[0]!.head)}`,
  );
  assert.ok(long.startsWith(oversized[0]!.head));
});

Deno.test("LineSplitter() reports an oversized line's last bytes, where an id written after the result is", async () => {
  // The MCP TypeScript SDK writes `{"result":…,"jsonrpc":"2.0","id":7}`: the id is only at the end.
  const long = `{"result":{"text":"${"é".repeat(300)}"},"jsonrpc":"2.0","id":7}`;
  for (const size of [7, 64, 4096]) {
    const oversized: OversizedLine[] = [];
    const lines = await split(chunksOf(`${long}\r\nafter\n`, size), {
      maxLineBytes: 100,
      onOversized: (line) => oversized.push(line),
    });
    assert.deepEqual(lines.map((l) => l.text), ["after"], `chunks of ${size}`);
    assert.equal(oversized.length, 1, `chunks of ${size}`);
    const { tail, bytes } = oversized[0]!;
    assert.ok(
      tail.endsWith('"jsonrpc":"2.0","id":7}\r'),
      `chunks of ${size}: ${JSON.stringify(tail)}`,
    );
    assert.ok(`${long}\r`.endsWith(tail.replace(/^\uFFFD/, "")), `chunks of ${size}: not the end`);
    assert.equal(bytes, encoder.encode(`${long}\r`).length, `chunks of ${size}`);
  }
});

Deno.test("LineSplitter() reports an oversized line that arrives in one chunk", async () => {
  const oversized: { head: string; bytes: number }[] = [];
  const lines = await split([`a\n${"y".repeat(300)}\nb\n`], {
    maxLineBytes: 100,
    onOversized: (line) => oversized.push(line),
  });
  assert.deepEqual(lines.map((l) => l.text), ["a", "b"]);
  assert.equal(oversized.length, 1);
  assert.equal(oversized[0]?.head, "y".repeat(256));
  assert.equal(oversized[0]?.bytes, 300);
});

Deno.test("LineSplitter() does not flush the rest of an oversized final line", async () => {
  const oversized: { head: string; bytes: number }[] = [];
  const lines = await split(["ok\n", "z".repeat(20), "z".repeat(20)], {
    maxLineBytes: 10,
    onOversized: (line) => oversized.push(line),
  });
  assert.deepEqual(lines.map((l) => l.text), ["ok"]);
  assert.equal(oversized.length, 1);
});
