// Attack: connections that send half their headers, trickle a body, or sit idle after an answer, against
// a serve with its HTTP timeouts set to 1 s.

import { deadline } from "../../../lib/util/delay.ts";
import { ATTACK_TOKENS } from "../harness.ts";
import type { AttackScenario } from "../run_attack.ts";

const MIB = 1024 * 1024;
const encoder = new TextEncoder();
export const SLOW_HEADERS = 60;
export const SLOW_BODIES = 30;
export const IDLE = 20;

/** How one connection ended: the first line serve wrote ("" for none), and when. */
export interface Outcome {
  line: string;
  afterMs: number;
}

/** What the attacker saw. */
export interface SlowHttpObserved {
  headers: Outcome[];
  bodies: Outcome[];
  /** The idle connections' answer to /healthz, then how they ended. */
  idleAnswers: string[];
  idles: Outcome[];
  fdsBefore: number;
  fdsAfter: number;
}

function openFds(pid: number): number {
  return [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
}

/** Waits for the server to answer or drop the connection: the first line, or "". */
async function until(conn: Deno.TcpConn, ms: number): Promise<Outcome> {
  const started = Date.now();
  const buffer = new Uint8Array(4096);
  const n = await deadline(conn.read(buffer).catch(() => null), ms, "the server to drop the conn");
  return {
    line: n === null ? "" : new TextDecoder().decode(buffer.subarray(0, n)).split("\r\n")[0]!,
    afterMs: Date.now() - started,
  };
}

/** 60 half-sent headers, 30 bodies of 10 bytes out of 1 MiB, 20 idle keep-alive connections. */
export const slowHttp: AttackScenario<SlowHttpObserved> = {
  name: `${SLOW_HEADERS} slow headers, ${SLOW_BODIES} slow bodies, ${IDLE} idle keep-alives`,
  flags: ["--headers-timeout", "1", "--body-timeout", "1", "--keepalive-timeout", "1"],
  rssBound: 64 * MIB,
  async attack({ serve, held }) {
    const fdsBefore = openFds(serve.process.pid);
    const open = async (text: string) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: serve.port });
      held.defer(() => {
        try {
          conn.close();
        } catch {
          // Closed already.
        }
      });
      await conn.write(encoder.encode(text));
      return conn;
    };
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
    const idleAnswers: string[] = [];
    const [headers, bodies, idles] = await Promise.all([
      Promise.all(slowHeaders.map((conn) => until(conn, 5_000))),
      Promise.all(slowBodies.map((conn) => until(conn, 5_000))),
      // The answer to /healthz first, then the close once idle.
      Promise.all(idle.map(async (conn) => {
        idleAnswers.push((await until(conn, 5_000)).line);
        return await until(conn, 5_000);
      })),
    ]);
    return { headers, bodies, idleAnswers, idles, fdsBefore, fdsAfter: openFds(serve.process.pid) };
  },
};
