// The calls every path gets, measured the same way: warm-up, sequential round trips, 16 in flight, and one
// large result. One timer bounds each phase; no timer per call.

import { type Json, type RpcClient, within } from "./clients.ts";
import { callsInFlight } from "./in_flight.ts";
import { percentile } from "./stats.ts";

/** How a path spells its requests. */
export interface Messages {
  /** A small request whose answer is small (the echo tool, or an echo of the same size on the hop). */
  echo(id: number): string;
  /** A small request whose answer carries `bytes` bytes of text; absent when the server has no such tool. */
  big?(id: number, bytes: number): string;
}

/** Options of {@link measure}. */
export interface MeasureOptions {
  warmup: number;
  calls: number;
  throughputCalls: number;
  inflight: number;
  /** Bytes of the large result; 0 skips it. */
  bigBytes: number;
  /** Bound on each phase, in milliseconds. */
  phaseTimeoutMs: number;
  /** Called after the load phases (sequential and in flight) and after the large result. */
  onPhaseEnd?: (phase: "load" | "big") => void;
  /** Called before the first call. */
  onStart?: () => void;
  /** Called when the timed phase with calls in flight starts (its warm-up done). */
  onInflightStart?: () => void;
}

/** What one path measured, latencies in microseconds. */
export interface Figures {
  p50Us: number;
  p90Us: number;
  p99Us: number;
  meanUs: number;
  callsPerSecond: number;
  /** Echo calls made up to the end of the load phases, warm-ups included. */
  echoCalls: number;
  bigMs?: number;
}

/** Message texts of an MCP server with the `echo` tool (and our demo server's `big`). */
export function mcpMessages(hasBig: boolean): Messages {
  const messages: Messages = {
    echo: (id) =>
      `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello through the tunnel"}}}`,
  };
  if (hasBig) {
    messages.big = (id, bytes) =>
      `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"big","arguments":{"bytes":${bytes}}}}`;
  }
  return messages;
}

/**
 * Messages of the raw hop: a response-shaped text of the size of an echo answer, echoed as is, and
 * `big:<id>:<bytes>`, which the peer answers with a result of that size.
 */
export const HOP_MESSAGES: Messages = {
  echo: (id) =>
    `{"jsonrpc":"2.0","id":${id},"result":{"content":[{"type":"text","text":"Echo: hello through the tunnel"}]}}`,
  big: (id, bytes) => `big:${id}:${bytes}`,
};

function check(response: Json, what: string): Json {
  if (response.error !== undefined) {
    throw new Error(`${what} failed: ${JSON.stringify(response.error).slice(0, 300)}`);
  }
  return response;
}

function textLength(response: Json): number {
  const result = response.result as { content?: { text?: string }[] } | undefined;
  return result?.content?.[0]?.text?.length ?? -1;
}

/** Runs every phase against one client. `nextId` hands out ids unique on that client. */
export async function measure(
  client: RpcClient,
  messages: Messages,
  options: MeasureOptions,
  nextId: () => number,
): Promise<Figures> {
  const { warmup, calls, throughputCalls, inflight, bigBytes, phaseTimeoutMs } = options;
  let echoCalls = 0;
  const call = async () => {
    echoCalls++;
    const id = nextId();
    check(await client.call(id, messages.echo(id)), "echo");
  };

  options.onStart?.();
  await within(
    (async () => {
      for (let i = 0; i < warmup; i++) await call();
    })(),
    phaseTimeoutMs,
    "warm-up",
  );

  const samples: number[] = new Array(calls);
  await within(
    (async () => {
      for (let i = 0; i < calls; i++) {
        echoCalls++;
        const id = nextId();
        const text = messages.echo(id);
        const start = performance.now();
        const response = await client.call(id, text);
        samples[i] = (performance.now() - start) * 1000;
        check(response, "echo");
      }
    })(),
    phaseTimeoutMs,
    "sequential calls",
  );

  const inFlight = (total: number) => callsInFlight(call, { total, width: inflight });
  await within(inFlight(Math.min(500, Math.ceil(throughputCalls / 10))), phaseTimeoutMs, "warm-up");
  options.onInflightStart?.();
  const t0 = performance.now();
  await within(inFlight(throughputCalls), phaseTimeoutMs, `${inflight} calls in flight`);
  const callsPerSecond = throughputCalls / ((performance.now() - t0) / 1000);
  options.onPhaseEnd?.("load");

  const figures: Figures = {
    p50Us: percentile(samples, 50),
    p90Us: percentile(samples, 90),
    p99Us: percentile(samples, 99),
    meanUs: samples.reduce((a, b) => a + b, 0) / samples.length,
    callsPerSecond,
    echoCalls,
  };
  if (bigBytes > 0 && messages.big) {
    const id = nextId();
    const text = messages.big(id, bigBytes);
    const start = performance.now();
    const response = await within(client.call(id, text), phaseTimeoutMs, "the large result");
    figures.bigMs = performance.now() - start;
    const length = textLength(check(response, "big"));
    if (length !== bigBytes) {
      throw new Error(`The large result had ${length} characters of text, expected ${bigBytes}`);
    }
    options.onPhaseEnd?.("big");
  }
  return figures;
}
