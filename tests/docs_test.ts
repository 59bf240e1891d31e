// The README, docs/configuration.md and docs/serve.md list every flag with its default: they must say
// what `--help` says (whose defaults come from the code), flag for flag. docs/security.md lists every
// limit with the test that attacks it: every limit in the code has its row, and every test it names
// exists under that name.

import assert from "node:assert/strict";
import { resolveConnectConfig } from "../lib/connect/config.ts";
import { connectHelpText } from "../lib/connect/help.ts";
import { createConnectMetrics } from "../lib/connect/metrics.ts";
import { createServeMetrics } from "../lib/serve/metrics.ts";
import { CONNECT_FLAGS } from "../lib/connect/flags.ts";
import { KEYS } from "../lib/connect/config_layers.ts";
import { parseServeArgs, SERVE_FLAGS, type ServeSettings } from "../lib/serve/config.ts";
import { type GatewayLimits, LIMIT_DEFAULTS } from "../lib/serve/gateway_limits.ts";
import { serveHelpText } from "../lib/serve/help.ts";
import { ATTACKS } from "./attack/scenarios/all.ts";
import { CONNECT_ENV, SERVE_ENV } from "../scripts/permissions.ts";
import { commands, shellBlocks } from "./fixtures/readme.ts";

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

/** The header and rows (cells, pipes unescaped) of the first markdown table after `heading`. */
async function tableAfter(
  path: string,
  heading: string,
): Promise<{ header: string[]; rows: string[][] }> {
  const text = await Deno.readTextFile(new URL(path, ROOT));
  const start = text.indexOf(heading);
  assert.notEqual(start, -1, `${path} has ${heading}`);
  const lines = text.slice(start).split("\n");
  const headerAt = lines.findIndex((line) => /^\|\s*flag\s*\|/i.test(line));
  assert.notEqual(headerAt, -1, `a flag table under ${heading} in ${path}`);
  const cells = (line: string) =>
    line.replace(/^\||\|$/g, "").split(/(?<!\\)\|/).map((cell) => cell.trim());
  const rows: string[][] = [];
  for (const line of lines.slice(headerAt + 2)) {
    if (!line.startsWith("|")) break;
    rows.push(cells(line));
  }
  return { header: cells(lines[headerAt]!), rows };
}

/** The rows of the first markdown table after `heading` whose first header cell is "flag". */
async function docFlags(path: string, heading: string): Promise<Map<string, FlagFacts>> {
  const { header, rows } = await tableAfter(path, heading);
  const defaultColumn = header.findIndex((cell) => /^default$/i.test(cell));
  assert.notEqual(defaultColumn, -1, `a default column in ${path}`);
  const flags = new Map<string, FlagFacts>();
  for (const row of rows) {
    for (const name of row[0]!.match(/--[a-z][a-z-]*/g) ?? []) {
      flags.set(name, { default: normalize(row[defaultColumn] ?? ""), env: envOf(row.join("|")) });
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

// -- docs/security.md --

const SECURITY = "docs/security.md";

/** Flags of serve that are no limit: where it listens, whom it trusts, what it logs. */
const SERVE_NOT_LIMITS = [
  "help",
  "version",
  "listen",
  "tls-cert",
  "tls-key",
  "public-url",
  "allowed-origin",
  "tokens-file",
  "jwt-secret-file",
  "jwt-audience",
  "jwt-issuer",
  "jwt-allow-no-exp",
  "oauth-issuer",
  "log-level",
  "log-format",
  "health-listen",
  "state-dir",
  "redis",
  "cluster-secret-file",
  "replica-id",
];

/**
 * Flags of connect that are no limit: what it runs, where it dials, how it retries, what it logs. A retry
 * policy bounds nothing a peer can make connect hold.
 */
const CONNECT_NOT_LIMITS = [
  "server",
  "local-stdio",
  "local-streamable-http",
  "local-sse",
  "gateway",
  "token",
  "token-file",
  "server-name",
  "server-description",
  "reconnect-delay",
  "max-retries",
  "config",
  "log-level",
  "log-format",
  "verbose",
  "cert",
  "health-listen",
  "min-ready-servers",
  "isolation",
  "transport",
  "websocket-retry",
  "help",
  "version",
];

/**
 * The flag of each `GatewayLimits` key, found by behaviour: the flag whose value changes that key in
 * what `parseServeArgs()` returns. A limit no flag sets is missing from the map.
 */
function limitFlags(): Map<keyof GatewayLimits, string> {
  const base = ["--tokens-file", "tokens.yaml", "--state-dir", "none"];
  const parse = (args: string[]) => parseServeArgs(args, () => undefined) as ServeSettings;
  const defaults = parse(base);
  const keys = Object.keys(LIMIT_DEFAULTS) as (keyof GatewayLimits)[];
  const found = new Map<keyof GatewayLimits, string>();
  for (const [flag, spec] of Object.entries(SERVE_FLAGS)) {
    if (spec.type !== "string") continue;
    for (const value of ["2048", "2", "600MiB"]) {
      let settings: ServeSettings;
      try {
        settings = parse([...base, `--${flag}`, value]);
      } catch {
        continue; // not a value this flag takes
      }
      for (const key of keys) {
        if (settings[key] !== defaults[key]) found.set(key, `--${flag}`);
      }
      break;
    }
  }
  return found;
}

/** The `tests/…_test.ts` "name" references of a text, whitespace collapsed. */
function testReferences(text: string): { file: string; name: string }[] {
  const flat = text.replace(/\s+/g, " ");
  return [...flat.matchAll(/`(tests\/[\w/.-]+_test\.ts)`\s*"([^"]+)"/g)].map((m) => ({
    file: m[1]!,
    name: m[2]!,
  }));
}

/** The names of the tests a test file registers (string names; whitespace collapsed). */
function testNames(source: string): string[] {
  const names: string[] = [];
  for (const m of source.matchAll(/Deno\.test\(\s*(["`])((?:(?!\1)[^\\]|\\.)*)\1/g)) {
    names.push(m[2]!);
  }
  for (const m of source.matchAll(/Deno\.test\(\{\s*name:\s*"((?:[^"\\]|\\.)*)"/g)) {
    names.push(m[1]!);
  }
  return names.map((name) => name.replace(/\s+/g, " "));
}

Deno.test("docs/security.md has a row for every limit of serve, with its key and --help's default", async () => {
  const flags = limitFlags();
  const keys = Object.keys(LIMIT_DEFAULTS) as (keyof GatewayLimits)[];
  assert.deepEqual(
    keys.filter((key) => !flags.has(key)),
    [],
    "every limit has a flag that sets it",
  );
  const { header, rows } = await tableAfter(SECURITY, "## Limits of serve");
  const keyColumn = header.findIndex((cell) => /^key$/i.test(cell));
  assert.notEqual(keyColumn, -1, "a key column");
  const rowKeys = new Map(
    rows.map((row) => [row[0]!.match(/--[a-z][a-z-]*/)?.[0], row[keyColumn]!.replaceAll("`", "")]),
  );
  for (const key of keys) {
    const flag = flags.get(key)!;
    assert.equal(rowKeys.get(flag), key, `${SECURITY}: a row for ${flag} naming ${key}`);
  }
  const documented = await docFlags(SECURITY, "## Limits of serve");
  const help = helpFlags(serveHelpText());
  for (const [flag, facts] of documented) {
    assert.ok(help.has(flag), `${SECURITY} names ${flag}, which serve does not have`);
    assert.equal(facts.default, help.get(flag)!.default, `${SECURITY}: default of ${flag}`);
  }
  const unlisted = Object.keys(SERVE_FLAGS).filter((name) =>
    !documented.has(`--${name}`) && !SERVE_NOT_LIMITS.includes(name)
  );
  assert.deepEqual(unlisted, [], `serve flags neither in ${SECURITY} nor known to be no limit`);
});

Deno.test("docs/security.md has a row for every limit flag of connect, with --help's default", async () => {
  const documented = await docFlags(SECURITY, "## Limits of connect");
  const help = helpFlags(connectHelpText());
  for (const [flag, facts] of documented) {
    assert.ok(help.has(flag), `${SECURITY} names ${flag}, which connect does not have`);
    assert.equal(facts.default, help.get(flag)!.default, `${SECURITY}: default of ${flag}`);
  }
  const names = Object.keys(CONNECT_FLAGS);
  assert.deepEqual(
    names.filter((name) => !documented.has(`--${name}`) && !CONNECT_NOT_LIMITS.includes(name)),
    [],
    `connect flags neither in ${SECURITY} nor known to be no limit`,
  );
  assert.deepEqual(
    names.filter((name) => documented.has(`--${name}`) && CONNECT_NOT_LIMITS.includes(name)),
    [],
    "a flag is either a limit or not",
  );
});

Deno.test("every test docs/security.md names exists under that name", async () => {
  const references = testReferences(await Deno.readTextFile(new URL(SECURITY, ROOT)));
  assert.ok(references.length > 30, `only ${references.length} test references found`);
  const missing: string[] = [];
  for (const { file, name } of references) {
    let source: string;
    try {
      source = await Deno.readTextFile(new URL(file, ROOT));
    } catch {
      missing.push(`${file} does not exist`);
      continue;
    }
    if (!testNames(source).includes(name)) missing.push(`${file} has no test "${name}"`);
  }
  assert.deepEqual(missing, []);
});

Deno.test("docs/security.md names every attack of tests/attack/, and deno task attacks runs each", async () => {
  const named = new Set(
    testReferences(await Deno.readTextFile(new URL(SECURITY, ROOT))).map((r) => r.name),
  );
  const files: string[] = [];
  for await (const entry of Deno.readDir(new URL("tests/attack/", ROOT))) {
    if (entry.name.endsWith("_test.ts")) files.push(`tests/attack/${entry.name}`);
  }
  const unnamed: string[] = [];
  for (const file of files) {
    for (const name of testNames(await Deno.readTextFile(new URL(file, ROOT)))) {
      if (!named.has(name)) unnamed.push(`${file}: "${name}"`);
    }
  }
  assert.deepEqual(unnamed, [], `attacks ${SECURITY} does not name`);
  assert.deepEqual(
    [...new Set(ATTACKS.map((a) => a.test))].sort(),
    files.sort(),
    "scripts/attacks.ts runs a scenario of every attack test file",
  );
});

Deno.test("testReferences() and testNames() read what docs/security.md and test files hold", () => {
  assert.deepEqual(
    testReferences('see `tests/a/b_test.ts` "one\n  two"; `tests/c_test.ts` "x: \'y\'"'),
    [{ file: "tests/a/b_test.ts", name: "one two" }, { file: "tests/c_test.ts", name: "x: 'y'" }],
  );
  assert.deepEqual(
    testNames(
      'Deno.test("a \\"b\\"", () => {});\nDeno.test(`t ${x}`, f);\nDeno.test({\n  name: "n",',
    ),
    ['a \\"b\\"', "t ${x}", "n"],
  );
});

// -- paths --

/** The repository paths (`tests/…`, `lib/…`, `scripts/…`, `docs/…` with an extension) a text names. */
function repoPaths(text: string): string[] {
  const found = text.match(
    /(?<![\w/.-])(?:tests|lib|scripts|docs)\/[\w./-]+\.(?:ts|md|yaml|cfg|sh|service|json)\b/g,
  );
  return [...new Set(found ?? [])].sort();
}

Deno.test("every file of the repository that the README and docs/ name exists", async () => {
  const docs = ["README.md", "CHANGELOG.md"];
  for await (const entry of Deno.readDir(new URL("docs/", ROOT))) {
    if (entry.name.endsWith(".md")) docs.push(`docs/${entry.name}`);
  }
  const missing: string[] = [];
  for (const doc of docs) {
    for (const path of repoPaths(await Deno.readTextFile(new URL(doc, ROOT)))) {
      try {
        await Deno.stat(new URL(path, ROOT));
      } catch {
        missing.push(`${doc} names ${path}`);
      }
    }
  }
  assert.deepEqual(missing, []);
});

Deno.test("repoPaths() reads the paths of a text, not parts of other paths", () => {
  assert.deepEqual(
    repoPaths("see `tests/e2e/x_test.ts`, lib/util/a.ts and /srv/lib/b.ts; docs/k8s/d.yaml."),
    ["docs/k8s/d.yaml", "lib/util/a.ts", "tests/e2e/x_test.ts"],
  );
});

// -- docs/operations.md: log events --

/** The event names a source logs as literals (`event: "name"`). */
function loggedEvents(source: string): string[] {
  return [...source.matchAll(/\bevent: "([a-z_]+)"/g)].map((m) => m[1]!);
}

/** Events connect logs under a name held in a variable: server_runner.ts's `#final(kind)`. */
const CONNECT_DYNAMIC_EVENTS = ["evicted", "superseded"];

Deno.test("docs/operations.md lists every event connect logs, and only those", async () => {
  const text = await Deno.readTextFile(new URL("docs/operations.md", ROOT));
  const paragraph = /Events of `connect`:([\s\S]*?)\n\n/.exec(text)?.[1];
  assert.ok(paragraph !== undefined, "docs/operations.md has 'Events of `connect`:'");
  const documented = new Set([...paragraph.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!));
  const logged = new Set<string>(CONNECT_DYNAMIC_EVENTS);
  const runner = await Deno.readTextFile(new URL("lib/connect/server_runner.ts", ROOT));
  for (const name of CONNECT_DYNAMIC_EVENTS) assert.ok(runner.includes(`"${name}"`), name);
  const files = [new URL("main.ts", ROOT)];
  for await (const entry of Deno.readDir(new URL("lib/connect/", ROOT))) {
    if (entry.name.endsWith(".ts")) files.push(new URL(`lib/connect/${entry.name}`, ROOT));
  }
  for (const file of files) {
    for (const name of loggedEvents(await Deno.readTextFile(file))) logged.add(name);
  }
  assert.deepEqual([...logged].filter((e) => !documented.has(e)).sort(), [], "not documented");
  assert.deepEqual([...documented].filter((e) => !logged.has(e)).sort(), [], "not logged");
});

Deno.test("docs/operations.md's events of serve's start and stop are logged by serve or main.ts", async () => {
  const text = await Deno.readTextFile(new URL("docs/operations.md", ROOT));
  const paragraph = /Events of `serve`'s start and stop:([\s\S]*?)\n\n/.exec(text)?.[1];
  assert.ok(paragraph !== undefined);
  const logged = new Set([
    ...loggedEvents(await Deno.readTextFile(new URL("main.ts", ROOT))),
    ...loggedEvents(await Deno.readTextFile(new URL("lib/serve/command.ts", ROOT))),
  ]);
  const documented = [...paragraph.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!);
  assert.ok(documented.length >= 5);
  assert.deepEqual(documented.filter((e) => !logged.has(e)), []);
});

const KEY_TABLES: [path: string, heading: string][] = [
  ["docs/configuration.md", "## Settings"],
  ["README.md", "## connect"],
];
for (const [path, heading] of KEY_TABLES) {
  Deno.test(`${path} gives each flag of connect its config keys, and every key connect reads`, async () => {
    const { header, rows } = await tableAfter(path, heading);
    const column = header.findIndex((cell) => /^config key/i.test(cell));
    assert.notEqual(column, -1, "a config key column");
    const documented = new Set<string>();
    for (const row of rows) {
      const flag = /--[a-z][a-z-]*/.exec(row[0]!)?.[0];
      const keys = [...row[column]!.matchAll(/`([a-z][a-z_-]*)`/g)].map((m) => m[1]!)
        .filter((word) => !["true", "false", "snake_case", "kebab-case"].includes(word));
      for (const key of keys) {
        const snake = key.replaceAll("-", "_");
        assert.ok((KEYS as readonly string[]).includes(snake), `${key} is no key of connect`);
        const expected = flag === "--server" ? "servers" : flag?.slice(2).replaceAll("-", "_");
        assert.equal(snake, expected, `the key ${key} in the row of ${flag}`);
        documented.add(snake);
      }
    }
    assert.deepEqual(KEYS.filter((key) => !documented.has(key)), [], "keys without a row");
  });
}

// -- least-privilege lines --

/** The `deno run --no-prompt …` commands of a markdown file, continuation lines joined. */
async function denoRunLines(path: string): Promise<string[]> {
  const text = await Deno.readTextFile(new URL(path, ROOT));
  return shellBlocks(text).flatMap(commands).filter((c) => c.startsWith("deno run --no-prompt"))
    .map((c) => c.replace(/\s+/g, " "));
}

/** The names a `--allow-env=A,B` flag of a command line allows. */
function allowedEnv(line: string): string[] {
  return (/--allow-env=(\S+)/.exec(line)?.[1] ?? "").split(",").sort();
}

Deno.test("docs/operations.md's permission lines are what scripts/permissions.ts prints", async () => {
  const printed = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-read", new URL("scripts/permissions.ts", ROOT).pathname],
    stdout: "piped",
  }).outputSync();
  assert.ok(printed.success);
  const lines = new TextDecoder().decode(printed.stdout).split("\n")
    .filter((line) => line.startsWith("deno run"));
  assert.equal(lines.length, 2);
  assert.deepEqual(await denoRunLines("docs/operations.md"), lines);
});

Deno.test("the README's least-privilege lines allow exactly the variables each command reads", async () => {
  const lines = await denoRunLines("README.md");
  assert.equal(lines.length, 2);
  const [connect, serve] = lines;
  assert.match(connect!, / connect /);
  assert.deepEqual(allowedEnv(connect!), [...CONNECT_ENV].sort());
  assert.match(serve!, / serve /);
  assert.deepEqual(allowedEnv(serve!), [...SERVE_ENV].sort());
});

Deno.test("every YAML and JSON config file of docs/configuration.md resolves as connect reads it", async () => {
  const text = await Deno.readTextFile(new URL("docs/configuration.md", ROOT));
  const blocks = [...text.matchAll(/^```(yaml|json)\n([\s\S]*?)^```$/gm)];
  assert.ok(blocks.length >= 3, `only ${blocks.length} config examples found`);
  for (const [i, [, format, body]] of blocks.entries()) {
    const path = `/etc/mcp-rproxy/example${i}.${format}`;
    // The files the examples name (tokens, header values, CAs) are stand-ins with valid content.
    const readTextFile = (file: string) =>
      Promise.resolve(
        file === path
          ? body!
          : file.endsWith(".pem")
          ? "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"
          : "stand-in-secret",
      );
    const result = await resolveConnectConfig(["--config", path], {
      env: (name) => name === "DOCS_API_KEY" ? "stand-in-key" : undefined,
      readTextFile,
    });
    assert.equal(result.kind, "run", `example ${i}`);
  }
});

/** The lines of the first unlabelled fenced block after `heading` (quoted program output). */
async function quotedAfter(path: string, heading: string): Promise<string[]> {
  const text = await Deno.readTextFile(new URL(path, ROOT));
  const from = text.indexOf(heading);
  assert.notEqual(from, -1, `${path} has ${heading}`);
  const block = /^```\n([\s\S]*?)^```$/m.exec(text.slice(from));
  assert.ok(block !== null, `a quoted block after ${heading} in ${path}`);
  return block[1]!.trim().split("\n");
}

/** The line connect prints for bad input: `mcp-rproxy: ` and the message of its ConfigError. */
async function badInputLine(
  args: string[],
  inputs: { env?: Record<string, string>; files?: Record<string, string> } = {},
): Promise<string> {
  const { env = {}, files = {} } = inputs;
  try {
    await resolveConnectConfig(args, {
      env: (name) => env[name],
      readTextFile: (path) =>
        path in files ? Promise.resolve(files[path]!) : Deno.readTextFile(path),
    });
  } catch (error: unknown) {
    return `mcp-rproxy: ${(error as Error).message}`;
  }
  throw new Error(`no error for ${args.join(" ")}`);
}

Deno.test("the bad-input lines docs/configuration.md and the README quote are what connect prints", async () => {
  const cmd = ["--gateway", "http://x", "--", "true"];
  assert.deepEqual(
    await quotedAfter("docs/configuration.md", "## Errors and exit codes"),
    [
      await badInputLine(["--max-retries", "x", ...cmd]),
      await badInputLine(["--config", "cfg.yaml", ...cmd], {
        files: { "cfg.yaml": "max_retries: five\n" },
      }),
      await badInputLine(["--health-listen", "::1:9464", ...cmd]),
      await badInputLine(cmd, { env: { REVERSE_PROXY_TOKEN: "Bearer abc" } }),
    ],
  );
  assert.deepEqual(await quotedAfter("README.md", "Bad input exits with code"), [
    await badInputLine(["--max-retries", "x", ...cmd]),
    await badInputLine(["--config", "/etc/mcp-rproxy.yaml", ...cmd], {
      files: { "/etc/mcp-rproxy.yaml": 'max_retries: "5"\n' },
    }),
  ]);
});

// -- docs/operations.md: metrics --

/** The metric families a registry exposes, and the `kind`s its errors_total starts with. */
function exposed(text: string): { names: string[]; kinds: string[] } {
  const names = [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
  const kinds = [...text.matchAll(/^mcp_rproxy_errors_total\{[^}]*kind="([^"]+)"/gm)].map((m) =>
    m[1]!
  );
  return { names, kinds: [...new Set(kinds)] };
}

Deno.test("docs/operations.md names every metric and every error kind connect and serve expose", async () => {
  const text = await Deno.readTextFile(new URL("docs/operations.md", ROOT));
  const section = text.slice(text.indexOf("## Metrics"), text.indexOf("## Logs"));
  for (
    const [command, registry] of [
      ["connect", createConnectMetrics().registry],
      ["serve", createServeMetrics().registry],
    ] as const
  ) {
    const { names, kinds } = exposed(registry.render());
    assert.ok(names.length > 10 && kinds.length > 5, `${command}: metrics read`);
    assert.deepEqual(names.filter((n) => !section.includes(`\`${n}`)), [], `${command}: metrics`);
    const errors = new RegExp(`\`errors_total\` kinds of \`${command}\`:([\\s\\S]*?)\\n\\n`)
      .exec(section)?.[1] ?? "";
    assert.deepEqual(
      kinds.filter((k) => !errors.includes(`\`${k}\``)),
      [],
      `${command}: error kinds`,
    );
  }
});
