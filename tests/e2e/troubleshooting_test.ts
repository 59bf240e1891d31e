// The README's Troubleshooting section quotes the exact lines a user sees: each failure it names is made to
// happen here with the real program (serve, connect, tinyproxy, TLS material), and every quoted line must
// be among what connect logged, once the test gateway's address reads as the README's (`gw.example.com`,
// port 8443).

import assert from "node:assert/strict";
import { readmeSection } from "../fixtures/readme.ts";
import { type ProxyProcess, startProxy } from "../fixtures/proxy_process.ts";
import { startTinyproxy } from "../fixtures/forward_proxy.ts";

const DEMO_SERVER_MAIN = new URL("../fixtures/demo_server_main.ts", import.meta.url).pathname;
const TLS = new URL("../fixtures/tls/", import.meta.url).pathname;
const TOKEN = "troubleshooting-token-0123456789";
const DEMO_SERVER = ["--", Deno.execPath(), "run", "-q", DEMO_SERVER_MAIN];

/** Each `### title` of the section with the lines of its `text` block. */
function quotedLines(): Map<string, string[]> {
  const section = readmeSection("Troubleshooting");
  const result = new Map<string, string[]>();
  for (const part of section.split("\n### ").slice(1)) {
    const title = part.slice(0, part.indexOf("\n"));
    const block = /```text\n([\s\S]*?)\n```/.exec(part)?.[1];
    assert.ok(block !== undefined, `'${title}' quotes no message`);
    result.set(title, block.split("\n"));
  }
  return result;
}

/** A line as the user reads it in the README: without its leading timestamp. */
function withoutTimestamp(line: string): string {
  return line.replace(/^\d{4}-\d\d-\d\dT[\d:.]+Z /, "");
}

/** The test gateway's address, and the one the README shows for it (`gw.example.com:PORT`). */
interface Gateway {
  host: string;
  port: number;
  /** The port the README shows: 8080 for plain HTTP, 8443 for TLS. */
  readmePort: number;
}

/** A logged line as the README quotes it: no timestamp, the README's gateway address. */
function asInReadme(line: string, gateway: Gateway): string {
  return withoutTimestamp(line)
    .replaceAll(`${gateway.host}:${gateway.port}`, `gw.example.com:${gateway.readmePort}`)
    .replaceAll(gateway.host, "gw.example.com");
}

/** Our gateway on a free port; TLS with the test CA's certificate for `localhost` when asked. */
async function startServe(dir: string, options: { tls?: boolean } = {}) {
  const tokens = `${dir}/tokens.yaml`;
  await Deno.writeTextFile(tokens, `${TOKEN}: alice\n`);
  const serve = startProxy([
    "serve",
    "--listen",
    "127.0.0.1:0",
    "--tokens-file",
    tokens,
    ...(options.tls ? ["--tls-cert", `${TLS}server.pem`, "--tls-key", `${TLS}server.key`] : []),
  ]);
  try {
    const line = await serve.waitForLine((l) =>
      /listening on https?:\/\/127\.0\.0\.1:\d+/.test(l.raw)
    );
    const port = Number(/127\.0\.0\.1:(\d+)/.exec(line.raw)![1]);
    return { serve, port };
  } catch (error) {
    await serve[Symbol.asyncDispose]();
    throw error;
  }
}

/**
 * Runs connect until a line matches `until` (then stops it) or it exits; returns every line it logged,
 * as the README would quote it. The environment is this process's plus `env`, as a user's shell has.
 */
async function connectUntil(
  args: string[],
  options: { until: RegExp; env?: Record<string, string>; tokenFile: string; gateway: Gateway },
): Promise<string[]> {
  await using connect: ProxyProcess = startProxy(
    ["connect", "--token-file", options.tokenFile, ...args],
    { env: { ...Deno.env.toObject(), DENO_NO_UPDATE_CHECK: "1", ...options.env } },
  );
  await connect.waitForLine((l) => options.until.test(l.raw), 60_000).catch(() => {});
  connect.signal("SIGTERM");
  await connect.exitCode(20_000);
  return connect.lines.map((l) => asInReadme(l.raw, options.gateway));
}

/** The PATH without any directory that holds a `uvx`: the README's example is a missing program. */
function pathWithoutUvx(): string {
  return (Deno.env.get("PATH") ?? "").split(":").filter((dir) => {
    try {
      Deno.statSync(`${dir}/uvx`);
      return false;
    } catch {
      return true;
    }
  }).join(":");
}

/** The gateway as the README shows it: plain HTTP on 8080, TLS on 8443. */
function plain(port: number): Gateway {
  return { host: "127.0.0.1", port, readmePort: 8080 };
}

const SCENARIOS: Record<string, (dir: string, tokenFile: string) => Promise<string[]>> = {
  "The gateway refuses the token": async (dir) => {
    const { serve, port } = await startServe(dir);
    await using _ = serve;
    const wrong = `${dir}/wrong.token`;
    await Deno.writeTextFile(wrong, "not-the-token\n");
    return await connectUntil(
      ["--gateway", `http://127.0.0.1:${port}`, ...DEMO_SERVER],
      { until: /auth_refused/, tokenFile: wrong, gateway: plain(port) },
    );
  },
  "Wrong gateway URL": async (dir, tokenFile) => {
    const { serve, port } = await startServe(dir);
    await using _ = serve;
    const gateway = plain(port);
    // The MCP URL given as the gateway, and https:// to a gateway that speaks plain HTTP.
    const mcpUrl = await connectUntil(
      ["--gateway", `http://127.0.0.1:${port}/servers/git/mcp`, ...DEMO_SERVER],
      { until: /connect_failed/, tokenFile, gateway },
    );
    const tlsToPlain = await connectUntil(
      ["--gateway", `https://127.0.0.1:${port}`, ...DEMO_SERVER],
      { until: /connect_failed/, tokenFile, gateway },
    );
    return [...mcpUrl, ...tlsToPlain];
  },
  "A proxy in the way": async (dir, tokenFile) => {
    const { serve, port } = await startServe(dir);
    await using _ = serve;
    // Debian's default: CONNECT only to 443, and a plain HTTP request passed on without its Upgrade.
    await using proxy = await startTinyproxy();
    const connectRefused = await connectUntil(
      ["--gateway", `https://127.0.0.1:${port}`, ...DEMO_SERVER],
      {
        until: /connect_failed/,
        tokenFile,
        env: { HTTPS_PROXY: proxy.url, NO_PROXY: "" },
        // The proxy refuses before any TLS: what it says is the same for a TLS gateway on 8443.
        gateway: { host: "127.0.0.1", port, readmePort: 8443 },
      },
    );
    // By default (--transport auto) the link moves to SSE; told to stay on WebSocket, it fails.
    const movedToSse = await connectUntil(
      ["--gateway", `http://127.0.0.1:${port}`, ...DEMO_SERVER],
      {
        until: /transport_changed/,
        tokenFile,
        env: { HTTP_PROXY: proxy.url, NO_PROXY: "" },
        gateway: plain(port),
      },
    );
    const upgradeDropped = await connectUntil(
      ["--gateway", `http://127.0.0.1:${port}`, "--transport", "websocket", ...DEMO_SERVER],
      {
        until: /connect_failed/,
        tokenFile,
        env: { HTTP_PROXY: proxy.url, NO_PROXY: "" },
        gateway: plain(port),
      },
    );
    return [...connectRefused, ...movedToSse, ...upgradeDropped];
  },
  "The gateway's TLS certificate is not trusted": async (dir, tokenFile) => {
    const { serve, port } = await startServe(dir, { tls: true });
    await using _ = serve;
    return await connectUntil(
      ["--gateway", `https://localhost:${port}`, ...DEMO_SERVER],
      {
        until: /connect_failed/,
        tokenFile,
        gateway: { host: "localhost", port, readmePort: 8443 },
      },
    );
  },
  "The local server exits at start": async (dir, tokenFile) => {
    const { serve, port } = await startServe(dir);
    await using _ = serve;
    const gateway = plain(port);
    const url = ["--gateway", `http://127.0.0.1:${port}`];
    const missing = await connectUntil([...url, "--", "uvx", "mcp-server-git"], {
      until: /event=fatal/,
      tokenFile,
      env: { PATH: pathWithoutUvx() },
      gateway,
    });
    const exited = await connectUntil(
      [...url, "--", "npx", "-y", "@modelcontextprotocol/server-everythin"],
      { until: /event=fatal/, tokenFile, gateway },
    );
    return [...missing, ...exited];
  },
};

const quoted = quotedLines();

Deno.test("the README's Troubleshooting section has exactly the five failures this file makes happen", () => {
  assert.deepEqual([...quoted.keys()].sort(), Object.keys(SCENARIOS).sort());
});

for (const [title, scenario] of Object.entries(SCENARIOS)) {
  Deno.test(`README Troubleshooting, '${title}': the quoted lines are what connect logs`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-troubleshooting-" });
    try {
      const tokenFile = `${dir}/alice.token`;
      await Deno.writeTextFile(tokenFile, `${TOKEN}\n`);
      const logged = await scenario(dir, tokenFile);
      for (const line of quoted.get(title) ?? []) {
        assert.ok(
          logged.includes(line),
          `README line not seen:\n${line}\nconnect logged:\n${logged.join("\n")}`,
        );
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
