// serveCommand(): flags, files and the signal, as main.ts drives it.

import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import { CloseCode } from "../../lib/protocol/frames.ts";
import { serveCommand } from "../../lib/serve/command.ts";
import type { CommandContext } from "../../lib/util/command.ts";
import { ConfigError, ListenError } from "../../lib/util/errors.ts";
import { setupLogging, shutdownLogging } from "../../lib/util/log.ts";
import { TOKENS, TOKENS_FILE, within } from "../fixtures/test_gateway.ts";

const FILES: Record<string, string> = {
  "/tokens.yaml": TOKENS_FILE,
  "/secret": "s3cret\n",
  "/empty": " \n",
  "/short-jwt-secret": "my-test-key\n",
};

async function readTextFile(path: string): Promise<string> {
  const text = FILES[path];
  if (text === undefined) throw new Deno.errors.NotFound(`No such file: ${path}`);
  return await Promise.resolve(text);
}

function render(record: LogRecord): string {
  return record.message.map((part) => typeof part === "string" ? part : JSON.stringify(part)).join(
    "",
  );
}

/** A context as main.ts builds it, with logs kept in `records` and stdout in `out`. */
function contextFor(signal: AbortSignal, records: LogRecord[], onRecord = (_: LogRecord) => {}) {
  const out: string[] = [];
  const context: CommandContext = {
    signal,
    // State in memory: these tests are not about restarts and must not write to the home directory.
    env: (name: string) => name === "MCP_RPROXY_STATE_DIR" ? "none" : undefined,
    readTextFile,
    stdout: (text) => out.push(text),
    stderr: () => {},
    setupLogging: (options) =>
      setupLogging({
        ...options,
        sink: (record) => {
          records.push(record);
          onRecord(record);
        },
      }),
    onHardStop: () => {},
  };
  return { context, out };
}

function run(args: string[], signal: AbortSignal) {
  const records: LogRecord[] = [];
  const listening = Promise.withResolvers<string>();
  const { context } = contextFor(signal, records, (record) => {
    if (record.properties.event === "listening" && typeof record.properties.url === "string") {
      listening.resolve(record.properties.url);
    }
  });
  const done = serveCommand(args, context).finally(() => shutdownLogging());
  listening.promise.catch(() => {}); // not every test waits for it
  const ended = () => listening.reject(new Error("serveCommand ended before listening"));
  done.then(ended, ended); // also marks a rejection as handled: tests that expect one await it
  return { records, listening: listening.promise, done };
}

Deno.test("serveCommand() logs the actual URL, serves, and on abort closes links with 1001 and resolves", async () => {
  const controller = new AbortController();
  const { listening, done } = run(
    ["--listen", "127.0.0.1:0", "--tokens-file", "/tokens.yaml", "--log-level", "debug"],
    controller.signal,
  );
  let socket: WebSocket | undefined;
  try {
    const url = await within(listening, 5_000, "listening");
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.doesNotMatch(url, /:0$/);
    socket = new WebSocket(`${url.replace("http", "ws")}/reverse-proxy/ws`, {
      headers: { Authorization: `Bearer ${TOKENS.alice}` },
    });
    const closed = new Promise<CloseEvent>((resolve) => socket!.addEventListener("close", resolve));
    await within(
      new Promise((resolve) => socket!.addEventListener("open", resolve, { once: true })),
      5_000,
      "open",
    );
    controller.abort();
    await within(done, 10_000, "serveCommand to return");
    assert.equal((await within(closed, 5_000, "the link to close")).code, CloseCode.GoingAway);
  } finally {
    controller.abort();
    socket?.close();
    await done;
  }
});

Deno.test("serveCommand() never logs a token", async () => {
  const controller = new AbortController();
  const { records, listening, done } = run(
    ["--listen", "127.0.0.1:0", "--tokens-file", "/tokens.yaml", "--log-level", "trace"],
    controller.signal,
  );
  try {
    const url = await within(listening, 5_000, "listening");
    const refused = await fetch(`${url}/reverse-proxy/sessions`, {
      headers: { authorization: "Bearer not-a-real-token-xyz" },
    });
    assert.equal(refused.status, 401);
    await refused.body?.cancel();
    const listed = await fetch(`${url}/reverse-proxy/sessions`, {
      headers: { authorization: `Bearer ${TOKENS.alice}` },
    });
    assert.equal(listed.status, 200);
    await listed.body?.cancel();
  } finally {
    controller.abort();
    await done;
  }
  const text = records.map((r) => render(r) + JSON.stringify(r.properties)).join("\n");
  for (const token of [...Object.values(TOKENS), "not-a-real-token-xyz"]) {
    assert.ok(!text.includes(token), `token leaked in logs: ${token}`);
  }
});

Deno.test("serveCommand() rejects bad input with a ConfigError naming the flag, the value and the fix", async () => {
  const signal = new AbortController().signal;
  for (
    const [args, pattern] of [
      [["--listen", "nope", "--tokens-file", "/tokens.yaml"], /^Invalid --listen 'nope'/],
      [["--listen", "127.0.0.1:0"], /^No way to check tokens: give --tokens-file/],
      [
        ["--listen", "127.0.0.1:0", "--tokens-file", "/missing"],
        /^Cannot read tokens file \/missing \(from --tokens-file\): No such file: \/missing; check the path/,
      ],
      [
        ["--listen", "127.0.0.1:0", "--tokens-file", "/secret", "--jwt-secret-file", "/missing"],
        /^Cannot read JWT secret file \/missing \(from --jwt-secret-file\)/,
      ],
      [
        ["--listen", "127.0.0.1:0", "--jwt-secret-file", "/empty"],
        /^Invalid --jwt-secret-file '\/empty': the file is empty; expected the HS256 secret in it$/,
      ],
      [
        [
          "--listen",
          "127.0.0.1:0",
          "--tokens-file",
          "/tokens.yaml",
          "--tls-cert",
          "/c",
          "--tls-key",
          "/k",
        ],
        /^Cannot read TLS certificate \/c \(from --tls-cert\)/,
      ],
    ] as const
  ) {
    const { done } = run([...args], signal);
    await assert.rejects(
      within(done, 5_000, "serveCommand"),
      (error: unknown) => error instanceof ConfigError && pattern.test(error.message),
      args.join(" "),
    );
  }
});

Deno.test("serveCommand() refuses an HS256 secret shorter than 32 characters, from a file or the environment, without showing it", async () => {
  // A refusal comes before serve listens: 2 s is ample, and a serve that starts anyway is stopped.
  const controller = new AbortController();
  const signal = controller.signal;
  try {
    const { done } = run(
      ["--listen", "127.0.0.1:0", "--jwt-secret-file", "/short-jwt-secret"],
      signal,
    );
    await assert.rejects(
      within(done, 2_000, "serveCommand"),
      (error: unknown) =>
        error instanceof ConfigError &&
        /^Invalid --jwt-secret-file '\/short-jwt-secret': the HS256 secret has 11 characters, fewer than 32: .*could guess it.*openssl rand/
          .test(error.message) &&
        !error.message.includes("my-test-key"),
    );
    const { context } = contextFor(signal, []);
    const fromEnv = serveCommand(["--listen", "127.0.0.1:0"], {
      ...context,
      env: (name) =>
        name === "MCP_RPROXY_JWT_SECRET"
          ? "my-test-key"
          : name === "MCP_RPROXY_STATE_DIR"
          ? "none"
          : undefined,
    }).finally(() => shutdownLogging());
    await assert.rejects(
      within(fromEnv, 2_000, "serveCommand"),
      (error: unknown) =>
        error instanceof ConfigError &&
        /^Invalid MCP_RPROXY_JWT_SECRET \(value hidden\): the HS256 secret has 11 characters/.test(
          error.message,
        ) && !error.message.includes("my-test-key"),
    );
  } finally {
    controller.abort();
  }
});

Deno.test("serveCommand() prints help and version without starting", async () => {
  for (
    const [args, pattern] of [[["--help"], /^Usage: mcp-rproxy serve/], [
      ["-V"],
      /^\d+\.\d+\.\d+\n$/,
    ]] as const
  ) {
    const { context, out } = contextFor(new AbortController().signal, []);
    await serveCommand([...args], context);
    assert.match(out.join(""), pattern);
  }
});

Deno.test("serveCommand() rejects with a ListenError when the port is taken", async () => {
  const blocker = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const { done } = run(
      ["--listen", `127.0.0.1:${blocker.addr.port}`, "--tokens-file", "/tokens.yaml"],
      new AbortController().signal,
    );
    await assert.rejects(
      within(done, 5_000, "serveCommand"),
      (error: unknown) =>
        error instanceof ListenError &&
        error.message ===
          `Cannot listen on 127.0.0.1:${blocker.addr.port} (--listen): the address is in use; choose another port`,
    );
  } finally {
    blocker.close();
  }
});

Deno.test("serveCommand() --health-listen serves Prometheus metrics of links and refusals", async () => {
  const controller = new AbortController();
  const { records, listening, done } = run(
    ["--listen", "127.0.0.1:0", "--tokens-file", "/tokens.yaml", "--health-listen", "127.0.0.1:0"],
    controller.signal,
  );
  let socket: WebSocket | undefined;
  try {
    const url = await within(listening, 5_000, "listening");
    const healthUrl = records.map((r) => r.properties.url).find((u) =>
      typeof u === "string" && u !== url
    );
    assert.ok(typeof healthUrl === "string", "the health URL is logged");
    const refused = new WebSocket(`${url.replace("http", "ws")}/reverse-proxy/ws`);
    await within(
      new Promise((resolve) => refused.addEventListener("close", resolve, { once: true })),
      5_000,
      "the refused link",
    );
    socket = new WebSocket(`${url.replace("http", "ws")}/reverse-proxy/ws`, {
      headers: { Authorization: `Bearer ${TOKENS.alice}` },
    });
    const s = socket;
    await within(new Promise((r) => s.addEventListener("open", r, { once: true })), 5_000, "open");
    s.send(JSON.stringify({ type: "register", server: { name: "m" } }));
    await within(
      new Promise((r) => s.addEventListener("message", r, { once: true })),
      5_000,
      "register_ack",
    );
    const text = await (await fetch(`${healthUrl}/metrics`)).text();
    assert.match(text, /^mcp_rproxy_sessions 1$/m);
    assert.match(text, /^mcp_rproxy_links_accepted_total 1$/m);
    assert.match(text, /^mcp_rproxy_links_refused_total\{reason="auth"\} 1$/m);
    assert.match(text, /^mcp_rproxy_listening 1$/m);
  } finally {
    controller.abort();
    socket?.close();
    await done;
  }
});
