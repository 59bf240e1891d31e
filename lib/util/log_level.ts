// Log level names and output formats, apart from log.ts so that reading a command line does not load
// LogTape (connect spawns its server before it loads the rest of the program: docs/performance.md).

import type { LogLevel } from "@logtape/logtape";

/** Output format of log lines. */
export type LogFormat = "text" | "json";

/** Names accepted for log levels: LogTape's and the old client's Python names, any case. */
const LEVEL_NAMES: Record<string, LogLevel> = {
  trace: "trace",
  debug: "debug",
  info: "info",
  warn: "warning",
  warning: "warning",
  error: "error",
  critical: "fatal",
  fatal: "fatal",
};

/**
 * Parses a log level name; undefined if it is not one.
 *
 * @example
 * ```ts
 * import { parseLevel } from "./log_level.ts";
 * parseLevel("WARNING"); // "warning"
 * ```
 */
export function parseLevel(name: string): LogLevel | undefined {
  return LEVEL_NAMES[name.trim().toLowerCase()];
}

/** The level names accepted by {@link parseLevel}, for help and error messages. */
export const LEVEL_CHOICES = "trace, debug, info, warning, error, critical";
