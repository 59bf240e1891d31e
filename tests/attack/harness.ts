// What the attack tests share: a real `mcp-rproxy serve` process (production permissions, JSON logs at
// debug) with an attacker and a victim owner, its memory read from /proc, and the victim's echo calls
// running through a real `connect` tunnel while an attack goes on.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { servePermissions } from "../../scripts/permissions.ts";
import { DEMO_SERVER, type ProxyProcess, startProxy } from "../fixtures/proxy_process.ts";
import { deadline } from "../../lib/util/delay.ts";

/** Tokens of the serve under attack: the attacker's owner and an unrelated victim owner. */
export const ATTACK_TOKENS = {
  attacker: "tok-attacker-0123456789abcdef",
  victim: "tok-victim-0123456789abcdef",
} as const;

const MIB = 1024 * 1024;

/** A real serve process under attack. */
export interface ServeUnderAttack extends AsyncDisposable {
  readonly process: ProxyProcess;
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  readonly port: number;
  /** `ws://127.0.0.1:PORT/reverse-proxy/ws`. */
  readonly wsUrl: string;
  /** VmRSS and VmHWM of the serve process, in bytes. */
  memory(): { rss: number; hwm: number };
  /** JSON log records written from line index `from` on. */
  records(from?: number): Record<string, unknown>[];
}

/** Reads VmRSS and VmHWM of `pid` from /proc, in bytes. */
export function readMemory(pid: number): { rss: number; hwm: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const field = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
  return { rss: field("VmRSS") * 1024, hwm: field("VmHWM") * 1024 };
}

/**
 * Starts `deno run main.ts serve` on a free loopback port with the production permission flags, a tokens
 * file holding {@link ATTACK_TOKENS}, JSON logs at debug, and `flags`.
 */
export async function startServe(flags: string[] = []): Promise<ServeUnderAttack> {
  const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-attack-" });
  const tokensFile = `${dir}/tokens.yaml`;
  await Deno.writeTextFile(
    tokensFile,
    `${ATTACK_TOKENS.attacker}: mallory\n${ATTACK_TOKENS.victim}: victor\n`,
  );
  const listen = "127.0.0.1:0";
  const process = startProxy(
    [
      "serve",
      "--listen",
      listen,
      "--tokens-file",
      tokensFile,
      "--log-format",
      "json",
      "--log-level",
      "debug",
      ...flags,
    ],
    {
      permissions: ["--no-prompt", ...servePermissions({ listen, tokensFile })],
      // As the container and the systemd unit run it: freed large buffers go back to the OS at once.
      env: { MALLOC_MMAP_THRESHOLD_: "65536" },
    },
  );
  const cleanup = async () => {
    await process[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  };
  try {
    const listening = await process.waitForLine((l) => /Gateway listening/.test(l.raw), 30_000);
    const url = String(listening.json?.url);
    const port = Number(new URL(url).port);
    return {
      process,
      url,
      port,
      wsUrl: `ws://127.0.0.1:${port}/reverse-proxy/ws`,
      memory: () => readMemory(process.pid),
      records: (from = 0) =>
        process.lines.slice(from).flatMap((line) => line.json === undefined ? [] : [line.json]),
      [Symbol.asyncDispose]: cleanup,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/** Samples a process's VmRSS every few milliseconds until stopped; the peak, in bytes. */
export function sampleRss(pid: number, everyMs = 5): { stop(): number } {
  let peak = readMemory(pid).rss;
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, readMemory(pid).rss);
    } catch {
      // The process is gone; the peak so far stands.
    }
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, readMemory(pid).hwm);
    },
  };
}

/** What the victim saw while the attack ran. */
export interface VictimReport {
  ok: number;
  failed: number;
  errors: string[];
  /** Latency of each successful call, in milliseconds. */
  latenciesMs: number[];
}

/** The victim owner: a real `connect` tunnel to serve, and an MCP client calling `echo` through it. */
export interface Victim extends AsyncDisposable {
  /**
   * Calls `echo` every {@link VICTIM_CALL_EVERY_MS} until {@link Victim.stop}; resolves once the first
   * call succeeded.
   */
  start(): Promise<void>;
  /** Stops calling and reports. */
  stop(): Promise<VictimReport>;
}

/**
 * The victim's pace: steady enough to notice an outage or a stall, light enough that its own garbage does
 * not move serve's RSS (back-to-back calls grow serve's heap by ~40 MiB in two seconds).
 */
export const VICTIM_CALL_EVERY_MS = 20;

/** Starts the victim's `connect` (the demo server behind it) and its MCP client. */
export async function startVictim(serve: ServeUnderAttack): Promise<Victim> {
  const connect = startProxy(
    ["connect", "--gateway", serve.url, "--log-format", "json", "--", ...DEMO_SERVER],
    { env: { REVERSE_PROXY_TOKEN: ATTACK_TOKENS.victim } },
  );
  let client: Client | undefined;
  try {
    const registered = await connect.waitForEvent("registered", 30_000);
    client = new Client({ name: "victim", version: "1.0.0" });
    await deadline(
      client.connect(
        new StreamableHTTPClientTransport(new URL(String(registered.mcpUrl)), {
          requestInit: { headers: { Authorization: `Bearer ${ATTACK_TOKENS.victim}` } },
        }),
      ),
      10_000,
      "the victim's MCP client to connect",
    );
  } catch (error) {
    await client?.close();
    await connect[Symbol.asyncDispose]();
    throw error;
  }
  const mcp = client;
  const report: VictimReport = { ok: 0, failed: 0, errors: [], latenciesMs: [] };
  let running = false;
  let loop: Promise<void> | undefined;
  const call = async (n: number) => {
    const started = performance.now();
    try {
      const result = await deadline(
        mcp.callTool({ name: "echo", arguments: { message: `victim ${n}` } }),
        10_000,
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
          if (rest > 0 && running) await new Promise((resolve) => setTimeout(resolve, rest));
        }
      })();
    },
    async stop() {
      running = false;
      await loop;
      return report;
    },
    async [Symbol.asyncDispose]() {
      running = false;
      await loop;
      await mcp.close();
      await connect[Symbol.asyncDispose]();
    },
  };
}

/** `bytes` as MiB with one decimal, for messages. */
export function mib(bytes: number): string {
  return `${(bytes / MIB).toFixed(1)} MiB`;
}

/** The 99th percentile of `values` (0 for none). */
export function p99(values: number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]!;
}

/**
 * Waits until serve's RSS is back within `slack` bytes of `baseline`, polling /proc (there is no event
 * for memory given back) for at most `ms`; throws with the last reading otherwise. The bound is
 * 60 s; serve collects a second after large messages stop (lib/util/idle_gc.ts), so 20 s is ample and
 * fails if that is lost (V8 alone took 30-60 s).
 */
export async function recovered(
  serve: ServeUnderAttack,
  baseline: number,
  options: { slack?: number; ms?: number } = {},
): Promise<number> {
  const { slack = 64 * MIB, ms = 20_000 } = options;
  const until = performance.now() + ms;
  for (;;) {
    const { rss } = serve.memory();
    if (rss - baseline <= slack) return rss;
    if (performance.now() > until) {
      throw new Error(
        `serve's RSS stayed ${mib(rss - baseline)} above its baseline ${
          mib(baseline)
        } for ${ms} ms`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
