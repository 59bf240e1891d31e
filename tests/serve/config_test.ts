import assert from "node:assert/strict";
import { ConfigError } from "../../lib/util/errors.ts";
import { parseServeArgs, type ServeSettings } from "../../lib/serve/config.ts";
import { serveHelpText } from "../../lib/serve/help.ts";

const noEnv = () => undefined;

/** Parses with HOME set (the default state directory needs it), unless `env` says otherwise. */
function parse(args: string[], env: (n: string) => string | undefined = noEnv): ServeSettings {
  const settings = parseServeArgs(args, (n) => env(n) ?? (n === "HOME" ? "/home/test" : undefined));
  assert.ok(typeof settings === "object", `settings, not ${settings}`);
  return settings;
}

Deno.test("parseServeArgs() applies the documented defaults", () => {
  const s = parse(["--tokens-file", "t.txt"]);
  // Each number is the documented default (docs/serve.md): a changed default must change this test.
  assert.deepEqual(s, {
    hostname: "127.0.0.1",
    port: 8080,
    tokensFile: "t.txt",
    jwtSecretFromEnv: false,
    jwtAllowNoExp: false,
    oauthIssuers: [],
    oauthJwksCooldownMs: 30_000,
    allowedOrigins: [],
    maxFrameBytes: 48 * 1024 * 1024,
    maxSessionsPerOwner: 32,
    maxInflight: 64,
    maxInitializeBytes: 65536,
    maxQueued: 4096,
    callTimeoutMs: 300_000,
    heartbeatTimeoutMs: 90_000,
    wsIdleTimeoutSeconds: 60,
    registerTimeoutMs: 10_000,
    headersTimeoutMs: 10_000,
    bodyTimeoutMs: 10_000,
    bodyMinBytesPerSecond: 1024,
    keepAliveTimeoutMs: 5_000,
    maxBadFrames: 20,
    mcpSessionTtlMs: 3_600_000,
    resumeWindowMs: 60_000,
    replayFrames: 10_000,
    replayBytes: 64 * 1024 * 1024,
    maxClientBufferBytes: 16 * 1024 * 1024,
    maxMcpSessionsPerOwner: 1024,
    maxStreamsPerToken: 16,
    memoryBudgetBytes: 512 * 1024 * 1024,
    memoryPerOwnerBytes: 160 * 1024 * 1024,
    sseReplayBytes: 8 * 1024 * 1024,
    sseReplayEvents: 1000,
    sseResumeWindowMs: 30_000,
    sseRetryMs: 1000,
    sseLinkKeepaliveMs: 15_000,
    state: { dir: "/home/test/.local/state/mcp-rproxy", setting: "default, from HOME" },
    logLevel: "info",
    logFormat: "text",
  });
});

Deno.test("parseServeArgs() reads every limit flag", () => {
  const s = parse([
    "--jwt-secret-file=s",
    "--listen=[::1]:0",
    "--max-frame-bytes=8MiB",
    "--max-sessions-per-owner=3",
    "--max-inflight=7",
    "--max-queued=11",
    "--call-timeout=1.5",
    "--heartbeat-timeout=10",
    "--ws-idle-timeout=0",
    "--max-bad-frames=5",
    "--mcp-session-ttl=60",
    "--max-mcp-sessions-per-owner=9",
    "--max-streams-per-token=2",
    "--sse-replay-bytes=1MiB",
    "--sse-replay-events=50",
    "--sse-resume-window=5",
    "--sse-retry=0.25",
    "--sse-link-keepalive=2.5",
    "--allowed-origin=https://a.example",
    "--allowed-origin=https://b.example",
    "--public-url=https://gw.example.com/prefix",
    "--jwt-audience=aud",
    "--jwt-issuer=iss",
    "--log-level=WARNING",
  ]);
  assert.equal(s.hostname, "::1");
  assert.equal(s.port, 0);
  assert.equal(s.maxFrameBytes, 8 * 1024 * 1024);
  assert.equal(s.maxSessionsPerOwner, 3);
  assert.equal(s.maxInflight, 7);
  assert.equal(s.maxQueued, 11);
  assert.equal(s.callTimeoutMs, 1500);
  assert.equal(s.heartbeatTimeoutMs, 10_000);
  assert.equal(s.wsIdleTimeoutSeconds, 0);
  assert.equal(s.maxBadFrames, 5);
  assert.equal(s.mcpSessionTtlMs, 60_000);
  assert.equal(s.maxMcpSessionsPerOwner, 9);
  assert.equal(s.maxStreamsPerToken, 2);
  assert.equal(s.sseReplayBytes, 1024 * 1024);
  assert.equal(s.sseReplayEvents, 50);
  assert.equal(s.sseResumeWindowMs, 5000);
  assert.equal(s.sseRetryMs, 250);
  assert.equal(s.sseLinkKeepaliveMs, 2_500);
  assert.deepEqual(s.allowedOrigins, ["https://a.example", "https://b.example"]);
  assert.equal(s.publicUrl, "https://gw.example.com/prefix");
  assert.equal(s.jwtAudience, "aud");
  assert.equal(s.logLevel, "warning");
});

Deno.test("parseServeArgs() refuses to run without any token source", () => {
  assert.throws(
    () => parseServeArgs([], noEnv),
    (e: Error) => e instanceof ConfigError && /--tokens-file/.test(e.message),
  );
  const s = parse([], (n) => (n === "MCP_RPROXY_JWT_SECRET" ? "k" : undefined));
  assert.equal(s.jwtSecretFromEnv, true);
});

Deno.test("parseServeArgs() takes --oauth-issuer (repeatable, alone enough) and --oauth-jwks-cooldown", () => {
  const s = parse([
    "--oauth-issuer=https://idp.example.com/realms/mcp",
    "--oauth-issuer=http://127.0.0.1:9000",
    "--oauth-issuer=https://idp.example.com/realms/mcp",
    "--oauth-jwks-cooldown=0.5",
  ]);
  assert.deepEqual(s.oauthIssuers, ["https://idp.example.com/realms/mcp", "http://127.0.0.1:9000"]);
  assert.equal(s.oauthJwksCooldownMs, 500);
  assert.equal(s.tokensFile, undefined);
  // A wildcard listen address names no URL: the resource URLs need --public-url.
  assert.throws(
    () => parseServeArgs(["--oauth-issuer=https://idp.example", "--listen=0.0.0.0:8080"], noEnv),
    (e: Error) =>
      e instanceof ConfigError &&
      /^--oauth-issuer needs --public-url when listening on 0\.0\.0\.0/.test(e.message),
  );
  const behindProxy = parse([
    "--oauth-issuer=https://idp.example",
    "--listen=0.0.0.0:8080",
    "--public-url=https://gw.example.com",
  ]);
  assert.equal(behindProxy.publicUrl, "https://gw.example.com");
  for (const bad of ["http://idp.example.com", "https://idp.example?x=1", "https://idp#f", "idp"]) {
    assert.throws(
      () => parseServeArgs(["--oauth-issuer", bad], noEnv),
      (e: Error) =>
        e instanceof ConfigError &&
        e.message.startsWith(
          `Invalid --oauth-issuer '${bad}': expected the authorization server's issuer URL: https://`,
        ),
      bad,
    );
  }
  assert.throws(
    () => parseServeArgs(["--tokens-file=t", "--oauth-jwks-cooldown=-1"], noEnv),
    (e: Error) =>
      e instanceof ConfigError &&
      /^Invalid --oauth-jwks-cooldown '-1': expected a number of seconds, 0 or more/.test(
        e.message,
      ),
  );
});

Deno.test("parseServeArgs() names the flag, the value and the fix in errors", () => {
  const cases: [string[], RegExp][] = [
    [["--listen", "nope"], /^Invalid --listen 'nope': the port is missing; expected HOST:PORT/],
    [
      ["--listen", "h:70000"],
      /^Invalid --listen 'h:70000': port 70000 is out of range 0 to 65535;/,
    ],
    [["--listen", "::1:80"], /^Invalid --listen '::1:80': an IPv6 address must be in brackets/],
    [["--health-listen", ":9090"], /^Invalid --health-listen ':9090': the host is missing/],
    [
      ["--max-inflight", "0"],
      /^Invalid --max-inflight '0': expected a whole number, 1 or more, for example --max-inflight 10$/,
    ],
    [
      ["--ws-idle-timeout", "x"],
      /^Invalid --ws-idle-timeout 'x': expected a whole number, 0 or more \(0 = off\)/,
    ],
    [
      ["--call-timeout=-1"],
      /^Invalid --call-timeout '-1': expected a number of seconds, greater than 0/,
    ],
    [
      ["--resume-window=-1"],
      /^Invalid --resume-window '-1': expected a number of seconds, 0 or more/,
    ],
    [
      ["--max-frame-bytes", "100GiB"],
      /^Invalid --max-frame-bytes '100GiB': expected a size from 1KiB to 63MiB/,
    ],
    [
      ["--max-frame-bytes", "100MiB"],
      /^Invalid --max-frame-bytes '100MiB': WebSocket messages are limited to 64MiB - 1 byte; expected at most 63MiB/,
    ],
    [["--tls-cert", "c.pem"], /HTTPS needs both --tls-cert and --tls-key/],
    [
      ["--public-url", "ftp://x"],
      /^Invalid --public-url 'ftp:\/\/x': expected an http:\/\/ or https:\/\/ URL/,
    ],
    [["--log-format", "xml"], /^Invalid --log-format 'xml': expected text or json$/],
    [["--log-level", "loud"], /^Invalid --log-level 'loud': expected a log level \(trace, debug/],
    [["--bogus"], /^Unknown option '--bogus': run 'mcp-rproxy serve --help' for the list$/],
    [["--max-inflight"], /^--max-inflight needs a value/],
    [["stray"], /^Unexpected argument 'stray': serve takes only flags/],
  ];
  for (const [args, pattern] of cases) {
    assert.throws(
      () => parseServeArgs(["--tokens-file", "t", ...args], noEnv),
      (e: Error) => e instanceof ConfigError && pattern.test(e.message),
      args.join(" "),
    );
  }
});

Deno.test("parseServeArgs() reads MCP_RPROXY_LOG_LEVEL and _FORMAT, names them in errors, and lets flags win", () => {
  const env = (values: Record<string, string>) => (name: string) => values[name];
  const fromEnv = parse(
    ["--tokens-file=t"],
    env({
      MCP_RPROXY_LOG_LEVEL: "DEBUG",
      MCP_RPROXY_LOG_FORMAT: "json",
    }),
  );
  assert.equal(fromEnv.logLevel, "debug");
  assert.equal(fromEnv.logFormat, "json");
  const flagsWin = parse(
    ["--tokens-file=t", "--log-level=error", "--log-format=text"],
    env({
      MCP_RPROXY_LOG_LEVEL: "debug",
      MCP_RPROXY_LOG_FORMAT: "json",
    }),
  );
  assert.equal(flagsWin.logLevel, "error");
  assert.equal(flagsWin.logFormat, "text");
  assert.equal(parse(["--tokens-file=t"], env({ MCP_RPROXY_LOG_LEVEL: "" })).logLevel, "info");
  assert.throws(
    () => parse(["--tokens-file=t"], env({ MCP_RPROXY_LOG_LEVEL: "loud" })),
    /Invalid MCP_RPROXY_LOG_LEVEL 'loud': expected a log level/,
  );
  assert.throws(
    () => parse(["--tokens-file=t"], env({ MCP_RPROXY_LOG_FORMAT: "xml" })),
    /Invalid MCP_RPROXY_LOG_FORMAT 'xml': expected text or json/,
  );
});

Deno.test("parseServeArgs() accepts --max-frame-bytes up to the WebSocket cap of 64MiB - 1", () => {
  assert.equal(
    parse(["--tokens-file", "t", "--max-frame-bytes", "63MiB"]).maxFrameBytes,
    63 * 1024 * 1024,
  );
  assert.equal(
    parse(["--tokens-file", "t", "--max-frame-bytes", String(64 * 1024 * 1024 - 1)]).maxFrameBytes,
    64 * 1024 * 1024 - 1,
  );
  assert.throws(
    () => parse(["--tokens-file", "t", "--max-frame-bytes", String(64 * 1024 * 1024)]),
    (e: Error) => e instanceof ConfigError && /expected at most 63MiB/.test(e.message),
  );
});

Deno.test("parseServeArgs() returns help and version", () => {
  assert.equal(parseServeArgs(["--help"], noEnv), "help");
  assert.equal(parseServeArgs(["-V"], noEnv), "version");
  for (
    const flag of [
      "--listen",
      "--tokens-file",
      "--jwt-secret-file",
      "--max-frame-bytes",
      "--call-timeout",
    ]
  ) {
    assert.ok(serveHelpText().includes(flag), flag);
  }
});

Deno.test("parseServeArgs() reads the resume flags, with defaults and 0 turning resumption off", () => {
  const d = parse(["--tokens-file", "t.txt"]);
  assert.equal(d.resumeWindowMs, 60_000);
  assert.equal(d.replayFrames, 10_000);
  assert.equal(d.replayBytes, 64 * 1024 * 1024);
  const s = parse([
    "--tokens-file=t.txt",
    "--resume-window=0",
    "--replay-frames=50",
    "--replay-bytes=128MiB",
  ]);
  assert.equal(s.resumeWindowMs, 0);
  assert.equal(s.replayFrames, 50);
  assert.equal(s.replayBytes, 128 * 1024 * 1024);
  assert.throws(() => parse(["--tokens-file=t", "--resume-window=-1"]), /--resume-window/);
  assert.throws(() => parse(["--tokens-file=t", "--replay-frames=0"]), /--replay-frames/);
  assert.throws(() => parse(["--tokens-file=t", "--replay-bytes=5000MiB"]), /at most 4096MiB/);
});

Deno.test("parseServeArgs() reads --max-client-buffer, 16MiB by default", () => {
  assert.equal(parse(["--tokens-file", "t.txt"]).maxClientBufferBytes, 16 * 1024 * 1024);
  assert.equal(
    parse(["--tokens-file=t.txt", "--max-client-buffer=256KiB"]).maxClientBufferBytes,
    256 * 1024,
  );
  assert.throws(() => parse(["--tokens-file=t", "--max-client-buffer=0"]), /--max-client-buffer/);
});

Deno.test("parseServeArgs() reads the register and slow-client timeouts", () => {
  const s = parse([
    "--tokens-file=t.txt",
    "--register-timeout=2.5",
    "--headers-timeout=3",
    "--body-timeout=4",
    "--body-min-rate=8KiB",
    "--keepalive-timeout=0.5",
  ]);
  assert.equal(s.registerTimeoutMs, 2_500);
  assert.equal(s.headersTimeoutMs, 3_000);
  assert.equal(s.bodyTimeoutMs, 4_000);
  assert.equal(s.bodyMinBytesPerSecond, 8 * 1024);
  assert.equal(s.keepAliveTimeoutMs, 500);
  assert.throws(
    () => parse(["--tokens-file=t.txt", "--register-timeout=0"]),
    /Invalid --register-timeout '0': expected a number of seconds, greater than 0/,
  );
  assert.throws(
    () => parse(["--tokens-file=t.txt", "--body-min-rate=10"]),
    /Invalid --body-min-rate '10': expected a size from 1KiB/,
  );
});

Deno.test("parseServeArgs() --state-dir: the flag, else MCP_RPROXY_STATE_DIR, else the XDG state home, else ~/.local/state", () => {
  const env = (values: Record<string, string>) => (name: string) => values[name];
  const withState = (args: string[], values: Record<string, string>) =>
    parseServeArgs(["--tokens-file=t", ...args], env(values)) as ServeSettings;
  const home = { HOME: "/home/ada" };
  assert.deepEqual(withState([], home).state, {
    dir: "/home/ada/.local/state/mcp-rproxy",
    setting: "default, from HOME",
  });
  assert.deepEqual(withState([], { ...home, XDG_STATE_HOME: "/var/state/" }).state, {
    dir: "/var/state/mcp-rproxy",
    setting: "default, from XDG_STATE_HOME",
  });
  // The spec ignores a relative XDG_STATE_HOME.
  assert.equal(
    withState([], { ...home, XDG_STATE_HOME: "state" }).state.dir,
    "/home/ada/.local/state/mcp-rproxy",
  );
  const all = { ...home, XDG_STATE_HOME: "/x", MCP_RPROXY_STATE_DIR: "/srv/state" };
  assert.deepEqual(withState([], all).state, {
    dir: "/srv/state",
    setting: "MCP_RPROXY_STATE_DIR",
  });
  assert.deepEqual(withState(["--state-dir", "/opt/s"], all).state, {
    dir: "/opt/s",
    setting: "--state-dir",
  });
  assert.equal(withState(["--state-dir=none"], all).state.dir, undefined);
  assert.equal(withState(["--state-dir=NONE"], all).state.dir, undefined);
  assert.equal(withState([], { MCP_RPROXY_STATE_DIR: "none" }).state.dir, undefined);
  assert.throws(() => withState(["--state-dir="], home), /--state-dir is empty/);
  assert.throws(
    () => withState([], {}),
    (error: unknown) =>
      error instanceof ConfigError && /neither HOME nor XDG_STATE_HOME/.test(error.message) &&
      /--state-dir none/.test(error.message),
  );
  // With the flag, the variables are not read: a least-privilege --allow-env need not name them.
  const read: string[] = [];
  parseServeArgs(["--tokens-file=t", "--state-dir=/s"], (name) => {
    read.push(name);
    return undefined;
  });
  assert.deepEqual(read.filter((name) => /STATE|HOME/.test(name)), []);
});
