// Attack: connections that send half their headers, trickle a body, or sit idle after an answer, against
// a real serve with its timeouts set low. Each is closed within its bound plus ~1 s, serve's open fds go
// back down, and another owner's calls through a real tunnel go on meanwhile.

import assert from "node:assert/strict";
import { ATTACK_TOKENS, startServe, startVictim } from "./harness.ts";
import { deadline } from "../../lib/util/delay.ts";

const encoder = new TextEncoder();
const SLOW_HEADERS = 60;
const SLOW_BODIES = 30;
const IDLE = 20;

function openFds(pid: number): number {
  return [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
}

/** Writes `head`, then waits for the server to answer or drop the connection; the first line, or "". */
async function until(conn: Deno.TcpConn, ms: number): Promise<{ line: string; afterMs: number }> {
  const started = Date.now();
  const buffer = new Uint8Array(4096);
  const n = await deadline(conn.read(buffer).catch(() => null), ms, "the server to drop the conn");
  return {
    line: n === null ? "" : new TextDecoder().decode(buffer.subarray(0, n)).split("\r\n")[0]!,
    afterMs: Date.now() - started,
  };
}

Deno.test("slow headers, slow bodies and idle keep-alive connections are closed while another owner is served", async () => {
  await using serve = await startServe([
    "--headers-timeout",
    "1",
    "--body-timeout",
    "1",
    "--keepalive-timeout",
    "1",
  ]);
  await using victim = await startVictim(serve);
  await victim.start();
  const fdsBefore = openFds(serve.process.pid);
  const conns: Deno.TcpConn[] = [];
  const open = async (text: string) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: serve.port });
    conns.push(conn);
    await conn.write(encoder.encode(text));
    return conn;
  };
  try {
    const slowHeaders = await Promise.all(
      Array.from({ length: SLOW_HEADERS }, () => open("GET /healthz HTTP/1.1\r\nhost: x\r\nx-a: ")),
    );
    // Authenticated, so that serve reads the body: 1 MiB announced, 10 bytes sent.
    const slowBodies = await Promise.all(Array.from({ length: SLOW_BODIES }, () =>
      open(
        [
          "POST /servers/anything/mcp HTTP/1.1",
          "host: x",
          `authorization: Bearer ${ATTACK_TOKENS.attacker}`,
          "content-type: application/json",
          "accept: application/json",
          "content-length: 1048576",
          "",
          "0123456789",
        ].join("\r\n"),
      )));
    const idle = await Promise.all(
      Array.from({ length: IDLE }, () => open("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")),
    );
    const outcomes = await Promise.all([
      ...slowHeaders.map((conn) => until(conn, 5_000)),
      ...slowBodies.map((conn) => until(conn, 5_000)),
      // The answer to /healthz first, then the close once idle.
      ...idle.map(async (conn) => {
        const answer = await until(conn, 5_000);
        assert.equal(answer.line, "HTTP/1.1 200 OK");
        return await until(conn, 5_000);
      }),
    ]);
    const headers = outcomes.slice(0, SLOW_HEADERS);
    const bodies = outcomes.slice(SLOW_HEADERS, SLOW_HEADERS + SLOW_BODIES);
    const idles = outcomes.slice(SLOW_HEADERS + SLOW_BODIES);
    for (const outcome of headers) {
      assert.equal(outcome.line, "HTTP/1.1 408 Request Timeout");
      assert.ok(outcome.afterMs >= 900 && outcome.afterMs < 2_600, `headers: ${outcome.afterMs}`);
    }
    for (const outcome of bodies) {
      assert.equal(outcome.line, "HTTP/1.1 408 Request Timeout");
      assert.ok(outcome.afterMs >= 900 && outcome.afterMs < 2_600, `body: ${outcome.afterMs} ms`);
    }
    for (const outcome of idles) {
      assert.equal(outcome.line, ""); // closed without a word
      assert.ok(outcome.afterMs >= 900 && outcome.afterMs < 2_600, `idle: ${outcome.afterMs} ms`);
    }
    const report = await victim.stop();
    assert.equal(report.failed, 0, `victim errors: ${report.errors.join("; ")}`);
    assert.ok(report.ok > 10, `the victim made ${report.ok} calls`);
    // Serve let go of every connection (a few fds of slack for its own housekeeping).
    assert.ok(openFds(serve.process.pid) <= fdsBefore + 4, "serve's fds went back down");
  } finally {
    for (const conn of conns) {
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }
  }
});
