// The README, docs/configuration.md and docs/serve.md list every flag with its default: they must say
// what `--help` says (whose defaults come from the code), flag for flag.

import assert from "node:assert/strict";
import { connectHelpText } from "../lib/connect/help.ts";
import { serveHelpText } from "../lib/serve/help.ts";

const ROOT = new URL("../", import.meta.url);

/** What one source says about one flag. */
interface FlagFacts {
  /** Normalized: lower case, no backticks; "none" for none, off, — or nothing said. */
  default: string;
  /** Environment variables named for it. */
  env: string[];
}

const ENV = /\b(?:REVERSE_PROXY|MCP_RPROXY)_[A-Z_]+\b/g;

function normalize(text: string): string {
  const plain = text.replaceAll("`", "").replace(/\s+/g, " ").trim().toLowerCase();
  return ["", "—", "-", "none", "off"].includes(plain) ? "none" : plain;
}

function envOf(text: string): string[] {
  return [...new Set(text.match(ENV) ?? [])].sort();
}

/**
 * The flags of a help text: an entry starts on a line indented by two spaces and a dash and runs
 * over the more-indented lines after it; its default is `(default X)` / `(default: X)` up to `;` or
 * `)`, or `(required)`.
 */
function helpFlags(help: string): Map<string, FlagFacts> {
  const entries: string[][] = [];
  let current: string[] | undefined;
  for (const line of help.split("\n")) {
    if (/^ {2}-/.test(line)) entries.push(current = [line]);
    else if (current !== undefined && /^ {4,}\S/.test(line)) current.push(line);
    else current = undefined;
  }
  const flags = new Map<string, FlagFacts>();
  for (const lines of entries) {
    const name = /^ {2}(?:-[a-zA-Z], )?(--[a-z][a-z-]*)/.exec(lines[0]!)?.[1];
    if (name === undefined) continue; // "-- CMD ARGS...": not a flag
    const entry = lines.join("\n");
    const stated = /\(default:? ([^;)]*)/.exec(entry)?.[1] ??
      (/\(required\)/.test(entry) ? "required" : "");
    flags.set(name, { default: normalize(stated), env: envOf(entry) });
  }
  return flags;
}

/** The rows of the first markdown table after `heading` whose first header cell is "flag". */
async function docFlags(path: string, heading: string): Promise<Map<string, FlagFacts>> {
  const text = await Deno.readTextFile(new URL(path, ROOT));
  const start = text.indexOf(heading);
  assert.notEqual(start, -1, `${path} has ${heading}`);
  const lines = text.slice(start).split("\n");
  const headerAt = lines.findIndex((line) => /^\|\s*flag\s*\|/i.test(line));
  assert.notEqual(headerAt, -1, `a flag table under ${heading} in ${path}`);
  const cells = (line: string) =>
    line.replace(/^\||\|$/g, "").split(/(?<!\\)\|/).map((cell) => cell.trim());
  const header = cells(lines[headerAt]!);
  const defaultColumn = header.findIndex((cell) => /^default$/i.test(cell));
  assert.notEqual(defaultColumn, -1, `a default column in ${path}`);
  const flags = new Map<string, FlagFacts>();
  for (const line of lines.slice(headerAt + 2)) {
    if (!line.startsWith("|")) break;
    const row = cells(line);
    for (const name of row[0]!.match(/--[a-z][a-z-]*/g) ?? []) {
      flags.set(name, { default: normalize(row[defaultColumn] ?? ""), env: envOf(line) });
    }
  }
  return flags;
}

function assertAgree(
  docs: Map<string, FlagFacts>,
  help: Map<string, FlagFacts>,
  where: string,
): void {
  assert.deepEqual([...docs.keys()].sort(), [...help.keys()].sort(), `${where}: the same flags`);
  for (const [flag, facts] of help) {
    const documented = docs.get(flag)!;
    assert.equal(documented.default, facts.default, `${where}: default of ${flag}`);
    assert.deepEqual(documented.env, facts.env, `${where}: environment of ${flag}`);
  }
}

Deno.test("the README's connect table agrees with connect --help on flags, defaults and variables", async () => {
  assertAgree(await docFlags("README.md", "## connect"), helpFlags(connectHelpText()), "README");
});

Deno.test("docs/configuration.md agrees with connect --help on flags, defaults and variables", async () => {
  assertAgree(
    await docFlags("docs/configuration.md", "## Settings"),
    helpFlags(connectHelpText()),
    "docs/configuration.md",
  );
});

Deno.test("docs/serve.md agrees with serve --help on flags, defaults and variables", async () => {
  assertAgree(
    await docFlags("docs/serve.md", "## Flags"),
    helpFlags(serveHelpText()),
    "docs/serve.md",
  );
});

Deno.test("helpFlags() reads a default, (required), a variable and a flag without default", () => {
  const flags = helpFlags(`Usage: x

  --listen HOST:PORT   where
                       (default 127.0.0.1:8080)
  --gateway URL        (required) [env REVERSE_PROXY_GATEWAY]
  -h, --help           help
  --level L            (default: info; env MCP_RPROXY_LOG_LEVEL)
`);
  assert.deepEqual(Object.fromEntries(flags), {
    "--listen": { default: "127.0.0.1:8080", env: [] },
    "--gateway": { default: "required", env: ["REVERSE_PROXY_GATEWAY"] },
    "--help": { default: "none", env: [] },
    "--level": { default: "info", env: ["MCP_RPROXY_LOG_LEVEL"] },
  });
});
