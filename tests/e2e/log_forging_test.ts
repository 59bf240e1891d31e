// Logs cannot be forged: in the text format a peer's value with a line break (a gateway's error message
// for connect, a client's resume session id for serve) stays on the line it was logged on, escaped.

import assert from "node:assert/strict";
import { startContractGateway } from "../fixtures/contract_gateway.ts";
import { DEMO_SERVER, type LogLine, startProxy } from "../fixtures/proxy_process.ts";
import { TOKENS, TOKENS_FILE, within } from "../fixtures/test_gateway.ts";

const FORGED = "2026-01-01T00:00:00.000Z ERROR   mcp-rproxy.connect: forged line";

/** Asserts no line of the program's output starts with the forged text, and returns the line holding it. */
function escapedLine(lines: readonly LogLine[], marker: string): string {
  const starts = lines.filter((l) => l.raw.startsWith(FORGED));
  assert.deepEqual(starts.map((l) => l.raw), [], "a peer's value started a log line");
  const holding = lines.find((l) => l.raw.includes(marker));
  assert.ok(holding !== undefined, `no line holds ${marker}`);
  return holding.raw;
}

Deno.test("connect: a newline in a gateway's error message stays escaped on its own log line", async () => {
  const gateway = await startContractGateway({ contract: "A" });
  try {
    await using proxy = startProxy([
      "connect",
      "--gateway",
      gateway.url,
      "--log-format",
      "text",
      "--",
      ...DEMO_SERVER,
    ]);
    await gateway.waitForRegistered(20_000);
    gateway.send({ type: "error", message: `boom-marker\n${FORGED}` });
    await proxy.waitForLine((l) => l.raw.includes("boom-marker"), 10_000);
    proxy.signal("SIGTERM");
    assert.equal(await proxy.exitCode(15_000), 0);
    // All output is in once the process has exited: a forged line would be among it.
    const line = escapedLine(proxy.lines, "boom-marker");
    assert.ok(line.includes(`boom-marker\\n${FORGED}`), line);
    assert.match(line, / WARNING mcp-rproxy\.link: Gateway reported an error: /);
  } finally {
    await gateway.close();
  }
});

Deno.test("serve: a newline in a client's resume session id stays escaped on its own log line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-e2e-forge-" });
  let socket: WebSocket | undefined;
  try {
    await Deno.writeTextFile(`${dir}/tokens.yaml`, TOKENS_FILE);
    await using serve = startProxy([
      "serve",
      "--listen",
      "127.0.0.1:0",
      "--tokens-file",
      `${dir}/tokens.yaml`,
      "--log-format",
      "text",
    ]);
    const listening = await serve.waitForLine((l) => /Gateway listening on /.test(l.raw), 30_000);
    const url = /Gateway listening on (http:\/\/\S+)/.exec(listening.raw)![1]!;
    const ws = new WebSocket(`${url.replace(/^http/, "ws")}/reverse-proxy/ws`, {
      headers: { Authorization: `Bearer ${TOKENS.alice}` },
    });
    socket = ws;
    const closed = new Promise<void>((resolve) => ws.onclose = () => resolve());
    await within(
      new Promise<void>((resolve, reject) => {
        ws.onopen = () => resolve();
        ws.onerror = (event) => reject(new Error((event as ErrorEvent).message));
      }),
      10_000,
      "the link to open",
    );
    ws.send(JSON.stringify({
      type: "register",
      sessionId: "forge-client",
      server: { name: "forge", description: "", protocol: "mcp" },
      resume: { sessionId: `resume-marker\n${FORGED}`, token: "t", ack: 0 },
    }));
    await serve.waitForLine((l) => l.raw.includes("resume-marker"), 10_000);
    ws.close();
    await within(closed, 5_000, "the link to close");
    socket = undefined;
    serve.signal("SIGTERM");
    assert.equal(await serve.exitCode(15_000), 0);
    const line = escapedLine(serve.lines, "resume-marker");
    assert.ok(line.includes(`resume-marker\\n${FORGED}`), line);
  } finally {
    socket?.close();
    await Deno.remove(dir, { recursive: true });
  }
});
