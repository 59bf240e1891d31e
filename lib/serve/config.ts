// Flags of `mcp-rproxy serve` → validated settings, with messages that name the flag, the value and the fix.

import { parseArgs } from "node:util";
import type { LogLevel } from "@logtape/logtape";
import { ConfigError } from "../util/errors.ts";
import { LEVEL_CHOICES, type LogFormat, parseLevel } from "../util/log.ts";
import { GATEWAY_DEFAULTS } from "./gateway.ts";

/** Settings of `serve`, validated, defaults applied. Secrets are read later from the files named here. */
export interface ServeSettings {
  hostname: string;
  port: number;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  tokensFile?: string;
  jwtSecretFile?: string;
  /** True when the JWT secret comes from `MCP_RPROXY_JWT_SECRET` (never stored here). */
  jwtSecretFromEnv: boolean;
  jwtAudience?: string;
  jwtIssuer?: string;
  jwtAllowNoExp: boolean;
  publicUrl?: string;
  allowedOrigins: string[];
  maxFrameBytes: number;
  maxSessionsPerOwner: number;
  maxInflight: number;
  callTimeoutMs: number;
  heartbeatTimeoutMs: number;
  wsIdleTimeoutSeconds: number;
  maxBadFrames: number;
  mcpSessionTtlMs: number;
  /** Resume window in milliseconds; 0 = the `resume` extension is off. */
  resumeWindowMs: number;
  replayFrames: number;
  replayBytes: number;
  /** Unread bytes one MCP client's SSE stream may hold before it is closed. */
  maxClientBufferBytes: number;
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** `HOST:PORT` of the health and metrics listener; undefined = off. */
  healthListen?: string;
}

/** The environment variable that may hold the JWT secret instead of `--jwt-secret-file`. */
export const JWT_SECRET_ENV = "MCP_RPROXY_JWT_SECRET";

/**
 * Help text of `mcp-rproxy serve`.
 *
 * @example
 * ```ts
 * import { serveHelpText } from "./config.ts";
 * serveHelpText().includes("--listen"); // true
 * ```
 */
export function serveHelpText(): string {
  const d = GATEWAY_DEFAULTS;
  return `Usage: mcp-rproxy serve [options]

Runs the gateway: accepts 'mcp-rproxy connect' links at /reverse-proxy/ws and serves each registered
server to MCP clients at /servers/<name>/mcp (Streamable HTTP). At least one of --tokens-file,
--jwt-secret-file or ${JWT_SECRET_ENV} is required: there is no anonymous access.

Listening
  --listen HOST:PORT            address to listen on (default ${d.hostname}:${d.port}; port 0 = any free)
  --tls-cert FILE               PEM certificate chain: serve HTTPS/WSS (needs --tls-key)
  --tls-key FILE                PEM private key (needs --tls-cert)
  --public-url URL              base URL clients use (behind a proxy); MCP URLs are built from it
  --allowed-origin ORIGIN       extra allowed Origin for MCP endpoints; repeatable; '*' allows any

Authentication
  --tokens-file FILE            tokens, one per line ('TOKEN [OWNER]') or a YAML map
                                'TOKEN: OWNER' / 'TOKEN: {owner: O, roles: [connect, client, admin]}'
  --jwt-secret-file FILE        HS256 secret for ContextForge JWTs (or env ${JWT_SECRET_ENV})
  --jwt-audience AUD            required 'aud' claim (default: not checked)
  --jwt-issuer ISS              required 'iss' claim (default: not checked)
  --jwt-allow-no-exp            accept JWTs without 'exp' (default: refused)

Limits
  --max-frame-bytes N           largest frame and MCP request body; suffixes KiB, MiB (default ${
    d.maxFrameBytes / 1024 / 1024
  }MiB)
  --max-sessions-per-owner N    live links per owner (default ${d.maxSessionsPerOwner})
  --max-inflight N              calls in flight per link (default ${d.maxInflight})
  --call-timeout SECONDS        deadline of one call (default ${d.callTimeoutMs / 1000})
  --heartbeat-timeout SECONDS   close a link silent for this long (default ${
    d.heartbeatTimeoutMs / 1000
  })
  --ws-idle-timeout SECONDS     WebSocket ping timeout, 0 = off (default ${d.wsIdleTimeoutSeconds})
  --max-bad-frames N            malformed frames a minute before a link is closed (default ${d.maxBadFrames})
  --mcp-session-ttl SECONDS     forget idle MCP client sessions after this long (default ${
    d.mcpSessionTtlMs / 1000
  })
  --max-client-buffer N         unread bytes one MCP client's SSE stream may hold before it is closed;
                                suffixes KiB, MiB (default ${
    d.maxClientBufferBytes / 1024 / 1024
  }MiB)

Resumption (links that drop and come back lose nothing; docs/resume.md)
  --resume-window SECONDS       keep a session whose link dropped this long for its client to resume it;
                                0 = off (default ${d.resumeWindowMs / 1000})
  --replay-frames N             data frames kept per session until the client acknowledges them (default ${d.replayFrames})
  --replay-bytes N              bytes kept per session for replay; suffixes KiB, MiB (default ${
    d.replayBytes / 1024 / 1024
  }MiB)

Operations
  --health-listen HOST:PORT     serve /healthz, /readyz and Prometheus /metrics on this address (default off)

Logging
  --log-level LEVEL             ${LEVEL_CHOICES} (default info; env MCP_RPROXY_LOG_LEVEL)
  --log-format text|json        (default text; env MCP_RPROXY_LOG_FORMAT)
  -h, --help                    show this help
`;
}

function positiveInt(flag: string, text: string, allowZero = false): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || (!allowZero && value === 0)) {
    throw new ConfigError(
      `Invalid ${flag} ${JSON.stringify(text)}: expected a ${
        allowZero ? "non-negative" : "positive"
      } whole number, for example ${flag} 10`,
    );
  }
  return value;
}

function nonNegativeSeconds(flag: string, text: string): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value) || value < 0) {
    throw new ConfigError(
      `Invalid ${flag} ${
        JSON.stringify(text)
      }: expected a number of seconds (0 turns it off), for example ${flag} 60`,
    );
  }
  return value * 1000;
}

function seconds(flag: string, text: string): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value) || value <= 0) {
    throw new ConfigError(
      `Invalid ${flag} ${
        JSON.stringify(text)
      }: expected a positive number of seconds, for example ${flag} 30`,
    );
  }
  return value * 1000;
}

/**
 * Parses a byte size: a whole number with an optional `KiB`/`MiB`/`KB`/`MB`/`K`/`M` suffix.
 *
 * @example
 * ```ts
 * import { parseByteSize } from "./config.ts";
 * parseByteSize("--max-frame-bytes", "16MiB"); // 16777216
 * ```
 */
export function parseByteSize(
  flag: string,
  text: string,
  max: number = 64 * 1024 * 1024 - 1,
): number {
  const match = text.trim().match(/^(\d+)\s*(|b|k|kb|kib|m|mb|mib)$/i);
  const units: Record<string, number> = { "": 1, b: 1, k: 1024, kb: 1024, kib: 1024 };
  const unit = match?.[2]?.toLowerCase() ?? "";
  const factor = units[unit] ?? 1024 * 1024;
  const value = match ? Number(match[1]) * factor : NaN;
  if (!Number.isSafeInteger(value) || value < 1024) {
    throw new ConfigError(
      `Invalid ${flag} ${
        JSON.stringify(text)
      }: expected a size of at least 1KiB such as 16MiB or 1048576`,
    );
  }
  if (value > max && max !== 64 * 1024 * 1024 - 1) {
    throw new ConfigError(
      `Invalid ${flag} ${JSON.stringify(text)}: at most ${Math.floor(max / 1024 / 1024)}MiB`,
    );
  }
  if (value > max) {
    throw new ConfigError(
      `Invalid ${flag} ${
        JSON.stringify(text)
      }: WebSocket messages are limited to 64MiB - 1 byte; use at most 63MiB`,
    );
  }
  return value;
}

/**
 * Splits `HOST:PORT` (`[::1]:8080` for IPv6).
 *
 * @example
 * ```ts
 * import { parseListen } from "./config.ts";
 * parseListen("0.0.0.0:9000"); // { hostname: "0.0.0.0", port: 9000 }
 * ```
 */
export function parseListen(text: string): { hostname: string; port: number } {
  const match = text.trim().match(/^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/);
  const port = Number(match?.[3]);
  if (!match || port > 65535) {
    throw new ConfigError(
      `Invalid --listen ${
        JSON.stringify(text)
      }: expected HOST:PORT such as 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080 (port 0 picks a free one)`,
    );
  }
  return { hostname: match[1] ?? match[2]!, port };
}

/**
 * Parses the arguments after `serve`. Returns `"help"` for `--help`. Throws {@link ConfigError} on bad input.
 *
 * @example
 * ```ts
 * import { parseServeArgs } from "./config.ts";
 * const settings = parseServeArgs(["--listen", "127.0.0.1:0", "--tokens-file", "tokens.yaml"], () => undefined);
 * if (settings !== "help") settings.port; // 0
 * ```
 */
export function parseServeArgs(
  args: string[],
  env: (name: string) => string | undefined,
): ServeSettings | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        help: { type: "boolean", short: "h" },
        listen: { type: "string" },
        "tls-cert": { type: "string" },
        "tls-key": { type: "string" },
        "public-url": { type: "string" },
        "allowed-origin": { type: "string", multiple: true },
        "tokens-file": { type: "string" },
        "jwt-secret-file": { type: "string" },
        "jwt-audience": { type: "string" },
        "jwt-issuer": { type: "string" },
        "jwt-allow-no-exp": { type: "boolean" },
        "max-frame-bytes": { type: "string" },
        "max-sessions-per-owner": { type: "string" },
        "max-inflight": { type: "string" },
        "call-timeout": { type: "string" },
        "heartbeat-timeout": { type: "string" },
        "ws-idle-timeout": { type: "string" },
        "max-bad-frames": { type: "string" },
        "mcp-session-ttl": { type: "string" },
        "resume-window": { type: "string" },
        "replay-frames": { type: "string" },
        "replay-bytes": { type: "string" },
        "max-client-buffer": { type: "string" },
        "log-level": { type: "string" },
        "log-format": { type: "string" },
        "health-listen": { type: "string" },
      },
    }));
  } catch (error) {
    throw new ConfigError(
      `${(error as Error).message.replace(/\.$/, "")}; run 'mcp-rproxy serve --help' for the flags`,
      { cause: error },
    );
  }
  if (values.help) return "help";
  const d = GATEWAY_DEFAULTS;
  const { hostname, port } = parseListen(values.listen ?? `${d.hostname}:${d.port}`);

  const tlsCert = values["tls-cert"];
  const tlsKey = values["tls-key"];
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw new ConfigError(
      `${
        tlsCert === undefined ? "--tls-key" : "--tls-cert"
      } was given alone: HTTPS needs both --tls-cert and --tls-key`,
    );
  }
  const jwtSecretFromEnv = values["jwt-secret-file"] === undefined &&
    (env(JWT_SECRET_ENV) ?? "") !== "";
  if (
    values["tokens-file"] === undefined && values["jwt-secret-file"] === undefined &&
    !jwtSecretFromEnv
  ) {
    throw new ConfigError(
      `No way to check tokens: give --tokens-file FILE and/or --jwt-secret-file FILE (or set ${JWT_SECRET_ENV}); the gateway never runs without authentication`,
    );
  }
  const publicUrl = values["public-url"];
  if (publicUrl !== undefined) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(publicUrl);
    } catch {
      parsed = undefined;
    }
    if (parsed === undefined || !["http:", "https:"].includes(parsed.protocol)) {
      throw new ConfigError(
        `Invalid --public-url ${
          JSON.stringify(publicUrl)
        }: expected an http:// or https:// URL such as https://gw.example.com`,
      );
    }
  }
  const healthListen = values["health-listen"];
  if (healthListen !== undefined) {
    try {
      parseListen(healthListen);
    } catch {
      throw new ConfigError(
        `Invalid --health-listen ${
          JSON.stringify(healthListen)
        }: expected HOST:PORT such as 127.0.0.1:9464 (port 0 picks a free one)`,
      );
    }
  }
  const levelText = values["log-level"] ?? env("MCP_RPROXY_LOG_LEVEL") ?? "info";
  const logLevel = parseLevel(levelText);
  if (logLevel === undefined) {
    throw new ConfigError(
      `Invalid log level ${JSON.stringify(levelText)}: expected one of ${LEVEL_CHOICES}`,
    );
  }
  const logFormat = values["log-format"] ?? env("MCP_RPROXY_LOG_FORMAT") ?? "text";
  if (logFormat !== "text" && logFormat !== "json") {
    throw new ConfigError(
      `Invalid --log-format ${JSON.stringify(logFormat)}: expected text or json`,
    );
  }
  const optional = (flag: string) => values[flag as keyof typeof values] as string | undefined;
  /** The flag's value parsed, or the default when the flag is absent. */
  const option = <T>(name: string, fallback: T, parse: (flag: string, text: string) => T): T => {
    const text = optional(name);
    return text === undefined ? fallback : parse(`--${name}`, text);
  };
  const settings: ServeSettings = {
    hostname,
    port,
    jwtSecretFromEnv,
    jwtAllowNoExp: values["jwt-allow-no-exp"] ?? false,
    allowedOrigins: values["allowed-origin"] ?? [],
    maxFrameBytes: option("max-frame-bytes", d.maxFrameBytes, parseByteSize),
    maxSessionsPerOwner: option("max-sessions-per-owner", d.maxSessionsPerOwner, positiveInt),
    maxInflight: option("max-inflight", d.maxInflight, positiveInt),
    callTimeoutMs: option("call-timeout", d.callTimeoutMs, seconds),
    heartbeatTimeoutMs: option("heartbeat-timeout", d.heartbeatTimeoutMs, seconds),
    wsIdleTimeoutSeconds: option(
      "ws-idle-timeout",
      d.wsIdleTimeoutSeconds,
      (f, t) => positiveInt(f, t, true),
    ),
    maxBadFrames: option("max-bad-frames", d.maxBadFrames, positiveInt),
    mcpSessionTtlMs: option("mcp-session-ttl", d.mcpSessionTtlMs, seconds),
    resumeWindowMs: option("resume-window", d.resumeWindowMs, nonNegativeSeconds),
    replayFrames: option("replay-frames", d.replayFrames, positiveInt),
    replayBytes: option(
      "replay-bytes",
      d.replayBytes,
      (f, t) => parseByteSize(f, t, 4 * 1024 * 1024 * 1024),
    ),
    maxClientBufferBytes: option(
      "max-client-buffer",
      d.maxClientBufferBytes,
      (f, t) => parseByteSize(f, t, 4 * 1024 * 1024 * 1024),
    ),
    logLevel,
    logFormat,
  };
  for (
    const [flag, key] of [
      ["tls-cert", "tlsCertFile"],
      ["tls-key", "tlsKeyFile"],
      ["tokens-file", "tokensFile"],
      ["jwt-secret-file", "jwtSecretFile"],
      ["jwt-audience", "jwtAudience"],
      ["jwt-issuer", "jwtIssuer"],
      ["public-url", "publicUrl"],
      ["health-listen", "healthListen"],
    ] as const
  ) {
    const value = optional(flag);
    if (value !== undefined) settings[key] = value;
  }
  return settings;
}
