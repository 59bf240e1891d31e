// Checks one value of one `connect` setting in isolation, wherever it came from; rules that involve
// two settings are checked while resolving (config.ts).

import { parseByteSize } from "../util/byte_size.ts";
import { describeKind, invalidSetting } from "../util/errors.ts";
import { HOST_PORT_EXPECTED, parseHostPort } from "../util/host_port.ts";
import { LEVEL_CHOICES, parseLevel } from "../util/log_level.ts";
import { splitCommand } from "../util/shell_words.ts";
import { normalizeGatewayUrl } from "./link_url.ts";
import { type Given, invalidGiven } from "./config_layers.ts";
import { TRANSPORT_SETTINGS } from "./settings.ts";

/** Longest delay or interval accepted, in seconds: beyond about 24.8 days timers overflow. */
const MAX_SECONDS = 86_400;
const MAX_NAME = 128;
const MAX_DESCRIPTION = 1024;
const DECIMAL = /^\+?(\d+\.?\d*|\.\d+)$/;
const INTEGER = /^\+?\d+$/;

/**
 * Validates one value; numbers from flags and the environment are text, from a file they must be
 * numbers (`"5"` in a file is refused, so that a typo in quoting does not pass unnoticed).
 *
 * @throws {ConfigError} Naming the setting as the user wrote it, the value (never a token) and the fix.
 */
export function checkValue(given: Given): void {
  const { key, value } = given;
  switch (key) {
    case "servers":
      // Each entry is checked as it is resolved (server_entries.ts); here only the shape of the list.
      if (!Array.isArray(value) || value.length === 0) {
        throw invalidGiven(given, {
          expected: "a non-empty list of servers, each with a name and one of command, http or sse",
          sample: "[{name: git, command: uvx mcp-server-git}]",
        });
      }
      return;
    case "local_stdio":
      checkCommand(given);
      return;
    case "local_streamable_http":
    case "local_sse":
      requireText(given, {
        expected: "an http:// or https:// URL",
        sample: "http://127.0.0.1:9000/mcp",
      });
      return;
    case "min_ready_servers":
      if (!((wholeNumber(given) ?? 0) >= 1)) {
        throw invalidGiven(given, {
          expected: "a whole number of servers, 1 or more",
          sample: "2",
        });
      }
      return;
    case "gateway":
      requireText(given, { expected: "a gateway URL", sample: "https://gw.example.com" });
      parseGateway(given);
      return;
    case "token":
      checkToken(given);
      return;
    case "token_file":
      requireText(given, {
        expected: "the path of a file holding the token",
        sample: "/run/secrets/gateway-token",
      });
      return;
    case "cert":
      requireText(given, {
        expected: "the path of a PEM file with a CA certificate",
        sample: "/etc/ssl/my-ca.pem",
      });
      return;
    case "server_name":
      boundedText(given, { noun: "name", max: MAX_NAME, sample: "my-server" });
      return;
    case "server_description":
      boundedText(given, { noun: "description", max: MAX_DESCRIPTION, sample: "Git tools" });
      return;
    case "isolation":
    case "max_instances":
    case "instance_idle_timeout":
      // Checked together with the server they apply to (isolation_settings.ts isolationOf).
      return;
    case "reconnect_delay":
      seconds(given, "2.5");
      return;
    case "keepalive":
      seconds(given, "30");
      return;
    case "max_retries":
      retries(given);
      return;
    case "shutdown_grace":
      seconds(given, "5");
      return;
    case "init_timeout":
      seconds(given, "120");
      return;
    case "max_server_queue_bytes":
    case "max_replay_bytes":
    case "max_message_bytes":
    case "max_repeat_answer_bytes":
      byteSize(given);
      return;
    case "max_replay_frames":
      if (!((wholeNumber(given) ?? 0) >= 1)) {
        throw invalidGiven(given, {
          expected: "a whole number of frames, 1 or more",
          sample: "10000",
        });
      }
      return;
    case "max_repeat_ids":
      if (!((wholeNumber(given) ?? 0) >= 1)) {
        throw invalidGiven(given, {
          expected: "a whole number of request ids, 1 or more",
          sample: "10000",
        });
      }
      return;
    case "max_server_queue_messages":
      if (!((wholeNumber(given) ?? 0) >= 1)) {
        throw invalidGiven(given, {
          expected: "a whole number of messages, 1 or more",
          sample: "10000",
        });
      }
      return;
    case "log_level":
      if (typeof value !== "string" || parseLevel(value) === undefined) {
        throw invalidGiven(given, {
          expected: `a log level (${LEVEL_CHOICES}; any case)`,
          sample: "debug",
        });
      }
      return;
    case "transport":
      if (
        typeof value !== "string" ||
        !(TRANSPORT_SETTINGS as readonly string[]).includes(value.trim().toLowerCase())
      ) {
        throw invalidGiven(given, { expected: "auto, websocket or sse", sample: "sse" });
      }
      return;
    case "websocket_retry":
      seconds(given, "600");
      return;
    case "log_format":
      if (typeof value !== "string" || !["text", "json"].includes(value.trim().toLowerCase())) {
        throw invalidGiven(given, { expected: "text or json", sample: "json" });
      }
      return;
    case "verbose":
      if (typeof value !== "boolean") {
        throw invalidGiven(given, { expected: "true or false", sample: "true" });
      }
      return;
    case "health_listen":
      requireText(given, { expected: HOST_PORT_EXPECTED, sample: "127.0.0.1:9464" });
      try {
        parseHostPort(value as string);
      } catch (error: unknown) {
        if (!(error instanceof TypeError)) throw error;
        throw invalidGiven(given, {
          problem: error.message,
          expected: HOST_PORT_EXPECTED,
          sample: "127.0.0.1:9464",
        }, { cause: error });
      }
      return;
  }
}

function checkCommand(given: Given): void {
  const { value } = given;
  if (typeof value === "string") {
    commandFromString(given);
    return;
  }
  if (!Array.isArray(value)) {
    throw invalidGiven(given, {
      expected: "a command string or a list of strings",
      sample: "npx -y my-server",
    });
  }
  if (value.length === 0 || !value.every((word) => typeof word === "string")) {
    throw invalidGiven(given, {
      expected: "a non-empty list of strings or a command string",
      sample: "npx -y my-server",
    });
  }
  if (value[0] === "") {
    throw invalidGiven(given, {
      expected: "a program name as the first word",
      sample: "my-server",
    });
  }
}

/**
 * The words of a command given as one string, split like a POSIX shell does.
 *
 * @throws {ConfigError} For unbalanced quotes, a trailing backslash or an empty command.
 */
export function commandFromString(given: Given): string[] {
  try {
    return splitCommand(given.value as string);
  } catch (error: unknown) {
    if (!(error instanceof SyntaxError)) throw error;
    throw invalidGiven(given, { problem: error.message }, { cause: error });
  }
}

/**
 * The gateway's WebSocket endpoint. The value is left out of messages: a URL may carry a credential,
 * and link_url.ts shows it where it is safe to.
 *
 * @throws {ConfigError} Naming the setting and what is wrong with the URL.
 */
export function parseGateway(given: Given): URL {
  try {
    return normalizeGatewayUrl(String(given.value));
  } catch (error: unknown) {
    if (!(error instanceof TypeError)) throw error;
    throw invalidGiven(given, { problem: error.message, hideValue: true }, { cause: error });
  }
}

function requireText(given: Given, expectation: { expected: string; sample: string }): void {
  if (typeof given.value !== "string" || given.value.trim() === "") {
    throw invalidGiven(given, expectation);
  }
}

/** A non-empty text of at most `max` characters (B's limits on names and descriptions). */
function boundedText(given: Given, rule: { noun: string; max: number; sample: string }): void {
  const { noun, max, sample } = rule;
  requireText(given, { expected: `a ${noun} of 1 to ${max} characters`, sample });
  if ((given.value as string).length > max) {
    throw invalidGiven(given, { expected: `a ${noun} of at most ${max} characters`, sample });
  }
}

function seconds(given: Given, sample: string): void {
  const { value } = given;
  const number = typeof value === "number"
    ? value
    : typeof value === "string" && given.layer !== "config" && DECIMAL.test(value.trim())
    ? Number(value.trim())
    : NaN;
  if (!(number > 0 && number <= MAX_SECONDS)) {
    throw invalidGiven(given, {
      expected: `a number of seconds greater than 0 and at most ${MAX_SECONDS}`,
      sample,
    });
  }
}

/** A whole number from a flag or the environment (text) or a file (a number); undefined if it is not. */
function wholeNumber(given: Given): number | undefined {
  const { value } = given;
  const number = typeof value === "number"
    ? value
    : typeof value === "string" && given.layer !== "config" && INTEGER.test(value.trim())
    ? Number(value.trim())
    : NaN;
  return Number.isSafeInteger(number) ? number : undefined;
}

/** A size in bytes: a whole number, or text with a KiB/MiB suffix (`64MiB`), of at least 1 KiB. */
export function byteSizeOf(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isSafeInteger(value) ? value : undefined;
  return typeof value === "string" ? parseByteSize(value) : undefined;
}

function byteSize(given: Given): void {
  if (!((byteSizeOf(given.value) ?? 0) >= 1024)) {
    throw invalidGiven(given, {
      expected: "a size of at least 1KiB: bytes, or a number with KiB or MiB",
      sample: "64MiB",
    });
  }
}

function retries(given: Given): void {
  const { value } = given;
  const number = typeof value === "number"
    ? value
    : typeof value === "string" && given.layer !== "config" && INTEGER.test(value.trim())
    ? Number(value.trim())
    : NaN;
  if (!Number.isSafeInteger(number) || number < 0) {
    throw invalidGiven(given, {
      expected: "a whole number, 0 or more (0 = retry forever)",
      sample: "5",
    });
  }
}

function checkToken(given: Given): void {
  const { value } = given;
  if (typeof value !== "string" || value.trim() === "") {
    throw invalidGiven(given, {
      problem: typeof value === "string" ? "it is empty" : `it is ${describeKind(value)}`,
      expected: "the bearer token as a string",
    });
  }
  checkTokenText(value.trim(), { setting: given.name, secret: true, source: given.file });
}

/**
 * Rules for any token, wherever it came from (a setting or a token file); the token is never shown.
 *
 * @throws {ConfigError} For a `Bearer ` prefix, or whitespace or control characters inside.
 */
export function checkTokenText(
  token: string,
  where: { setting: string; secret: boolean; source?: string | undefined },
): void {
  const named = {
    setting: where.setting,
    secret: where.secret,
    ...(where.source === undefined ? {} : { source: where.source }),
  };
  if (/^bearer\s/i.test(token)) {
    throw invalidSetting({
      ...named,
      problem: "it starts with 'Bearer '",
      expected: "the token alone (the proxy adds the 'Bearer ' prefix itself)",
    });
  }
  // deno-lint-ignore no-control-regex
  if (/[\s\x00-\x1f\x7f]/.test(token)) {
    throw invalidSetting({
      ...named,
      problem: "it contains whitespace or control characters inside the token",
      expected: "a single word; check for a pasted line break or extra text",
    });
  }
}
