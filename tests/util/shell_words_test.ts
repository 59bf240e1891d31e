import assert from "node:assert/strict";
import { joinCommand, quoteWord, splitCommand } from "../../lib/util/shell_words.ts";

Deno.test("splitCommand() splits on runs of whitespace", () => {
  assert.deepEqual(splitCommand("  npx   -y\tserver\n--flag  "), ["npx", "-y", "server", "--flag"]);
});

Deno.test("splitCommand() keeps single-quoted text literally", () => {
  assert.deepEqual(splitCommand(`echo 'a  b' '$HOME \\n "x"'`), ["echo", "a  b", `$HOME \\n "x"`]);
});

Deno.test("splitCommand() honours backslash escapes inside double quotes", () => {
  assert.deepEqual(splitCommand(`say "a \\"b\\" \\\\ \\$x \\n"`), ["say", `a "b" \\ $x \\n`]);
});

Deno.test("splitCommand() treats a backslash outside quotes as an escape", () => {
  assert.deepEqual(splitCommand(`open my\\ file \\'q\\' a\\\\b`), [
    "open",
    "my file",
    "'q'",
    "a\\b",
  ]);
});

Deno.test("splitCommand() removes backslash-newline continuations", () => {
  assert.deepEqual(splitCommand("run a\\\nb \\\n c"), ["run", "ab", "c"]);
});

Deno.test("splitCommand() joins adjacent quoted and unquoted parts into one word", () => {
  assert.deepEqual(splitCommand(`--root='/my dir'/sub"/x y"`), ["--root=/my dir/sub/x y"]);
});

Deno.test("splitCommand() keeps empty quoted arguments", () => {
  assert.deepEqual(splitCommand(`cmd '' "" x`), ["cmd", "", "", "x"]);
});

Deno.test("splitCommand() does not expand variables, globs, tildes or comments", () => {
  assert.deepEqual(splitCommand("ls $HOME ~ *.ts # not a comment"), [
    "ls",
    "$HOME",
    "~",
    "*.ts",
    "#",
    "not",
    "a",
    "comment",
  ]);
});

Deno.test("splitCommand() throws SyntaxError naming an unclosed single quote and its position", () => {
  assert.throws(() => splitCommand("echo 'abc"), (error: unknown) => {
    assert.ok(error instanceof SyntaxError);
    assert.match(error.message, /Unclosed single quote at character 6/);
    return true;
  });
});

Deno.test("splitCommand() throws SyntaxError naming an unclosed double quote and its position", () => {
  assert.throws(() => splitCommand(`a "b\\"`), (error: unknown) => {
    assert.ok(error instanceof SyntaxError);
    assert.match(error.message, /Unclosed double quote at character 3/);
    return true;
  });
});

Deno.test("splitCommand() counts positions in code points", () => {
  assert.throws(() => splitCommand("é😀 'x"), /character 4/);
});

Deno.test("splitCommand() throws SyntaxError on a trailing backslash", () => {
  assert.throws(() => splitCommand("run \\"), (error: unknown) => {
    assert.ok(error instanceof SyntaxError);
    assert.match(error.message, /Trailing backslash at character 5/);
    return true;
  });
});

Deno.test("splitCommand() throws SyntaxError on an empty command", () => {
  for (const text of ["", "   ", "\\\n"]) {
    assert.throws(() => splitCommand(text), (error: unknown) => {
      assert.ok(error instanceof SyntaxError);
      assert.match(error.message, /Command is empty/);
      return true;
    });
  }
});

Deno.test("quoteWord() leaves safe words alone and quotes the rest", () => {
  assert.equal(quoteWord("@scope/pkg-1.2:x=y,z"), "@scope/pkg-1.2:x=y,z");
  assert.equal(quoteWord(""), "''");
  assert.equal(quoteWord("a b"), "'a b'");
  assert.equal(quoteWord("it's"), `'it'"'"'s'`);
});

Deno.test("joinCommand() round-trips through splitCommand()", () => {
  const words = [
    "python3",
    "-c",
    "print('hi there')",
    "",
    "$HOME",
    'a"b',
    "back\\slash",
    "tab\there",
  ];
  assert.deepEqual(splitCommand(joinCommand(words)), words);
});
