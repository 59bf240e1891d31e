// The real program: `mcp-rproxy token new` makes tokens for a running `mcp-rproxy serve`, which takes them
// on SIGHUP without a restart (and keeps its tokens when the file is broken); connect uses the --out file.

import assert from "node:assert/strict";
import { DEMO_SERVER, startProxy } from "../fixtures/proxy_process.ts";
import { within } from "../fixtures/test_gateway.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** Runs `main.ts <args>` to completion, keeping stdout and stderr apart (the token goes to stdout). */
async function mcpRproxy(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const output = await within(
    new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "-A", MAIN, ...args],
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output(),
    30_000,
    `mcp-rproxy ${args.join(" ")}`,
  );
  const decoder = new TextDecoder();
  return {
    code: output.code,
    out: decoder.decode(output.stdout),
    err: decoder.decode(output.stderr),
  };
}

async function newToken(args: string[]): Promise<string> {
  const { code, out, err } = await mcpRproxy(["token", "new", ...args]);
  assert.equal(code, 0, err);
  return out.trim();
}

async function sessions(url: string, token: string): Promise<{ status: number; total?: number }> {
  const response = await fetch(`${url}/reverse-proxy/sessions`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const body = await response.json();
  return { status: response.status, total: body.total };
}

Deno.test("token new + serve: a token added while serve runs works after SIGHUP; a broken file is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-e2e-token-" });
  try {
    const file = `${dir}/tokens.yaml`;
    await newToken([
      "--owner",
      "alice",
      "--role",
      "connect",
      "--file",
      file,
      "--out",
      `${dir}/a.token`,
    ]);
    const aliceClient = await newToken(["--owner", "alice", "--role", "client", "--file", file]);
    assert.equal(Deno.statSync(file).mode! & 0o777, 0o600);
    assert.equal(Deno.statSync(`${dir}/a.token`).mode! & 0o777, 0o600);

    await using serve = startProxy([
      "serve",
      "--listen",
      "127.0.0.1:0",
      "--tokens-file",
      file,
      "--log-format",
      "json",
    ]);
    const listening = await serve.waitForLine((l) => /Gateway listening/.test(l.raw), 30_000);
    const url = String(listening.json?.url);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);

    // connect reads the --out file as its --token-file.
    await using connect = startProxy([
      "connect",
      "--gateway",
      url,
      "--token-file",
      `${dir}/a.token`,
      "--server-name",
      "demo",
      "--log-format",
      "json",
      "--",
      ...DEMO_SERVER,
    ]);
    await connect.waitForEvent("registered", 30_000);
    assert.deepEqual(await sessions(url, aliceClient), { status: 200, total: 1 });

    const bob = await newToken(["--owner", "bob", "--role", "client", "--file", file]);
    assert.equal((await sessions(url, bob)).status, 401, "not before the reload");
    let from = serve.lines.length;
    serve.signal("SIGHUP");
    const reloaded = await serve.waitForEvent("tokens_reloaded", 10_000, from);
    assert.equal(reloaded.count, 3);
    assert.deepEqual(await sessions(url, bob), { status: 200, total: 0 });
    assert.deepEqual(await sessions(url, aliceClient), { status: 200, total: 1 }, "links stay up");

    await Deno.writeTextFile(file, "tok-broken: {owner: eve, roles: [root]}\n", { append: true });
    from = serve.lines.length;
    serve.signal("SIGHUP");
    const failed = await serve.waitForEvent("tokens_reload_failed", 10_000, from);
    assert.equal(failed.level, "error");
    assert.match(String(failed.message), /Kept the previous tokens.*unknown role "root"/);
    assert.equal((await sessions(url, bob)).status, 200, "the tokens in use stay");
    assert.equal((await sessions(url, "tok-broken")).status, 401);
    const refused = await mcpRproxy(["token", "new", "--owner", "x", "--file", file]);
    assert.equal(refused.code, 2);
    assert.match(refused.err, /not a valid tokens file \(Entry 4: unknown role "root"/);

    connect.signal("SIGTERM");
    assert.equal(await connect.exitCode(15_000), 0);
    serve.signal("SIGTERM");
    assert.equal(await serve.exitCode(15_000), 0);
    for (const token of [aliceClient, bob]) {
      assert.ok(!serve.text().includes(token), "serve never logs a token");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("token --help and token new --help print usage and exit 0; the top-level help lists token", async () => {
  const top = await mcpRproxy(["--help"]);
  assert.match(top.out, /^ {2}token {5}/m);
  const token = await mcpRproxy(["token", "--help"]);
  assert.equal(token.code, 0);
  assert.match(token.out, /Usage: mcp-rproxy token new/);
  const tokenNew = await mcpRproxy(["token", "new", "--help"]);
  assert.equal(tokenNew.code, 0);
  assert.match(tokenNew.out, /--owner OWNER/);
  const bare = await mcpRproxy(["token"]);
  assert.equal(bare.code, 2);
  assert.match(bare.err, /expected 'new'/);
});
