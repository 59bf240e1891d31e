// Unit tests of the log formats, level names and logging set-up with a sink that keeps records.

import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import {
  formatJson,
  formatText,
  logger,
  parseLevel,
  setupLogging,
  shutdownLogging,
  truncate,
} from "../../lib/util/log.ts";

const TIME = Date.UTC(2025, 0, 2, 3, 4, 5, 678);

function record(
  rawMessage: string,
  message: unknown[],
  properties: Record<string, unknown>,
  level: LogRecord["level"] = "info",
): LogRecord {
  return {
    category: ["mcp-rproxy", "connect"],
    level,
    message,
    rawMessage,
    timestamp: TIME,
    properties,
  };
}

const REGISTERED = record("Registered as {name}", ["Registered as ", "everything", ""], {
  name: "everything",
  session: "s-1",
  event: "registered",
});

Deno.test("formatJson() writes one line with time, level, logger, message, then the properties", () => {
  const line = formatJson(REGISTERED);
  assert.ok(line.endsWith("\n"));
  assert.equal(line.indexOf("\n"), line.length - 1);
  const entry = JSON.parse(line);
  assert.deepEqual(Object.keys(entry), [
    "time",
    "level",
    "logger",
    "message",
    "name",
    "session",
    "event",
  ]);
  assert.deepEqual(entry, {
    time: "2025-01-02T03:04:05.678Z",
    level: "info",
    logger: "mcp-rproxy.connect",
    message: "Registered as everything",
    name: "everything",
    session: "s-1",
    event: "registered",
  });
});

Deno.test("formatJson() renders non-string values in the message as JSON", () => {
  const entry = JSON.parse(
    formatJson(record("Took {ms} ms for {ids}", ["Took ", 12, " ms for ", [1, "a"], ""], {
      ms: 12,
      ids: [1, "a"],
    })),
  );
  assert.equal(entry.message, 'Took 12 ms for [1,"a"]');
  assert.deepEqual(entry.ids, [1, "a"]);
});

Deno.test("formatJson() keeps its stable fields when a property has the same name", () => {
  // As in `log.warn("Gateway reported an error: {message}", { message })`.
  const entry = JSON.parse(
    formatJson(
      record(
        "Gateway reported an error: {message}",
        [
          "Gateway reported an error: ",
          "quota exceeded",
          "",
        ],
        { message: "quota exceeded", level: "x", time: "y", logger: "z", session: "s-2" },
        "warning",
      ),
    ),
  );
  assert.equal(entry.message, "Gateway reported an error: quota exceeded");
  assert.equal(entry.level, "warning");
  assert.equal(entry.time, "2025-01-02T03:04:05.678Z");
  assert.equal(entry.logger, "mcp-rproxy.connect");
  assert.equal(entry.session, "s-2");
  assert.deepEqual(Object.keys(entry).slice(0, 4), ["time", "level", "logger", "message"]);
});

Deno.test("formatJson() keeps a clashing property that the message does not spell out as <name>_", () => {
  const entry = JSON.parse(formatJson(record("Stopped", ["Stopped"], { level: 3 })));
  assert.equal(entry.level, "info");
  assert.equal(entry.level_, 3);
});

Deno.test("formatText() does not repeat properties named in the message", () => {
  const line = formatText(REGISTERED);
  assert.equal(
    line,
    "2025-01-02T03:04:05.678Z INFO    mcp-rproxy.connect: Registered as everything session=s-1 event=registered\n",
  );
  assert.ok(!line.includes("name="));
});

Deno.test("formatText() writes non-string property values as JSON", () => {
  const line = formatText(record("Done", ["Done"], { count: 3, detail: { ok: true } }, "debug"));
  assert.equal(
    line,
    '2025-01-02T03:04:05.678Z DEBUG   mcp-rproxy.connect: Done count=3 detail={"ok":true}\n',
  );
});

Deno.test("parseLevel() accepts the Python names and LogTape's, in any case", () => {
  const cases: [string, string][] = [
    ["DEBUG", "debug"],
    ["info", "info"],
    ["Info", "info"],
    ["WARNING", "warning"],
    ["warn", "warning"],
    ["WARN", "warning"],
    ["ERROR", "error"],
    ["CRITICAL", "fatal"],
    ["critical", "fatal"],
    ["fatal", "fatal"],
    ["trace", "trace"],
    [" info ", "info"],
  ];
  for (const [name, level] of cases) assert.equal(parseLevel(name), level, name);
});

Deno.test("parseLevel() returns undefined for an unknown name", () => {
  for (const name of ["", "verbose", "warnings", "5", "notice"]) {
    assert.equal(parseLevel(name), undefined, name);
  }
});

Deno.test("setupLogging() sends records to the injected sink and filters below lowestLevel", async () => {
  const records: LogRecord[] = [];
  await setupLogging({ level: "info", format: "json", sink: (r) => records.push(r) });
  try {
    const log = logger("test");
    log.debug("hidden {n}", { n: 1 });
    log.info("shown {n}", { n: 2, session: "s-3", event: "e" });
    log.warn("warned");
    logger("test", "deeper").error("nested");
    assert.deepEqual(records.map((r) => r.level), ["info", "warning", "error"]);
    assert.deepEqual(records[0]?.category, ["mcp-rproxy", "test"]);
    assert.deepEqual(records[2]?.category, ["mcp-rproxy", "test", "deeper"]);
    const entry = JSON.parse(formatJson(records[0]!));
    assert.equal(entry.message, "shown 2");
    assert.equal(entry.session, "s-3");
    assert.equal(entry.event, "e");
  } finally {
    await shutdownLogging();
  }
});

Deno.test("setupLogging() with level debug passes debug records", async () => {
  const records: LogRecord[] = [];
  await setupLogging({ level: "debug", format: "text", sink: (r) => records.push(r) });
  try {
    logger("test").debug("visible");
    logger("test").trace("too low");
    assert.deepEqual(records.map((r) => r.level), ["debug"]);
  } finally {
    await shutdownLogging();
  }
});

Deno.test("shutdownLogging() stops delivery to the sink", async () => {
  const records: LogRecord[] = [];
  await setupLogging({ level: "debug", format: "json", sink: (r) => records.push(r) });
  await shutdownLogging();
  logger("test").error("after shutdown");
  assert.equal(records.length, 0);
});

Deno.test("truncate() keeps short text and shortens long text with its length", () => {
  assert.equal(truncate("short", 10), "short");
  assert.equal(truncate("0123456789", 10), "0123456789");
  assert.equal(truncate("0123456789abc", 10), "0123456789… (13 chars)");
});

Deno.test("formatText() escapes control characters in values, so a value cannot forge a log line", () => {
  const forged = "boom\n2025-01-02T03:04:05.678Z ERROR   mcp-rproxy.connect: forged\r\u001b[2K";
  const line = formatText(
    record("Gateway reported an error: {message}", ["Gateway reported an error: ", forged, ""], {
      message: forged,
      session: "s\n1",
      detail: { text: "a\u2028b" },
    }, "warning"),
  );
  assert.equal(line.split("\n").length, 2, `one line and its newline: ${JSON.stringify(line)}`);
  assert.equal(
    line,
    "2025-01-02T03:04:05.678Z WARNING mcp-rproxy.connect: Gateway reported an error: " +
      "boom\\n2025-01-02T03:04:05.678Z ERROR   mcp-rproxy.connect: forged\\r\\u001b[2K" +
      ' session=s\\n1 detail={"text":"a\\u2028b"}\n',
  );
});
