// docs/clients.md, run: the blocks marked `<!-- tested: … -->` are read from the doc and run with the
// real clients from npm (MCP Inspector CLI on Node 22, mcp-remote) against a gateway with a tunneled test
// server, with static tokens and with OAuth at a real authorization server (the test plays the browser).
// Only the base URL and the token are replaced; `npx -y <package>@<version>` becomes the pinned install.

import assert from "node:assert/strict";
import { dirname } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { startGateway } from "../../lib/serve/gateway.ts";
import type { Gateway } from "../../lib/serve/gateway.ts";
import { createTokenStore } from "../../lib/serve/token_store.ts";
import { splitCommand } from "../../lib/util/shell_words.ts";
import { freePort } from "../fixtures/daemon.ts";
import { ensureMcpClients, type McpClients } from "../fixtures/mcp_clients.ts";
import { completeAuthorization } from "../fixtures/oauth_flow.ts";
import { type OAuthServer, startOAuthServer } from "../fixtures/oauth_server.ts";
import {
  type ServedServer,
  serveTestServer,
  TOKENS,
  TOKENS_FILE,
  within,
} from "../fixtures/test_gateway.ts";

const DOC_PATH = new URL("../../docs/clients.md", import.meta.url);
const DOC_BASE = "https://gw.example.com";
const DOC_TOKEN = "tok-alice-app-51be";
/** Connect token the gateway maps onto the OAuth user alice, so her OAuth clients see its server. */
const OAUTH_ALICE_CONNECT = "tok-clients-oauth-alice-0123456789";

/** The fenced block after `<!-- tested: id -->` in docs/clients.md. */
async function testedBlock(id: string): Promise<{ lang: string; text: string }> {
  const doc = await Deno.readTextFile(DOC_PATH);
  const marker = `<!-- tested: ${id} -->`;
  const at = doc.indexOf(marker);
  assert.notEqual(at, -1, `docs/clients.md has ${marker}`);
  const match = /```(\w*)[^\n]*\n([\s\S]*?)\n```/.exec(doc.slice(at + marker.length));
  assert.ok(match, `a code block after ${marker}`);
  return { lang: match[1]!, text: match[2]! };
}

/** The words of the block's `npx` command (backslash-continued lines joined). */
function npxCommand(text: string): string[] {
  const line = text.replace(/\\\n\s*/g, " ").split("\n").find((l) => l.startsWith("npx "));
  assert.ok(line, `an npx line in:\n${text}`);
  return splitCommand(line);
}

/** `npx -y <package>@<version> …rest` as the installed client's argv; the version must be the pinned one. */
function resolveNpx(words: string[], clients: McpClients): string[] {
  const [npx, yes, spec, ...rest] = words;
  assert.equal(npx, "npx");
  assert.equal(yes, "-y");
  const pinned: Record<string, [string, string[]]> = {
    "@modelcontextprotocol/inspector": [clients.versions.inspector, clients.inspector],
    "mcp-remote": [clients.versions.mcpRemote, clients.mcpRemote],
  };
  const at = spec!.lastIndexOf("@");
  const [version, argv] = pinned[spec!.slice(0, at)] ?? [];
  assert.ok(argv, `a known client: ${spec}`);
  assert.equal(spec!.slice(at + 1), version, `docs name the tested version of ${spec}`);
  return [...argv, ...rest];
}

function withBase(words: string[], gateway: Gateway): string[] {
  return words.map((w) => w.startsWith(DOC_BASE) ? gateway.url + w.slice(DOC_BASE.length) : w);
}

/** A clean environment for a client: its own HOME, no display, and a browser that does nothing. */
function clientEnv(home: string, clients: McpClients): Record<string, string> {
  return {
    HOME: home,
    PATH: `${dirname(clients.node)}:/usr/bin:/bin`,
    BROWSER: "/bin/true",
    NO_COLOR: "1",
    MCP_INSPECTOR_SECRET_STORE: "memory",
  };
}

interface Setup {
  clients: McpClients;
  as: OAuthServer;
  gateway: Gateway;
  home: string;
}

/** An authorization server, a gateway trusting it, and `files` tunneled for alice (static) and for OAuth alice. */
async function withSetup(fn: (setup: Setup) => Promise<void>): Promise<void> {
  const clients = await ensureMcpClients();
  const as = await startOAuthServer();
  const home = await Deno.makeTempDir({ prefix: "clients-test-home-" });
  const served: ServedServer[] = [];
  let gateway: Gateway | undefined;
  try {
    const owner = JSON.stringify(`oauth:${as.issuer}#alice`);
    gateway = await startGateway({
      tokens: await createTokenStore({
        tokensFile: `${TOKENS_FILE}${OAUTH_ALICE_CONNECT}: {owner: ${owner}, roles: [connect]}\n`,
        oauth: { issuers: [as.issuer], jwksCooldownMs: 0 },
      }),
      hostname: "127.0.0.1",
      port: 0,
    });
    served.push(await serveTestServer(gateway, "files", TOKENS.alice));
    served.push(await serveTestServer(gateway, "files", OAUTH_ALICE_CONNECT));
    await fn({ clients, as, gateway, home });
  } finally {
    for (const server of served) await server.close();
    await gateway?.close();
    await as.stop();
    await Deno.remove(home, { recursive: true });
  }
}

/** Reads a stream into `sink` until it ends; resolves `found` with the first match of `pattern`. */
function watch(
  stream: ReadableStream<Uint8Array>,
  pattern: RegExp,
): { text: () => string; found: Promise<RegExpExecArray>; done: Promise<void> } {
  let text = "";
  const { promise: found, resolve, reject } = Promise.withResolvers<RegExpExecArray>();
  const done = (async () => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      const match = pattern.exec(text);
      if (match) resolve(match);
    }
    reject(new Error(`the stream ended without ${pattern}:\n${text.slice(-2000)}`));
  })();
  found.catch(() => {});
  return { text: () => text, found, done };
}

/** Plays the user at the authorization URL and delivers the redirect to the client's callback listener. */
async function signInAndRedirect(authorizationUrl: string): Promise<void> {
  const redirect = await completeAuthorization(authorizationUrl, { login: "alice" });
  assert.ok(redirect.searchParams.get("code"), `a code in ${redirect}`);
  const status = await getStatus(redirect, 10_000);
  assert.equal(status, 200, "the client's callback took the code");
}

/**
 * GETs `url` over a plain TCP connection and returns the HTTP status. Not `fetch`: fetch refuses the
 * Fetch standard's "bad ports", and mcp-remote derives its callback port from a hash of the server
 * URL (3335–49150), so a run now and then lands on one (CI once drew 6666).
 */
async function getStatus(url: URL, timeoutMs: number): Promise<number> {
  const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    const request = `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n` +
      "Connection: close\r\n\r\n";
    await conn.write(new TextEncoder().encode(request));
    const response = await new Response(conn.readable).text();
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(response);
    assert.ok(status, `an HTTP response from ${url.origin}: ${response.slice(0, 200)}`);
    return Number(status[1]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs a program to its end (bounded), feeding its stderr to `onStderr` while it runs. */
async function runClient(
  argv: string[],
  env: Record<string, string>,
  stderrPattern?: { pattern: RegExp; then: (match: RegExpExecArray) => Promise<void> },
): Promise<{ code: number; stdout: string; stderr: string }> {
  const [program, ...args] = argv;
  const child = new Deno.Command(program!, {
    args,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).spawn();
  const stdout = watch(child.stdout, /$^/);
  const stderr = watch(child.stderr, stderrPattern?.pattern ?? /$^/);
  let acted: Promise<void> = Promise.resolve();
  if (stderrPattern !== undefined) acted = stderr.found.then(stderrPattern.then);
  const [status] = await Promise.all([
    child.status,
    stdout.done.catch(() => {}),
    stderr.done.catch(() => {}),
  ]);
  await acted;
  return { code: status.code, stdout: stdout.text(), stderr: stderr.text() };
}

function toolNames(json: string): string[] {
  return (JSON.parse(json) as { tools: { name: string }[] }).tools.map((t) => t.name).sort();
}

/** Tools of the tunneled test server (createTestServer) that prove the list came through the tunnel. */
const TEST_TOOLS = ["echo", "slow"];

function assertTestTools(json: string): void {
  const names = toolNames(json);
  for (const tool of TEST_TOOLS) assert.ok(names.includes(tool), `${tool} in ${names}`);
}

Deno.test("docs/clients.md: the Inspector CLI with --header lists the tunneled server's tools", async () => {
  await withSetup(async ({ clients, gateway, home }) => {
    const words = npxCommand((await testedBlock("inspector-header")).text)
      .map((w) => w.replace("$MCP_RPROXY_TOKEN", TOKENS.aliceClientOnly));
    const result = await runClient(
      withBase(resolveNpx(words, clients), gateway),
      clientEnv(home, clients),
    );
    assert.equal(result.code, 0, result.stderr);
    assertTestTools(result.stdout);
  });
});

Deno.test("docs/clients.md: the Inspector CLI signs in with OAuth and lists the tools", async () => {
  await withSetup(async ({ clients, gateway, home }) => {
    const words = npxCommand((await testedBlock("inspector-oauth")).text);
    // Not the default callback port, which parallel runs would share; not a terminal, so forced.
    const callback = `http://127.0.0.1:${freePort()}/oauth/callback`;
    const argv = [...withBase(resolveNpx(words, clients), gateway), "--callback-url", callback];
    const result = await runClient(
      argv,
      { ...clientEnv(home, clients), MCP_AUTO_OPEN_ENABLED: "true" },
      { pattern: /Please navigate to: (\S+)/, then: (m) => signInAndRedirect(m[1]!) },
    );
    assert.equal(result.code, 0, result.stderr);
    assertTestTools(result.stdout);
  });
});

/** Starts the `files` server of a desktop JSON config block the way a desktop client does. */
function desktopTransport(
  config: { command: string; args: string[]; env?: Record<string, string> },
  setup: Setup,
  token?: { from: string; to: string },
): StdioClientTransport {
  const argv = withBase(resolveNpx([config.command, ...config.args], setup.clients), setup.gateway);
  const env: Record<string, string> = { ...clientEnv(setup.home, setup.clients) };
  for (const [name, value] of Object.entries(config.env ?? {})) {
    env[name] = token === undefined ? value : value.replace(token.from, token.to);
  }
  return new StdioClientTransport({ command: argv[0]!, args: argv.slice(1), env, stderr: "pipe" });
}

/**
 * Ends a desktop-started bridge: SIGTERM first, then the client. The SDK's StdioClientTransport.close()
 * races a live child against a 2 s timer it never clears, which the op sanitizer reports; a child that has
 * already exited skips that race.
 */
async function closeDesktop(client: Client, transport: StdioClientTransport): Promise<void> {
  if (transport.pid !== null) {
    const exited = new Promise<void>((resolve) => {
      const previous = transport.onclose;
      transport.onclose = () => {
        previous?.();
        resolve();
      };
    });
    try {
      Deno.kill(transport.pid, "SIGTERM");
    } catch {
      // Already gone.
    }
    await within(exited, 10_000, "mcp-remote to exit");
  }
  await client.close();
}

async function desktopConfig(id: string) {
  const block = await testedBlock(id);
  assert.equal(block.lang, "json");
  const parsed = JSON.parse(block.text) as {
    mcpServers: Record<string, { command: string; args: string[]; env?: Record<string, string> }>;
  };
  const files = parsed.mcpServers.files;
  assert.ok(files, `${id} configures 'files'`);
  return files;
}

for (const id of ["desktop-header", "desktop-header-nospace"]) {
  Deno.test(`docs/clients.md: the desktop JSON config '${id}' runs mcp-remote with the header and calls a tool`, async () => {
    await withSetup(async (setup) => {
      const config = await desktopConfig(id);
      const transport = desktopTransport(config, setup, {
        from: DOC_TOKEN,
        to: TOKENS.aliceClientOnly,
      });
      const client = new Client({ name: "desktop", version: "1" });
      try {
        await within(client.connect(transport), 30_000, "mcp-remote to connect");
        const result = await client.callTool(
          { name: "echo", arguments: { text: `via ${id}` } },
          undefined,
          { timeout: 10_000 },
        );
        assert.deepEqual(result.content, [{ type: "text", text: `via ${id}` }]);
      } finally {
        await closeDesktop(client, transport);
      }
      // The token went through the environment, not the argument list.
      assert.ok(!config.args.some((arg) => arg.includes(DOC_TOKEN)));
    });
  });
}

Deno.test("docs/clients.md: the desktop JSON config without a header runs mcp-remote's OAuth flow and calls a tool", async () => {
  await withSetup(async (setup) => {
    const transport = desktopTransport(await desktopConfig("desktop-oauth"), setup);
    const stderr = transport.stderr;
    assert.ok(stderr, "mcp-remote's stderr is piped");
    let log = "";
    const { promise: authorizationUrl, resolve } = Promise.withResolvers<string>();
    stderr.on("data", (chunk: Uint8Array) => {
      log += new TextDecoder().decode(chunk);
      const match = /Please authorize this client by visiting:\s+(\S+)/.exec(log);
      if (match) resolve(match[1]!);
    });
    const client = new Client({ name: "desktop", version: "1" });
    try {
      const connecting = client.connect(transport);
      connecting.catch(() => {});
      const url = await within(authorizationUrl, 30_000, "mcp-remote's authorization URL");
      assert.equal(
        new URL(url).searchParams.get("resource"),
        `${setup.gateway.url}/servers/files/mcp`,
      );
      await signInAndRedirect(url);
      await within(connecting, 30_000, "mcp-remote to connect after sign-in");
      const result = await client.callTool(
        { name: "echo", arguments: { text: "via mcp-remote OAuth" } },
        undefined,
        { timeout: 10_000 },
      );
      assert.deepEqual(result.content, [{ type: "text", text: "via mcp-remote OAuth" }]);
    } finally {
      await closeDesktop(client, transport);
    }
  });
});

Deno.test("docs/clients.md: the SDK header block runs as written", async () => {
  await withSetup(async ({ gateway }) => {
    const code = (await testedBlock("sdk-header")).text.replaceAll(DOC_BASE, gateway.url);
    const file = await Deno.makeTempFile({
      dir: new URL(".", import.meta.url).pathname,
      suffix: "_snippet.ts",
    });
    try {
      await Deno.writeTextFile(file, code);
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--quiet", "--allow-net", "--allow-env", "--allow-read", file],
        env: { MCP_RPROXY_TOKEN: TOKENS.aliceClientOnly, NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(60_000),
      }).output();
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 0, stderr);
      assert.match(new TextDecoder().decode(output.stdout), /["']echo["']/);
    } finally {
      await Deno.remove(file);
    }
  });
});
