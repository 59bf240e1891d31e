// Chaos: the link between the real `connect` (a subprocess) and our gateway goes through a TCP relay that
// cuts it, or blackholes it with the sockets left open, at 50 seeded random moments while 4 MCP SDK clients
// make 5,000 echo calls and 500 progress-reporting calls. The `resume` extension must make every fault
// invisible: every answer right, none twice, every progress notification once, one server process. The
// SSE link (a stream and POSTs, each cut alike) gets the same run at half the size.

import assert from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { LINK_TRANSPORTS, type LinkTransport } from "../../lib/protocol/frames.ts";
import { DEMO_SERVER, startProxy } from "../fixtures/proxy_process.ts";
import { startTcpRelay, type TcpRelay } from "../fixtures/tcp_relay.ts";
import { connectClient, startTestGateway, TOKENS, within } from "../fixtures/test_gateway.ts";

const CLIENTS = 4;
/** Calls in flight per client. */
const CONCURRENCY = 8;
const PROGRESS_STEPS = 3;
const SEED = 0x5eed_2024;
/** connect's heartbeat interval: both ends declare the link dead within 3 × this. */
const KEEPALIVE_S = 0.15;
/** Longest any single call may take, faults included. */
const CALL_TIMEOUT_MS = 30_000;
/** The whole run, a bound well under a minute on 2 cores. */
const RUN_TIMEOUT_MS = 55_000;

/** How much of each a run makes: the SSE run is half the WebSocket one, to bound the suite's time. */
interface Plan {
  echoCalls: number;
  progressCalls: number;
  faults: number;
}

const PLANS: Record<LinkTransport, Plan> = {
  websocket: { echoCalls: 5_000, progressCalls: 500, faults: 50 },
  sse: { echoCalls: 2_500, progressCalls: 250, faults: 25 },
};

/** mulberry32: a small seeded PRNG, so that a failing schedule can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function textOf(result: unknown): string {
  const content = (result as { content?: { type: string; text: string }[] }).content;
  return content?.[0]?.text ?? "";
}

/** What the MCP clients received on the wire (before the SDK routes it), and a way to wait for more. */
class Wire extends EventTarget {
  /** `client:id` → responses received with that id. */
  readonly responses = new Map<string, number>();
  /** `client:token:progress` → notifications received. */
  readonly progress = new Map<string, number>();
  progressTotal = 0;

  record(client: number, message: JSONRPCMessage): void {
    const m = message as { id?: unknown; method?: string; params?: Record<string, unknown> };
    if (m.method === "notifications/progress") {
      const key = `${client}:${String(m.params?.progressToken)}:${String(m.params?.progress)}`;
      this.progress.set(key, (this.progress.get(key) ?? 0) + 1);
      this.progressTotal++;
      this.dispatchEvent(new Event("progress"));
    } else if (m.id !== undefined && m.method === undefined) {
      const key = `${client}:${String(m.id)}`;
      this.responses.set(key, (this.responses.get(key) ?? 0) + 1);
    }
  }

  /** Resolves once `count` progress notifications arrived (an SDK result can overtake its progress). */
  async waitProgress(count: number, ms: number): Promise<void> {
    let listener: (() => void) | undefined;
    const reached = new Promise<void>((resolve) => {
      listener = () => {
        if (this.progressTotal >= count) resolve();
      };
      this.addEventListener("progress", listener);
      listener();
    });
    try {
      await within(reached, ms, `${count} progress notifications`).catch(() => {});
    } finally {
      this.removeEventListener("progress", listener!);
    }
  }
}

/** Counts finished calls and wakes whoever waits for a count. */
class Progress extends EventTarget {
  done = 0;
  finish(): void {
    this.done++;
    this.dispatchEvent(new Event("done"));
  }
  async reach(count: number, signal: AbortSignal): Promise<void> {
    let listener: (() => void) | undefined;
    let onAbort: (() => void) | undefined;
    try {
      await new Promise<void>((resolve) => {
        listener = () => {
          if (this.done >= count || signal.aborted) resolve();
        };
        onAbort = listener;
        this.addEventListener("done", listener);
        signal.addEventListener("abort", onAbort, { once: true });
        listener();
      });
    } finally {
      this.removeEventListener("done", listener!);
      signal.removeEventListener("abort", onAbort!);
    }
  }
}

/** Waits `ms`, or less when `signal` aborts. Fault timing is the test's input, not synchronisation. */
function hold(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** Injects the faults, each when the run has finished a seeded random number of calls. */
async function injectFaults(
  relay: TcpRelay,
  progress: Progress,
  plan: { total: number; faults: number },
  signal: AbortSignal,
): Promise<{ cuts: number; blackholes: number }> {
  const { total, faults } = plan;
  const random = prng(SEED);
  // Spread over the first 95 % of the run, so that the last fault still has calls to disturb.
  const moments = Array.from({ length: faults }, () => Math.floor(random() * total * 0.95)).sort(
    (a, b) => a - b,
  );
  let cuts = 0;
  let blackholes = 0;
  for (const moment of moments) {
    await progress.reach(moment, signal);
    if (signal.aborted) break;
    if (random() < 0.5) {
      relay.cut();
      cuts++;
    } else {
      // Silent long enough for both ends to declare the link dead (3 keepalives), sometimes a bit more.
      relay.blackhole();
      blackholes++;
      await hold(KEEPALIVE_S * 1000 * (3.3 + random()), signal);
      relay.restore();
    }
  }
  return { cuts, blackholes };
}

for (const transport of LINK_TRANSPORTS) {
  const { echoCalls, progressCalls, faults } = PLANS[transport];
  Deno.test(
    `chaos (${transport}): ${faults} link cuts and blackholes during ${
      (echoCalls + progressCalls).toLocaleString("en")
    } calls lose nothing and duplicate nothing`,
    () => chaos(transport),
  );
}

async function chaos(transport: LinkTransport): Promise<void> {
  const { echoCalls: ECHO_CALLS, progressCalls: PROGRESS_CALLS, faults: FAULTS } = PLANS[transport];
  const started = performance.now();
  const gateway = await startTestGateway({
    callTimeoutMs: CALL_TIMEOUT_MS,
    resumeWindowMs: CALL_TIMEOUT_MS,
    maxInflight: CLIENTS * CONCURRENCY * 2,
  });
  const relay = await startTcpRelay({ targetPort: gateway.port });
  const clients: Client[] = [];
  const stop = new AbortController();
  try {
    await using proxy = startProxy([
      "connect",
      "--gateway",
      `http://127.0.0.1:${relay.port}`,
      "--server-name",
      "chaos",
      "--log-format",
      "json",
      "--keepalive",
      String(KEEPALIVE_S),
      "--reconnect-delay",
      "0.05",
      "--transport",
      transport,
      "--",
      ...DEMO_SERVER,
    ], { env: { REVERSE_PROXY_TOKEN: TOKENS.alice } });
    const registered = await proxy.waitForEvent("registered", 30_000);
    assert.equal(registered.transport, transport);
    const wire = new Wire();
    for (let c = 0; c < CLIENTS; c++) {
      const client = await connectClient(gateway, "chaos", TOKENS.alice);
      clients.push(client);
      const transport = client.transport!;
      const deliver = transport.onmessage!.bind(transport) as (
        m: JSONRPCMessage,
        e?: unknown,
      ) => void;
      transport.onmessage = ((message: JSONRPCMessage, extra?: unknown) => {
        wire.record(c, message);
        deliver(message, extra);
      }) as typeof transport.onmessage;
    }

    const total = ECHO_CALLS + PROGRESS_CALLS;
    const every = Math.round(total / PROGRESS_CALLS);
    const progress = new Progress();
    const errors: string[] = [];
    let echoes = 0;
    let progressCalls = 0;
    let next = 0;
    const worker = async (client: Client) => {
      while (next < total && errors.length < 20) {
        const i = next++;
        try {
          if (i % every === every - 1) {
            const result = await client.callTool(
              { name: "long-running", arguments: { steps: PROGRESS_STEPS, stepMs: 2 } },
              undefined,
              { timeout: CALL_TIMEOUT_MS, onprogress: () => {} },
            );
            if (result.isError || !textOf(result).includes("completed")) {
              errors.push(`call ${i}: ${JSON.stringify(result).slice(0, 200)}`);
            } else progressCalls++;
          } else {
            const message = `m-${i}`;
            const result = await client.callTool(
              { name: "echo", arguments: { message } },
              undefined,
              { timeout: CALL_TIMEOUT_MS },
            );
            if (result.isError || textOf(result) !== `Echo: ${message}`) {
              errors.push(`call ${i}: ${JSON.stringify(result).slice(0, 200)}`);
            } else echoes++;
          }
        } catch (error) {
          errors.push(`call ${i}: ${String(error)}`);
        }
        progress.finish();
      }
    };
    const faults = injectFaults(relay, progress, { total, faults: FAULTS }, stop.signal);
    const work = Promise.all(
      clients.flatMap((client) => Array.from({ length: CONCURRENCY }, () => worker(client))),
    );
    try {
      await within(work, RUN_TIMEOUT_MS, "every call to finish");
    } finally {
      stop.abort();
      relay.restore();
    }
    const { cuts, blackholes } = await within(faults, 5_000, "the fault injector to stop");
    assert.deepEqual(errors, [], "no call failed");
    assert.equal(echoes, ECHO_CALLS);
    assert.equal(progressCalls, PROGRESS_CALLS);
    assert.equal(cuts + blackholes, FAULTS);

    // Every answer arrived exactly once on the wire.
    const responseCounts = [...wire.responses.values()];
    assert.ok(responseCounts.every((n) => n === 1), "no duplicate response");
    assert.ok(
      responseCounts.length >= total,
      `${responseCounts.length} responses for ${total} calls`,
    );
    // Every progress notification exactly once per token and step.
    await wire.waitProgress(PROGRESS_CALLS * PROGRESS_STEPS, 5_000);
    assert.equal(
      wire.progress.size,
      PROGRESS_CALLS * PROGRESS_STEPS,
      "every progress step arrived",
    );
    assert.ok([...wire.progress.values()].every((n) => n === 1), "no duplicate progress");

    // One server process, initialized once, and it executed every call exactly once.
    const stats = JSON.parse(textOf(
      await within(
        clients[0]!.callTool({ name: "stats" }),
        10_000,
        "stats",
      ),
    )) as { initializeCount: number; requests: number };
    assert.equal(stats.initializeCount, 1, "the server was initialized exactly once");
    assert.equal(stats.requests, 1 + total + 1, "initialize, every call once, and this stats call");
    const events = (name: string) => proxy.lines.filter((l) => l.json?.event === name);
    assert.equal(events("server_started").length, 1, "the server was never restarted");
    assert.equal(events("server_stopped").length, 0, "and never stopped");
    const resumes = events("resumed").length;
    assert.equal(events("resume_refused").length, 0, "every reconnection resumed");
    assert.ok(
      events("registered").every((l) => l.json!.session === registered.session),
      "one session throughout",
    );
    // Faults that land while the link is already down cost no extra resume; most must cost one.
    assert.ok(resumes >= FAULTS / 2, `only ${resumes} resumes for ${FAULTS} faults`);
    console.log(
      `chaos (${transport}): ${total} calls (${ECHO_CALLS} echo, ${PROGRESS_CALLS} with progress), ${FAULTS} faults (${cuts} cuts, ${blackholes} blackholes), ${resumes} resumes, ${
        ((performance.now() - started) / 1000).toFixed(1)
      } s`,
    );
  } finally {
    stop.abort();
    await Promise.all(clients.map((client) => client.close()));
    await relay.close();
    await gateway.close();
  }
}
