// `mcp-rproxy serve`: flags → files → token store → gateway, running until the signal aborts. Bad input
// throws ConfigError, an address that cannot be listened on throws ListenError; main.ts maps them.

import { wantsHelp } from "../util/cli_flags.ts";
import type { CommandContext } from "../util/command.ts";
import { invalidSetting, listenError, unreadableFile } from "../util/errors.ts";
import { type HealthServer, startHealthServer } from "../util/health_server.ts";
import { formatHostPort } from "../util/host_port.ts";
import { logger } from "../util/log.ts";
import { VERSION } from "../util/version.ts";
import { checkClusterSecret, redactRedisUrl } from "./cluster/cluster_config.ts";
import type { Cluster } from "./cluster/cluster.ts";
import { registerClusterMetrics } from "./cluster/cluster_metrics.ts";
import { parseServeArgs, type ServeSettings } from "./config.ts";
import { type Gateway, startGateway } from "./gateway.ts";
import { JWT_SECRET_ENV, serveHelpText } from "./help.ts";
import { createServeMetrics } from "./metrics.ts";
import { createTokenStore, type TokenStore } from "./token_store.ts";
import { reloadTokensOnRequest, type TokensReload } from "./tokens_reload.ts";
import { ServeState } from "./state/serve_state.ts";
import { RedisStore } from "./state/redis_store.ts";
import { SqliteStore } from "./state/sqlite_store.ts";
import type { StateStore } from "./state/store.ts";

const log = logger("serve");

/** The shortest HS256 secret accepted, in characters. */
const MIN_JWT_SECRET_CHARS = 32;

/** Reads a file a flag names; a failure is the user's to fix (exit code 2). */
async function readNamedFile(
  context: CommandContext,
  file: { what: string; setting: string; path: string },
): Promise<string> {
  try {
    return await context.readTextFile(file.path);
  } catch (error: unknown) {
    throw unreadableFile({ ...file, cause: error });
  }
}

async function buildTokenStore(
  settings: ServeSettings,
  context: CommandContext,
): Promise<TokenStore> {
  const tokensText = settings.tokensFile === undefined ? undefined : await readNamedFile(context, {
    what: "tokens file",
    setting: "--tokens-file",
    path: settings.tokensFile,
  });
  let secret: string | undefined;
  if (settings.jwtSecretFile !== undefined) {
    const path = settings.jwtSecretFile;
    const setting = "--jwt-secret-file";
    secret = (await readNamedFile(context, { what: "JWT secret file", setting, path })).trim();
    if (secret === "") {
      throw invalidSetting({
        setting,
        value: path,
        problem: "the file is empty",
        expected: "the HS256 secret in it",
      });
    }
  } else if (settings.jwtSecretFromEnv) {
    secret = context.env(JWT_SECRET_ENV)?.trim();
  }
  if (secret !== undefined && secret.length < MIN_JWT_SECRET_CHARS) {
    // Whoever holds one of its JWTs can try secrets offline, and with the right one sign any JWT,
    // `is_admin: true` included. 32 characters, as for the cluster secret.
    const file = settings.jwtSecretFile;
    throw invalidSetting({
      setting: file === undefined ? JWT_SECRET_ENV : "--jwt-secret-file",
      ...(file === undefined ? { secret: true } : { value: file }),
      problem:
        `the HS256 secret has ${secret.length} characters, fewer than ${MIN_JWT_SECRET_CHARS}: a client holding one of its JWTs could guess it and sign its own`,
      expected:
        `a secret of at least ${MIN_JWT_SECRET_CHARS} characters (the same as ContextForge's JWT_SECRET_KEY)`,
      example: "openssl rand -base64 48",
    });
  }
  try {
    return await createTokenStore({
      ...(tokensText === undefined ? {} : { tokensFile: tokensText }),
      ...(secret === undefined ? {} : {
        jwt: {
          secret,
          allowNoExp: settings.jwtAllowNoExp,
          ...(settings.jwtAudience === undefined ? {} : { audience: settings.jwtAudience }),
          ...(settings.jwtIssuer === undefined ? {} : { issuer: settings.jwtIssuer }),
        },
      }),
      ...(settings.oauthIssuers.length === 0 ? {} : {
        oauth: { issuers: settings.oauthIssuers, jwksCooldownMs: settings.oauthJwksCooldownMs },
      }),
    });
  } catch (error: unknown) {
    if (!(error instanceof SyntaxError)) throw error;
    throw invalidSetting({
      setting: "--tokens-file",
      value: settings.tokensFile,
      problem: error.message,
      expected: "one 'TOKEN [OWNER]' a line, or a YAML map (docs/serve.md, Tokens)",
    }, { cause: error });
  }
}

async function readTls(
  settings: ServeSettings,
  context: CommandContext,
): Promise<{ cert: string; key: string } | undefined> {
  if (settings.tlsCertFile === undefined || settings.tlsKeyFile === undefined) return undefined;
  return {
    cert: await readNamedFile(context, {
      what: "TLS certificate",
      setting: "--tls-cert",
      path: settings.tlsCertFile,
    }),
    key: await readNamedFile(context, {
      what: "TLS key",
      setting: "--tls-key",
      path: settings.tlsKeyFile,
    }),
  };
}

/**
 * Opens the state store: Redis for a replica (on its own connection for commands), else the one
 * `--state-dir` names; undefined for `none` (memory only, as before).
 */
async function openState(
  settings: ServeSettings,
  cluster: Cluster | undefined,
): Promise<StateStore | undefined> {
  const { dir, setting } = settings.state;
  if (cluster !== undefined) {
    const location = redactRedisUrl(settings.cluster!.redisUrl);
    log.info("State kept in Redis at {location}, shared by the replicas", {
      event: "state_in_redis",
      location,
    });
    return new RedisStore({ client: cluster.commands, location });
  }
  if (dir === undefined) {
    log.info("State is kept in memory only (--state-dir none): a restart forgets every session", {
      event: "state_memory_only",
    });
    return undefined;
  }
  const store = await SqliteStore.open({ dir, setting });
  log.info("State kept in {path}", { event: "state_opened", path: store.location, setting });
  return store;
}

/** Joins the cluster when `--redis` is given: reads and checks the cluster secret first. */
async function joinCluster(
  settings: ServeSettings,
  context: CommandContext,
  metrics: ReturnType<typeof createServeMetrics>,
): Promise<Cluster | undefined> {
  const cluster = settings.cluster;
  if (cluster === undefined) return undefined;
  const path = cluster.secretFile;
  const setting = "--cluster-secret-file";
  const text = await readNamedFile(context, { what: "cluster secret file", setting, path });
  const mode = await Deno.stat(path).then((info) => info.mode, () => null);
  const { secret, warning } = checkClusterSecret(text, { path, mode });
  if (warning !== undefined) log.warning(warning, { event: "secret_file_mode" });
  // Loaded only for replicas: ioredis (through its `debug` dependency) lists the whole environment when
  // it loads, which a single serve's scoped --allow-env would refuse.
  const { Cluster } = await import("./cluster/cluster.ts");
  return Cluster.start({
    settings: cluster,
    secret,
    version: VERSION,
    metrics: registerClusterMetrics(metrics.registry),
  });
}

/**
 * Runs `mcp-rproxy serve` with the arguments after `serve`, until `context.signal` aborts; then closes
 * every link with 1001 and resolves.
 *
 * @throws {ConfigError} Bad flags or environment, an unreadable or invalid file (exit code 2).
 * @throws {ListenError} The address is in use or needs privileges (exit code 1).
 * @throws {StateInUseError} Another process holds the state file (exit code 1).
 *
 * @example
 * ```ts ignore
 * await serveCommand(["--listen", "127.0.0.1:0", "--tokens-file", "tokens.txt"], context);
 * ```
 */
export async function serveCommand(args: string[], context: CommandContext): Promise<void> {
  const { signal } = context;
  if (wantsHelp(args)) {
    context.stdout(serveHelpText());
    return;
  }
  const settings = parseServeArgs(args, context.env);
  if (settings === "help" || settings === "version") {
    context.stdout(settings === "help" ? serveHelpText() : `${VERSION}\n`);
    return;
  }
  await context.setupLogging({ level: settings.logLevel, format: settings.logFormat });
  let gateway: Gateway | undefined;
  let health: HealthServer | undefined;
  let reload: TokensReload | undefined;
  let cluster: Cluster | undefined;
  let store: StateStore | undefined;
  const metrics = createServeMetrics({ version: VERSION });
  try {
    cluster = await joinCluster(settings, context, metrics);
    const tokens = await buildTokenStore(settings, context);
    if (context.subscribeReload !== undefined) {
      reload = reloadTokensOnRequest({
        subscribe: context.subscribeReload,
        store: tokens,
        path: settings.tokensFile,
        readTextFile: context.readTextFile,
      });
    }
    // Found before listening, so that the log says at once whether each issuer works. A failure is
    // logged and retried on use: tokens-file and JWT clients are not held hostage by an absent issuer.
    await Promise.allSettled(tokens.oauthIssuers.map((issuer) => issuer.discover()));
    const tls = await readTls(settings, context);
    if (signal.aborted) return;
    store = await openState(settings, cluster);
    const state = store === undefined ? undefined : new ServeState(store, {
      clientTtlMs: settings.mcpSessionTtlMs,
      // As long as the registrar remembers ended sessions (registration.ts).
      endedKeepMs: Math.max(settings.resumeWindowMs, 60_000),
      // Replicas: a dead replica's records outlive its sessions' resume window, then go.
      ...(cluster === undefined ? {} : {
        tunnelTtlMs: 2 * Math.max(settings.resumeWindowMs, 60_000),
      }),
      metrics,
    });
    try {
      gateway = await startGateway({
        ...(state === undefined ? {} : { state }),
        tokens,
        hostname: settings.hostname,
        port: settings.port,
        ...(tls === undefined ? {} : { tls }),
        ...(settings.publicUrl === undefined ? {} : { publicUrl: settings.publicUrl }),
        allowedOrigins: settings.allowedOrigins,
        maxFrameBytes: settings.maxFrameBytes,
        maxSessionsPerOwner: settings.maxSessionsPerOwner,
        maxInflight: settings.maxInflight,
        maxQueued: settings.maxQueued,
        callTimeoutMs: settings.callTimeoutMs,
        heartbeatTimeoutMs: settings.heartbeatTimeoutMs,
        wsIdleTimeoutSeconds: settings.wsIdleTimeoutSeconds,
        registerTimeoutMs: settings.registerTimeoutMs,
        headersTimeoutMs: settings.headersTimeoutMs,
        bodyTimeoutMs: settings.bodyTimeoutMs,
        bodyMinBytesPerSecond: settings.bodyMinBytesPerSecond,
        keepAliveTimeoutMs: settings.keepAliveTimeoutMs,
        maxBadFrames: settings.maxBadFrames,
        mcpSessionTtlMs: settings.mcpSessionTtlMs,
        resumeWindowMs: settings.resumeWindowMs,
        replayFrames: settings.replayFrames,
        replayBytes: settings.replayBytes,
        maxClientBufferBytes: settings.maxClientBufferBytes,
        maxMcpSessionsPerOwner: settings.maxMcpSessionsPerOwner,
        maxStreamsPerToken: settings.maxStreamsPerToken,
        maxInitializeBytes: settings.maxInitializeBytes,
        memoryBudgetBytes: settings.memoryBudgetBytes,
        memoryPerOwnerBytes: settings.memoryPerOwnerBytes,
        sseReplayBytes: settings.sseReplayBytes,
        sseReplayEvents: settings.sseReplayEvents,
        sseResumeWindowMs: settings.sseResumeWindowMs,
        sseRetryMs: settings.sseRetryMs,
        sseLinkKeepaliveMs: settings.sseLinkKeepaliveMs,
        metrics,
        ...(cluster === undefined ? {} : { cluster }),
      });
    } catch (error: unknown) {
      const address = formatHostPort(settings);
      throw listenError(error, { address, setting: "--listen" }) ?? error;
    }
    if (settings.healthListen !== undefined) {
      const running = gateway;
      const replica = cluster;
      health = await startHealthServer({
        listen: settings.healthListen,
        ready: () => running !== undefined && (replica?.readiness.ready ?? true),
        ...(replica === undefined ? {} : { readyDetail: () => replica.readiness.detail }),
        metrics,
      });
      log.info("Health and metrics on {url}", { event: "health_listening", url: health.url });
    }
    log.info("Gateway listening on {url}", {
      event: "listening",
      url: gateway.url,
      websocket: `${gateway.url.replace(/^http/, "ws")}/reverse-proxy/ws`,
    });
    if (!signal.aborted) {
      await new Promise<void>((resolve) =>
        signal.addEventListener("abort", () => resolve(), { once: true })
      );
    }
    log.info("Gateway shutting down", { event: "gateway_stopping" });
  } finally {
    await reload?.close();
    await health?.close();
    await gateway?.close();
    await store?.close();
    await cluster?.close();
  }
}
