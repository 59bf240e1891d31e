// The tokens file: both formats parsed, refusals that never echo a token, and entries written so that
// they parse back.

import assert from "node:assert/strict";
import {
  formatTokenEntry,
  parseTokensFile,
  tokensFileFormat,
} from "../../lib/serve/tokens_file.ts";
import { createTokenStore } from "../../lib/serve/token_store.ts";

Deno.test("parseTokensFile() reads one token per line with optional owner and comments", () => {
  const entries = parseTokensFile("# comment\n\ntok-a\ntok-b bob\n");
  assert.deepEqual(entries.map((e) => [e.token, e.owner, e.roles]), [
    ["tok-a", "default", ["connect", "client"]],
    ["tok-b", "bob", ["connect", "client"]],
  ]);
});

Deno.test("parseTokensFile() reads a YAML map of owners and of {owner, roles}", () => {
  const entries = parseTokensFile(
    "tok-a: alice\ntok-b: {owner: bob, roles: [connect]}\ntok-c:\n  owner: ops\n  roles: [admin]\n",
  );
  assert.deepEqual(entries.map((e) => [e.token, e.owner, e.roles]), [
    ["tok-a", "alice", ["connect", "client"]],
    ["tok-b", "bob", ["connect"]],
    ["tok-c", "ops", ["admin"]],
  ]);
});

Deno.test("parseTokensFile() refuses unknown roles and missing owners without echoing the token", () => {
  assert.throws(
    () => parseTokensFile("secret-tok: {owner: bob, roles: [root]}"),
    (error: Error) =>
      error instanceof SyntaxError && /unknown role "root"/.test(error.message) &&
      !error.message.includes("secret-tok"),
  );
  assert.throws(() => parseTokensFile("secret-tok: {roles: [client]}"), SyntaxError);
  assert.throws(() => parseTokensFile("a b c"), /expected 'TOKEN' or 'TOKEN OWNER'/);
});

Deno.test("parseTokensFile() refuses a YAML list of tokens instead of making '-' a token for an owner named after the real one", async () => {
  const list = "- secret-tok-abc\n- secret-tok-def\n";
  assert.throws(
    () => parseTokensFile(list),
    (error: Error) =>
      error instanceof SyntaxError && /^Line 1: .*YAML list item/.test(error.message) &&
      /TOKEN: OWNER/.test(error.message) && !error.message.includes("secret-tok"),
  );
  // Before, the store let anyone in with the one-character token "-".
  await assert.rejects(() => createTokenStore({ tokensFile: list }), SyntaxError);
});

Deno.test("parseTokensFile() refuses a YAML map that is not valid YAML, naming the parser's reason, instead of reading 'TOKEN:' as the token", async () => {
  const cases = [
    ["secret-tok-a: alice\nsecret-tok-a: bob\n", /line 2: duplicated mapping key/],
    ["secret-tok-a: alice\n\tsecret-tok-b: bob\n", /line 2: tab characters/],
  ] as const;
  for (const [text, reason] of cases) {
    assert.throws(
      () => parseTokensFile(text),
      (error: Error) =>
        error instanceof SyntaxError && /^Line 1: reads as a YAML map entry/.test(error.message) &&
        reason.test(error.message) && !error.message.includes("secret-tok"),
    );
    // Before, serve started with the token "secret-tok-a:" and refused "secret-tok-a".
    await assert.rejects(() => createTokenStore({ tokensFile: text }), SyntaxError);
  }
});

Deno.test("tokensFileFormat() tells YAML, lines and a file with no entry yet apart", () => {
  assert.equal(tokensFileFormat("tok-a: alice\n"), "yaml");
  assert.equal(tokensFileFormat("# tokens\ntok-a: {owner: a}\n"), "yaml");
  assert.equal(tokensFileFormat("tok-a alice\ntok-b\n"), "lines");
  assert.equal(tokensFileFormat("tok-a\n"), "lines");
  assert.equal(tokensFileFormat(""), "empty");
  assert.equal(tokensFileFormat("# only a comment\n\n"), "empty");
});

Deno.test("formatTokenEntry() writes entries that parse back to themselves in either format", () => {
  const owners = ["alice", "jwt:alice@example.com", "ops # team", "a: b", 'q"uote', "ünï"];
  for (const owner of owners) {
    const entry = { token: "mrp_AbC-_09", owner, roles: ["client" as const] };
    const text = "# tokens\ntok-old: bob\n" + formatTokenEntry(entry, "yaml");
    assert.deepEqual(parseTokensFile(text).at(-1), entry, owner);
  }
  const line = { token: "mrp_x", owner: "bob", roles: ["connect" as const, "client" as const] };
  assert.deepEqual(parseTokensFile("tok-a\n" + formatTokenEntry(line, "lines")).at(-1), line);
  assert.equal(
    formatTokenEntry(line, "empty"),
    'mrp_x: {owner: "bob", roles: [connect, client]}\n',
  );
});

Deno.test("formatTokenEntry() refuses what the lines format cannot hold", () => {
  assert.throws(
    () => formatTokenEntry({ token: "t", owner: "bob", roles: ["client"] }, "lines"),
    /cannot hold others; convert the file to YAML/,
  );
  assert.throws(
    () =>
      formatTokenEntry({ token: "t", owner: "bob smith", roles: ["connect", "client"] }, "lines"),
    /owner with spaces/,
  );
});
