// The command line as a user meets it, through the real program: help for every command, the list of
// commands, and one message with exit code 2 for bad input, in the same dialect for every command.

import assert from "node:assert/strict";
import { startProxy } from "../fixtures/proxy_process.ts";

async function run(args: string[]): Promise<{ code: number; text: string }> {
  await using proxy = startProxy(args);
  const code = await proxy.exitCode(20_000);
  return { code, text: proxy.text() };
}

Deno.test("--help of every command and subcommand prints its usage and exits 0", async () => {
  const cases: [string[], RegExp][] = [
    [["--help"], /^mcp-rproxy \d+\.\d+\.\d+: put a local stdio MCP server/],
    [["-h"], /^mcp-rproxy \d+\.\d+\.\d+:/],
    [["help"], /^mcp-rproxy \d+\.\d+\.\d+:/],
    [["connect", "--help"], /^Usage: mcp-rproxy connect/],
    [["--gateway", "x", "-h"], /^Usage: mcp-rproxy connect/],
    [["serve", "--help"], /^Usage: mcp-rproxy serve/],
    [["serve", "--bogus", "-h"], /^Usage: mcp-rproxy serve/],
    [["demo", "--help"], /^mcp-rproxy demo: [^\n]*\n+Usage: mcp-rproxy demo/],
    [["healthcheck", "--help"], /^Usage: mcp-rproxy healthcheck/],
    [["healthcheck", "-h"], /^Usage: mcp-rproxy healthcheck/],
    [["demo-server", "--help"], /^Usage: mcp-rproxy demo-server/],
    [["token", "--help"], /^Usage: mcp-rproxy token new/],
    [["token", "new", "--help"], /^Usage: mcp-rproxy token new --owner OWNER/],
  ];
  const results = await Promise.all(cases.map(([args]) => run(args)));
  for (const [i, [args, pattern]] of cases.entries()) {
    const { code, text } = results[i]!;
    assert.equal(code, 0, `mcp-rproxy ${args.join(" ")}:\n${text}`);
    assert.match(text, pattern, `mcp-rproxy ${args.join(" ")}`);
  }
});

Deno.test("the top-level help lists every command", async () => {
  const { text } = await run(["--help"]);
  for (const command of ["connect", "serve", "demo", "healthcheck", "token"]) {
    assert.match(text, new RegExp(`^ {2}${command} +\\S`, "m"), `help lists ${command}`);
    assert.match(text, new RegExp(`^ {2}mcp-rproxy (\\[${command}\\]|${command}) `, "m"));
  }
});

Deno.test("bad input exits 2 with one line in the one dialect, whatever the command", async () => {
  const cases: [string[], string][] = [
    [
      ["connect", "--gateway", "http://x", "--max-retries", "x", "--", "true"],
      "mcp-rproxy: Invalid --max-retries 'x': expected a whole number, 0 or more (0 = retry forever), for example --max-retries 5",
    ],
    [
      ["serve", "--tokens-file", "t", "--max-inflight", "0"],
      "mcp-rproxy: Invalid --max-inflight '0': expected a whole number, 1 or more, for example --max-inflight 10",
    ],
    [
      ["serve", "--tokens-file", "t", "--health-listen", "::1:9090"],
      "mcp-rproxy: Invalid --health-listen '::1:9090': an IPv6 address must be in brackets, as in [::1]:8080; expected HOST:PORT such as 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080 (port 0 picks a free one)",
    ],
    [
      ["demo", "--port", "x"],
      "mcp-rproxy: Invalid --port 'x': expected a port number from 0 to 65535 (0 picks a free one), for example --port 8080",
    ],
    [
      ["healthcheck", "ftp://x"],
      "mcp-rproxy: Invalid URL 'ftp://x': expected an http:// or https:// URL, for example mcp-rproxy healthcheck http://127.0.0.1:9090/readyz",
    ],
    [
      ["token", "new", "--owner", "alice", "--role", "root"],
      "mcp-rproxy: Invalid --role 'root': expected connect, client, admin, comma-separated, for example --role connect,client",
    ],
    [
      ["serve", "--max-inflite", "3"],
      "mcp-rproxy: Unknown option '--max-inflite': did you mean --max-inflight? Run 'mcp-rproxy serve --help' for the list",
    ],
    [
      ["serv"],
      "mcp-rproxy: Unknown command 'serv': did you mean serve? Commands are connect, serve, demo, healthcheck, token; run 'mcp-rproxy --help'",
    ],
  ];
  const results = await Promise.all(cases.map(([args]) => run(args)));
  for (const [i, [args, line]] of cases.entries()) {
    const { code, text } = results[i]!;
    assert.equal(code, 2, `mcp-rproxy ${args.join(" ")}:\n${text}`);
    assert.equal(text.trim(), line, `mcp-rproxy ${args.join(" ")}`);
  }
});

Deno.test("a bad token is refused without showing it, from a flag or the environment", async () => {
  const secret = "s3cret-not-shown-0123";
  const fromFlag = await run([
    "connect",
    "--gateway",
    "http://127.0.0.1:9",
    "--token",
    `Bearer ${secret}`,
    "--",
    "true",
  ]);
  assert.equal(fromFlag.code, 2);
  assert.equal(
    fromFlag.text.trim(),
    "mcp-rproxy: Invalid --token (value hidden): it starts with 'Bearer '; expected the token alone (the proxy adds the 'Bearer ' prefix itself)",
  );
  await using fromEnv = startProxy(["connect", "--gateway", "http://127.0.0.1:9", "--", "true"], {
    env: { REVERSE_PROXY_TOKEN: `${secret} ${secret}` },
  });
  assert.equal(await fromEnv.exitCode(20_000), 2);
  assert.match(fromEnv.text(), /^mcp-rproxy: Invalid REVERSE_PROXY_TOKEN \(value hidden\)/);
  assert.ok(!fromEnv.text().includes(secret));
});

Deno.test("a missing permission exits 2 with one line naming the flag to add and where the docs explain it", async () => {
  const demoServer = new URL("../fixtures/demo_server_main.ts", import.meta.url).pathname;
  await using proxy = startProxy(
    ["connect", "--gateway", "http://127.0.0.1:9", "--", Deno.execPath(), "run", "-q", demoServer],
    { permissions: ["--no-prompt", "--allow-read", "--allow-env", "--allow-run"] },
  );
  assert.equal(await proxy.exitCode(20_000), 2, proxy.text());
  const line = proxy.text().split("\n").find((l) => l.includes("event=missing_permission"));
  assert.ok(line !== undefined, proxy.text());
  assert.match(
    line,
    /missing permission: Requires net access to "127\.0\.0\.1:9"; run again with --allow-net=127\.0\.0\.1:9 \(see docs\/operations\.md, "Permissions"\)/,
  );
  // The place the line sends the user to exists, and says the same.
  const operations = await Deno.readTextFile(new URL("../../docs/operations.md", import.meta.url));
  assert.match(operations, /^## Permissions$/m);
  assert.match(operations, /event `missing_permission`[\s\S]{0,200}and exits 2/);
});
