import assert from "node:assert/strict";
import { formatByteSize, parseByteSize } from "../../lib/util/byte_size.ts";

Deno.test("parseByteSize() reads bytes with binary unit suffixes, any case", () => {
  assert.equal(parseByteSize("2048"), 2048);
  assert.equal(parseByteSize("4KiB"), 4096);
  assert.equal(parseByteSize("4k"), 4096);
  assert.equal(parseByteSize("3 mb"), 3 * 1024 * 1024);
  assert.equal(parseByteSize("16MiB"), 16 * 1024 * 1024);
  assert.equal(parseByteSize(" 1b "), 1);
});

Deno.test("parseByteSize() is undefined for anything else", () => {
  for (const text of ["", "MiB", "1.5MiB", "-1", "4GiB", "12 parsecs", "1e3"]) {
    assert.equal(parseByteSize(text), undefined, text);
  }
  assert.equal(parseByteSize("9".repeat(20)), undefined);
});

Deno.test("formatByteSize() writes whole MiB and KiB the way the docs do", () => {
  assert.equal(formatByteSize(32 * 1024 * 1024), "32MiB");
  assert.equal(formatByteSize(256 * 1024), "256KiB");
  assert.equal(formatByteSize(1000), "1000");
});
