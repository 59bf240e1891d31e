import assert from "node:assert/strict";
import {
  checkClusterSecret,
  defaultReplicaId,
  redactRedisUrl,
} from "../../../lib/serve/cluster/cluster_config.ts";
import { parseServeArgs, type ServeSettings } from "../../../lib/serve/config.ts";
import { ConfigError } from "../../../lib/util/errors.ts";

const noEnv = () => undefined;
const SECRET = "s3cret-pa55";

function serve(args: string[], env: (n: string) => string | undefined = noEnv): ServeSettings {
  const settings = parseServeArgs(
    ["--tokens-file", "t", "--state-dir", "none", ...args],
    env,
    () => "gw.example.com",
  );
  assert.ok(typeof settings === "object");
  return settings;
}

function refusal(args: string[], env: (n: string) => string | undefined = noEnv): string {
  try {
    serve(args, env);
  } catch (error: unknown) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.message;
  }
  assert.fail(`accepted ${args.join(" ")}`);
}

Deno.test("parseServeArgs() without --redis has no cluster settings", () => {
  assert.equal(serve([]).cluster, undefined);
});

Deno.test("parseServeArgs() reads --redis, --cluster-secret-file, --replica-id and the bounds", () => {
  const s = serve([
    "--redis",
    `rediss://app:${SECRET}@redis.internal:6380/2`,
    "--cluster-secret-file",
    "/run/secrets/cluster",
    "--replica-id",
    "gw-1",
    "--cluster-max-nonces",
    "5000",
    "--cluster-inbox-max",
    "77",
    "--cluster-forward-timeout",
    "2.5",
    "--cluster-command-timeout",
    "4",
    "--cluster-max-initialized",
    "12",
  ]);
  assert.deepEqual(s.cluster, {
    redisUrl: `rediss://app:${SECRET}@redis.internal:6380/2`,
    redisUrlSetting: "--redis",
    secretFile: "/run/secrets/cluster",
    replicaId: "gw-1",
    maxNonces: 5000,
    inboxMaxEntries: 77,
    forwardTimeoutMs: 2_500,
    commandTimeoutMs: 4_000,
    maxInitialized: 12,
  });
});

Deno.test("parseServeArgs() takes the Redis URL from MCP_RPROXY_REDIS_URL and defaults the rest", () => {
  const env = (name: string) =>
    name === "MCP_RPROXY_REDIS_URL" ? "redis://127.0.0.1:6379" : undefined;
  const c = serve(["--cluster-secret-file", "s"], env).cluster!;
  assert.equal(c.redisUrl, "redis://127.0.0.1:6379");
  assert.equal(c.redisUrlSetting, "MCP_RPROXY_REDIS_URL");
  assert.match(c.replicaId, /^gw-example-com-[0-9a-f]{6}$/);
  assert.equal(c.maxNonces, 200_000);
  assert.equal(c.inboxMaxEntries, 10_000);
  assert.equal(c.forwardTimeoutMs, 10_000);
  assert.equal(c.commandTimeoutMs, 10_000);
  assert.equal(c.maxInitialized, 4_096);
});

Deno.test("parseServeArgs() refuses a zero or non-numeric cluster timeout and bound, naming the flag", () => {
  const base = ["--redis", "redis://r:6379", "--cluster-secret-file", "s"];
  for (
    const [flag, value] of [
      ["--cluster-forward-timeout", "0"],
      ["--cluster-command-timeout", "soon"],
      ["--cluster-max-initialized", "0"],
    ] as const
  ) {
    const message = refusal([...base, flag, value]);
    assert.match(message, new RegExp(flag));
    assert.match(message, new RegExp(`'?${value}'?`));
  }
});

Deno.test("parseServeArgs() refuses --redis without --cluster-secret-file, saying how to make one", () => {
  const message = refusal(["--redis", "redis://127.0.0.1"]);
  assert.match(message, /--redis needs --cluster-secret-file FILE/);
  assert.match(message, /openssl rand/);
});

Deno.test("parseServeArgs() refuses replica flags without --redis", () => {
  assert.match(refusal(["--replica-id", "a"]), /--replica-id was given without --redis/);
  assert.match(refusal(["--cluster-secret-file", "f"]), /--cluster-secret-file was given without/);
});

Deno.test("parseServeArgs() refuses a non-Redis URL without showing its password", () => {
  const message = refusal([
    "--redis",
    `http://u:${SECRET}@h:1`,
    "--cluster-secret-file",
    "f",
  ]);
  assert.match(message, /Invalid --redis 'http:\/\/u:\*\*\*@h:1'/);
  assert.match(message, /redis:\/\/ or rediss:\/\//);
  assert.ok(!message.includes(SECRET), message);
  const fromEnv = refusal(
    ["--cluster-secret-file", "f"],
    (n) => n === "MCP_RPROXY_REDIS_URL" ? `redis://:${SECRET}@h:1/x` : undefined,
  );
  assert.match(fromEnv, /Invalid MCP_RPROXY_REDIS_URL/);
  assert.match(fromEnv, /no database number/);
  assert.ok(!fromEnv.includes(SECRET), fromEnv);
  // Text that is no URL at all might be the password itself.
  const pasted = refusal(["--redis", SECRET, "--cluster-secret-file", "f"]);
  assert.ok(!pasted.includes(SECRET), pasted);
  assert.match(pasted, /\(not a URL\)/);
});

Deno.test("parseServeArgs() refuses a replica id that would break keys or tunnel ids", () => {
  for (const bad of ["a.b", "a:b", "", "x".repeat(65), "a b"]) {
    assert.match(
      refusal(["--redis", "redis://h", "--cluster-secret-file", "f", "--replica-id", bad]),
      /Invalid --replica-id/,
    );
  }
  assert.match(
    refusal(["--redis", "redis://h", "--cluster-secret-file", "f", "--cluster-max-nonces", "0"]),
    /Invalid --cluster-max-nonces '0'/,
  );
});

Deno.test("redactRedisUrl() hides the password and keeps the rest", () => {
  assert.equal(redactRedisUrl(`redis://:${SECRET}@h:6379/0`), "redis://:***@h:6379/0");
  assert.equal(redactRedisUrl(`rediss://user:${SECRET}@h`), "rediss://user:***@h");
  assert.equal(redactRedisUrl("redis://h:6379"), "redis://h:6379");
  assert.equal(redactRedisUrl(SECRET), "(not a URL)");
});

Deno.test("defaultReplicaId() makes a host name safe and adds 6 random hex digits", () => {
  assert.equal(defaultReplicaId("gw.example.com", () => 0.5), "gw-example-com-800000");
  assert.equal(defaultReplicaId("", () => 0), "replica-000000");
});

Deno.test("checkClusterSecret() refuses a short or empty secret without showing it, warns on mode", () => {
  assert.throws(
    () => checkClusterSecret("short\n", { path: "/s", mode: 0o600 }),
    (error: unknown) =>
      error instanceof ConfigError && /has 5 characters, fewer than 32/.test(error.message) &&
      !error.message.includes("short"),
  );
  assert.throws(() => checkClusterSecret("  \n", { path: "/s", mode: 0o600 }), /file is empty/);
  const long = "k".repeat(40);
  assert.deepEqual(checkClusterSecret(`${long}\n`, { path: "/s", mode: 0o100600 }), {
    secret: long,
  });
  const open = checkClusterSecret(long, { path: "/s", mode: 0o100644 });
  assert.equal(open.warning, "/s can be read by other users (mode 644); run chmod 600 /s");
});

Deno.test("parseServeArgs() keeps a replica's state in Redis only: --state-dir is refused with --redis", () => {
  const replica = ["--redis", "redis://h", "--cluster-secret-file", "f"];
  const settings = parseServeArgs(["--tokens-file", "t", ...replica], noEnv, () => "gw");
  assert.ok(typeof settings === "object");
  assert.equal(settings.state.dir, undefined, "no state file, and no HOME needed");
  assert.match(
    refusal([...replica, "--state-dir", "/var/lib/x"]).replace("--state-dir none ", ""),
    /--state-dir does not apply with --redis/,
  );
  const fromEnv = (n: string) => n === "MCP_RPROXY_STATE_DIR" ? "/var/lib/x" : undefined;
  assert.throws(
    () => parseServeArgs(["--tokens-file", "t", ...replica], fromEnv, () => "gw"),
    /MCP_RPROXY_STATE_DIR does not apply with --redis/,
  );
});
