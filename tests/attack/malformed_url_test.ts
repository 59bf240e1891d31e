// Attack: requests without a token and with malformed targets (bad percent-escapes, huge paths, a huge
// Origin on a preflight). Each gets a 4xx, never a 500, and serve writes nothing above debug for them,
// every logged value bounded; another owner's calls through a real tunnel go on.

import assert from "node:assert/strict";
import { startServe, startVictim } from "./harness.ts";
import { deadline } from "../../lib/util/delay.ts";

const REQUESTS = 200;
/** Longest string field a debug record about an unauthenticated request may hold (200 + an ellipsis). */
const MAX_FIELD = 220;

async function statusOf(port: number, head: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(head));
    const buffer = new Uint8Array(1024);
    const n = await deadline(conn.read(buffer), 5_000, "the answer");
    return n === null ? "" : new TextDecoder().decode(buffer.subarray(0, n)).split("\r\n")[0]!;
  } finally {
    conn.close();
  }
}

Deno.test("malformed URLs without a token get 400 (431 past the header limit), never 500, and log nothing above debug", async () => {
  await using serve = await startServe();
  await using victim = await startVictim(serve);
  await victim.start();
  const from = serve.process.lines.length;
  const junk = (n: number) => "%ZZ" + "A".repeat(n);
  const cases: [string, string][] = [
    [`GET /servers/${junk(8_000)}/mcp HTTP/1.1\r\nhost: x\r\n\r\n`, "HTTP/1.1 400 Bad Request"],
    [
      `POST /servers/%E0%A4%A/mcp HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n`,
      "HTTP/1.1 400 Bad Request",
    ],
    // The sessions API authenticates before it decodes its path.
    [
      `DELETE /reverse-proxy/sessions/${junk(4_000)} HTTP/1.1\r\nhost: x\r\n\r\n`,
      "HTTP/1.1 401 Unauthorized",
    ],
    [
      `GET /servers/${junk(60_000)}/mcp HTTP/1.1\r\nhost: x\r\n\r\n`,
      "HTTP/1.1 431 Request Header Fields Too Large",
    ],
    [`GET http://evil/${junk(100)} HTTP/1.1\r\nhost: x\r\n\r\n`, "HTTP/1.1 400 Bad Request"],
    [
      `GET /servers/a/mcp HTTP/1.1\r\nhost: ${"h".repeat(5_000)}\r\n\r\n`,
      "HTTP/1.1 401 Unauthorized",
    ],
    [
      `OPTIONS /servers/a/mcp HTTP/1.1\r\nhost: x\r\norigin: https://${"o".repeat(8_000)}\r\n\r\n`,
      "HTTP/1.1 403 Forbidden",
    ],
    [
      `GET /reverse-proxy/ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
      "HTTP/1.1 401 Unauthorized",
    ],
  ];
  for (const [head, expected] of cases) {
    assert.equal(await statusOf(serve.port, head), expected, head.slice(0, 80));
  }
  // Many of them at once: still no 500 and no log volume above debug.
  const statuses = await Promise.all(
    Array.from(
      { length: REQUESTS },
      (_, i) => statusOf(serve.port, cases[i % cases.length]![0]),
    ),
  );
  assert.ok(statuses.every((status) => !/^HTTP\/1\.1 5/.test(status)), statuses.join(", "));
  const report = await victim.stop();
  assert.equal(report.failed, 0, `victim errors: ${report.errors.join("; ")}`);
  const records = serve.records(from);
  assert.ok(records.length > 0, "the refusals were logged at debug");
  assert.deepEqual(records.filter((r) => r.level !== "debug"), []);
  for (const record of records) {
    for (const [key, value] of Object.entries(record)) {
      if (key === "message" || typeof value !== "string") continue;
      assert.ok(value.length <= MAX_FIELD, `${key} holds ${value.length} characters`);
    }
    assert.ok(String(record.message).length <= 2 * MAX_FIELD + 200, "a bounded message");
  }
});
