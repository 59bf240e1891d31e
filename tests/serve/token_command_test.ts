// tokenCommand(): `mcp-rproxy token new` on real files in a temporary directory.

import assert from "node:assert/strict";
import { TokenFileError } from "../../lib/serve/errors.ts";
import { tokenCommand } from "../../lib/serve/token_command.ts";
import { ConfigError } from "../../lib/util/errors.ts";
import { createTokenStore } from "../../lib/serve/token_store.ts";
import { parseTokensFile } from "../../lib/serve/tokens_file.ts";

const TOKEN = /^mrp_[A-Za-z0-9_-]{43}$/;

/**
 * Runs the command as main.ts does: `code` is the exit code main.ts maps its outcome to, and `err`
 * holds the notes on stderr, then the message of a failure as main.ts prints it.
 */
async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  let code = 0;
  try {
    await tokenCommand(args, {
      signal: new AbortController().signal,
      env: () => undefined,
      readTextFile: (path) => Deno.readTextFile(path),
      stdout: (text) => (out += text),
      stderr: (text) => (err += text),
      setupLogging: () => Promise.resolve(),
      onHardStop: () => {},
    });
  } catch (error: unknown) {
    if (error instanceof ConfigError) code = 2;
    else if (error instanceof TokenFileError) code = 1;
    else throw error;
    err += `mcp-rproxy: ${error.message}\n`;
  }
  return { code, out, err };
}

async function inTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-token-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function modeOf(path: string): number {
  return Deno.statSync(path).mode! & 0o777;
}

Deno.test("tokenCommand() new creates a missing tokens file owner-only and prints only the token", async () => {
  await inTempDir(async (dir) => {
    const file = `${dir}/tokens.yaml`;
    const first = await run(["new", "--owner", "alice", "--file", file]);
    assert.equal(first.code, 0, first.err);
    const token = first.out.trimEnd();
    assert.match(token, TOKEN);
    assert.equal(first.out, `${token}\n`, "stdout holds the token and nothing else");
    assert.ok(!first.err.includes(token), "the token is shown once");
    assert.equal(modeOf(file), 0o600);
    const text = await Deno.readTextFile(file);
    assert.match(text, /^# mcp-rproxy serve tokens/);
    assert.deepEqual(parseTokensFile(text), [
      { token, owner: "alice", roles: ["connect", "client"] },
    ]);
    const second = await run(["new", "--owner", "bob", "--role", "client", "--file", file]);
    const other = second.out.trimEnd();
    assert.notEqual(other, token, "every token is new");
    const store = await createTokenStore({ tokensFile: await Deno.readTextFile(file) });
    assert.equal((await store.authenticate(token))?.owner, "alice");
    assert.deepEqual([...(await store.authenticate(other))!.roles], ["client"]);
  });
});

Deno.test("tokenCommand() new appends to a YAML file and keeps every byte already there", async () => {
  await inTempDir(async (dir) => {
    const file = `${dir}/tokens.yaml`;
    const before =
      "# ops tokens, do not share\n\ntok-old: {owner: ops, roles: [admin]}  # pager\n" +
      "# end of list"; // no final newline
    await Deno.writeTextFile(file, before, { mode: 0o640 });
    await Deno.chmod(file, 0o640);
    const { code, out, err } = await run([
      "new",
      "--owner",
      "carol",
      "--role",
      "connect",
      "--role",
      "admin,client",
      "--file",
      file,
    ]);
    assert.equal(code, 0, err);
    const after = await Deno.readTextFile(file);
    assert.ok(
      after.startsWith(before + "\n"),
      "old content kept, a newline added before the entry",
    );
    assert.deepEqual(parseTokensFile(after).at(-1), {
      token: out.trimEnd(),
      owner: "carol",
      roles: ["connect", "admin", "client"],
    });
    assert.equal(modeOf(file), 0o640, "an existing file keeps its mode");
    assert.match(err, /can be read by other users \(mode 640\); run chmod 600/);
  });
});

Deno.test("tokenCommand() new extends a one-token-per-line file in its own format", async () => {
  await inTempDir(async (dir) => {
    const file = `${dir}/tokens.txt`;
    await Deno.writeTextFile(file, "# TOKEN OWNER\ntok-a alice\n", { mode: 0o600 });
    const added = await run(["new", "--owner", "dave", "--file", file]);
    assert.equal(added.code, 0, added.err);
    assert.equal(
      await Deno.readTextFile(file),
      `# TOKEN OWNER\ntok-a alice\n${added.out.trimEnd()} dave\n`,
    );
    const refused = await run(["new", "--owner", "erin", "--role", "client", "--file", file]);
    assert.equal(refused.code, 2);
    assert.match(refused.err, /cannot hold others; convert the file to YAML/);
    assert.equal(refused.out, "", "no token printed for nothing");
  });
});

Deno.test("tokenCommand() new refuses a malformed tokens file and leaves it and --out untouched", async () => {
  await inTempDir(async (dir) => {
    const file = `${dir}/tokens.yaml`;
    const broken = "tok-a: alice\ntok-secret-b: {owner: bob, roles: [root]}\n";
    await Deno.writeTextFile(file, broken);
    const { code, out, err } = await run([
      "new",
      "--owner",
      "x",
      "--file",
      file,
      "--out",
      `${dir}/x.token`,
    ]);
    assert.equal(code, 2);
    assert.equal(out, "");
    assert.match(err, /it is not a valid tokens file \(Entry 2: unknown role "root"/);
    assert.match(err, /fix it, or pass another --file/);
    assert.ok(!err.includes("tok-secret-b"), "the message never shows a token");
    assert.equal(await Deno.readTextFile(file), broken);
    assert.throws(() => Deno.statSync(`${dir}/x.token`), Deno.errors.NotFound);
  });
});

Deno.test("tokenCommand() new --out writes the bare token to a new owner-only file, never over one", async () => {
  await inTempDir(async (dir) => {
    const file = `${dir}/tokens.yaml`;
    const out = `${dir}/alice.token`;
    const made = await run(["new", "--owner", "alice", "--file", file, "--out", out]);
    assert.equal(made.code, 0, made.err);
    assert.equal(await Deno.readTextFile(out), made.out, "the bare token and a newline");
    assert.equal(modeOf(out), 0o600);
    const tokensBefore = await Deno.readTextFile(file);
    const again = await run(["new", "--owner", "bob", "--file", file, "--out", out]);
    assert.equal(again.code, 2);
    assert.equal(again.out, "");
    assert.match(again.err, /Refusing to overwrite --out .*alice\.token.*: it exists/);
    assert.equal(await Deno.readTextFile(out), made.out, "the existing file is intact");
    assert.equal(await Deno.readTextFile(file), tokensBefore, "no token was added");
  });
});

Deno.test("tokenCommand() prints usage for --help and refuses bad input with exit 2", async () => {
  for (const args of [["--help"], ["-h"], ["help"]]) {
    const { code, out } = await run(args);
    assert.equal(code, 0);
    assert.match(out, /Usage: mcp-rproxy token new/);
  }
  const help = await run(["new", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.out, /--owner OWNER/);
  assert.match(help.out, /--out FILE/);
  for (
    const [args, pattern] of [
      [[], /^mcp-rproxy: Missing command: expected 'new'/],
      [["rotate"], /^mcp-rproxy: Unknown command 'token rotate': expected 'new'/],
      [["new"], /^mcp-rproxy: Missing --owner/],
      [["new", "--owner", " "], /^mcp-rproxy: Missing --owner/],
      [["new", "--owner", "a\nb"], /^mcp-rproxy: Invalid --owner 'a\\nb': expected at most 256/],
      [
        ["new", "--owner", "a", "--role", "root"],
        /^mcp-rproxy: Invalid --role 'root': expected connect, client, admin, comma-separated, for example --role connect,client$/m,
      ],
      [["new", "--owner", "a", "--bogus"], /'--bogus'.*'mcp-rproxy token new --help'/],
      [
        ["new", "--owner", "a", "stray"],
        /^mcp-rproxy: Unexpected argument 'stray': token new takes only flags/,
      ],
    ] as const
  ) {
    const { code, out, err } = await run([...args]);
    assert.equal(code, 2, args.join(" "));
    assert.equal(out, "", args.join(" "));
    assert.match(err, pattern, args.join(" "));
  }
});
