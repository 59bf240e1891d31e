// Stops the local server's process group when connect dies without a chance to do it itself (SIGKILL,
// OOM killer, a crash): a tiny `sh` that waits for EOF on a pipe only connect holds.
//
// Why a watchdog: Deno cannot set PR_SET_PDEATHSIG in a child (no pre-exec hook), and `setpriv
// --pdeathsig KILL` covers only the direct child, not the real server an `npx`/`uvx` launcher forks.
// The kernel closes every fd of a dead process, whatever killed it: the watchdog's `read` then returns,
// and it signals the whole group (TERM, then KILL after a grace), grandchildren included.

import { logger } from "../util/log.ts";

const log = logger("server");

/**
 * The watchdog, as POSIX sh (dash, bash, busybox): $1 the process group, $2 the grace in tenths of a
 * second. A terminal's Ctrl-C or a TERM meant for connect must not end it: only its stdin decides.
 */
const SCRIPT = `trap '' INT TERM HUP
read -r line
[ "$line" = done ] && exit 0
kill -s TERM -- "-$1" 2>/dev/null || exit 0
i=0
while [ "$i" -lt "$2" ] && kill -s 0 -- "-$1" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
kill -s KILL -- "-$1" 2>/dev/null
exit 0`;

/** Options of {@link GroupWatchdog.start}. */
export interface GroupWatchdogOptions {
  /** The process group to stop: the server's pid, as it leads its own group. */
  pgid: number;
  /** Time between SIGTERM and SIGKILL, in milliseconds. */
  graceMs: number;
  /** The shell to run; `sh` from PATH by default. */
  shell?: string;
}

/** A running watchdog for one process group. Release it once the group is gone. */
export class GroupWatchdog {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #released: Promise<void> | undefined;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#writer.closed.catch(() => {});
  }

  /** Pid of the watchdog process. */
  get pid(): number {
    return this.#child.pid;
  }

  /**
   * Starts a watchdog for `pgid`. Returns undefined where it cannot run (Windows, or `--allow-run`
   * scoped to the server's program so that `sh` may not be spawned): the server then outlives a
   * SIGKILL of connect, as it would without one. Logged once at warning.
   */
  static start(options: GroupWatchdogOptions): GroupWatchdog | undefined {
    if (Deno.build.os === "windows") return undefined;
    const tenths = Math.max(1, Math.ceil(options.graceMs / 100));
    try {
      const child = new Deno.Command(options.shell ?? "sh", {
        args: ["-c", SCRIPT, "mcp-rproxy-watchdog", String(options.pgid), String(tenths)],
        stdin: "piped",
        stdout: "null",
        stderr: "null",
        // Its own session: the terminal's signals and connect's process group never reach it.
        detached: true,
      }).spawn();
      return new GroupWatchdog(child);
    } catch (error) {
      warnUnavailable(error);
      return undefined;
    }
  }

  /**
   * The group is gone (or connect is stopping it itself): the watchdog exits without signalling.
   * Resolves once it has exited, within about a second. Idempotent.
   */
  release(): Promise<void> {
    this.#released ??= this.#release();
    return this.#released;
  }

  async #release(): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await this.#writer.write(new TextEncoder().encode("done\n")).catch(() => {});
      await this.#writer.close().catch(() => {});
      const gone = await Promise.race([
        this.#child.status.then(() => true),
        new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), 1000)),
      ]);
      if (!gone) {
        // A shell that did not read its line: it must not act on the group later.
        try {
          this.#child.kill("SIGKILL");
        } catch {
          // Exited in between.
        }
        await this.#child.status;
      }
    } finally {
      clearTimeout(timer);
    }
  }
}

let warned = false;

function warnUnavailable(error: unknown): void {
  if (warned) return;
  warned = true;
  log.warning(
    "Cannot start the watchdog that stops the local server if connect is killed ({error}); a SIGKILL of connect would leave the server running. Under 'deno run' give an unscoped --allow-run",
    {
      event: "watchdog_unavailable",
      error: error instanceof Error ? error.message : String(error),
    },
  );
}
