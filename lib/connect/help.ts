// The usage text of `connect`: every flag, environment variable and config key, with the defaults the
// code applies (a test compares it with the README and docs/configuration.md).

import { formatByteSize } from "../util/byte_size.ts";
import { LEVEL_CHOICES } from "../util/log_level.ts";
import { CONNECT_DEFAULTS } from "./settings.ts";

/**
 * The complete usage text of `connect`: every flag, environment variable and config key, and the exit codes.
 *
 * @example
 * ```ts
 * import { connectHelpText } from "./help.ts";
 * connectHelpText().includes("--local-stdio"); // true
 * ```
 */
export function connectHelpText(): string {
  return `Usage: mcp-rproxy connect [OPTIONS] --server name=NAME,stdio="CMD ARGS" [--server ...]
       mcp-rproxy connect [OPTIONS] --local-stdio "CMD ARGS"
       mcp-rproxy connect [OPTIONS] -- CMD ARGS...
       mcp-rproxy connect [OPTIONS] --local-streamable-http URL | --local-sse URL

Start local MCP servers (or reach them over HTTP), dial out to a gateway over WebSocket (or SSE +
POST where WebSocket cannot pass), register them, and tunnel JSON-RPC both ways. Reconnects after a
drop; the local servers keep running. Against mcp-rproxy serve all servers share one link; against
other gateways each has its own.

Local servers (give them one way):
  --server SPEC              One server, repeatable: comma-separated key=value pairs, a value in
                             double quotes when it holds a comma (quote the whole spec in single
                             quotes so that the shell keeps them). Keys: name (required), description,
                             exactly one of stdio="CMD ARGS" | http=URL (Streamable HTTP) | sse=URL
                             (legacy SSE); for stdio: cwd=DIR, env=NAME=VALUE (repeatable); for
                             http/sse: header="Name: value", header-env="Name: VARIABLE",
                             header-file="Name: PATH" (repeatable), bearer-env=VARIABLE,
                             bearer-file=PATH, cert=CA.pem, timeout=SECONDS (${CONNECT_DEFAULTS.upstreamTimeout} when not given);
                             isolation=shared|per-client, and for per-client max-instances=N,
                             instance-idle-timeout=SECONDS (as the flags below). Example:
                             --server name=git,stdio="uvx mcp-server-git" (default: none)
  --local-stdio CMD          Command of one local MCP server, split like a POSIX shell splits
                             words (quotes and backslashes; no shell runs, nothing is expanded)
  -- CMD ARGS...             The same command given as separate arguments (nothing is split)
  --local-streamable-http URL
                             One local server that speaks Streamable HTTP at URL
  --local-sse URL            One local server that speaks the legacy HTTP+SSE transport (GET URL)
  --server-name NAME         Name to register (one-server forms), 1-128 characters
                             (default: the server's serverInfo.name)
  --server-description TEXT  Description to register (one-server forms), up to 1024 characters;
                             the default is made from the server's serverInfo
                             (default: <title> <version> via mcp-rproxy)
  --isolation MODE           shared: every MCP client shares the server's one session; per-client:
                             each MCP client session gets an instance of its own (a process, or an
                             upstream session), started with that client's initialize; needs
                             mcp-rproxy serve and --server-name (one-server forms) (default shared)
  --max-instances N          Per-client: instances running at once, 1-1024; a new session past it
                             gets a JSON-RPC error (default ${CONNECT_DEFAULTS.maxInstances})
  --instance-idle-timeout SECONDS
                             Per-client: an instance without a message this long stops (its next
                             request starts another, initialized again); 0 = never
                             (default ${CONNECT_DEFAULTS.instanceIdleTimeout})
  --max-server-queue-bytes SIZE
                             What may wait to be written to the server's stdin, in bytes (KiB and
                             MiB suffixes work); past it a request gets an error at once
                             (default ${formatByteSize(CONNECT_DEFAULTS.maxServerQueueBytes)})
  --max-server-queue-messages N
                             The same bound in messages, 1 or more
                             (default ${CONNECT_DEFAULTS.maxServerQueueMessages})
  --shutdown-grace SECONDS   On shutdown, time from closing the server's stdin to SIGKILL of its
                             process group, > 0 (default ${CONNECT_DEFAULTS.shutdownGrace})
  --init-timeout SECONDS     Time a local server has to answer connect's initialize (a first
                             npx/uvx start may download for longer), > 0
                             (default ${CONNECT_DEFAULTS.initTimeout})
  --max-replay-bytes SIZE    What connect keeps per link session until the gateway acknowledges it,
                             to replay after a drop; past it the session cannot be resumed and
                             starts afresh (default ${
    formatByteSize(CONNECT_DEFAULTS.maxReplayBytes)
  })
  --max-replay-frames N      The same bound in frames, 1 or more
                             (default ${CONNECT_DEFAULTS.maxReplayFrames})
  --max-message-bytes SIZE   The largest message connect takes from a local server (a stdio line,
                             an HTTP answer or event); past it the caller gets an error and the
                             server goes on (default ${
    formatByteSize(CONNECT_DEFAULTS.maxMessageBytes)
  })
  --max-repeat-ids N         With serve's replicas: ids of calls remembered per server (in flight,
                             and answered), so that a call sent again after a replica died runs
                             once (default ${CONNECT_DEFAULTS.maxRepeatIds})
  --max-repeat-answer-bytes SIZE
                             The answers kept, all servers together, to answer such a call again;
                             one no longer kept gets an error saying so (default ${
    formatByteSize(CONNECT_DEFAULTS.maxRepeatAnswerBytes)
  })

Gateway:
  --gateway URL              Gateway address: https://host[:port][/prefix], wss://.../reverse-proxy/ws,
                             or host[:port] (no scheme means wss://); http->ws, https->wss
                             (required) [env REVERSE_PROXY_GATEWAY]
  --token-file FILE          File holding the bearer token (surrounding whitespace is ignored)
                             [env REVERSE_PROXY_TOKEN_FILE]
  --token TOKEN              Bearer token. Other local users can see it in the process list:
                             prefer --token-file or REVERSE_PROXY_TOKEN [env REVERSE_PROXY_TOKEN]
  --cert CA.pem              Extra CA certificate (PEM) to trust for wss:// connections
  --reconnect-delay SECONDS  Base delay before reconnecting, > 0
                             (default ${CONNECT_DEFAULTS.reconnectDelay}) [env REVERSE_PROXY_RECONNECT_DELAY]
  --max-retries N            Reconnect attempts allowed after a drop, 0 = forever
                             (default ${CONNECT_DEFAULTS.maxRetries}) [env REVERSE_PROXY_MAX_RETRIES]
  --keepalive SECONDS        Heartbeat interval, > 0 (default ${CONNECT_DEFAULTS.keepalive})
                             [env REVERSE_PROXY_KEEPALIVE]
  --transport MODE           Link transport: websocket, sse (our gateway's SSE link, for networks
                             where WebSocket cannot pass), or auto: WebSocket, switching to SSE when
                             the upgrade is refused by something in between (not on 401/403/404)
                             and SSE works (default ${CONNECT_DEFAULTS.transport})
                             [env REVERSE_PROXY_TRANSPORT]
  --websocket-retry SECONDS  While auto uses SSE, try WebSocket again this often, > 0
                             (default ${CONNECT_DEFAULTS.websocketRetry})

Operations:
  --health-listen HOST:PORT  Serve /healthz, /readyz and /metrics on this address, e.g.
                             127.0.0.1:9464 or [::1]:9464; port 0 picks a free one (default: off)
  --min-ready-servers N      /readyz answers 200 once N servers are ready; its body has a line
                             per server (default: all)
  --log-level LEVEL          ${LEVEL_CHOICES}; any case (default ${CONNECT_DEFAULTS.logLevel})
                             [env REVERSE_PROXY_LOG_LEVEL]
  --log-format FORMAT        text or json, written to stderr (default ${CONNECT_DEFAULTS.logFormat})
                             [env REVERSE_PROXY_LOG_FORMAT]
  --verbose                  Same as --log-level debug, and wins over it
  --config FILE              Config file: YAML (.yaml, .yml) or JSON (.json); another name is read
                             as JSON if it starts with '{', else as YAML
  -h, --help                 Show this help and exit
  -V, --version              Show the version and exit

Every --flag and =value form works: --gateway URL or --gateway=URL.
Precedence: flags, then environment variables, then the config file, then defaults. An empty
environment variable counts as unset.

Config file keys are the flag names in snake_case or kebab-case: servers (a list; each entry has
name, description, and exactly one of command (+ args, env, cwd), http: URL or sse: URL, with
headers (Name: value, {env: VARIABLE} or {file: PATH}), bearer_env, bearer_file, cert, timeout
for the URL forms), local_stdio (a string, or a list of words taken as they are),
local_streamable_http, local_sse, gateway, token, token_file, server_name, server_description,
isolation, max_instances, instance_idle_timeout (a server entry takes these three too),
reconnect_delay, max_retries, keepalive, log_level, log_format, verbose (true/false), cert,
health_listen, min_ready_servers, max_server_queue_bytes (a number of bytes, or text such as 64MiB),
max_server_queue_messages, shutdown_grace, init_timeout, max_replay_bytes, max_replay_frames,
max_message_bytes, max_repeat_ids, max_repeat_answer_bytes, transport, websocket_retry; or local-stdio,
token-file, server-name, ...
Relative paths in the file (token_file, cert, a server's cwd and files) are relative to the
file's directory. SIGHUP re-reads the config file and applies its servers: added ones start,
removed ones stop, changed ones restart, the others are not touched. See docs/configuration.md.

Exit codes: 0 clean shutdown; 1 runtime failure (no local server can start, retries exhausted);
2 bad flags, environment or config file; 3 the gateway refused the credentials;
4 the gateway evicted every server; 130 a second signal during shutdown. A per-client server on a
gateway that offers only shared isolation (ContextForge) is refused alone; exit 2 if none is left.
`;
}
