// The processes the benchmark starts besides the servers: `connect`, `serve`, the hop echo peer and the
// RSS baseline, each a real `deno run` subprocess whose stderr is read for JSON log events.

import { readLines } from "../../lib/util/line_splitter.ts";
import { stopProcess, within } from "./clients.ts";

export const ROOT = new URL("../../", import.meta.url).pathname;

/** Paths the benchmark runs. */
export const PATHS = {
  main: `${ROOT}main.ts`,
  bundle: `${ROOT}dist/mcp-rproxy/main.js`,
  demoServer: `${ROOT}tests/fixtures/demo_server_main.ts`,
  hopChild: `${ROOT}scripts/bench/hop_echo_child.ts`,
  httpChild: `${ROOT}scripts/bench/http_echo_child.ts`,
  baselineChild: `${ROOT}scripts/bench/baseline_ws_child.ts`,
  bareRelayChild: `${ROOT}scripts/bench/bare_relay_child.ts`,
  memoryProbeChild: `${ROOT}scripts/bench/memory_probe_child.ts`,
  redisFloorChild: `${ROOT}scripts/bench/redis_floor_child.ts`,
};

/** A JSON log event seen on a child's stderr, with the driver's clock when it was read. */
export interface SeenEvent {
  json: Record<string, unknown>;
  at: number;
}

const KEEP_LINES = 200;

/** A `deno run` subprocess; stderr lines are kept (the last 200) and scanned for JSON `event`s. */
export class DenoProcess {
  readonly child: Deno.ChildProcess;
  readonly pid: number;
  /** performance.now() just before the spawn. */
  readonly launchedAt: number;
  readonly lines: string[] = [];
  #events: SeenEvent[] = [];
  #waiters = new Set<() => void>();
  #exited = false;
  #done: Promise<void>;

  constructor(
    script: string,
    args: string[],
    options: { env?: Record<string, string>; denoFlags?: string[] } = {},
  ) {
    this.launchedAt = performance.now();
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "-A", ...(options.denoFlags ?? []), script, ...args],
      cwd: ROOT,
      ...(options.env ? { env: options.env } : {}),
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.pid = this.child.pid;
    this.#done = readLines(this.child.stderr, (line) => {
      const at = performance.now();
      this.lines.push(line);
      if (this.lines.length > KEEP_LINES) this.lines.shift();
      if (line.startsWith("{")) {
        try {
          const json = JSON.parse(line) as Record<string, unknown>;
          if (typeof json.event === "string") this.#events.push({ json, at });
        } catch {
          // Not a log line of ours.
        }
      }
      for (const waiter of this.#waiters) waiter();
    }).then(() => {
      this.#exited = true;
      for (const waiter of this.#waiters) waiter();
    });
  }

  /** The first JSON log line with this `event` (and matching `match`), within `timeoutMs`. */
  waitForEvent(
    event: string,
    timeoutMs: number,
    match: (json: Record<string, unknown>) => boolean = () => true,
  ): Promise<SeenEvent> {
    const find = () => this.#events.find((e) => e.json.event === event && match(e.json));
    const found = find();
    if (found) return Promise.resolve(found);
    let check!: () => void;
    const seen = new Promise<SeenEvent>((resolve, reject) => {
      check = () => {
        const hit = find();
        if (hit) resolve(hit);
        else if (this.#exited) reject(new Error(`process exited before '${event}'`));
      };
    });
    this.#waiters.add(check);
    return within(seen, timeoutMs, `'${event}' from process ${this.pid}`)
      .catch((error: Error) => {
        throw new Error(
          `${error.message}; last stderr lines:\n${this.lines.slice(-10).join("\n")}`,
        );
      })
      .finally(() => this.#waiters.delete(check));
  }

  /** SIGTERM, SIGKILL after the grace period, and the end of its stderr. */
  async stop(graceMs = 5000): Promise<void> {
    await stopProcess(this.child, { graceMs });
    await within(this.#done, 2000, "stderr to end").catch(() => {});
  }
}

/** A free TCP port on 127.0.0.1 (bound, then released). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Polls `url` until it answers 200, every 20 ms, within `timeoutMs`. */
export async function waitHealthy(url: string, timeoutMs: number): Promise<void> {
  const until = performance.now() + timeoutMs;
  for (let i = 0; performance.now() < until && i < 10_000; i++) {
    const response = await fetch(url).catch(() => undefined);
    await response?.body?.cancel();
    if (response?.ok) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`);
}
