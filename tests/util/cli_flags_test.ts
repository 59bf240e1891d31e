import assert from "node:assert/strict";
import { parseFlags, wantsHelp } from "../../lib/util/cli_flags.ts";
import { ConfigError } from "../../lib/util/errors.ts";

const FLAGS = {
  "max-retries": { type: "string" },
  verbose: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
} as const;

function fails(args: string[], pattern: RegExp, positionals = false): void {
  assert.throws(
    () => parseFlags(args, { command: "demo", flags: FLAGS, positionals }),
    (error: unknown) => error instanceof ConfigError && pattern.test(error.message),
    args.join(" "),
  );
}

Deno.test("parseFlags() reads flags, =value forms and negative numbers as values", () => {
  const { values } = parseFlags(["--max-retries", "-1", "--verbose"], {
    command: "demo",
    flags: FLAGS,
  });
  assert.equal(values["max-retries"], "-1");
  assert.equal(values.verbose, true);
  assert.equal(
    parseFlags(["--max-retries=3"], { command: "demo", flags: FLAGS }).values["max-retries"],
    "3",
  );
});

Deno.test("parseFlags() names an unknown flag, suggests the nearest and points to --help", () => {
  fails(
    ["--max-retry", "3"],
    /^Unknown option '--max-retry': did you mean --max-retries\? Run 'mcp-rproxy demo --help' for the list$/,
  );
  fails(["--zzzzzzzz"], /^Unknown option '--zzzzzzzz': run 'mcp-rproxy demo --help' for the list$/);
  fails(
    ["-x"],
    /^Unknown option '-x': the only short options are -h \(--help\) and -V \(--version\);/,
  );
});

Deno.test("parseFlags() names a missing or unwanted value, never repeating a value", () => {
  fails(["--max-retries"], /^--max-retries needs a value: write --max-retries VALUE/);
  fails(["--max-retries", "--verbose"], /^--max-retries needs a value but is followed by another/);
  fails(["--verbose=s3cret"], /^--verbose takes no value: write just --verbose$/);
  fails(["stray"], /^Unexpected argument 'stray': demo takes only flags/);
});

Deno.test("wantsHelp() finds -h or --help before --, even next to a mistake", () => {
  assert.equal(wantsHelp(["--bogus", "-h"]), true);
  assert.equal(wantsHelp(["--help"]), true);
  assert.equal(wantsHelp(["--", "server", "--help"]), false);
  assert.equal(wantsHelp(["--local-stdio", "srv --help"]), false);
});
