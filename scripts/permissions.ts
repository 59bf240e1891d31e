// The production permission flags of mcp-rproxy: the one list that the README, `deno compile`, the
// container and the end-to-end tests of the bundle all use.

import { normalizeGatewayUrl } from "../lib/connect/link_url.ts";
import { CONTAINER_STATE_DIR } from "../lib/serve/state/state_dir.ts";

/**
 * Environment variables `connect` reads. Deno checks each name: one missing here fails at run time with
 * "Requires env access to …". `tests/e2e/bundle_test.ts` checks that every such name in the source is listed.
 */
export const CONNECT_ENV: readonly string[] = [
  "REVERSE_PROXY_GATEWAY",
  "REVERSE_PROXY_TOKEN",
  "REVERSE_PROXY_TOKEN_FILE",
  "REVERSE_PROXY_RECONNECT_DELAY",
  "REVERSE_PROXY_MAX_RETRIES",
  "REVERSE_PROXY_KEEPALIVE",
  "REVERSE_PROXY_LOG_LEVEL",
  "REVERSE_PROXY_LOG_FORMAT",
  "REVERSE_PROXY_TRANSPORT",
];

/**
 * Environment variables `serve` reads: its own (lib/serve/config.ts), and the two the npm `ws` server reads
 * when it is loaded (lib/serve/http/server.ts; `connect` never loads it, so they are not in its list).
 */
export const SERVE_ENV: readonly string[] = [
  "MCP_RPROXY_JWT_SECRET",
  "MCP_RPROXY_LOG_LEVEL",
  "MCP_RPROXY_LOG_FORMAT",
  "MCP_RPROXY_REDIS_URL",
  "MCP_RPROXY_STATE_DIR",
  // The default state directory (lib/serve/state/state_dir.ts); read only without --state-dir.
  "XDG_STATE_HOME",
  "HOME",
  "WS_NO_BUFFER_UTIL",
  "WS_NO_UTF_8_VALIDATE",
];

/** Options of {@link connectPermissions}. */
export interface ConnectPermissionOptions {
  /** The local server program (first word of `--local-stdio`), as it will be spawned. */
  command: string;
  /** `--config` file, if any. */
  configFile?: string;
  /** `--token-file`, if any. */
  tokenFile?: string;
  /** `--cert` (extra CA) file, if any. */
  certFile?: string;
  /** The gateway as `HOST:PORT` (see {@link gatewayNetTarget}); unknown means any host. */
  gatewayHost?: string;
  /** `--health-listen` as `HOST:PORT`, if any. */
  healthListen?: string;
  /**
   * Signal the server's whole process group on shutdown (default true). Deno 2.9 allows
   * `Deno.kill(-pgid)` only with an unscoped `--allow-run`; with false, `--allow-run=<command>` is
   * given instead and grandchildren (the real server behind `npx`, `uvx`) outlive a stop.
   */
  processGroup?: boolean;
}

/** Options of {@link servePermissions}. */
export interface ServePermissionOptions {
  /** `--listen` as `HOST:PORT`; unknown means any. */
  listen?: string;
  /** `--health-listen` as `HOST:PORT`, if any. */
  healthListen?: string;
  /** `--tokens-file`, if any. */
  tokensFile?: string;
  /** `--jwt-secret-file`, if any. */
  jwtSecretFile?: string;
  /** `--tls-cert`, if any. */
  tlsCertFile?: string;
  /** `--tls-key`, if any. */
  tlsKeyFile?: string;
  /**
   * The state directory serve will use (`--state-dir`, or the default it resolves to): read and
   * written, nothing else. Leave it out for `--state-dir none`.
   */
  stateDir?: string;
  /**
   * A replica: Redis as `HOST:PORT` (from `--redis`). ioredis's `debug` dependency lists the whole
   * environment when it loads, so a replica needs unscoped `--allow-env`; the default replica id reads the
   * host name (`--allow-sys=hostname`).
   */
  redis?: string;
  /** `--cluster-secret-file`, with `redis`. */
  clusterSecretFile?: string;
}

/**
 * `HOST:PORT` that `--allow-net` must name for a gateway address in any form `connect` accepts; the
 * port is the scheme's default when the URL has none.
 *
 * @example
 * ```ts
 * import { gatewayNetTarget } from "./permissions.ts";
 * gatewayNetTarget("https://gw.example.com/mcp"); // "gw.example.com:443"
 * gatewayNetTarget("ws://127.0.0.1:4444"); // "127.0.0.1:4444"
 * ```
 */
export function gatewayNetTarget(gateway: string): string {
  const url = normalizeGatewayUrl(gateway);
  return `${url.hostname}:${url.port || (url.protocol === "wss:" ? "443" : "80")}`;
}

function scoped(flag: string, values: readonly (string | undefined)[]): string[] {
  const known = values.filter((value): value is string => value !== undefined && value !== "");
  return known.length === 0 ? [] : [`${flag}=${[...new Set(known)].join(",")}`];
}

/**
 * The narrowest flags `connect` works with. Network goes to the gateway (and the health listener)
 * only; files are the ones named; environment access is the documented variables only. No `--allow-sys`,
 * `--allow-write` or `--allow-ffi`.
 *
 * @example
 * ```ts
 * import { connectPermissions } from "./permissions.ts";
 * connectPermissions({ command: "npx", gatewayHost: "gw.example.com:443" });
 * // ["--allow-net=gw.example.com:443", "--allow-run", "--allow-env=REVERSE_PROXY_GATEWAY,…"]
 * ```
 */
export function connectPermissions(options: ConnectPermissionOptions): string[] {
  const { command, gatewayHost, healthListen, processGroup = true } = options;
  if (command.trim() === "") {
    throw new TypeError(
      "Cannot compute permissions as 'command' is empty: give the server program",
    );
  }
  return [
    gatewayHost === undefined
      ? "--allow-net"
      : `--allow-net=${gatewayHost}${healthListen ? `,${healthListen}` : ""}`,
    processGroup ? "--allow-run" : `--allow-run=${command}`,
    ...scoped("--allow-read", [options.configFile, options.tokenFile, options.certFile]),
    `--allow-env=${CONNECT_ENV.join(",")}`,
  ];
}

/**
 * The narrowest flags `serve` works with: listening on the given addresses, reading the named files,
 * reading and writing its state directory, and the documented variables. No `--allow-run`.
 *
 * @example
 * ```ts
 * import { servePermissions } from "./permissions.ts";
 * servePermissions({ listen: "0.0.0.0:8080", tokensFile: "/etc/mcp-rproxy/tokens.txt" });
 * // ["--allow-net=0.0.0.0:8080", "--allow-read=/etc/mcp-rproxy/tokens.txt", "--allow-env=…"]
 * ```
 */
export function servePermissions(options: ServePermissionOptions = {}): string[] {
  const { listen, healthListen, redis } = options;
  return [
    listen === undefined
      ? "--allow-net"
      : `--allow-net=${[listen, healthListen, redis].filter((a) => a).join(",")}`,
    ...scoped("--allow-read", [
      options.tokensFile,
      options.jwtSecretFile,
      options.tlsCertFile,
      options.tlsKeyFile,
      options.stateDir,
      options.clusterSecretFile,
    ]),
    ...scoped("--allow-write", [options.stateDir]),
    ...(redis === undefined
      ? [`--allow-env=${SERVE_ENV.join(",")}`]
      : ["--allow-env", "--allow-sys=hostname"]),
  ];
}

/**
 * Flags baked into `deno compile` binaries, which serve both commands and cannot take flags at run time.
 * Broader than {@link connectPermissions} and {@link servePermissions}, since the gateway, the listen
 * address, the files and the server program are only known at run time: any host, any program, any file
 * read. Writes go to the container's state directory only; environment access stays limited to the
 * named variables; there is no FFI or sys access.
 */
export const COMPILE_PERMISSIONS: readonly string[] = [
  "--allow-net",
  "--allow-run",
  "--allow-read",
  `--allow-write=${CONTAINER_STATE_DIR}`,
  `--allow-env=${[...new Set([...CONNECT_ENV, ...SERVE_ENV])].join(",")}`,
];

/** Quotes a word for a POSIX shell when it needs it. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * A ready-to-paste `deno run` line.
 *
 * @example
 * ```ts
 * import { denoRunLine, servePermissions } from "./permissions.ts";
 * denoRunLine(servePermissions({ listen: "127.0.0.1:8080" }), ["serve", "--listen", "127.0.0.1:8080"]);
 * ```
 */
export function denoRunLine(
  flags: readonly string[],
  args: readonly string[],
  script = "dist/mcp-rproxy/main.js",
): string {
  return ["deno", "run", "--no-prompt", ...flags, script, ...args].map(shellQuote).join(" ");
}

if (import.meta.main) {
  // Prints the example lines of the README and docs/operations.md.
  console.log(denoRunLine(
    connectPermissions({
      command: "npx",
      gatewayHost: "gateway.example.com:443",
      tokenFile: "/etc/mcp-rproxy/token",
      healthListen: "127.0.0.1:9090",
    }),
    [
      "connect",
      "--gateway",
      "https://gateway.example.com",
      "--token-file",
      "/etc/mcp-rproxy/token",
      "--health-listen",
      "127.0.0.1:9090",
      "--local-stdio",
      "npx -y @modelcontextprotocol/server-everything",
    ],
  ));
  console.log(denoRunLine(
    servePermissions({
      listen: "0.0.0.0:8080",
      healthListen: "127.0.0.1:9091",
      tokensFile: "/etc/mcp-rproxy/tokens.txt",
      stateDir: CONTAINER_STATE_DIR,
    }),
    [
      "serve",
      "--listen",
      "0.0.0.0:8080",
      "--tokens-file",
      "/etc/mcp-rproxy/tokens.txt",
      "--health-listen",
      "127.0.0.1:9091",
      "--state-dir",
      CONTAINER_STATE_DIR,
    ],
  ));
  console.log(`deno compile ${COMPILE_PERMISSIONS.map(shellQuote).join(" ")} …`);
}
