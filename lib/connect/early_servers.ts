// The early start: connect spawns its stdio servers as soon as its settings are read, and writes them its
// `initialize`, before it loads the rest of its code (logging, the link, the tunnel), so that the servers'
// own start-up and connect's loading overlap (docs/performance.md, target 3). Each server's first start
// then takes its process instead of spawning one; a process nobody took is killed. This module loads
// nothing but the settings and the request.

import { initializeRequest } from "./init_request.ts";
import type { ServerSpec } from "./settings.ts";

/** What a stdio server is spawned from. */
export interface ServerProcessOptions {
  /** Program and arguments. */
  command: string[];
  /** Variables added to connect's own environment for the child. */
  env?: Record<string, string> | undefined;
  /** Working directory of the child. */
  cwd?: string | undefined;
}

/**
 * connect's gateway token, which its servers have no use for (often a package from npx or uvx, that could
 * register or evict as its owner with it): they get it empty. Left out it cannot be, as that means listing
 * the whole environment, which the production permissions (a scoped --allow-env) do not allow.
 */
const WITHHELD_ENV = { REVERSE_PROXY_TOKEN: "" };

/**
 * Spawns a stdio server in a new process group (it leads it: stopping the group stops whatever it
 * launched), its three standard streams piped.
 *
 * @throws the runtime's error when the program cannot be started (not found, no permission)
 */
export function spawnServerProcess(options: ServerProcessOptions): Deno.ChildProcess {
  const [program = "", ...args] = options.command;
  return new Deno.Command(program, {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    detached: true,
    env: { ...WITHHELD_ENV, ...options.env },
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  }).spawn();
}

/** When each process of an early start was spawned (`performance.now()`), for the start-up log. */
const spawnedAt = new WeakMap<Deno.ChildProcess, number>();

/** How many milliseconds ago the early start spawned `child`; undefined for any other process. */
export function spawnedMsAgo(child: Deno.ChildProcess): number | undefined {
  const at = spawnedAt.get(child);
  return at === undefined ? undefined : performance.now() - at;
}

/**
 * Writes connect's own `initialize` to a process just spawned, so that the server answers it as soon as it
 * is up, while connect still loads; the answer waits in the pipe for the handshake (which then sends
 * nothing: `StdioServer.initializeSent`). The lock is released at once: the write stays queued, and the
 * server's stdin queue writes after it.
 */
function sendInitialize(child: Deno.ChildProcess): void {
  const writer = child.stdin.getWriter();
  // A server that died at once fails its first start as it always did (its exit, not this write).
  writer.write(new TextEncoder().encode(`${initializeRequest()}\n`)).catch(() => {});
  writer.releaseLock();
}

/** The processes of the early start, each waiting for its server's first start to take it. */
export class EarlyServers {
  #processes = new Map<ServerSpec, Deno.ChildProcess>();

  /**
   * Spawns every shared stdio server of `specs` (a per-client one starts with its clients; an upstream
   * has no process). A server that cannot be spawned is left to its first start, which spawns it again
   * and reports why it fails as it always did.
   */
  static spawn(specs: readonly ServerSpec[]): EarlyServers {
    const early = new EarlyServers();
    for (const spec of specs) {
      const transport = spec.transport;
      if (transport.kind !== "stdio" || spec.isolation === "per-client") continue;
      if (transport.command.length === 0) continue;
      try {
        const child = spawnServerProcess(transport);
        spawnedAt.set(child, performance.now());
        early.#processes.set(spec, child);
        sendInitialize(child);
      } catch {
        // reported by the server's first start
      }
    }
    return early;
  }

  /** The process spawned for `spec` (the same object), once; undefined if there is none. */
  take(spec: ServerSpec): Deno.ChildProcess | undefined {
    const child = this.#processes.get(spec);
    this.#processes.delete(spec);
    return child;
  }

  /** Kills the process group of every process nobody took yet (a second signal: at once). */
  kill(): void {
    for (const child of this.#processes.values()) {
      try {
        Deno.kill(-child.pid, "SIGKILL");
      } catch {
        // the group is gone already, or a scoped --allow-run refuses group signals: the child alone
        try {
          child.kill("SIGKILL");
        } catch {
          // it has exited
        }
      }
    }
  }

  /** Kills every process nobody took, and waits for each to end and its pipes to close. */
  async killUntaken(): Promise<void> {
    this.kill();
    const left = [...this.#processes.values()];
    this.#processes.clear();
    await Promise.all(left.map((child) =>
      Promise.allSettled([
        child.stdin.close(),
        child.stdout.cancel(),
        child.stderr.cancel(),
        child.status,
      ])
    ));
  }
}
