import assert from "node:assert/strict";
import { ConfigError } from "../../lib/util/errors.ts";
import {
  parseByteSize,
  parseListen,
  parseServeArgs,
  serveHelpText,
  type ServeSettings,
} from "../../lib/serve/config.ts";

const noEnv = () => undefined;

function parse(args: string[], env: (n: string) => string | undefined = noEnv): ServeSettings {
  const settings = parseServeArgs(args, env);
  assert.notEqual(settings, "help");
  return settings as ServeSettings;
}

Deno.test("parseServeArgs() applies defaults", () => {
  const s = parse(["--tokens-file", "t.txt"]);
  assert.equal(s.hostname, "127.0.0.1");
  assert.equal(s.port, 8080);
  assert.equal(s.tokensFile, "t.txt");
  assert.ok(s.maxFrameBytes > 1024 * 1024);
  assert.equal(s.logLevel, "info");
  assert.equal(s.jwtAllowNoExp, false);
});

Deno.test("parseServeArgs() reads every limit flag", () => {
  const s = parse([
    "--jwt-secret-file=s",
    "--listen=[::1]:0",
    "--max-frame-bytes=8MiB",
    "--max-sessions-per-owner=3",
    "--max-inflight=7",
    "--call-timeout=1.5",
    "--heartbeat-timeout=10",
    "--ws-idle-timeout=0",
    "--max-bad-frames=5",
    "--mcp-session-ttl=60",
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
  assert.equal(s.callTimeoutMs, 1500);
  assert.equal(s.heartbeatTimeoutMs, 10_000);
  assert.equal(s.wsIdleTimeoutSeconds, 0);
  assert.equal(s.maxBadFrames, 5);
  assert.equal(s.mcpSessionTtlMs, 60_000);
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

Deno.test("parseServeArgs() names the flag, the value and the fix in errors", () => {
  const cases: [string[], RegExp][] = [
    [["--listen", "nope"], /--listen "nope": expected HOST:PORT/],
    [["--listen", "h:70000"], /--listen/],
    [["--max-inflight", "0"], /--max-inflight "0": expected a positive whole number/],
    [["--call-timeout=-1"], /--call-timeout "-1"/],
    [["--max-frame-bytes", "100GiB"], /--max-frame-bytes "100GiB"/],
    [["--tls-cert", "c.pem"], /HTTPS needs both --tls-cert and --tls-key/],
    [["--public-url", "ftp://x"], /--public-url "ftp:\/\/x"/],
    [["--log-format", "xml"], /--log-format "xml"/],
    [["--bogus"], /serve --help/],
  ];
  for (const [args, pattern] of cases) {
    assert.throws(
      () => parseServeArgs(["--tokens-file", "t", ...args], noEnv),
      (e: Error) => e instanceof ConfigError && pattern.test(e.message),
      args.join(" "),
    );
  }
});

Deno.test("parseServeArgs() returns help", () => {
  assert.equal(parseServeArgs(["--help"], noEnv), "help");
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

Deno.test("parseByteSize() and parseListen() read their formats", () => {
  assert.equal(parseByteSize("--x", "2048"), 2048);
  assert.equal(parseByteSize("--x", "4KiB"), 4096);
  assert.equal(parseByteSize("--x", "3 mb"), 3 * 1024 * 1024);
  assert.throws(() => parseByteSize("--x", "12"), ConfigError);
  assert.deepEqual(parseListen("0.0.0.0:9000"), { hostname: "0.0.0.0", port: 9000 });
  assert.deepEqual(parseListen("localhost:0"), { hostname: "localhost", port: 0 });
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
