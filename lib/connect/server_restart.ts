// Starting a local server again after it exited (or reconnecting to an upstream that went away): after a
// backoff delay each time, until it is up or connect stops, saying each step in the log.

import { delay } from "../util/delay.ts";
import { logger } from "../util/log.ts";
import { ServerStartError } from "./errors.ts";
import type { LocalSession } from "./local_session.ts";
import type { ServerMetrics } from "./metrics.ts";

const log = logger("connect");

/** Options of {@link restartServer}. */
export interface RestartOptions {
  /** The server's name for logs. */
  label: string;
  /** True for a child process (restarted), false for an upstream (reconnected to). */
  stdio: boolean;
  /** The wait before attempt `n`, in milliseconds. */
  backoff: (attempt: number) => number;
  /** One start (or connection) and initialization. */
  start: () => Promise<LocalSession>;
  /** Why a start failed, for `/readyz`. */
  onFailed: (error: ServerStartError) => void;
  signal: AbortSignal;
  metrics?: ServerMetrics | undefined;
}

/**
 * Starts the server again, with backoff, until it is up (resolves with its session) or the signal aborts
 * (resolves undefined).
 *
 * @throws anything but a {@link ServerStartError} from `start`
 */
export async function restartServer(options: RestartOptions): Promise<LocalSession | undefined> {
  const { label, stdio, backoff, start, onFailed, signal, metrics } = options;
  for (let attempt = 1; !signal.aborted; attempt++) {
    const waitMs = backoff(attempt);
    log.info(
      stdio
        ? "Restarting the local server {server} in {seconds} s"
        : "Reconnecting to the local server {server} in {seconds} s",
      { event: "server_restart_scheduled", server: label, seconds: (waitMs / 1000).toFixed(2) },
    );
    await delay(waitMs, signal).catch(() => {});
    if (signal.aborted) return undefined;
    try {
      const session = await start();
      metrics?.restarts.inc();
      return session;
    } catch (error) {
      if (signal.aborted) return undefined;
      if (!(error instanceof ServerStartError)) throw error;
      metrics?.error("server_start");
      onFailed(error);
      log.error("{error}", { event: "server_start_failed", server: label, error: error.message });
    }
  }
  return undefined;
}
