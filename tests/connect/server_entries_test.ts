import assert from "node:assert/strict";
import { join } from "node:path";
import { resolveConnectConfig } from "../../lib/connect/config.ts";
import { fingerprint } from "../../lib/connect/server_fingerprint.ts";
import type { ConnectSettings, ServerSpec } from "../../lib/connect/settings.ts";
import { ConfigError } from "../../lib/util/errors.ts";

const SECRET = "s3cret-header-value";

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "server_entries_test_" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ settings: ConnectSettings; warnings: string[] }> {
  const result = await resolveConnectConfig(["--gateway", "https://gw", ...args], {
    env: (name) => env[name],
    readTextFile: Deno.readTextFile,
  });
  if (result.kind !== "run") throw new Error("not a run");
  return result;
}

async function fails(args: string[], pattern: RegExp, env: Record<string, string> = {}) {
  await assert.rejects(run(args, env), (error: unknown) => {
    assert.ok(error instanceof ConfigError, String(error));
    assert.match(error.message, pattern);
    assert.ok(!error.message.includes(SECRET), `leaks the secret: ${error.message}`);
    return true;
  });
}

const YAML = `servers:
  - name: git
    description: Git tools
    command: uvx
    args: [mcp-server-git, --repository, /srv/repo]
    env: { GIT_AUTHOR_NAME: bot, RETRIES: 3 }
    cwd: repo
  - name: docs
    http: http://127.0.0.1:9000/mcp
    headers:
      X-Api-Version: "2"
      X-Api-Key: { file: docs-key.txt }
      X-From-Env: { env: DOCS_HEADER }
    bearer_file: docs-token.txt
    timeout: 10
  - name: old
    sse: http://127.0.0.1:9100/sse
`;

Deno.test("resolveConnectConfig() reads a servers: list of stdio, http and sse servers, secrets from files and the environment", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "docs-key.txt"), `${SECRET}\n`);
    await Deno.writeTextFile(join(dir, "docs-token.txt"), "tok-123\n");
    const file = join(dir, "connect.yaml");
    await Deno.writeTextFile(file, YAML);
    const { settings, warnings } = await run(["--config", file], { DOCS_HEADER: "from-env" });
    assert.deepEqual(warnings, []);
    assert.equal(settings.manyServers, true);
    const [git, docs, old] = settings.servers as [ServerSpec, ServerSpec, ServerSpec];
    assert.equal(git.name, "git");
    assert.equal(git.description, "Git tools");
    assert.deepEqual(git.transport, {
      kind: "stdio",
      command: ["uvx", "mcp-server-git", "--repository", "/srv/repo"],
      commandText: "uvx mcp-server-git --repository /srv/repo",
      env: { GIT_AUTHOR_NAME: "bot", RETRIES: "3" },
      cwd: join(dir, "repo"),
    });
    const docsTransport = docs.transport;
    if (docsTransport.kind !== "http") throw new Error(`docs is ${docsTransport.kind}`);
    {
      assert.equal(docsTransport.url.href, "http://127.0.0.1:9000/mcp");
      assert.equal(docsTransport.timeoutMs, 10_000);
      assert.deepEqual(
        docsTransport.headers.map((h) => [h.name, h.value]),
        [
          ["X-Api-Version", "2"],
          ["X-Api-Key", SECRET],
          ["X-From-Env", "from-env"],
          ["Authorization", "Bearer tok-123"],
        ],
      );
    }
    const oldTransport = old.transport;
    if (oldTransport.kind !== "sse") throw new Error(`old is ${oldTransport.kind}`);
    assert.equal(oldTransport.timeoutMs, 30_000);
  });
});

Deno.test("resolveConnectConfig() takes --server specs over the file's servers:, and warns about a secret header on the command line", async () => {
  await withDir(async (dir) => {
    const file = join(dir, "connect.yaml");
    await Deno.writeTextFile(file, "servers:\n  - {name: fromfile, command: x}\n");
    const { settings, warnings } = await run([
      "--config",
      file,
      "--server",
      "name=a,stdio=srv-a",
      "--server",
      "name=b,http=http://127.0.0.1:1/mcp,header=Authorization: Bearer abc",
    ]);
    assert.deepEqual(settings.servers.map((s) => s.name), ["a", "b"]);
    assert.equal(settings.servers[1]?.origin, "--server #2 (b)");
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /--server #2 \(b\) gives header Authorization on the command line/);
    assert.ok(!warnings[0]!.includes("abc"));
  });
});

Deno.test("resolveConnectConfig() checks the file's servers: and URL forms when flags give the servers, without reading their secrets", async () => {
  await withDir(async (dir) => {
    const file = join(dir, "connect.yaml");
    const flagForms = [
      ["--server", "name=a,stdio=srv-a"],
      ["--local-stdio", "srv-a"],
      ["--", "srv-a"],
    ];
    for (
      const [text, pattern] of [
        [
          "servers:\n  - {name: a, command: x, bogus: 1}\n",
          /servers\[0\] in .*unknown key 'bogus'/,
        ],
        [
          "servers:\n  - {name: a, command: x}\n  - {name: A, command: y}\n",
          /Two servers are named A/,
        ],
        ["local_sse: ftp://127.0.0.1/sse\n", /local_sse/],
      ] as const
    ) {
      await Deno.writeTextFile(file, text);
      for (const flags of flagForms) await fails(["--config", file, ...flags], pattern);
    }
    // Overridden entries are checked for what they say, not for the files and variables they name.
    await Deno.writeTextFile(
      file,
      "servers:\n  - {name: a, http: http://127.0.0.1:1/mcp, bearer_env: UNSET_VARIABLE, cert: /no/such.pem}\n",
    );
    for (const flags of flagForms) {
      const { settings } = await run(["--config", file, ...flags]);
      assert.deepEqual(settings.servers.map((s) => s.transport.kind), ["stdio"]);
    }
  });
});

Deno.test("resolveConnectConfig() reads the one-server URL forms", async () => {
  const http = await run(["--local-streamable-http", "http://127.0.0.1:9000/mcp"]);
  assert.equal(http.settings.manyServers, false);
  assert.equal(http.settings.servers[0]?.transport.kind, "http");
  const sse = await run(["--local-sse", "http://127.0.0.1:9100/sse", "--server-name", "old"]);
  assert.equal(sse.settings.servers[0]?.transport.kind, "sse");
  assert.equal(sse.settings.servers[0]?.name, "old");
});

Deno.test("resolveConnectConfig() refuses bad server sets with a message that names the problem", async () => {
  await fails(
    ["--server", "name=a,stdio=x", "--server", "name=A,stdio=y"],
    /Two servers are named A \(--server #1 \(a\) and --server #2 \(A\)\)/,
  );
  await fails(["--server", "stdio=x"], /--server #1: it has no name/);
  await fails(["--server", "name=a b,stdio=x"], /name 'a b' must be 1-128 letters/);
  await fails(
    ["--server", "name=a,stdio=x,http=http://h/mcp"],
    /it gives command and http: give exactly one/,
  );
  await fails(["--server", "name=a"], /give exactly one of stdio=, http= or sse=/);
  await fails(
    ["--server", "name=a,stdio=x,header=X: 1"],
    /headers applies to http and sse servers/,
  );
  await fails(["--server", "name=a,http=ftp://h/x"], /must be an http:\/\/ or https:\/\/ URL/);
  await fails(["--server", "name=a,http=http://u:p@h/x"], /carries a user or password/);
  await fails(
    ["--server", "name=a,stdio=x,isolation=private"],
    /isolation 'private' is not one of shared, per-client/,
  );
  await fails(
    ["--server", "name=a,stdio=x,max-instances=4"],
    /max_instances applies to isolation per-client \(this server is shared\)/,
  );
  await fails(
    ["--server", "name=a,stdio=x,isolation=per-client,max-instances=0"],
    /max_instances '0' must be a whole number from 1 to 1024/,
  );
  await fails(
    ["--server", "name=a,stdio=x,isolation=per-client,instance-idle-timeout=soon"],
    /instance_idle_timeout 'soon' must be a number of seconds from 0 \(never\) to 86400/,
  );
  await fails(
    ["--server", "name=a,http=http://h/x,timeout=0"],
    /timeout '0' must be a number of seconds/,
  );
  await fails(
    ["--server", "name=a,http=http://h/x,header-env=X-Key: MISSING_VAR"],
    /header X-Key takes its value from the environment variable MISSING_VAR, which is not set/,
  );
  await fails(
    ["--server", "name=a,http=http://h/x,header=Mcp-Session-Id: 1"],
    /header Mcp-Session-Id is set by mcp-rproxy itself/,
  );
  await fails(
    ["--server", "name=a,http=http://h/x,bearer-env=TOK"],
    /the environment variable TOK starts with 'Bearer '/,
    { TOK: `Bearer ${SECRET}` },
  );
  await fails(
    ["--server", "name=a,stdio=x", "--local-stdio", "y"],
    /Both --server and --local-stdio are given: give the servers one way only/,
  );
  await fails(
    ["--server", "name=a,stdio=x", "--server-name", "n"],
    /--server-name applies to the one-server forms/,
  );
  await fails(
    ["--server", "name=a,stdio=x", "--min-ready-servers", "2"],
    /--min-ready-servers is 2, but connect carries 1 server\(s\)/,
  );
});

Deno.test("fingerprint() tells a changed server from an unchanged one, whatever its place in the file", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "key"), "one\n");
    const spec = async (extra = "") =>
      (await run([
        "--server",
        `name=d,http=http://h/mcp,header-file=X-Key: ${join(dir, "key")}${extra}`,
      ]))
        .settings.servers[0]!;
    const before = await spec();
    assert.equal(fingerprint(before), fingerprint({ ...before, origin: "servers[3] in x.yaml" }));
    assert.notEqual(fingerprint(before), fingerprint(await spec(",timeout=5")));
    await Deno.writeTextFile(join(dir, "key"), "two\n");
    assert.notEqual(fingerprint(before), fingerprint(await spec()), "a rotated secret is a change");
  });
});

Deno.test("isolation per-client: --server keys, servers: entries and the one-server flags resolve alike; defaults apply; a one-server form needs a name", async () => {
  const flag = await run([
    "--server",
    "name=a,stdio=x,isolation=per-client,max-instances=4,instance-idle-timeout=60",
  ]);
  const spec = flag.settings.servers[0]!;
  assert.deepEqual(
    [spec.isolation, spec.maxInstances, spec.instanceIdleTimeout],
    ["per-client", 4, 60],
  );
  const plain = (await run(["--server", "name=a,stdio=x,isolation=per-client"])).settings
    .servers[0]!;
  assert.deepEqual([plain.maxInstances, plain.instanceIdleTimeout], [undefined, undefined]);
  assert.notEqual(
    fingerprint(spec),
    fingerprint(plain),
    "a changed cap restarts the server on reload",
  );
  await withDir(async (dir) => {
    const file = join(dir, "c.yaml");
    await Deno.writeTextFile(
      file,
      "servers:\n  - name: a\n    command: x\n    isolation: per-client\n    max_instances: 4\n    instance_idle_timeout: 60\n",
    );
    const fromFile = (await run(["--config", file])).settings.servers[0]!;
    assert.deepEqual(fingerprint(fromFile), fingerprint(spec));
    await Deno.writeTextFile(
      file,
      "servers:\n  - name: a\n    command: x\n    isolation: per-client\n    max_instances: '4'\n",
    );
    await fails(["--config", file], /max_instances '4' \(a string\) must be a whole number/);
  });
  const one = await run([
    "--isolation",
    "per-client",
    "--max-instances",
    "3",
    "--server-name",
    "one",
    "--local-stdio",
    "x",
  ]);
  assert.deepEqual(
    [one.settings.servers[0]!.isolation, one.settings.servers[0]!.maxInstances],
    ["per-client", 3],
  );
  await fails(
    ["--isolation", "per-client", "--local-stdio", "x"],
    /needs a name to register.*--server-name/,
  );
  // The one-server forms take each key from its own layer, and a message names where the bad one was.
  await withDir(async (dir) => {
    const file = join(dir, "one.yaml");
    await Deno.writeTextFile(file, "isolation: per-client\nserver_name: one\n");
    const mixed = await run([
      "--config",
      file,
      "--instance-idle-timeout",
      "90",
      "--local-stdio",
      "x",
    ]);
    assert.equal(mixed.settings.servers[0]!.instanceIdleTimeout, 90, "a flag's text beside a file");
    await fails(
      ["--config", file, "--max-instances", "0", "--local-stdio", "x"],
      /^Invalid --max-instances: max_instances '0' must be a whole number from 1 to 1024/,
    );
  });
  await fails(
    ["--isolation", "per-client", "--instance-idle-timeout", "90000", "--local-stdio", "x"],
    /^Invalid --instance-idle-timeout: instance_idle_timeout '90000' must be a number of seconds/,
  );
  await fails(
    ["--max-instances", "4", "--local-stdio", "x"],
    /^Invalid --max-instances: max_instances applies to isolation per-client/,
  );
  await fails(
    ["--isolation", "per-client", "--server", "name=a,stdio=x"],
    /--isolation applies to the one-server forms; .* give each server its isolation in its own entry/,
  );
});
