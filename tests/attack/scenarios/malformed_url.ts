// Attack: requests without a token and with malformed targets (bad percent-escapes, huge paths, a huge
// Origin on a preflight), one of each and then many at once.

import { deadline } from "../../../lib/util/delay.ts";
import type { AttackScenario } from "../run_attack.ts";

const MIB = 1024 * 1024;
const REQUESTS = 200;

/** What the attacker saw. */
export interface MalformedUrlObserved {
  /** Each request, the status line it expects, and the one it got. */
  cases: { head: string; expected: string; got: string }[];
  /** The status lines of {@link REQUESTS} such requests sent at once. */
  burst: string[];
  /** serve's log records written during the attack. */
  records: Record<string, unknown>[];
}

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

const junk = (n: number) => "%ZZ" + "A".repeat(n);

/** Requests without a token and the answer each must get. */
const CASES: [string, string][] = [
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

/** Each malformed request once, then 200 of them at once. */
export const malformedUrls: AttackScenario<MalformedUrlObserved> = {
  name: `${REQUESTS} malformed URLs without a token (bad escapes, 60 KB paths)`,
  rssBound: 64 * MIB,
  async attack({ serve }) {
    const from = serve.process.lines.length;
    const cases = [];
    for (const [head, expected] of CASES) {
      cases.push({ head, expected, got: await statusOf(serve.port, head) });
    }
    const burst = await Promise.all(
      Array.from({ length: REQUESTS }, (_, i) => statusOf(serve.port, CASES[i % CASES.length]![0])),
    );
    return { cases, burst, records: serve.records(from) };
  },
};
