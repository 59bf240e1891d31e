// What the attack scenarios share: a real `mcp-rproxy serve` process (production permissions, JSON logs at
// debug, metrics on a health listener) with an attacker and a victim owner, its memory read from /proc, and
// real `connect` tunnels for either owner.

import { servePermissions } from "../../scripts/permissions.ts";
import { DEMO_SERVER, type ProxyProcess, startProxy } from "../fixtures/proxy_process.ts";
import { deadline } from "../../lib/util/delay.ts";
import type { Gateway } from "../../lib/serve/gateway.ts";

/**
 * Tokens of the serve under attack: the attacker's owner (`mallory`, two tokens: one with every role, one
 * only for MCP clients) and an unrelated victim owner (`victor`).
 */
export const ATTACK_TOKENS = {
  attacker: "tok-attacker-0123456789abcdef",
  attackerClient: "tok-attacker-client-0123456789abcdef",
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
  /** The value of an unlabelled metric (a gauge such as `mcp_rproxy_calls_in_flight`) from /metrics. */
  metric(name: string): Promise<number>;
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
 * file holding {@link ATTACK_TOKENS}, JSON logs at debug, a health listener for /metrics, and `flags`.
 */
export async function startServe(flags: readonly string[] = []): Promise<ServeUnderAttack> {
  const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-attack-" });
  const tokensFile = `${dir}/tokens.yaml`;
  await Deno.writeTextFile(
    tokensFile,
    [
      `${ATTACK_TOKENS.attacker}: mallory`,
      `${ATTACK_TOKENS.attackerClient}: {owner: mallory, roles: [client]}`,
      `${ATTACK_TOKENS.victim}: victor`,
      "",
    ].join("\n"),
  );
  const listen = "127.0.0.1:0";
  const process = startProxy(
    [
      "serve",
      "--listen",
      listen,
      "--health-listen",
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
      permissions: [
        "--no-prompt",
        ...servePermissions({ listen, healthListen: listen, tokensFile }),
      ],
      // As the container image runs it (Dockerfile): freed large buffers go back to the OS at once.
      env: { MALLOC_MMAP_THRESHOLD_: "65536" },
    },
  );
  const cleanup = async () => {
    await process[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  };
  try {
    const listening = await process.waitForLine((l) => /Gateway listening/.test(l.raw), 30_000);
    const health = await process.waitForEvent("health_listening", 1_000);
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
      async metric(name) {
        // Aborting ends the body's read too: a reading given up leaves no response behind.
        const controller = new AbortController();
        const timer = setTimeout(
          () => controller.abort(new Error("serve's /metrics did not answer in 10 s")),
          10_000,
        );
        try {
          const response = await fetch(`${health.url}/metrics`, { signal: controller.signal });
          const text = await response.text();
          const value = new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1];
          if (value === undefined) throw new Error(`serve's /metrics has no ${name}`);
          return Number(value);
        } finally {
          clearTimeout(timer);
        }
      },
      [Symbol.asyncDispose]: cleanup,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/** serve as the `Gateway` the raw tunnel fixtures take (tests/fixtures/test_gateway.ts `TunnelClient`). */
export function asGateway(serve: ServeUnderAttack): Gateway {
  return { url: serve.url, port: serve.port, close: () => Promise.resolve() };
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

/** A real `connect` with the demo server behind it, registered with serve. */
export interface Tunnel extends AsyncDisposable {
  readonly connect: ProxyProcess;
  /** The server's MCP endpoint on serve. */
  readonly mcpUrl: string;
}

/** Starts `connect` with `token` and the demo server, named `name`; resolves once it registered. */
export async function startTunnel(
  serve: ServeUnderAttack,
  options: { token: string; name: string },
): Promise<Tunnel> {
  const connect = startProxy(
    [
      "connect",
      "--gateway",
      serve.url,
      "--log-format",
      "json",
      "--server-name",
      options.name,
      "--",
      ...DEMO_SERVER,
    ],
    { env: { REVERSE_PROXY_TOKEN: options.token } },
  );
  try {
    const registered = await connect.waitForEvent("registered", 30_000);
    return {
      connect,
      mcpUrl: String(registered.mcpUrl),
      [Symbol.asyncDispose]: () => connect[Symbol.asyncDispose](),
    };
  } catch (error) {
    await connect[Symbol.asyncDispose]();
    throw error;
  }
}

/** Opens an MCP session on server `name` as `token` (a plain JSON `initialize`); its id. */
export async function initializeAs(
  serve: ServeUnderAttack,
  options: { name: string; token: string },
): Promise<string> {
  const response = await deadline(
    fetch(`${serve.url}/servers/${options.name}/mcp`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${options.token}`,
        "content-type": "application/json",
        accept: "application/json",
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 0,
        method: "initialize",
        params: {
          protocolVersion: "2025-11-25",
          capabilities: {},
          clientInfo: { name: "attack", version: "1" },
        },
      }),
    }),
    10_000,
    "initialize",
  );
  await response.body?.cancel();
  const session = response.headers.get("mcp-session-id");
  if (response.status !== 200 || session === null) {
    throw new Error(`initialize on ${options.name} answered ${response.status}`);
  }
  return session;
}

/** `bytes` as MiB with one decimal, for messages. */
export function mib(bytes: number): string {
  return `${(bytes / MIB).toFixed(1)} MiB`;
}

/** The `p`-th percentile (0-100) of `values`, nearest rank (0 for none). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** How serve's RSS came back after an attack. */
export interface Recovery {
  /** True if RSS fell within the slack of the baseline in time. */
  ok: boolean;
  /** The last reading, in bytes. */
  rss: number;
  /** Time from the end of the attack to that reading, in milliseconds. */
  ms: number;
}

/**
 * Waits until serve's RSS is back within `slack` bytes of `baseline`, polling /proc (there is no event
 * for memory given back) for at most `ms`. The bound is 60 s; serve collects a second after large
 * messages stop (lib/util/idle_gc.ts), so 20 s is ample for most attacks and fails if that is lost (V8
 * alone took 30-60 s).
 */
export async function waitForRecovery(
  serve: ServeUnderAttack,
  baseline: number,
  options: { slack?: number; ms?: number } = {},
): Promise<Recovery> {
  const { slack = 64 * MIB, ms = 20_000 } = options;
  const started = performance.now();
  for (;;) {
    const { rss } = serve.memory();
    const waited = performance.now() - started;
    if (rss - baseline <= slack) return { ok: true, rss, ms: waited };
    if (waited > ms) return { ok: false, rss, ms: waited };
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * Polls `check` every 50 ms until it holds, for at most `ms`; how long that took. Only for state that
 * announces no change (a metric of another process); throws naming `what` on timeout.
 */
export async function pollUntil(
  check: () => Promise<boolean>,
  options: { ms: number; what: string },
): Promise<number> {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > options.ms) {
      throw new Error(`Timed out after ${options.ms} ms waiting for ${options.what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return performance.now() - started;
}

/** Reads an HTTP answer's status line from a raw connection (bounded); "" if it closed first. */
export async function statusLine(conn: Deno.Conn, ms = 5_000): Promise<string> {
  const buffer = new Uint8Array(4096);
  const n = await deadline(conn.read(buffer).catch(() => null), ms, "an HTTP answer");
  return n === null ? "" : new TextDecoder().decode(buffer.subarray(0, n)).split("\r\n")[0]!;
}
