import assert from "node:assert/strict";
import {
  ConfigError,
  describeKind,
  describeValue,
  invalidSetting,
  ListenError,
  listenError,
  unreadableFile,
} from "../../lib/util/errors.ts";

Deno.test("invalidSetting() writes setting, value, problem, expectation and example in one order", () => {
  const full = invalidSetting({
    setting: "--listen",
    value: "h:70000",
    problem: "port 70000 is out of range 0 to 65535",
    expected: "HOST:PORT",
    example: "--listen 127.0.0.1:8080",
  });
  assert.ok(full instanceof ConfigError);
  assert.equal(
    full.message,
    "Invalid --listen 'h:70000': port 70000 is out of range 0 to 65535; expected HOST:PORT, for example --listen 127.0.0.1:8080",
  );
  assert.equal(
    invalidSetting({ setting: "--max-retries", value: "x", expected: "a whole number" }).message,
    "Invalid --max-retries 'x': expected a whole number",
  );
  assert.equal(
    invalidSetting({ setting: "--gateway", problem: "Unsupported scheme 'ftp://'" }).message,
    "Invalid --gateway: Unsupported scheme 'ftp://'",
  );
});

Deno.test("invalidSetting() shows config values with their type and file, and lists by kind", () => {
  const typed = { typed: true, source: "/etc/x.yaml", expected: "a number" };
  assert.equal(
    invalidSetting({ setting: "max_retries", value: "5", ...typed }).message,
    "Invalid max_retries '5' (a string) in /etc/x.yaml: expected a number",
  );
  assert.equal(
    invalidSetting({ setting: "keepalive", value: -1, ...typed }).message,
    "Invalid keepalive -1 (a number) in /etc/x.yaml: expected a number",
  );
  assert.equal(
    invalidSetting({ setting: "gateway", value: ["a"], ...typed }).message,
    "Invalid gateway (a list) in /etc/x.yaml: expected a number",
  );
  assert.equal(
    invalidSetting({ setting: "server_name", value: null, ...typed }).message,
    "Invalid server_name (empty) in /etc/x.yaml: expected a number",
  );
});

Deno.test("invalidSetting() never shows a secret value", () => {
  const message = invalidSetting({
    setting: "--token",
    value: "s3cret-token",
    secret: true,
    problem: "it starts with 'Bearer '",
  }).message;
  assert.equal(message, "Invalid --token (value hidden): it starts with 'Bearer '");
  assert.ok(!message.includes("s3cret"));
});

Deno.test("describeValue() quotes, escapes control characters and cuts long text", () => {
  assert.equal(describeValue("a\nb\t\u0001"), "'a\\nb\\t\\u0001'");
  assert.equal(describeValue("x".repeat(100)), `'${"x".repeat(80)}…'`);
  assert.equal(describeValue(true, { typed: true }), "true (a boolean)");
  assert.equal(describeValue({ a: 1 }), "a mapping");
  assert.equal(describeKind("s3cret"), "a string");
  assert.equal(describeKind(null), "nothing (null)");
});

Deno.test("unreadableFile() names what, path and setting, without Deno's repeated path", () => {
  const error = unreadableFile({
    what: "token file",
    path: "/run/t",
    setting: "--token-file",
    cause: new Deno.errors.NotFound("No such file or directory (os error 2): readfile '/run/t'"),
  });
  assert.ok(error instanceof ConfigError);
  assert.equal(
    error.message,
    "Cannot read token file /run/t (from --token-file): No such file or directory (os error 2); check the path and its permissions",
  );
  assert.ok(error.cause instanceof Deno.errors.NotFound);
});

Deno.test("listenError() explains in-use and privileged addresses, and leaves other errors alone", () => {
  const where = { address: "0.0.0.0:80", setting: "--listen" };
  const inUse = listenError(new Deno.errors.AddrInUse("x"), where);
  assert.ok(inUse instanceof ListenError);
  assert.equal(
    inUse.message,
    "Cannot listen on 0.0.0.0:80 (--listen): the address is in use; choose another port",
  );
  assert.match(listenError(new Deno.errors.PermissionDenied("x"), where)!.message, /below 1024/);
  assert.equal(listenError(new Deno.errors.NotCapable("x"), where), undefined);
  assert.equal(listenError(new Error("x"), where), undefined);
});
