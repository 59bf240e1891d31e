// The flags and environment of `mcp-rproxy serve` → validated ServeSettings; every bad value becomes one
// ConfigError naming the flag or variable, the value seen and the fix.

import type { LogLevel } from "@logtape/logtape";
import { formatByteSize } from "../util/byte_size.ts";
import { parseFlags } from "../util/cli_flags.ts";
import { ConfigError, invalidSetting } from "../util/errors.ts";
import { LEVEL_CHOICES, type LogFormat, parseLevel } from "../util/log.ts";
import {
  CLUSTER_FLAGS,
  type ClusterSettings,
  parseClusterSettings,
} from "./cluster/cluster_config.ts";
import { GATEWAY_DEFAULTS } from "./gateway.ts";
import { JWT_SECRET_ENV, LOG_FORMAT_ENV, LOG_LEVEL_ENV, SERVE_DEFAULTS } from "./help.ts";
import {
  bufferSize,
  byteSize,
  flagOrEnv,
  hostPort,
  httpUrl,
  issuerUrl,
  MAX_BODY_RATE,
  MAX_BUFFER_BYTES,
  MAX_FRAME_BYTES,
  positive,
  secondsMs,
  wholeNumber,
} from "./config_values.ts";
import { OAUTH_DEFAULTS } from "./token_store.ts";
import { resolveStateDir, type StateDirChoice } from "./state/state_dir.ts";
import { replicaStateDir } from "./cluster/cluster_config.ts";

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
  /** Trusted OAuth authorization servers; empty = OAuth off. */
  oauthIssuers: string[];
  /** Shortest time between two JWKS fetches an unknown key causes, in milliseconds. */
  oauthJwksCooldownMs: number;
  publicUrl?: string;
  allowedOrigins: string[];
  maxFrameBytes: number;
  maxSessionsPerOwner: number;
  maxInflight: number;
  maxQueued: number;
  callTimeoutMs: number;
  heartbeatTimeoutMs: number;
  wsIdleTimeoutSeconds: number;
  /** A link that has not registered this long after its upgrade is closed (4008). */
  registerTimeoutMs: number;
  /** HTTP: headers must arrive within this long. */
  headersTimeoutMs: number;
  /** HTTP: a body gets this long before `bodyMinBytesPerSecond` applies. */
  bodyTimeoutMs: number;
  /** HTTP: after `bodyTimeoutMs`, bytes a second a body must keep arriving at. */
  bodyMinBytesPerSecond: number;
  /** HTTP: an idle keep-alive connection is closed after this long. */
  keepAliveTimeoutMs: number;
  maxBadFrames: number;
  mcpSessionTtlMs: number;
  /** Resume window in milliseconds; 0 = the `resume` extension is off. */
  resumeWindowMs: number;
  replayFrames: number;
  replayBytes: number;
  /** Unread bytes one MCP client's SSE stream may hold before it is closed. */
  maxClientBufferBytes: number;
  /** MCP client sessions one owner may hold. */
  maxMcpSessionsPerOwner: number;
  /** Open GET streams one token may hold. */
  maxStreamsPerToken: number;
  /** UTF-8 bytes of an `initialize` request's params at most. */
  maxInitializeBytes: number;
  /** Memory held for others in total, bytes. */
  memoryBudgetBytes: number;
  /** Memory held for one owner, bytes. */
  memoryPerOwnerBytes: number;
  /** Resumable SSE streams of MCP clients: replay bounds, resume window and `retry:` (ms). */
  sseReplayBytes: number;
  sseReplayEvents: number;
  sseResumeWindowMs: number;
  sseRetryMs: number;
  /** A comment line on every SSE link this often, in milliseconds. */
  sseLinkKeepaliveMs: number;
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** `HOST:PORT` of the health and metrics listener; undefined = off. */
  healthListen?: string;
  /** Where sessions are kept across restarts (`--state-dir`); its `dir` undefined = memory only. */
  state: StateDirChoice;
  /** Replicas sharing state in Redis (`--redis`); undefined = a single serve. */
  cluster?: ClusterSettings;
}

/** The flags of `serve`, for parseArgs. */
export const SERVE_FLAGS = {
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
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
  "oauth-issuer": { type: "string", multiple: true },
  "oauth-jwks-cooldown": { type: "string" },
  "max-frame-bytes": { type: "string" },
  "max-sessions-per-owner": { type: "string" },
  "max-inflight": { type: "string" },
  "max-queued": { type: "string" },
  "call-timeout": { type: "string" },
  "heartbeat-timeout": { type: "string" },
  "ws-idle-timeout": { type: "string" },
  "register-timeout": { type: "string" },
  "headers-timeout": { type: "string" },
  "body-timeout": { type: "string" },
  "body-min-rate": { type: "string" },
  "keepalive-timeout": { type: "string" },
  "max-bad-frames": { type: "string" },
  "mcp-session-ttl": { type: "string" },
  "resume-window": { type: "string" },
  "replay-frames": { type: "string" },
  "replay-bytes": { type: "string" },
  "max-client-buffer": { type: "string" },
  "max-mcp-sessions-per-owner": { type: "string" },
  "max-streams-per-token": { type: "string" },
  "max-initialize-bytes": { type: "string" },
  "memory-budget": { type: "string" },
  "memory-per-owner": { type: "string" },
  "sse-replay-bytes": { type: "string" },
  "sse-replay-events": { type: "string" },
  "sse-resume-window": { type: "string" },
  "sse-retry": { type: "string" },
  "sse-link-keepalive": { type: "string" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  "health-listen": { type: "string" },
  "state-dir": { type: "string" },
  ...CLUSTER_FLAGS,
} as const;

/**
 * With OAuth, the resource URLs that tokens must name are built on a fixed base: `--public-url`, else the
 * address listened on. A wildcard address is no URL anyone can be issued a token for.
 */
function checkOAuthBase(hostname: string, publicUrl: string | undefined): void {
  if (publicUrl !== undefined || (hostname !== "0.0.0.0" && hostname !== "::")) return;
  throw new ConfigError(
    `--oauth-issuer needs --public-url when listening on ${hostname}: access tokens are issued for the gateway's URL, which the listen address does not name; give --public-url https://gw.example.com (the URL clients use)`,
  );
}

/** The host name, for a default replica id; without `--allow-sys=hostname` a neutral word. */
function machineHostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "replica";
  }
}

/**
 * Parses the arguments after `serve` and serve's environment variables. Returns `"help"` for `--help`
 * and `"version"` for `--version`.
 *
 * @throws {ConfigError} On bad input, naming the flag or variable, the value seen and the fix.
 *
 * @example
 * ```ts
 * import { parseServeArgs } from "./config.ts";
 * const args = ["--listen", "127.0.0.1:0", "--tokens-file", "tokens.yaml", "--state-dir", "none"];
 * const settings = parseServeArgs(args, () => undefined);
 * if (typeof settings === "object") settings.port; // 0
 * ```
 */
export function parseServeArgs(
  args: string[],
  env: (name: string) => string | undefined,
  machineName: () => string = machineHostname,
): ServeSettings | "help" | "version" {
  const { values } = parseFlags(args, { command: "serve", flags: SERVE_FLAGS });
  if (values.help) return "help";
  if (values.version) return "version";
  const d = GATEWAY_DEFAULTS;
  const { hostname, port } = values.listen === undefined
    ? { hostname: d.hostname, port: d.port }
    : hostPort("--listen", values.listen);

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
    (env(JWT_SECRET_ENV)?.trim() ?? "") !== "";
  const oauthIssuers = [
    ...new Set((values["oauth-issuer"] ?? []).map((u) => issuerUrl("--oauth-issuer", u))),
  ];
  if (
    values["tokens-file"] === undefined && values["jwt-secret-file"] === undefined &&
    !jwtSecretFromEnv && oauthIssuers.length === 0
  ) {
    throw new ConfigError(
      `No way to check tokens: give --tokens-file FILE, --jwt-secret-file FILE (or set ${JWT_SECRET_ENV}) and/or --oauth-issuer URL; the gateway never runs without authentication`,
    );
  }
  const publicUrl = values["public-url"];
  if (publicUrl !== undefined) httpUrl("--public-url", publicUrl);
  if (oauthIssuers.length > 0) checkOAuthBase(hostname, publicUrl);
  const healthListen = values["health-listen"];
  if (healthListen !== undefined) hostPort("--health-listen", healthListen);

  const level = flagOrEnv("--log-level", values["log-level"], { name: LOG_LEVEL_ENV, read: env });
  const logLevel = parseLevel(level?.text ?? SERVE_DEFAULTS.logLevel);
  if (logLevel === undefined) {
    throw invalidSetting({
      setting: level!.setting,
      value: level!.text,
      expected: `a log level (${LEVEL_CHOICES}; any case)`,
    });
  }
  const format = flagOrEnv("--log-format", values["log-format"], {
    name: LOG_FORMAT_ENV,
    read: env,
  });
  const logFormat = (format?.text ?? SERVE_DEFAULTS.logFormat).toLowerCase();
  if (logFormat !== "text" && logFormat !== "json") {
    throw invalidSetting({
      setting: format!.setting,
      value: format!.text,
      expected: "text or json",
    });
  }
  /** The flag's value parsed, or the default when the flag is absent. */
  const option = <T>(
    name: keyof typeof SERVE_FLAGS,
    fallback: T,
    parse: (f: string, t: string) => T,
  ) => {
    const text = values[name];
    return typeof text === "string" ? parse(`--${name}`, text) : fallback;
  };
  const cluster = parseClusterSettings(values, { env, hostname: machineName });
  const settings: ServeSettings = {
    hostname,
    port,
    jwtSecretFromEnv,
    jwtAllowNoExp: values["jwt-allow-no-exp"] ?? false,
    oauthIssuers,
    oauthJwksCooldownMs: option(
      "oauth-jwks-cooldown",
      OAUTH_DEFAULTS.jwksCooldownMs,
      (f, t) => secondsMs(f, t, "fetches again for every unknown key"),
    ),
    allowedOrigins: values["allowed-origin"] ?? [],
    maxFrameBytes: option(
      "max-frame-bytes",
      d.maxFrameBytes,
      (f, t) => byteSize(f, t, MAX_FRAME_BYTES),
    ),
    maxSessionsPerOwner: option("max-sessions-per-owner", d.maxSessionsPerOwner, positive),
    maxInflight: option("max-inflight", d.maxInflight, positive),
    maxQueued: option("max-queued", d.maxQueued, positive),
    callTimeoutMs: option("call-timeout", d.callTimeoutMs, secondsMs),
    heartbeatTimeoutMs: option("heartbeat-timeout", d.heartbeatTimeoutMs, secondsMs),
    wsIdleTimeoutSeconds: option(
      "ws-idle-timeout",
      d.wsIdleTimeoutSeconds,
      (f, t) => wholeNumber(f, t, 0, " (0 = off)"),
    ),
    registerTimeoutMs: option("register-timeout", d.registerTimeoutMs, secondsMs),
    headersTimeoutMs: option("headers-timeout", d.headersTimeoutMs, secondsMs),
    bodyTimeoutMs: option("body-timeout", d.bodyTimeoutMs, secondsMs),
    bodyMinBytesPerSecond: option(
      "body-min-rate",
      d.bodyMinBytesPerSecond,
      (f, t) => byteSize(f, t, MAX_BODY_RATE),
    ),
    keepAliveTimeoutMs: option("keepalive-timeout", d.keepAliveTimeoutMs, secondsMs),
    maxBadFrames: option("max-bad-frames", d.maxBadFrames, positive),
    mcpSessionTtlMs: option("mcp-session-ttl", d.mcpSessionTtlMs, secondsMs),
    resumeWindowMs: option(
      "resume-window",
      d.resumeWindowMs,
      (f, t) => secondsMs(f, t, "turns resumption off"),
    ),
    replayFrames: option("replay-frames", d.replayFrames, positive),
    replayBytes: option("replay-bytes", d.replayBytes, (f, t) => byteSize(f, t, MAX_BUFFER_BYTES)),
    maxClientBufferBytes: option(
      "max-client-buffer",
      d.maxClientBufferBytes,
      (f, t) => byteSize(f, t, MAX_BUFFER_BYTES),
    ),
    maxMcpSessionsPerOwner: option(
      "max-mcp-sessions-per-owner",
      d.maxMcpSessionsPerOwner,
      positive,
    ),
    maxStreamsPerToken: option("max-streams-per-token", d.maxStreamsPerToken, positive),
    maxInitializeBytes: option(
      "max-initialize-bytes",
      d.maxInitializeBytes,
      (f, t) => byteSize(f, t, MAX_FRAME_BYTES),
    ),
    memoryBudgetBytes: option(
      "memory-budget",
      d.memoryBudgetBytes,
      (f, t) => byteSize(f, t, MAX_BUFFER_BYTES),
    ),
    memoryPerOwnerBytes: option(
      "memory-per-owner",
      d.memoryPerOwnerBytes,
      (f, t) => byteSize(f, t, MAX_BUFFER_BYTES),
    ),
    sseReplayBytes: option("sse-replay-bytes", d.sseReplayBytes, bufferSize),
    sseReplayEvents: option("sse-replay-events", d.sseReplayEvents, positive),
    sseResumeWindowMs: option("sse-resume-window", d.sseResumeWindowMs, secondsMs),
    sseRetryMs: option("sse-retry", d.sseRetryMs, (f, t) => Math.ceil(secondsMs(f, t))),
    sseLinkKeepaliveMs: option(
      "sse-link-keepalive",
      d.sseLinkKeepaliveMs,
      (f, t) => secondsMs(f, t),
    ),
    logLevel,
    logFormat,
    state: cluster === undefined
      ? resolveStateDir(values["state-dir"], env)
      : replicaStateDir(values["state-dir"], env),
  };
  const paths = [
    ["tls-cert", "tlsCertFile"],
    ["tls-key", "tlsKeyFile"],
    ["tokens-file", "tokensFile"],
    ["jwt-secret-file", "jwtSecretFile"],
    ["jwt-audience", "jwtAudience"],
    ["jwt-issuer", "jwtIssuer"],
    ["public-url", "publicUrl"],
    ["health-listen", "healthListen"],
  ] as const;
  for (const [flag, key] of paths) {
    const value = values[flag];
    if (value !== undefined) settings[key] = value;
  }
  if (cluster !== undefined) settings.cluster = cluster;
  if (settings.memoryPerOwnerBytes > settings.memoryBudgetBytes) {
    throw invalidSetting({
      setting: "--memory-per-owner",
      value: values["memory-per-owner"] ?? formatByteSize(settings.memoryPerOwnerBytes),
      problem: `it is more than --memory-budget (${formatByteSize(settings.memoryBudgetBytes)})`,
      expected: "at most the total budget",
      example: `--memory-per-owner ${formatByteSize(settings.memoryBudgetBytes / 4)}`,
    });
  }
  return settings;
}
