// The victim of every attack: another owner with a real `connect` tunnel to serve and an MCP SDK client
// calling `echo` through it at a steady pace, recording each call's outcome and latency.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { deadline } from "../../lib/util/delay.ts";
import { ATTACK_TOKENS, type ServeUnderAttack, startTunnel } from "./harness.ts";

/** What the victim saw over a stretch of calls. */
export interface VictimReport {
  ok: number;
  failed: number;
  errors: string[];
  /** Latency of each successful call, in milliseconds. */
  latenciesMs: number[];
}

/** The victim owner: its tunnel and the MCP client calling through it. */
export interface Victim extends AsyncDisposable {
  /**
   * Calls `echo` every {@link VICTIM_CALL_EVERY_MS} until {@link Victim.stop}; resolves once the first
   * call succeeded.
   */
  start(): Promise<void>;
  /** Resolves once at least `calls` calls completed since start or the last split (bounded by `ms`). */
  waitForCalls(calls: number, ms: number): Promise<void>;
  /** The report of the calls since start or the last split; a new report starts. */
  split(): VictimReport;
  /** Stops calling and reports the calls since the last split. */
  stop(): Promise<VictimReport>;
}

/**
 * The victim's pace: steady enough to notice an outage or a stall, light enough that its own garbage does
 * not move serve's RSS (back-to-back calls grow serve's heap by ~40 MiB in two seconds).
 */
export const VICTIM_CALL_EVERY_MS = 20;

/**
 * How long one victim call may take and still count as served. Latency is the report's business, not a
 * test's: on this 2-core machine, loaded by other test runs, a call during a notification flood took up
 * to 9 s. A client's own timeout is longer still (the MCP SDK's is 60 s).
 */
export const VICTIM_CALL_TIMEOUT_MS = 30_000;

function emptyReport(): VictimReport {
  return { ok: 0, failed: 0, errors: [], latenciesMs: [] };
}

/** Starts the victim's `connect` (the demo server behind it) and its MCP client. */
export async function startVictim(serve: ServeUnderAttack): Promise<Victim> {
  const tunnel = await startTunnel(serve, { token: ATTACK_TOKENS.victim, name: "victim-echo" });
  let client: Client | undefined;
  try {
    client = new Client({ name: "victim", version: "1.0.0" });
    await deadline(
      client.connect(
        new StreamableHTTPClientTransport(new URL(tunnel.mcpUrl), {
          requestInit: { headers: { Authorization: `Bearer ${ATTACK_TOKENS.victim}` } },
        }),
      ),
      10_000,
      "the victim's MCP client to connect",
    );
  } catch (error) {
    await client?.close();
    await tunnel[Symbol.asyncDispose]();
    throw error;
  }
  const mcp = client;
  let report = emptyReport();
  const waiters = new Set<() => void>();
  let running = false;
  let loop: Promise<void> | undefined;
  const call = async (n: number) => {
    const started = performance.now();
    try {
      const result = await deadline(
        mcp.callTool({ name: "echo", arguments: { message: `victim ${n}` } }),
        VICTIM_CALL_TIMEOUT_MS,
        "the victim's echo call",
      );
      const text = (result as { content: { text: string }[] }).content[0]?.text;
      if (text !== `Echo: victim ${n}`) throw new Error(`unexpected answer ${text}`);
      report.ok++;
      report.latenciesMs.push(performance.now() - started);
    } catch (error) {
      report.failed++;
      if (report.errors.length < 5) report.errors.push(String(error));
    }
    for (const waiter of waiters) waiter();
  };
  const stopLoop = async () => {
    running = false;
    await loop;
  };
  const split = () => {
    const done = report;
    report = emptyReport();
    return done;
  };
  return {
    async start() {
      await call(0);
      if (report.ok !== 1) throw new Error(`The victim's first call failed: ${report.errors}`);
      running = true;
      loop = (async () => {
        for (let n = 1; running; n++) {
          const started = performance.now();
          await call(n);
          const rest = VICTIM_CALL_EVERY_MS - (performance.now() - started);
          // Pacing, not synchronisation: the victim is a client with a steady rate of calls.
          if (rest > 0 && running) await new Promise((resolve) => setTimeout(resolve, rest));
        }
      })();
    },
    async waitForCalls(calls, ms) {
      let check: (() => void) | undefined;
      try {
        await deadline(
          new Promise<void>((resolve) => {
            check = () => {
              if (report.ok + report.failed >= calls) resolve();
            };
            waiters.add(check);
            check();
          }),
          ms,
          `${calls} victim calls`,
        );
      } finally {
        if (check !== undefined) waiters.delete(check);
      }
    },
    split,
    async stop() {
      await stopLoop();
      return split();
    },
    async [Symbol.asyncDispose]() {
      await stopLoop();
      await mcp.close();
      await tunnel[Symbol.asyncDispose]();
    },
  };
}
