// serve's flags and environment reach the running gateway: each test runs the real program
// (`main.ts serve …`) and checks the effect a client sees, so a flag that is parsed but never wired
// through the command fails here.

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHmac } from "node:crypto";
import { type ProxyProcess, startProxy } from "../fixtures/proxy_process.ts";

const TLS_DIR = new URL("../fixtures/tls/", import.meta.url).pathname;
const TOKEN = "serve-flags-test-token-0123456789";
const JWT_SECRET = "jwt-secret-for-serve-flags-test-0123456789";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "serve-flags-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Starts `serve` on a free port; resolves with the process and the URL it logged. */
async function startServe(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ serve: ProxyProcess; url: string }> {
  const serve = startProxy(["serve", "--listen", "127.0.0.1:0", ...args], { env });
  try {
    const listening = await serve.waitForEvent("listening", 20_000);
    return { serve, url: String(listening.url) };
  } catch (error) {
    await serve[Symbol.asyncDispose]();
    throw error;
  }
}

/** The register_ack of one link registered as `name`; the socket is closed before returning. */
async function registerAck(url: string, name: string): Promise<Record<string, unknown>> {
  const socket = new WebSocket(`${url.replace(/^http/, "ws")}/reverse-proxy/ws`, {
    headers: { Authorization: `Bearer ${TOKEN}` },
  });
  const closed = new Promise((resolve) => socket.addEventListener("close", resolve));
  try {
    const ack = new Promise<Record<string, unknown>>((resolve, reject) => {
      socket.addEventListener("message", (e) => resolve(JSON.parse(String(e.data))), {
        once: true,
      });
      socket.addEventListener("error", () => reject(new Error("link failed")), { once: true });
    });
    await new Promise((resolve) => socket.addEventListener("open", resolve, { once: true }));
    socket.send(JSON.stringify({ type: "register", server: { name } }));
    return await deadline(ack, 10_000, "register_ack");
  } finally {
    socket.close();
    await deadline(closed, 10_000, "the link to close");
  }
}

async function deadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Status of the sessions API for a bearer token. */
async function sessionsStatus(url: string, token: string, client?: Deno.HttpClient) {
  const response = await fetch(`${url}/reverse-proxy/sessions`, {
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(10_000),
    ...(client === undefined ? {} : { client }),
  });
  await response.body?.cancel();
  return response.status;
}

/** An HS256 JWT, signed the way ContextForge signs them. */
function jwt(claims: Record<string, unknown>, secret = JWT_SECRET): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const unsigned = `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}`;
  return `${unsigned}.${createHmac("sha256", secret).update(unsigned).digest("base64url")}`;
}

const inFiveMinutes = () => Math.floor(Date.now() / 1000) + 300;

Deno.test("serve --public-url builds the mcpUrl that register_ack hands out", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/tokens.txt`, `${TOKEN} alice\n`);
    const { serve, url } = await startServe([
      "--tokens-file",
      `${dir}/tokens.txt`,
      "--public-url",
      "https://mcp.example.com/base/",
      "--log-format",
      "json",
    ]);
    await using _ = serve;
    const ack = await registerAck(url, "pub");
    assert.equal(ack.type, "register_ack");
    assert.equal(ack.mcpUrl, "https://mcp.example.com/base/servers/pub/mcp");
    serve.signal("SIGTERM");
    assert.equal(await serve.exitCode(), 0);
  });
});

Deno.test("serve --tls-cert/--tls-key serves HTTPS with that certificate", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/tokens.txt`, `${TOKEN} alice\n`);
    const { serve, url } = await startServe([
      "--tokens-file",
      `${dir}/tokens.txt`,
      "--tls-cert",
      `${TLS_DIR}server.pem`,
      "--tls-key",
      `${TLS_DIR}server.key`,
      "--log-format",
      "json",
    ]);
    await using _ = serve;
    assert.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const client = Deno.createHttpClient({
      caCerts: [await Deno.readTextFile(`${TLS_DIR}ca.pem`)],
    });
    try {
      assert.equal(await sessionsStatus(url, TOKEN, client), 200);
    } finally {
      client.close();
    }
    // Without the CA the certificate is not trusted: proof that TLS, not plain HTTP, answered
    await assert.rejects(() => sessionsStatus(url, TOKEN));
    serve.signal("SIGTERM");
    assert.equal(await serve.exitCode(), 0);
  });
});

Deno.test("serve takes MCP_RPROXY_JWT_SECRET and checks --jwt-audience, --jwt-issuer and exp", async () => {
  const { serve, url } = await startServe(
    ["--jwt-audience", "mcpgateway-api", "--jwt-issuer", "mcpgateway", "--log-format", "json"],
    { MCP_RPROXY_JWT_SECRET: JWT_SECRET },
  );
  await using _ = serve;
  const good = { sub: "alice@example.com", aud: "mcpgateway-api", iss: "mcpgateway" };
  assert.equal(await sessionsStatus(url, jwt({ ...good, exp: inFiveMinutes() })), 200);
  const refused: [string, string][] = [
    ["another secret", jwt({ ...good, exp: inFiveMinutes() }, "another-secret")],
    ["another audience", jwt({ ...good, aud: "other", exp: inFiveMinutes() })],
    ["another issuer", jwt({ ...good, iss: "other", exp: inFiveMinutes() })],
    ["no exp", jwt(good)],
    ["expired", jwt({ ...good, exp: Math.floor(Date.now() / 1000) - 10 })],
  ];
  for (const [why, token] of refused) assert.equal(await sessionsStatus(url, token), 401, why);
  serve.signal("SIGTERM");
  assert.equal(await serve.exitCode(), 0);
  assert.ok(!serve.text().includes(JWT_SECRET), "the JWT secret reached the logs");
});

Deno.test("serve --jwt-secret-file with --jwt-allow-no-exp accepts a JWT without exp", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/secret`, `${JWT_SECRET}\n`);
    const { serve, url } = await startServe([
      "--jwt-secret-file",
      `${dir}/secret`,
      "--jwt-allow-no-exp",
      "--log-format",
      "json",
    ]);
    await using _ = serve;
    assert.equal(await sessionsStatus(url, jwt({ sub: "alice" })), 200);
    assert.equal(await sessionsStatus(url, jwt({ sub: "alice" }, "another-secret")), 401);
    serve.signal("SIGTERM");
    assert.equal(await serve.exitCode(), 0);
  });
});

Deno.test("serve takes its log level and format from MCP_RPROXY_LOG_LEVEL and _FORMAT", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/tokens.txt`, `${TOKEN} alice\n`);
    // No --log-* flag: JSON lines (waitForEvent parses them) and debug records come from the variables
    const { serve, url } = await startServe(["--tokens-file", `${dir}/tokens.txt`], {
      MCP_RPROXY_LOG_LEVEL: "DEBUG",
      MCP_RPROXY_LOG_FORMAT: "json",
    });
    await using _ = serve;
    await registerAck(url, "logged");
    const debug = await serve.waitForLine((line) => line.json?.level === "debug", 10_000);
    assert.equal(debug.json?.logger, "mcp-rproxy.serve");
    serve.signal("SIGTERM");
    assert.equal(await serve.exitCode(), 0);
  });
});

Deno.test("serve at the default level logs no debug records", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/tokens.txt`, `${TOKEN} alice\n`);
    const { serve, url } = await startServe([
      "--tokens-file",
      `${dir}/tokens.txt`,
      "--log-format",
      "json",
    ]);
    await using _ = serve;
    await registerAck(url, "quiet");
    serve.signal("SIGTERM");
    assert.equal(await serve.exitCode(), 0);
    assert.ok(serve.lines.every((line) => line.json !== undefined), serve.text());
    assert.ok(!serve.lines.some((line) => line.json?.level === "debug"), serve.text());
  });
});
