// serve re-reads its tokens file on request (SIGHUP in main.ts), through serveCommand's wiring: a new token
// works, a removed one stops, and a bad or missing file leaves the tokens in use with an error line.

import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import { serveCommand } from "../../lib/serve/command.ts";
import { setupLogging, shutdownLogging } from "../../lib/util/log.ts";
import { within } from "../fixtures/test_gateway.ts";

function render(record: LogRecord): string {
  return record.message.map((part) => typeof part === "string" ? part : JSON.stringify(part)).join(
    "",
  );
}

/** A serve whose tokens file is a variable and whose SIGHUP is a function call. */
function startServe(initial: string | undefined) {
  const files = new Map<string, string>();
  if (initial !== undefined) files.set("/tokens.yaml", initial);
  const listeners = new Set<() => void>();
  const records: LogRecord[] = [];
  const waiters = new Set<() => void>();
  const listening = Promise.withResolvers<string>();
  const controller = new AbortController();
  const done = serveCommand(
    [
      "--listen",
      "127.0.0.1:0",
      ...(initial === undefined ? [] : ["--tokens-file", "/tokens.yaml"]),
    ],
    {
      signal: controller.signal,
      env: (name) =>
        name === "MCP_RPROXY_JWT_SECRET"
          ? "jwt-secret-for-the-no-file-case-0123"
          : name === "MCP_RPROXY_STATE_DIR"
          ? "none"
          : undefined,
      readTextFile: (path) => {
        const text = files.get(path);
        return text === undefined
          ? Promise.reject(new Deno.errors.NotFound(`No such file: ${path}`))
          : Promise.resolve(text);
      },
      stdout: () => {},
      stderr: () => {},
      onHardStop: () => {},
      setupLogging: (options) =>
        setupLogging({
          ...options,
          sink: (record) => {
            records.push(record);
            if (
              record.properties.event === "listening" && typeof record.properties.url === "string"
            ) {
              listening.resolve(record.properties.url);
            }
            for (const wake of waiters) wake();
          },
        }),
      subscribeReload: (listener) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
    },
  ).finally(() => shutdownLogging());
  const ended = () => listening.reject(new Error("serveCommand ended before listening"));
  done.then(ended, ended);
  /** Sends a reload request and waits for the log record that answers it. */
  const hup = async (): Promise<LogRecord> => {
    const from = records.length;
    for (const listener of listeners) listener();
    const answered = new Promise<LogRecord>((resolve) => {
      const check = () => {
        const found = records.slice(from).find((r) =>
          String(r.properties.event).startsWith("tokens_reload")
        );
        if (found) {
          waiters.delete(check);
          resolve(found);
        }
      };
      waiters.add(check);
      check();
    });
    return await within(answered, 5_000, "the reload's log line");
  };
  const status = async (url: string, token: string): Promise<number> => {
    const response = await fetch(`${url}/reverse-proxy/sessions`, {
      headers: { authorization: `Bearer ${token}` },
    });
    await response.body?.cancel();
    return response.status;
  };
  return { files, listeners, records, listening: listening.promise, controller, done, hup, status };
}

Deno.test("serve reloads its tokens file on request: new tokens work, removed ones stop", async () => {
  const serve = startServe("tok-alice-0123456789: alice\n");
  try {
    const url = await within(serve.listening, 5_000, "listening");
    assert.equal(serve.listeners.size, 1, "serve listens for reload requests once it runs");
    assert.equal(await serve.status(url, "tok-bob-0123456789"), 401);
    serve.files.set("/tokens.yaml", "tok-alice-0123456789: alice\ntok-bob-0123456789: bob\n");
    const reloaded = await serve.hup();
    assert.equal(reloaded.properties.event, "tokens_reloaded");
    assert.equal(reloaded.level, "info");
    assert.equal(reloaded.properties.count, 2);
    assert.equal(await serve.status(url, "tok-bob-0123456789"), 200);
    serve.files.set("/tokens.yaml", "tok-bob-0123456789: bob\n");
    await serve.hup();
    assert.equal(await serve.status(url, "tok-alice-0123456789"), 401);
    assert.equal(await serve.status(url, "tok-bob-0123456789"), 200);
  } finally {
    serve.controller.abort();
    await serve.done;
  }
  assert.equal(serve.listeners.size, 0, "the reload listener is removed on shutdown");
});

Deno.test("serve keeps its tokens when the reloaded file is bad or gone, and says so", async () => {
  const serve = startServe("tok-alice-0123456789: alice\n");
  try {
    const url = await within(serve.listening, 5_000, "listening");
    serve.files.set("/tokens.yaml", "tok-secret-new-123: {owner: bob, roles: [root]}\n");
    const bad = await serve.hup();
    assert.equal(bad.properties.event, "tokens_reload_failed");
    assert.equal(bad.level, "error");
    const line = render(bad);
    assert.match(line, /Kept the previous tokens/);
    assert.match(line, /unknown role "root"/);
    assert.ok(!line.includes("tok-secret-new-123"), "the token stays out of the log");
    assert.equal(await serve.status(url, "tok-alice-0123456789"), 200);
    serve.files.delete("/tokens.yaml");
    const gone = await serve.hup();
    assert.equal(gone.properties.event, "tokens_reload_failed");
    assert.match(render(gone), /cannot read --tokens-file/);
    assert.equal(await serve.status(url, "tok-alice-0123456789"), 200);
  } finally {
    serve.controller.abort();
    await serve.done;
  }
});

Deno.test("serve without a tokens file answers a reload request with a line, not a crash", async () => {
  const serve = startServe(undefined);
  try {
    await within(serve.listening, 5_000, "listening");
    const skipped = await serve.hup();
    assert.equal(skipped.properties.event, "tokens_reload_skipped");
  } finally {
    serve.controller.abort();
    await serve.done;
  }
});
