// The production bundle (`deno task bundle`), run with exactly the permission flags of
// scripts/permissions.ts, end to end: this is what proves the least-privilege set on every CI run.

import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { startContractGateway } from "../fixtures/contract_gateway.ts";
import { DEMO_SERVER, processAlive, startProxy } from "../fixtures/proxy_process.ts";
import { buildBundle } from "../fixtures/bundle.ts";
import { startRedis } from "../fixtures/redis_server.ts";
import { family, parsePrometheus, sampleValue } from "../fixtures/prometheus_parser.ts";
import {
  CONNECT_ENV,
  connectPermissions,
  gatewayNetTarget,
  SERVE_ENV,
  servePermissions,
} from "../../scripts/permissions.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const TOKEN = "bundle-test-token-0123456789";

// `deno task bundle` exactly, writing dist/mcp-rproxy/ (main.js and its chunks).
const BUNDLE = await buildBundle();

/** A port that was free a moment ago, for flags that need a concrete HOST:PORT before start. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

async function fetchText(url: string): Promise<{ status: number; body: string }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return { status: response.status, body: await response.text() };
}

function withoutFlag(flags: string[], prefix: string): string[] {
  const kept = flags.filter((flag) => !flag.startsWith(prefix));
  assert.equal(kept.length, flags.length - 1, `exactly one ${prefix} flag in ${flags.join(" ")}`);
  return kept;
}

/** Asserts a failure was reported without a stack trace and names `flag`; returns the stderr lines. */
function assertPermissionMessage(text: string, flag: RegExp): string[] {
  const lines = text.split("\n").filter((line) => line.trim() !== "");
  assert.ok(lines.some((line) => flag.test(line)), `a line names ${flag}:\n${text}`);
  assert.ok(!lines.some((line) => /^\s+at /.test(line)), `no stack trace:\n${text}`);
  assert.ok(!/Uncaught/.test(text), `no uncaught error:\n${text}`);
  return lines;
}

Deno.test("deno task bundle writes dist/mcp-rproxy/main.js that prints its version with no permissions", async () => {
  assert.equal(BUNDLE, `${ROOT}dist/mcp-rproxy/main.js`);
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", BUNDLE, "--version"],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(20_000),
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  assert.match(new TextDecoder().decode(output.stdout), /^\d+\.\d+\.\d+/);
});

Deno.test("connect runs from the bundle with the production permissions, end to end", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-bundle-" });
  const gateway = await startContractGateway({ contract: "A", tokens: [TOKEN] });
  try {
    const tokenFile = `${dir}/token`;
    await Deno.writeTextFile(tokenFile, `${TOKEN}\n`);
    const healthListen = `127.0.0.1:${freePort()}`;
    const flags = connectPermissions({
      command: DEMO_SERVER[0] as string,
      gatewayHost: gatewayNetTarget(gateway.url),
      tokenFile,
      healthListen,
    });
    await using proxy = startProxy([
      "connect",
      "--gateway",
      gateway.url,
      "--token-file",
      tokenFile,
      "--health-listen",
      healthListen,
      "--log-format",
      "json",
      "--",
      ...DEMO_SERVER,
    ], { script: BUNDLE, permissions: ["--no-prompt", ...flags] });

    const started = await proxy.waitForEvent("server_started", 20_000);
    await proxy.waitForEvent("registered", 20_000);
    const listed = await gateway.request({ jsonrpc: "2.0", id: 1, method: "tools/list" });
    const tools = (listed.result as { tools: { name: string }[] }).tools;
    assert.ok(tools.some((tool) => tool.name === "echo"), JSON.stringify(listed));

    assert.deepEqual(await fetchText(`http://${healthListen}/healthz`), {
      status: 200,
      body: "ok\n",
    });
    assert.equal((await fetchText(`http://${healthListen}/readyz`)).status, 200);
    const metricsUrl = `http://${healthListen}/metrics`;
    const before = parsePrometheus((await fetchText(metricsUrl)).body);
    assert.equal(sampleValue(before, "mcp_rproxy_link_up"), 1);
    assert.equal(sampleValue(before, "mcp_rproxy_link_connects_total"), 1);
    assert.equal(family(before, "mcp_rproxy_registration_duration_seconds").metrics[0]?.count, "1");

    const echoed = await gateway.request({
      jsonrpc: "2.0",
      id: 2,
      method: "tools/call",
      params: { name: "echo", arguments: { message: "through the bundle" } },
    });
    assert.match(JSON.stringify(echoed.result), /through the bundle/);

    // One more request in and one more response out; a heartbeat may add to either.
    const after = parsePrometheus((await fetchText(metricsUrl)).body);
    for (const direction of ["in", "out"]) {
      for (const name of ["mcp_rproxy_frames_total", "mcp_rproxy_bytes_total"]) {
        const grew = sampleValue(after, name, { direction }) -
          sampleValue(before, name, { direction });
        assert.ok(grew >= 1, `${name}{direction="${direction}"} grew by ${grew}`);
      }
    }
    assert.ok(
      sampleValue(after, "mcp_rproxy_bytes_total", { direction: "out" }) -
          sampleValue(before, "mcp_rproxy_bytes_total", { direction: "out" }) >
        "through the bundle".length,
    );
    assert.equal(sampleValue(after, "mcp_rproxy_calls_in_flight"), 0);
    assert.equal(sampleValue(after, "mcp_rproxy_errors_total", { kind: "dial" }), 0);

    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(15_000), 0);
    assert.equal(processAlive(Number(started.pid)), false, "the local server outlived connect");
    assert.doesNotMatch(proxy.text(), new RegExp(TOKEN));
  } finally {
    await gateway.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve and connect run from the bundle with the production permissions, end to end", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-bundle-" });
  try {
    const tokensFile = `${dir}/tokens.txt`;
    await Deno.writeTextFile(tokensFile, `${TOKEN} alice\n`);
    const listen = `127.0.0.1:${freePort()}`;
    // Its state directory is read and written with exactly that permission (the store is SQLite).
    const stateDir = `${dir}/state`;
    await using serve = startProxy(
      [
        "serve",
        "--listen",
        listen,
        "--tokens-file",
        tokensFile,
        "--state-dir",
        stateDir,
        "--log-format",
        "json",
      ],
      {
        script: BUNDLE,
        permissions: ["--no-prompt", ...servePermissions({ listen, tokensFile, stateDir })],
      },
    );
    await serve.waitForLine(
      (line) => /^Gateway listening/.test(String(line.json?.message)),
      20_000,
    );

    const gatewayUrl = `http://${listen}`;
    await using connect = startProxy(
      ["connect", "--gateway", gatewayUrl, "--log-format", "json", "--", ...DEMO_SERVER],
      {
        script: BUNDLE,
        permissions: [
          "--no-prompt",
          ...connectPermissions({
            command: DEMO_SERVER[0] as string,
            gatewayHost: gatewayNetTarget(gatewayUrl),
          }),
        ],
        env: { REVERSE_PROXY_TOKEN: TOKEN },
      },
    );
    const registered = await connect.waitForEvent("registered", 20_000);

    const client = new Client({ name: "bundle-test", version: "1.0.0" });
    const transport = new StreamableHTTPClientTransport(
      new URL(`${gatewayUrl}/servers/${registered.name}/mcp`),
      { requestInit: { headers: { Authorization: `Bearer ${TOKEN}` } } },
    );
    try {
      await client.connect(transport, { timeout: 10_000 });
      const { tools } = await client.listTools(undefined, { timeout: 10_000 });
      assert.ok(
        tools.some((tool: { name: string }) => tool.name === "echo"),
        JSON.stringify(tools),
      );
      const result = await client.callTool(
        { name: "echo", arguments: { message: "served by the bundle" } },
        undefined,
        { timeout: 10_000 },
      );
      assert.match(JSON.stringify(result.content), /served by the bundle/);
    } finally {
      await client.close();
    }

    connect.signal("SIGTERM");
    assert.equal(await connect.exitCode(15_000), 0);
    serve.signal("SIGTERM");
    assert.equal(await serve.exitCode(15_000), 0);
    assert.doesNotMatch(serve.text() + connect.text(), new RegExp(TOKEN));
    assert.ok((await Deno.stat(`${stateDir}/serve.sqlite`)).isFile, "serve wrote its state file");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve without --allow-net says which flag to add and exits 2", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-bundle-" });
  try {
    const tokensFile = `${dir}/tokens.txt`;
    await Deno.writeTextFile(tokensFile, `${TOKEN} alice\n`);
    const listen = `127.0.0.1:${freePort()}`;
    const flags = withoutFlag(servePermissions({ listen, tokensFile }), "--allow-net");
    await using serve = startProxy(
      ["serve", "--listen", listen, "--tokens-file", tokensFile],
      { script: BUNDLE, permissions: ["--no-prompt", ...flags] },
    );
    assert.equal(await serve.exitCode(15_000), 2);
    assertPermissionMessage(serve.text(), /--allow-net/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve without --allow-read for its tokens file says which flag to add", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-bundle-" });
  try {
    const tokensFile = `${dir}/tokens.txt`;
    await Deno.writeTextFile(tokensFile, `${TOKEN} alice\n`);
    const listen = `127.0.0.1:${freePort()}`;
    const flags = withoutFlag(servePermissions({ listen, tokensFile }), "--allow-read");
    await using serve = startProxy(
      ["serve", "--listen", listen, "--tokens-file", tokensFile],
      { script: BUNDLE, permissions: ["--no-prompt", ...flags] },
    );
    assert.notEqual(await serve.exitCode(15_000), 0);
    assertPermissionMessage(serve.text(), /--allow-read/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("connect without --allow-env says in one line which flag to add", async () => {
  const flags = connectPermissions({ command: "deno", gatewayHost: "127.0.0.1:9" });
  await using proxy = startProxy(
    ["connect", "--gateway", "http://127.0.0.1:9", "--", ...DEMO_SERVER],
    { script: BUNDLE, permissions: ["--no-prompt", ...withoutFlag(flags, "--allow-env")] },
  );
  assert.equal(await proxy.exitCode(15_000), 2);
  const lines = assertPermissionMessage(proxy.text(), /--allow-env=REVERSE_PROXY_/);
  assert.equal(lines.length, 1, proxy.text());
});

Deno.test("connect without --allow-run says which flag to add and exits 2", async () => {
  const flags = connectPermissions({ command: "deno", gatewayHost: "127.0.0.1:9" });
  await using proxy = startProxy(
    ["connect", "--gateway", "http://127.0.0.1:9", "--", ...DEMO_SERVER],
    { script: BUNDLE, permissions: ["--no-prompt", ...withoutFlag(flags, "--allow-run")] },
  );
  assert.equal(await proxy.exitCode(15_000), 2);
  assertPermissionMessage(proxy.text(), /--allow-run/);
});

Deno.test("connect without --allow-net says which flag to add and exits 2", async () => {
  const flags = connectPermissions({ command: "deno", gatewayHost: "127.0.0.1:9" });
  await using proxy = startProxy(
    [
      "connect",
      "--gateway",
      "http://127.0.0.1:9",
      "--max-retries",
      "1",
      "--reconnect-delay",
      "0.01",
      "--",
      ...DEMO_SERVER,
    ],
    { script: BUNDLE, permissions: ["--no-prompt", ...withoutFlag(flags, "--allow-net")] },
  );
  assert.equal(await proxy.exitCode(15_000), 2);
  assertPermissionMessage(proxy.text(), /--allow-net/);
});

Deno.test("every environment variable the program reads is in its --allow-env list", async () => {
  const sources = [`${ROOT}main.ts`];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.name.endsWith(".ts")) sources.push(path);
    }
  };
  await walk(`${ROOT}lib`);
  const names = new Set<string>();
  for (const path of sources) {
    const text = await Deno.readTextFile(path);
    for (
      const match of text.matchAll(/["'`](REVERSE_PROXY_[A-Z0-9_]+|MCP_RPROXY_[A-Z0-9_]+)["'`]/g)
    ) {
      names.add(match[1] as string);
    }
    for (const match of text.matchAll(/\benv(?:\.get)?\(\s*["'`]([A-Z][A-Z0-9_]*)["'`]\s*\)/g)) {
      names.add(match[1] as string);
    }
  }
  assert.ok(names.has("REVERSE_PROXY_GATEWAY"), "the scan finds the variables");
  const allowed = new Set([...CONNECT_ENV, ...SERVE_ENV]);
  const missing = [...names].filter((name) => !allowed.has(name));
  assert.deepEqual(missing, [], "add these to CONNECT_ENV or SERVE_ENV in scripts/permissions.ts");
});

Deno.test("a replica (serve --redis) runs from the bundle with the production permissions and gets ready", async () => {
  const redis = await startRedis();
  const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-bundle-" });
  try {
    const tokensFile = `${dir}/tokens.txt`;
    const clusterSecretFile = `${dir}/cluster.secret`;
    await Deno.writeTextFile(tokensFile, `${TOKEN} alice\n`);
    await Deno.writeTextFile(clusterSecretFile, "c".repeat(40), { mode: 0o600 });
    const listen = `127.0.0.1:${freePort()}`;
    const healthListen = `127.0.0.1:${freePort()}`;
    const flags = servePermissions({
      listen,
      healthListen,
      tokensFile,
      redis: `127.0.0.1:${redis.port}`,
      clusterSecretFile,
    });
    await using serve = startProxy(
      [
        "serve",
        "--listen",
        listen,
        "--health-listen",
        healthListen,
        "--tokens-file",
        tokensFile,
        "--redis",
        redis.url,
        "--cluster-secret-file",
        clusterSecretFile,
        "--log-format",
        "json",
      ],
      { script: BUNDLE, permissions: ["--no-prompt", ...flags] },
    );
    await serve.waitForEvent("cluster_joining", 20_000);
    await serve.waitForEvent("health_listening", 20_000);
    for (let i = 0;; i++) {
      const ready = await fetchText(`http://${healthListen}/readyz`);
      if (ready.status === 200) {
        assert.match(ready.body, /redis: up/);
        break;
      }
      if (i > 400) assert.fail(`not ready: ${ready.body}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    serve.signal("SIGTERM");
    assert.equal(await serve.exitCode(15_000), 0);
    assert.doesNotMatch(serve.text(), /PermissionDenied|Requires/);
  } finally {
    await redis.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task compile skips when the Deno runtime cannot be downloaded, fails with REQUIRE_COMPILE=1", async () => {
  // A proxy on a closed port makes the runtime download fail the same way on any machine.
  const proxy = `http://127.0.0.1:${freePort()}`;
  const run = (env: Record<string, string>) =>
    new Deno.Command(Deno.execPath(), {
      args: ["task", "compile", "--target", "host"],
      cwd: ROOT,
      env: { NO_COLOR: "1", HTTPS_PROXY: proxy, HTTP_PROXY: proxy, ...env },
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(180_000),
    }).output();
  const decoder = new TextDecoder();

  const relaxed = await run({ REQUIRE_COMPILE: "" });
  const out = decoder.decode(relaxed.stdout) + decoder.decode(relaxed.stderr);
  if (/^built/m.test(out)) {
    // The runtime was already cached: then the build and the smoke test must have passed.
    assert.equal(relaxed.code, 0, out);
    assert.match(out, /smoke test: .* --version ->/);
    assert.match(out, /smoke test: .* --help ->/);
    return;
  }
  assert.equal(relaxed.code, 0, out);
  assert.match(out, /^skipped +x86_64|^skipped +aarch64/m);
  assert.match(out, /could not download the Deno runtime/);
  assert.match(out, /REQUIRE_COMPILE=1/);

  const strict = await run({ REQUIRE_COMPILE: "1" });
  const strictOut = decoder.decode(strict.stdout) + decoder.decode(strict.stderr);
  assert.equal(strict.code, 1, strictOut);
  assert.match(strictOut, /REQUIRE_COMPILE=1: failing because targets were skipped/);
});
