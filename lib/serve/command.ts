// `mcp-rproxy serve`: flags → files → token store → gateway, running until the signal aborts.

import type { Sink } from "@logtape/logtape";
import { ConfigError, ExitCode } from "../util/errors.ts";
import { type HealthServer, startHealthServer } from "../util/health_server.ts";
import { logger, setupLogging, shutdownLogging } from "../util/log.ts";
import { createServeMetrics } from "./metrics.ts";
import { VERSION } from "../util/version.ts";
import { type Gateway, startGateway } from "./gateway.ts";
import { JWT_SECRET_ENV, parseServeArgs, serveHelpText, type ServeSettings } from "./config.ts";
import { createTokenStore, type TokenStore } from "./token_store.ts";
import { reloadTokensOnRequest, type TokensReload } from "./tokens_reload.ts";

const log = logger("serve");

/** Options of {@link serveCommand}. */
export interface ServeCommandOptions {
  /** Aborting stops the gateway: links are closed with 1001 and the command returns 0. */
  signal: AbortSignal;
  /** Reads an environment variable. */
  env: (name: string) => string | undefined;
  /** Reads a file as text (tokens file, JWT secret, TLS files). */
  readTextFile: (path: string) => Promise<string>;
  /** Where log records go; stderr when omitted. */
  logSink?: Sink;
  /** Set up (and at the end reset) logging from the flags. Default true. */
  configureLogging?: boolean;
  /** Where `--help` is written. Default stdout. */
  writeOut?: (text: string) => void;
  /** Subscribes to reload requests (SIGHUP): the tokens file is read again. Returns the removal. */
  subscribeReload?: (listener: () => void) => () => void;
}

function writeStdout(text: string): void {
  const bytes = new TextEncoder().encode(text);
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}

async function readSetting(
  options: ServeCommandOptions,
  flag: string,
  path: string,
): Promise<string> {
  try {
    return await options.readTextFile(path);
  } catch (error) {
    const why = error instanceof Deno.errors.NotFound
      ? "it does not exist"
      : error instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : (error as Error).message;
    throw new ConfigError(`Cannot read ${flag} ${JSON.stringify(path)}: ${why}; check the path`, {
      cause: error,
    });
  }
}

async function buildTokenStore(
  settings: ServeSettings,
  options: ServeCommandOptions,
): Promise<TokenStore> {
  const tokensText = settings.tokensFile === undefined
    ? undefined
    : await readSetting(options, "--tokens-file", settings.tokensFile);
  let secret: string | undefined;
  if (settings.jwtSecretFile !== undefined) {
    secret = (await readSetting(options, "--jwt-secret-file", settings.jwtSecretFile)).trim();
    if (secret === "") {
      throw new ConfigError(
        `--jwt-secret-file ${
          JSON.stringify(settings.jwtSecretFile)
        } is empty; put the HS256 secret in it`,
      );
    }
  } else if (settings.jwtSecretFromEnv) {
    secret = options.env(JWT_SECRET_ENV)?.trim();
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
    });
  } catch (error) {
    if (error instanceof SyntaxError) {
      throw new ConfigError(
        `Invalid --tokens-file ${JSON.stringify(settings.tokensFile)}: ${error.message}`,
        { cause: error },
      );
    }
    throw error;
  }
}

/**
 * Runs `mcp-rproxy serve` with the arguments after `serve`. Resolves with the exit code: 0 after the signal
 * aborts (or for `--help`), 2 for bad flags or files, 1 when the gateway cannot start.
 *
 * @example
 * ```ts ignore
 * const controller = new AbortController();
 * const code = await serveCommand(["--listen", "127.0.0.1:0", "--tokens-file", "tokens.txt"], {
 *   signal: controller.signal,
 *   env: (name) => Deno.env.get(name),
 *   readTextFile: (path) => Deno.readTextFile(path),
 * });
 * ```
 */
export async function serveCommand(args: string[], options: ServeCommandOptions): Promise<number> {
  const { signal, configureLogging = true, writeOut = writeStdout } = options;
  let settings: ServeSettings | "help";
  try {
    settings = parseServeArgs(args, options.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    if (configureLogging) {
      await setupLogging({
        level: "info",
        format: "text",
        ...(options.logSink ? { sink: options.logSink } : {}),
      });
    }
    log.error("{message}", { message: error.message });
    if (configureLogging) await shutdownLogging();
    return ExitCode.Usage;
  }
  if (settings === "help") {
    writeOut(serveHelpText());
    return ExitCode.Ok;
  }
  if (configureLogging) {
    await setupLogging({
      level: settings.logLevel,
      format: settings.logFormat,
      ...(options.logSink ? { sink: options.logSink } : {}),
    });
  }
  let gateway: Gateway | undefined;
  let health: HealthServer | undefined;
  let reload: TokensReload | undefined;
  const metrics = createServeMetrics({ version: VERSION });
  try {
    const tokens = await buildTokenStore(settings, options);
    if (options.subscribeReload !== undefined) {
      reload = reloadTokensOnRequest({
        subscribe: options.subscribeReload,
        store: tokens,
        path: settings.tokensFile,
        readTextFile: options.readTextFile,
      });
    }
    const tls = settings.tlsCertFile !== undefined && settings.tlsKeyFile !== undefined
      ? {
        cert: await readSetting(options, "--tls-cert", settings.tlsCertFile),
        key: await readSetting(options, "--tls-key", settings.tlsKeyFile),
      }
      : undefined;
    if (signal.aborted) return ExitCode.Ok;
    try {
      gateway = await startGateway({
        tokens,
        hostname: settings.hostname,
        port: settings.port,
        ...(tls === undefined ? {} : { tls }),
        ...(settings.publicUrl === undefined ? {} : { publicUrl: settings.publicUrl }),
        allowedOrigins: settings.allowedOrigins,
        maxFrameBytes: settings.maxFrameBytes,
        maxSessionsPerOwner: settings.maxSessionsPerOwner,
        maxInflight: settings.maxInflight,
        callTimeoutMs: settings.callTimeoutMs,
        heartbeatTimeoutMs: settings.heartbeatTimeoutMs,
        wsIdleTimeoutSeconds: settings.wsIdleTimeoutSeconds,
        maxBadFrames: settings.maxBadFrames,
        mcpSessionTtlMs: settings.mcpSessionTtlMs,
        resumeWindowMs: settings.resumeWindowMs,
        replayFrames: settings.replayFrames,
        replayBytes: settings.replayBytes,
        maxClientBufferBytes: settings.maxClientBufferBytes,
        metrics,
      });
      if (settings.healthListen !== undefined) {
        const running = gateway;
        health = await startHealthServer({
          listen: settings.healthListen,
          ready: () => running !== undefined,
          metrics,
        });
        log.info("Health and metrics on {url}", { url: health.url });
      }
    } catch (error) {
      // A missing --allow-net is the command line's to fix: reported below with the flag, exit 2.
      if (error instanceof Deno.errors.NotCapable) throw error;
      const why = error instanceof Deno.errors.AddrInUse
        ? "the address is in use; pick another --listen port"
        : error instanceof Deno.errors.PermissionDenied
        ? "permission denied (ports below 1024 need privileges)"
        : String(error);
      log.error("Cannot listen: {why}", {
        why: error instanceof Deno.errors.AddrInUse && gateway !== undefined
          ? (error as Error).message
          : `${settings.hostname}:${settings.port}: ${why}`,
      });
      return ExitCode.Failure;
    }
    log.info("Gateway listening on {url}", {
      url: gateway.url,
      websocket: `${gateway.url.replace(/^http/, "ws")}/reverse-proxy/ws`,
    });
    if (!signal.aborted) {
      await new Promise<void>((resolve) =>
        signal.addEventListener("abort", () => resolve(), { once: true })
      );
    }
    log.info("Gateway shutting down");
    return ExitCode.Ok;
  } catch (error) {
    if (error instanceof ConfigError) {
      log.error("{message}", { message: error.message });
      return ExitCode.Usage;
    }
    if (error instanceof Deno.errors.NotCapable) {
      const flag = /--allow-[a-z]+/.exec(error.message)?.[0] ?? "the missing --allow-* flag";
      log.error("Missing permission: {error}; add {flag} (see README, Permissions)", {
        error: error.message.replace(/, run again with.*$/s, ""),
        flag,
      });
      return ExitCode.Usage;
    }
    log.error("Gateway failed: {error}", { error: String(error) });
    return ExitCode.Failure;
  } finally {
    await reload?.close();
    await health?.close();
    await gateway?.close();
    if (configureLogging) await shutdownLogging();
  }
}
