// The usage text of `mcp-rproxy serve`, with its defaults taken from the code that applies them.

import { formatByteSize } from "../util/byte_size.ts";
import { LEVEL_CHOICES } from "../util/log.ts";
import { CLUSTER_DEFAULTS, REDIS_URL_ENV } from "./cluster/cluster_config.ts";
import { GATEWAY_DEFAULTS } from "./gateway.ts";
import { OAUTH_DEFAULTS } from "./token_store.ts";
import { NO_STATE_DIR, STATE_DIR_ENV } from "./state/state_dir.ts";

/** The environment variable that may hold the JWT secret instead of `--jwt-secret-file`. */
export const JWT_SECRET_ENV = "MCP_RPROXY_JWT_SECRET";
/** The environment variable of `--log-level`. */
export const LOG_LEVEL_ENV = "MCP_RPROXY_LOG_LEVEL";
/** The environment variable of `--log-format`. */
export const LOG_FORMAT_ENV = "MCP_RPROXY_LOG_FORMAT";

/** Defaults of serve's own settings that are not the gateway's. */
export const SERVE_DEFAULTS = { logLevel: "info", logFormat: "text" } as const;

/**
 * Help text of `mcp-rproxy serve`: every flag with its default, as docs/serve.md lists them (a test
 * compares the two).
 *
 * @example
 * ```ts
 * import { serveHelpText } from "./help.ts";
 * serveHelpText().includes("--listen"); // true
 * ```
 */
export function serveHelpText(): string {
  const d = GATEWAY_DEFAULTS;
  return `Usage: mcp-rproxy serve [options]

Runs the gateway: accepts 'mcp-rproxy connect' links at /reverse-proxy/ws (WebSocket) and
/reverse-proxy/sse (SSE + POST, where WebSocket cannot pass) and serves each registered server to MCP
clients at /servers/<name>/mcp (Streamable HTTP) and /servers/<name>/sse (legacy HTTP+SSE). At least
one of --tokens-file, --jwt-secret-file, ${JWT_SECRET_ENV} or --oauth-issuer is required: there is no
anonymous access.

Listening
  --listen HOST:PORT            address to listen on; [::1]:8080 for IPv6; port 0 = any free
                                (default ${d.hostname}:${d.port})
  --tls-cert FILE               PEM certificate chain: serve HTTPS/WSS (needs --tls-key)
  --tls-key FILE                PEM private key (needs --tls-cert)
  --public-url URL              base URL clients use (behind a proxy); MCP URLs are built from it
                                (default: from the Host header)
  --allowed-origin ORIGIN       extra allowed Origin for MCP endpoints; repeatable; '*' allows any

Authentication
  --tokens-file FILE            tokens, one per line ('TOKEN [OWNER]') or a YAML map
                                'TOKEN: OWNER' / 'TOKEN: {owner: O, roles: [connect, client, admin]}'
  --jwt-secret-file FILE        HS256 secret for ContextForge JWTs (or env ${JWT_SECRET_ENV})
  --jwt-audience AUD            required 'aud' claim (default: not checked)
  --jwt-issuer ISS              required 'iss' claim (default: not checked)
  --jwt-allow-no-exp            accept JWTs without 'exp', which are refused otherwise (default: off)
  --oauth-issuer URL            trust OAuth access tokens from this authorization server; repeatable;
                                a token must be for <public-url>/servers/<name>/mcp with scope
                                mcp:client (docs/clients.md) (default: off)
  --oauth-jwks-cooldown SECONDS least time between two JWKS fetches that unknown keys cause
                                (default ${OAUTH_DEFAULTS.jwksCooldownMs / 1000})

Limits
  --max-frame-bytes N           largest frame and MCP request body; suffixes KiB, MiB; at most 63MiB
                                (default ${formatByteSize(d.maxFrameBytes)})
  --max-sessions-per-owner N    live links per owner (default ${d.maxSessionsPerOwner})
  --max-inflight N              calls in flight per server; more wait in its queue (default ${d.maxInflight})
  --max-queued N                calls waiting for a slot per server, each up to its deadline; past it
                                calls are refused (default ${d.maxQueued})
  --call-timeout SECONDS        deadline of one call (default ${d.callTimeoutMs / 1000})
  --heartbeat-timeout SECONDS   close a link silent for this long (default ${
    d.heartbeatTimeoutMs / 1000
  })
  --ws-idle-timeout SECONDS     ping links this often; one that answered nothing since the last ping is
                                dropped; 0 = off (default ${d.wsIdleTimeoutSeconds})
  --sse-link-keepalive SECONDS  write a comment line on every SSE link this often, so that proxies do
                                not cut an idle stream (default ${d.sseLinkKeepaliveMs / 1000})
  --register-timeout SECONDS    close a link that has not registered this long after connecting (4008);
                                until then it counts against --max-sessions-per-owner (default ${
    d.registerTimeoutMs / 1000
  })
  --max-bad-frames N            malformed frames a minute before a link is closed (default ${d.maxBadFrames})
  --mcp-session-ttl SECONDS     forget idle MCP client sessions after this long (default ${
    d.mcpSessionTtlMs / 1000
  })
  --max-client-buffer N         unread bytes one MCP client's SSE stream may hold before it is closed;
                                suffixes KiB, MiB (default ${
    formatByteSize(d.maxClientBufferBytes)
  })
  --max-mcp-sessions-per-owner N  MCP client sessions per owner; past it the oldest idle one is
                                forgotten, and with none idle a new one gets 429 (default ${d.maxMcpSessionsPerOwner})
  --max-streams-per-token N     open GET streams one token may hold (default ${d.maxStreamsPerToken})
  --max-initialize-bytes N      largest params of a client's initialize, which its session keeps while it
                                lives; suffixes KiB, MiB (default ${
    formatByteSize(d.maxInitializeBytes)
  })
  --memory-budget N             memory held for all owners (frames being received, replay and SSE
                                buffers, queues); suffixes KiB, MiB (default ${
    formatByteSize(d.memoryBudgetBytes)
  })
  --memory-per-owner N          memory held for one owner; past it its new work is refused and its
                                oldest unread streams are cut (default ${
    formatByteSize(d.memoryPerOwnerBytes)
  })

Slow clients (each answered 408 and disconnected)
  --headers-timeout SECONDS     request headers must arrive within this long (default ${
    d.headersTimeoutMs / 1000
  })
  --body-timeout SECONDS        a request body gets this long before --body-min-rate applies
                                (default ${d.bodyTimeoutMs / 1000})
  --body-min-rate N             then it must keep arriving at N bytes a second; suffixes KiB, MiB
                                (default ${formatByteSize(d.bodyMinBytesPerSecond)})
  --keepalive-timeout SECONDS   close an idle keep-alive connection after this long (default ${
    d.keepAliveTimeoutMs / 1000
  })

MCP client streams (an SSE stream whose connection drops is resumed with Last-Event-ID)
  --sse-resume-window SECONDS   keep a stream whose connection dropped this long for its client to come
                                back; then its call is cancelled at the server (default ${
    d.sseResumeWindowMs / 1000
  })
  --sse-replay-bytes N          UTF-8 bytes of events kept per MCP session for replay; suffixes KiB, MiB
                                (default ${formatByteSize(d.sseReplayBytes)})
  --sse-replay-events N         events kept per MCP session for replay (default ${d.sseReplayEvents})
  --sse-retry SECONDS           the SSE retry: field, how long clients wait before reconnecting
                                (default ${d.sseRetryMs / 1000})

Resumption (links that drop and come back lose nothing; docs/resume.md)
  --resume-window SECONDS       keep a session whose link dropped this long for its client to resume it;
                                0 = off (default ${d.resumeWindowMs / 1000})
  --replay-frames N             data frames kept per session until the client acknowledges them
                                (default ${d.replayFrames})
  --replay-bytes N              bytes kept per session for replay; suffixes KiB, MiB; at most 4096MiB
                                (default ${formatByteSize(d.replayBytes)})

Replicas (many serves share their state in Redis; docs/scaling.md)
  --redis URL                   run as a replica: redis:// or rediss:// URL, password in it
                                (env ${REDIS_URL_ENV})
                                (default: off)
  --cluster-secret-file FILE    shared secret the replicas sign their envelopes with; needed with
                                --redis, the same file for every replica
  --replica-id ID               this replica's name in Redis (default: host name + 6 random hex digits)
  --cluster-max-nonces N        envelope nonces remembered per 30 s replay window; past it envelopes are
                                refused (default ${CLUSTER_DEFAULTS.maxNonces})
  --cluster-inbox-max N         envelopes an inbox keeps for a replica that does not read them
                                (default ${CLUSTER_DEFAULTS.inboxMaxEntries})
  --cluster-forward-timeout SECONDS
                                how long a legacy SSE POST, an SSE link POST or a stream resume
                                forwarded to the replica holding its stream waits for its answer
                                (default ${CLUSTER_DEFAULTS.forwardTimeoutMs / 1000})
  --cluster-command-timeout SECONDS
                                a Redis command without an answer this long fails (Redis hung)
                                (default ${CLUSTER_DEFAULTS.commandTimeoutMs / 1000})
  --cluster-max-initialized N   held initialize results of servers other replicas hold, kept at
                                most; the oldest is asked of its holder again
                                (default ${CLUSTER_DEFAULTS.maxInitialized})

Operations
  --health-listen HOST:PORT     serve /healthz, /readyz and Prometheus /metrics on this address
                                (default: off)
  --state-dir DIR               keep MCP client sessions and tunnel sessions here (serve.sqlite), so
                                that a restart keeps them; '${NO_STATE_DIR}' keeps them in memory only
                                (default $XDG_STATE_HOME/mcp-rproxy or ~/.local/state/mcp-rproxy;
                                env ${STATE_DIR_ENV})

Logging
  --log-level LEVEL             ${LEVEL_CHOICES} (default ${SERVE_DEFAULTS.logLevel}; env ${LOG_LEVEL_ENV})
  --log-format text|json        written to stderr (default ${SERVE_DEFAULTS.logFormat}; env ${LOG_FORMAT_ENV})
  -h, --help                    show this help and exit
  -V, --version                 show the version and exit

Exit codes: 0 after SIGINT/SIGTERM (links are closed with 1001 first); 1 the gateway cannot listen, or
another process holds the state file; 2 bad flags, environment, unreadable files or an unusable state
directory; 130 a second signal during shutdown.
`;
}
