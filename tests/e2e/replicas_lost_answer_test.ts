// The last loss window of cross-replica calls, produced with real processes: two `serve --redis` replicas,
// a real connect and its real server. The holder takes the server's answer from the link, acknowledges it
// (connect drops it from its replay buffer), but cannot pass it to the origin: the origin's inbox is gone
// from Redis for a moment (a real fault: the key deleted, as an eviction or a lost write would; the origin
// makes it again at its next beat, and the holder retries a second later). The holder is SIGKILLed inside
// that second. The tunnel resumes on the origin, the origin sends the call again, and connect, which ran
// it once, answers it again with the answer it kept: the caller gets its result instead of waiting for
// --call-timeout.

import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { startProxy } from "../fixtures/proxy_process.ts";
import { textOf } from "../fixtures/per_client.ts";
import { redisCommand } from "../fixtures/resp_client.ts";
import { until } from "../fixtures/resumable_tunnel.ts";
import { type ReplicaProcess, startServeCluster } from "../fixtures/serve_cluster.ts";
import { startTcpRelay } from "../fixtures/tcp_relay.ts";
import { TOKENS, within } from "../fixtures/test_gateway.ts";
import { startWsTap, type TappedFrame } from "../fixtures/ws_tap.ts";

const FAULT_SERVER = [
  Deno.execPath(),
  "run",
  "-A",
  new URL("../fixtures/fault_server.ts", import.meta.url).pathname,
];
/** Tries to produce the fault: the origin's beat may make its inbox again before the answer comes. */
const ATTEMPTS = 5;

function parsed(frame: TappedFrame): Record<string, unknown> {
  try {
    return JSON.parse(frame.text) as Record<string, unknown>;
  } catch {
    return {};
  }
}

/** The highest ack a frame from the gateway carries (one session, or per channel). */
function ackOf(frame: TappedFrame): number {
  const value = parsed(frame);
  const acks = Object.values((value.acks ?? {}) as Record<string, number>);
  return Math.max(Number(value.ack ?? 0), ...acks.map(Number));
}

/** Waits, looking at each new frame, until `check` finds one in `frames`; fails after `ms`. */
async function frameWhere(
  frames: readonly TappedFrame[],
  check: (frame: TappedFrame) => boolean,
  what: string,
  ms = 10_000,
): Promise<TappedFrame> {
  const end = Date.now() + ms;
  let seen = 0;
  for (;;) {
    for (; seen < frames.length; seen++) if (check(frames[seen]!)) return frames[seen]!;
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    // The tap appends as frames pass: a macrotask turn lets the next one in.
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

Deno.test("a holder killed after acknowledging an answer it never passed on: the call sent again gets that answer from connect, not silence", async () => {
  const cluster = await startServeCluster({ replicas: 2, serveArgs: ["--call-timeout", "120"] });
  const [holder, origin] = cluster.replicas as [ReplicaProcess, ReplicaProcess];
  const client = new Client({ name: "lost-answer-test", version: "1.0.0" });
  try {
    // connect → relay → tap → the holder; after the holder dies the relay points at the origin.
    await using tap = await startWsTap({ target: `ws://127.0.0.1:${holder.port}` });
    await using relay = await startTcpRelay({ targetPort: Number(new URL(tap.url).port) });
    await using connect = startProxy([
      "connect",
      "--gateway",
      `http://127.0.0.1:${relay.port}`,
      "--server-name",
      "slow",
      "--keepalive",
      "0.2",
      "--reconnect-delay",
      "0.05",
      "--log-format",
      "json",
      "--",
      ...FAULT_SERVER,
    ], { env: { REVERSE_PROXY_TOKEN: TOKENS.alice } });
    await connect.waitForEvent("registered", 60_000);
    const transport = new StreamableHTTPClientTransport(
      new URL(`${origin.url}/servers/slow/mcp`),
      { requestInit: { headers: { Authorization: `Bearer ${TOKENS.alice}` } } },
    );
    await within(client.connect(transport), 20_000, "the MCP client on the origin");

    for (let attempt = 1;; attempt++) {
      const message = `attempt ${attempt}`;
      const from = connect.lines.length;
      const call = client.callTool(
        { name: "slow", arguments: { ms: 500, message } },
        undefined,
        { timeout: 120_000 },
      );
      const started = await connect.waitForLine(
        (l) => String(l.json?.line ?? "").startsWith("call slow "),
        20_000,
        from,
      );
      const id = JSON.parse(String(started.json!.line).slice("call slow ".length)) as string;
      assert.match(id, /^r2\.\d+$/, "a call from the origin, through the holder");
      // The fault: the origin's inbox is gone when the answer comes back to the holder.
      await redisCommand(cluster.redis.port, ["DEL", "inbox:r2"]);
      const answer = await frameWhere(
        tap.frames,
        (f) => {
          const value = parsed(f);
          return f.direction === "up" && value.type === "response" &&
            (value.payload as { id?: unknown } | undefined)?.id === id;
        },
        "the server's answer on the link",
      );
      const seq = Number(parsed(answer).seq);
      await frameWhere(
        tap.frames,
        (f) => f.direction === "down" && ackOf(f) >= seq,
        "the holder's ack of the answer",
      );
      // The holder saves what it acknowledged a moment later: the tunnel resumes from that record.
      const sid = String(parsed(answer).sessionId);
      await until("the holder's record of the answer", async () => {
        const record = await redisCommand(cluster.redis.port, ["GET", `st:tunnel:${sid}`]);
        return typeof record === "string" && Number(JSON.parse(record).seqIn) >= seq;
      }, 10_000);
      // Still no inbox: the holder's send of the answer failed (XADD NOMKSTREAM) and waits to retry.
      if (await redisCommand(cluster.redis.port, ["EXISTS", "inbox:r2"]) === 0) {
        await cluster.kill(0);
        relay.retarget(origin.port);
        relay.cut();
        const result = await within(call, 30_000, "the call sent again to be answered");
        assert.equal(textOf(result), `Echo: ${message}`);
        const runs = connect.lines.filter((l) =>
          l.json?.line === `call slow ${JSON.stringify(id)}`
        );
        assert.equal(runs.length, 1, "the call ran once at the server");
        const again = connect.lines.filter((l) =>
          l.json?.event === "repeated_request" && l.json.id === id
        );
        assert.deepEqual(again.map((l) => l.json?.outcome), ["answered_again"]);
        console.log(`fault produced on attempt ${attempt}`);
        break;
      }
      // The origin's beat made its inbox again in time: the answer went through; try again.
      assert.equal(textOf(await within(call, 20_000, "the call")), `Echo: ${message}`);
      if (attempt === ATTEMPTS) throw new Error(`The fault was not produced in ${ATTEMPTS} tries`);
    }
  } finally {
    await client.close().catch(() => {});
    await cluster.close();
  }
});
