// serveCommand(): flags, files and the signal, as main.ts drives it.

import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import { CloseCode } from "../../lib/protocol/frames.ts";
import { serveCommand } from "../../lib/serve/command.ts";
import { TOKENS, TOKENS_FILE, within } from "../fixtures/test_gateway.ts";

const FILES: Record<string, string> = { "/tokens.yaml": TOKENS_FILE, "/secret": "s3cret\n" };

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

function run(args: string[], signal: AbortSignal) {
  const records: LogRecord[] = [];
  const listening = Promise.withResolvers<string>();
  const done = serveCommand(args, {
    signal,
    env: () => undefined,
    readTextFile,
    logSink: (record) => {
      records.push(record);
      if (typeof record.properties.url === "string" && /listening/.test(render(record))) {
        listening.resolve(record.properties.url);
      }
    },
  });
  listening.promise.catch(() => {}); // not every test waits for it
  void done.then(() => listening.reject(new Error("serveCommand ended before listening")));
  return { records, listening: listening.promise, done };
}

Deno.test("serveCommand() logs the actual URL, serves, and on abort closes links with 1001 and returns 0", async () => {
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
    assert.equal(await within(done, 10_000, "serveCommand to return"), 0);
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

Deno.test("serveCommand() returns 2 with a message naming the flag for bad input", async () => {
  const signal = new AbortController().signal;
  for (
    const [args, pattern] of [
      [["--listen", "nope", "--tokens-file", "/tokens.yaml"], /--listen "nope"/],
      [["--listen", "127.0.0.1:0"], /--tokens-file/],
      [
        ["--listen", "127.0.0.1:0", "--tokens-file", "/missing"],
        /--tokens-file "\/missing": it does not exist/,
      ],
      [
        ["--listen", "127.0.0.1:0", "--tokens-file", "/secret", "--jwt-secret-file", "/missing"],
        /--jwt-secret-file/,
      ],
    ] as const
  ) {
    const { records, done } = run([...args], signal);
    assert.equal(await within(done, 5_000, "serveCommand"), 2, args.join(" "));
    assert.ok(records.some((r) => r.level === "error" && pattern.test(render(r))), args.join(" "));
  }
});

Deno.test("serveCommand() prints help and returns 0", async () => {
  let out = "";
  const code = await serveCommand(["--help"], {
    signal: new AbortController().signal,
    env: () => undefined,
    readTextFile,
    writeOut: (text) => (out += text),
  });
  assert.equal(code, 0);
  assert.match(out, /Usage: mcp-rproxy serve/);
});

Deno.test("serveCommand() returns 1 when the port is taken", async () => {
  const blocker = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const { records, done } = run(
      ["--listen", `127.0.0.1:${blocker.addr.port}`, "--tokens-file", "/tokens.yaml"],
      new AbortController().signal,
    );
    assert.equal(await within(done, 5_000, "serveCommand"), 1);
    assert.ok(records.some((r) => /address is in use/.test(render(r))));
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
