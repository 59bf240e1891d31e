// The local MCP server as a child process: spawn it in its own process group, frame its stdout by lines,
// pass its stderr through, write to its stdin, and stop it (and every grandchild) on every path.

import { settleWithin } from "../util/delay.ts";
import { type Line, LineFramer, LineSplitter, type OversizedLine } from "../util/line_splitter.ts";
import { logger } from "../util/log.ts";
import { spawnServerProcess } from "./early_servers.ts";
import { ServerStartError } from "./errors.ts";
import { GroupWatchdog } from "./group_watchdog.ts";
import type { LocalTransport } from "./local_transport.ts";
import {
  DEFAULT_STDIN_QUEUE_LIMITS,
  type QueueOutcome,
  StdinQueue,
  type StdinQueueLimits,
} from "./stdin_queue.ts";

const log = logger("server");

/** Options of {@link StdioServer.spawn}. */
export interface StdioServerOptions {
  /** Program and arguments. */
  command: string[];
  /** Variables added to connect's own environment for the child. */
  env?: Record<string, string>;
  /** Working directory of the child. */
  cwd?: string;
  /** Called for each line the server writes to stdout, in order. May return a promise to pause reading. */
  onLine: (line: Line) => void | Promise<void>;
  /** Called for each stdout line that exceeded `maxLineBytes`. */
  onOversized?: (line: OversizedLine) => void;
  /** Called for each stderr line; defaults to writing it to our stderr marked as the server's. */
  onStderr?: (line: string) => void;
  /** Longest stdout line passed on, in bytes. */
  maxLineBytes?: number;
  /**
   * How long a stop may take, in milliseconds: from its start to SIGKILL of the whole group, whatever
   * the server does (default 5000).
   */
  graceMs?: number;
  /** Bounds of what waits to be written to the server's stdin. */
  queueLimits?: StdinQueueLimits;
  /** Start the watchdog that stops the group if connect is killed (default true). */
  watchdog?: boolean;
  /**
   * The process, when the early start spawned it from `command` already, and wrote it connect's own
   * `initialize` (early_servers.ts).
   */
  spawned?: Deno.ChildProcess | undefined;
}

/** How the server process ended. */
export interface ServerExit {
  code: number;
  signal: Deno.Signal | null;
}

const encoder = new TextEncoder();
/** Time a stopping server gets to leave on stdin EOF before SIGTERM, at most, in milliseconds. */
const EOF_WAIT_MS = 500;
/** Size of the buffer the server's stdout is read into. */
const READ_BUFFER_BYTES = 64 * 1024;

function describeSpawnError(program: string, error: unknown, cwd?: string): string {
  if (error instanceof Deno.errors.NotFound) {
    return `Cannot start the local server: program '${program}' was not found${
      cwd === undefined ? "" : ` (or its working directory ${cwd} does not exist)`
    }; check the command and PATH`;
  }
  if (error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable) {
    return `Cannot start the local server '${program}': permission denied (${
      (error as Error).message
    }); under 'deno run' add --allow-run (unscoped: stopping the server's process group needs it)`;
  }
  return `Cannot start the local server '${program}': ${(error as Error).message}`;
}

function writeStderrLine(line: string): void {
  const bytes = encoder.encode(`[server] ${line}\n`);
  let written = 0;
  while (written < bytes.length) written += Deno.stderr.writeSync(bytes.subarray(written));
}

/** A running local server. Create with {@link StdioServer.spawn}; always {@link StdioServer.stop} it. */
export class StdioServer implements LocalTransport {
  readonly kind = "stdio";
  /** The command, for messages. */
  readonly label: string;
  /** Process id; also the process group id (the child leads its own group). */
  readonly pid: number;
  /** A stdio server has no MCP session id. */
  readonly mcpSessionId = undefined;
  /** The early start spawned it and wrote it connect's `initialize` (early_servers.ts). */
  readonly initializeSent: boolean;
  /** Resolves when the process has exited and its output has been read to the end. */
  readonly exited: Promise<ServerExit>;
  /** {@link exited}, described: "code 1", "signal SIGKILL". */
  readonly ended: Promise<string>;
  #child: Deno.ChildProcess;
  #stdin: StdinQueue;
  #graceMs: number;
  #watchdog: GroupWatchdog | undefined;
  #stopping: Promise<ServerExit> | undefined;

  private constructor(child: Deno.ChildProcess, options: StdioServerOptions) {
    this.#child = child;
    this.pid = child.pid;
    this.initializeSent = options.spawned !== undefined;
    this.label = options.command.join(" ");
    this.#graceMs = options.graceMs ?? 5000;
    if (options.watchdog !== false) {
      this.#watchdog = GroupWatchdog.start({ pgid: child.pid, graceMs: this.#graceMs });
    }
    const writer = child.stdin.getWriter();
    // A write to a dead child rejects; callers learn about the death from `exited`, not from here.
    writer.closed.catch(() => {});
    const stdin = new StdinQueue(writer, options.queueLimits ?? DEFAULT_STDIN_QUEUE_LIMITS);
    this.#stdin = stdin;
    const stdoutDone = this.#pumpStdout(options);
    stdoutDone.then(() => this.#onStdoutEnd(), () => {});
    const stderrDone = this.#pumpStderr(options.onStderr ?? writeStderrLine);
    this.exited = (async () => {
      const status = await child.status;
      // The leader is gone: whatever it launched in its group goes too, and with it the last pipe writers.
      this.#signalGroup("SIGKILL");
      // Release our end of stdin too (a write the dead child never took fails now), and the watchdog.
      stdin.close();
      await settleWithin(
        [stdoutDone, stderrDone, writer.closed, this.#watchdog?.release()].filter((p) =>
          p !== undefined
        ),
        2000,
      );
      return { code: status.code, signal: status.signal };
    })();
    this.ended = this.exited.then(describeExit);
  }

  /**
   * Starts the server in a new process group, so that stopping it also stops whatever it launched (the
   * real server behind `npx`/`uvx`), with a watchdog that stops that group if connect itself is killed;
   * or takes over the process the early start spawned (`spawned`).
   *
   * @throws {ServerStartError} when the program cannot be started
   */
  static spawn(options: StdioServerOptions): StdioServer {
    const [program] = options.command;
    if (program === undefined) {
      throw new ServerStartError("Cannot start the local server: the command is empty");
    }
    let child: Deno.ChildProcess;
    try {
      child = options.spawned ?? spawnServerProcess(options);
    } catch (error) {
      throw new ServerStartError(describeSpawnError(program, error, options.cwd), {
        cause: error,
      });
    }
    return new StdioServer(child, options);
  }
  async #pumpStdout(options: StdioServerOptions): Promise<void> {
    const { onLine, onOversized, maxLineBytes } = options;
    // A plain reader and a framer instead of a TransformStream pipeline: one stream hop less per
    // chunk, and no promise per line (the web-streams machinery was a quarter of connect's CPU).
    let lines: Line[] = [];
    const framer = new LineFramer((line) => lines.push(line), {
      ...(maxLineBytes === undefined ? {} : { maxLineBytes }),
      ...(onOversized === undefined ? {} : { onOversized }),
    });
    const route = async (batch: Line[]) => {
      for (const line of batch) {
        // One bad message must not stop the tunnel: report it and keep reading.
        try {
          const paused = onLine(line);
          if (paused) await paused;
        } catch (error) {
          log.error("Failed to route a message from the local server: {error}", {
            error: String(error),
          });
        }
      }
    };
    // Read into one buffer, reused: the default reader allocates (and zeroes) 64 KiB per read, which under
    // load was most of connect's allocation rate. The framer keeps nothing of a chunk.
    const reader = this.#child.stdout.getReader({ mode: "byob" });
    let buffer = new ArrayBuffer(READ_BUFFER_BYTES);
    try {
      for (;;) {
        const { value, done } = await reader.read(new Uint8Array(buffer));
        if (done || value === undefined) break;
        framer.push(value);
        buffer = value.buffer as ArrayBuffer;
        if (lines.length > 0) {
          const batch = lines;
          lines = [];
          await route(batch);
        }
      }
      framer.finish();
      await route(lines);
    } catch (error) {
      log.warn("Stopped reading the local server's output: {error}", { error: String(error) });
      await reader.cancel().catch(() => {});
    } finally {
      reader.releaseLock();
    }
  }

  /**
   * stdout ended. A server that lives on past that can answer nothing more, and its callers would wait
   * for ever: unless it exits by itself within a moment (as a crashing one does), it is stopped like any
   * server (stdin closed, SIGTERM, SIGKILL after the grace), and its exit is handled as a crash is.
   */
  async #onStdoutEnd(): Promise<void> {
    if (this.#stopping !== undefined) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const alive = await Promise.race([
      this.#child.status.then(() => false),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(true), EOF_WAIT_MS)),
    ]);
    clearTimeout(timer);
    if (!alive || this.#stopping !== undefined) return;
    log.warn(
      "Local server closed its stdout but kept running: stopping it, as it can answer nothing more",
      { event: "server_stdout_closed", pid: this.pid },
    );
    await this.stop();
  }

  async #pumpStderr(onStderr: (line: string) => void): Promise<void> {
    try {
      for await (const line of this.#child.stderr.pipeThrough(new LineSplitter())) {
        onStderr(line.text);
      }
    } catch {
      await this.#child.stderr.cancel().catch(() => {});
    }
  }

  /** Nothing to do: a stdio server's messages all come on stdout. */
  initialized(): void {}

  /** True until stdin is closed or the process has exited. */
  get writable(): boolean {
    return this.#stdin.open;
  }

  /** Bytes and messages accepted for the server's stdin and not yet taken by the pipe. */
  get queued(): { bytes: number; messages: number } {
    return { bytes: this.#stdin.bytes, messages: this.#stdin.messages };
  }

  /**
   * Queues one line for stdin (a newline is added), or says at once why not: the queue is at its bound
   * (the server is not reading), or stdin is closed. Lines accepted while a write is under way go out
   * together in the next write.
   */
  write(text: string): QueueOutcome {
    return this.#stdin.write(text);
  }

  /**
   * Writes one line and resolves when it is written; false if it was refused (queue full, stdin closed)
   * or the server can no longer be written to.
   */
  send(text: string): Promise<boolean> {
    if (this.#stdin.write(text).kind !== "queued") return Promise.resolve(false);
    return this.#stdin.drained();
  }

  #signalGroup(signal: Deno.Signal): void {
    try {
      // Negative pid: the whole process group, grandchildren included.
      Deno.kill(-this.pid, signal);
    } catch {
      // Already gone, or the group is empty.
    }
  }

  /** Kills the whole process group at once, without waiting. For a second Ctrl-C. */
  kill(): void {
    this.#signalGroup("SIGKILL");
  }

  /**
   * Stops the server: closes stdin (a well-behaved MCP server exits on EOF), then SIGTERM to the process
   * group, then SIGKILL after the grace period. Also reaps any grandchild left in the group. Idempotent.
   */
  stop(): Promise<ServerExit> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<ServerExit> {
    const graceMs = this.#graceMs;
    const killAt = performance.now() + graceMs;
    const eofWaitMs = Math.min(graceMs / 2, EOF_WAIT_MS);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const within = (ms: number) =>
      new Promise<"timeout">((resolve) =>
        timer = setTimeout(() => resolve("timeout"), Math.max(0, ms))
      );
    try {
      // Lines already accepted go out first, unless the server has stopped reading: the close never
      // waits on a write the server does not take (that held shutdown for minutes).
      await this.#stdin.closeAfter(eofWaitMs);
      // Give it a brief moment to leave on EOF, then ask the group politely, then insist: SIGKILL comes
      // `graceMs` after the stop began, whatever the server does.
      if (await Promise.race([this.#child.status, within(eofWaitMs)]) === "timeout") {
        clearTimeout(timer);
        this.#signalGroup("SIGTERM");
        if (
          await Promise.race([this.#child.status, within(killAt - performance.now())]) ===
            "timeout"
        ) {
          log.warn("Local server did not stop within {graceMs} ms; killing its process group", {
            event: "server_killed",
            graceMs,
          });
          this.#signalGroup("SIGKILL");
        }
      }
    } finally {
      clearTimeout(timer);
    }
    return await this.exited;
  }
}

/** "code 1" or "signal SIGKILL". */
export function describeExit(exit: ServerExit): string {
  return exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
}
