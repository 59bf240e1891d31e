// Logging on stderr through LogTape, as text or JSON lines with stable field names.

import {
  configure,
  getLogger,
  type Logger,
  type LogLevel,
  type LogRecord,
  reset,
  type Sink,
} from "@logtape/logtape";
import { escapeControl } from "./text.ts";
import type { LogFormat } from "./log_level.ts";

// The level names and formats live apart so that parsing a command line does not load LogTape.
export { LEVEL_CHOICES, type LogFormat, parseLevel } from "./log_level.ts";

/** Options of {@link setupLogging}. */
export interface LoggingOptions {
  /** Lowest level written. */
  level: LogLevel;
  /** Text for people, JSON lines for collectors. */
  format: LogFormat;
  /** Where lines go; stderr when omitted. Tests pass a sink that keeps records. */
  sink?: Sink;
}

const ROOT = "mcp-rproxy";
const encoder = new TextEncoder();

/** A value as text: strings as they are, anything else as JSON. */
function valueText(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function renderMessage(record: LogRecord): string {
  let text = "";
  for (let i = 0; i < record.message.length; i++) {
    const part = record.message[i];
    text += i % 2 === 0 ? String(part) : valueText(part);
  }
  return text;
}

function templateOf(record: LogRecord): string {
  return typeof record.rawMessage === "string" ? record.rawMessage : record.rawMessage.join("");
}

/**
 * One JSON object a line: time, level, logger, message, then the record's properties (session, event, …).
 * The four stable fields always win: a property of the same name (`{message}` in a template) is already
 * in the rendered message, and any other is kept as `<name>_`.
 */
export function formatJson(record: LogRecord): string {
  const entry: Record<string, unknown> = {
    time: new Date(record.timestamp).toISOString(),
    level: record.level,
    logger: record.category.join("."),
    message: renderMessage(record),
  };
  const template = templateOf(record);
  for (const [key, value] of Object.entries(record.properties)) {
    if (!Object.hasOwn(entry, key)) entry[key] = value;
    else if (!template.includes(`{${key}}`)) entry[`${key}_`] = value;
  }
  return JSON.stringify(entry) + "\n";
}

/**
 * `time LEVEL logger: message key=value …` for people. Control characters in values are escaped (`\n`
 * becomes the two characters `\` `n`): a value from a peer (a gateway's error message, a client's
 * session id) must never start a line of its own that reads like one of ours.
 */
export function formatText(record: LogRecord): string {
  let line = `${new Date(record.timestamp).toISOString()} ${record.level.toUpperCase().padEnd(7)} ${
    record.category.join(".")
  }: ${escapeControl(renderMessage(record))}`;
  const template = templateOf(record);
  for (const [key, value] of Object.entries(record.properties)) {
    // Properties already spelled out by the message are not repeated.
    if (template.includes(`{${key}}`)) continue;
    line += ` ${escapeControl(key)}=${escapeControl(valueText(value))}`;
  }
  return line + "\n";
}

function writeAll(bytes: Uint8Array): void {
  let written = 0;
  while (written < bytes.length) written += Deno.stderr.writeSync(bytes.subarray(written));
}

/** A synchronous stderr sink, so that every line is out before the process exits. */
function stderrSink(format: LogFormat): Sink {
  const formatter = format === "json" ? formatJson : formatText;
  return (record) => writeAll(encoder.encode(formatter(record)));
}

/** Configures logging for the whole process. Call once at start-up; {@link shutdownLogging} at exit. */
export async function setupLogging(options: LoggingOptions): Promise<void> {
  const { level, format, sink = stderrSink(format) } = options;
  await configure({
    reset: true,
    sinks: { main: sink },
    loggers: [
      { category: [ROOT], lowestLevel: level, sinks: ["main"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["main"] },
    ],
  });
}

/** Resets logging (flushes and frees LogTape's state). */
export async function shutdownLogging(): Promise<void> {
  await reset();
}

/**
 * The logger of one component, under the project's root category.
 *
 * @example
 * ```ts
 * import { logger } from "./log.ts";
 * logger("connect").info("Registered as {name}", { event: "registered", name: "everything" });
 * ```
 */
export function logger(...names: string[]): Logger {
  return getLogger([ROOT, ...names]);
}

/** Shortens a payload for debug logs. */
export function truncate(text: string, max = 500): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length} chars)`;
}
