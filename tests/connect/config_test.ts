import assert from "node:assert/strict";
import { join } from "node:path";
import { resolveConnectConfig } from "../../lib/connect/config.ts";
import { connectHelpText } from "../../lib/connect/help.ts";
import { ConfigError } from "../../lib/util/errors.ts";
import type { ConnectSettings } from "../../lib/connect/settings.ts";

const TOKEN = "s3cr3t-T0ken.value";
const GW = ["--gateway", "https://gw.example.com"];
const CMD = ["--local-stdio", "my-server --flag"];

/** The stdio command of the one server of `settings`. */
function stdio(settings: ConnectSettings): { command: string[]; commandText: string } {
  const transport = settings.servers[0]!.transport;
  assert.equal(transport.kind, "stdio");
  if (transport.kind !== "stdio") throw new Error("unreachable");
  return { command: transport.command, commandText: transport.commandText };
}

function sources(env: Record<string, string> = {}) {
  return { env: (name: string) => env[name], readTextFile: Deno.readTextFile };
}

async function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ settings: ConnectSettings; warnings: string[] }> {
  const result = await resolveConnectConfig(args, sources(env));
  assert.equal(result.kind, "run");
  if (result.kind !== "run") throw new Error("unreachable");
  return result;
}

/** Asserts a ConfigError whose message matches every pattern and never contains the test token. */
async function fails(
  args: string[],
  env: Record<string, string>,
  ...patterns: RegExp[]
): Promise<string> {
  let caught: unknown;
  try {
    await resolveConnectConfig(args, sources(env));
  } catch (error: unknown) {
    caught = error;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  for (const pattern of patterns) assert.match(caught.message, pattern);
  assert.ok(!caught.message.includes(TOKEN), `message leaks the token: ${caught.message}`);
  return caught.message;
}

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "config_test_" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function write(dir: string, name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await Deno.writeTextFile(path, text);
  return path;
}

// Help and version

Deno.test("resolveConnectConfig() returns help for -h and --help, even next to a mistake", async () => {
  for (const args of [["-h"], ["--help"], ["--bogus", "--help"], [...GW, "-h"]]) {
    const result = await resolveConnectConfig(args, sources());
    assert.equal(result.kind, "help", args.join(" "));
    if (result.kind === "help") assert.equal(result.text, connectHelpText());
  }
});

Deno.test("resolveConnectConfig() returns version for -V and --version", async () => {
  for (const args of [["-V"], ["--version"]]) {
    assert.deepEqual(await resolveConnectConfig(args, sources()), { kind: "version" });
  }
});

Deno.test("connectHelpText() lists every flag, environment variable, config key and exit code", () => {
  const text = connectHelpText();
  for (
    const word of [
      "--local-stdio",
      "-- CMD ARGS",
      "--gateway",
      "--token ",
      "--token-file",
      "--server-name",
      "--server-description",
      "--reconnect-delay",
      "--max-retries",
      "--keepalive",
      "--config",
      "--log-level",
      "--log-format",
      "--verbose",
      "--cert",
      "--health-listen",
      "--max-server-queue-bytes",
      "--max-server-queue-messages",
      "--shutdown-grace",
      "-h, --help",
      "-V, --version",
      "REVERSE_PROXY_GATEWAY",
      "REVERSE_PROXY_TOKEN ",
      "REVERSE_PROXY_TOKEN_FILE",
      "REVERSE_PROXY_RECONNECT_DELAY",
      "REVERSE_PROXY_MAX_RETRIES",
      "REVERSE_PROXY_KEEPALIVE",
      "REVERSE_PROXY_LOG_LEVEL",
      "REVERSE_PROXY_LOG_FORMAT",
      "local_stdio",
      "token_file",
      "server_name",
      "server_description",
      "reconnect_delay",
      "max_retries",
      "log_level",
      "log_format",
      "health_listen",
      "max_server_queue_bytes",
      "max_server_queue_messages",
      "shutdown_grace",
      "Exit codes: 0",
      "130",
    ]
  ) {
    assert.ok(text.includes(word), `help lacks ${word}`);
  }
});

// Minimal runs, command forms and defaults

Deno.test("resolveConnectConfig() applies defaults to a minimal command line", async () => {
  const { settings, warnings } = await run([...GW, ...CMD]);
  assert.deepEqual(settings, {
    servers: [{
      isolation: "shared",
      origin: "--local-stdio",
      transport: {
        kind: "stdio",
        command: ["my-server", "--flag"],
        commandText: "my-server --flag",
      },
    }],
    manyServers: false,
    gateway: "https://gw.example.com",
    gatewayUrl: new URL("wss://gw.example.com/reverse-proxy/ws"),
    reconnectDelay: 1,
    maxRetries: 0,
    keepalive: 30,
    logLevel: "info",
    logFormat: "text",
  });
  assert.deepEqual(warnings, []);
});

Deno.test("resolveConnectConfig() splits --local-stdio like a shell and keeps its text", async () => {
  const { settings } = await run([
    ...GW,
    "--local-stdio",
    `uvx mcp-server-git --repository '/my repo'`,
  ]);
  assert.deepEqual(stdio(settings).command, ["uvx", "mcp-server-git", "--repository", "/my repo"]);
  assert.equal(stdio(settings).commandText, `uvx mcp-server-git --repository '/my repo'`);
});

Deno.test("resolveConnectConfig() takes the words after -- as they are", async () => {
  const { settings } = await run([...GW, "--", "python3", "-c", "print('a b')", "--gateway", "x"]);
  assert.deepEqual(stdio(settings).command, ["python3", "-c", "print('a b')", "--gateway", "x"]);
  assert.equal(stdio(settings).commandText, `python3 -c 'print('"'"'a b'"'"')' --gateway x`);
  assert.equal(settings.gateway, "https://gw.example.com");
});

Deno.test("resolveConnectConfig() accepts --flag=value forms", async () => {
  const { settings } = await run([
    "--gateway=http://localhost:4444/pre/",
    "--local-stdio=srv",
    "--max-retries=3",
    "--reconnect-delay=0.5",
    "--keepalive=10",
    "--log-format=json",
    "--server-name=git",
    "--server-description=Git tools",
    "--health-listen=127.0.0.1:9464",
  ]);
  assert.equal(settings.gatewayUrl.href, "ws://localhost:4444/pre/reverse-proxy/ws");
  assert.equal(settings.maxRetries, 3);
  assert.equal(settings.reconnectDelay, 0.5);
  assert.equal(settings.keepalive, 10);
  assert.equal(settings.logFormat, "json");
  assert.equal(settings.servers[0]?.name, "git");
  assert.equal(settings.servers[0]?.description, "Git tools");
  assert.equal(settings.healthListen, "127.0.0.1:9464");
});

Deno.test("resolveConnectConfig() refuses both --local-stdio and a command after --", async () => {
  await fails([...GW, ...CMD, "--", "other"], {}, /Both --local-stdio and a command after --/);
});

Deno.test("resolveConnectConfig() refuses an empty command after --", async () => {
  await fails([...GW, "--"], {}, /Nothing follows --/);
  await fails([...GW, "--", ""], {}, /Nothing follows --/);
});

Deno.test("resolveConnectConfig() explains a missing command", async () => {
  await fails(
    GW,
    {},
    /No local server given/,
    /--server name=NAME,stdio="CMD ARGS"/,
    /--local-stdio "CMD ARGS"/,
    /-- CMD ARGS/,
    /--local-streamable-http URL/,
  );
});

Deno.test("resolveConnectConfig() explains a missing gateway", async () => {
  await fails(CMD, {}, /No gateway given/, /--gateway URL/, /REVERSE_PROXY_GATEWAY/);
});

Deno.test("resolveConnectConfig() names a command with an unclosed quote", async () => {
  await fails(
    [...GW, "--local-stdio", "srv 'abc"],
    {},
    /^Invalid --local-stdio 'srv 'abc': Unclosed single quote at character 5/,
  );
  await fails([...GW, "--local-stdio", "  "], {}, /--local-stdio .*Command is empty/);
});

Deno.test("resolveConnectConfig() refuses a stray argument before --", async () => {
  await fails([...GW, ...CMD, "extra"], {}, /Unexpected argument 'extra'/, /after --/);
});

// Flag syntax errors

Deno.test("resolveConnectConfig() names an unknown flag and suggests the closest", async () => {
  await fails(
    [...GW, ...CMD, "--max-retry", "3"],
    {},
    /^Unknown option '--max-retry': did you mean --max-retries\? Run 'mcp-rproxy connect --help'/,
  );
  await fails(
    [...GW, ...CMD, "--gatway=x"],
    {},
    /Unknown option '--gatway': did you mean --gateway\?/,
  );
  await fails(
    [...GW, ...CMD, "--tokn=" + TOKEN],
    {},
    /Unknown option '--tokn': did you mean --token\?/,
  );
  await fails(
    [...GW, ...CMD, "--zzzzzzzzzz"],
    {},
    /^Unknown option '--zzzzzzzzzz': run 'mcp-rproxy connect --help' for the list$/,
  );
  await fails(
    [...GW, ...CMD, "-x"],
    {},
    /Unknown option '-x'/,
    /-h \(--help\) and -V \(--version\)/,
  );
});

Deno.test("resolveConnectConfig() names a flag that lacks its value", async () => {
  await fails([...CMD, "--gateway"], {}, /^--gateway needs a value/);
  await fails(
    [...CMD, "--gateway", "--verbose"],
    {},
    /^--gateway needs a value but is followed by another option/,
  );
  await fails([...GW, ...CMD, "--token", "-" + TOKEN], {}, /^--token needs a value/);
  await fails([...GW, ...CMD, "--verbose=yes"], {}, /^--verbose takes no value/);
});

// Numbers

Deno.test("resolveConnectConfig() refuses bad numbers from flags, naming flag and value", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["--max-retries", "five"],
      /^Invalid --max-retries 'five': expected a whole number, 0 or more \(0 = retry forever\), for example --max-retries 5$/,
    ],
    [["--max-retries", "-1"], /^Invalid --max-retries '-1': expected a whole number/],
    [["--max-retries", "1.5"], /^Invalid --max-retries '1.5'/],
    [
      ["--reconnect-delay", "0"],
      /^Invalid --reconnect-delay '0': expected a number of seconds greater than 0/,
    ],
    [["--reconnect-delay", "-2"], /^Invalid --reconnect-delay '-2'/],
    [["--reconnect-delay", "abc"], /^Invalid --reconnect-delay 'abc'/],
    [["--keepalive", "0"], /^Invalid --keepalive '0': expected a number of seconds greater than 0/],
    [["--keepalive", "1e9"], /^Invalid --keepalive '1e9'/],
    [["--keepalive", "100000"], /at most 86400/],
    [["--keepalive", ""], /^Invalid --keepalive '':/],
    [["--websocket-retry", "0"], /^Invalid --websocket-retry '0': expected a number of seconds/],
    [
      ["--transport", "http"],
      /^Invalid --transport 'http': expected auto, websocket or sse, for example --transport sse$/,
    ],
  ];
  for (const [args, pattern] of cases) await fails([...GW, ...CMD, ...args], {}, pattern);
});

Deno.test("resolveConnectConfig() accepts decimal seconds and whole retries", async () => {
  const { settings } = await run([
    ...GW,
    ...CMD,
    "--reconnect-delay",
    ".25",
    "--keepalive",
    "7.5",
    "--max-retries",
    "10",
  ]);
  assert.equal(settings.reconnectDelay, 0.25);
  assert.equal(settings.keepalive, 7.5);
  assert.equal(settings.maxRetries, 10);
});

Deno.test("resolveConnectConfig() refuses bad numbers from the environment, naming the variable", async () => {
  await fails(
    [...GW, ...CMD],
    { REVERSE_PROXY_MAX_RETRIES: "lots" },
    /^Invalid REVERSE_PROXY_MAX_RETRIES 'lots': expected a whole number.*REVERSE_PROXY_MAX_RETRIES=5$/,
  );
  await fails(
    [...GW, ...CMD],
    { REVERSE_PROXY_RECONNECT_DELAY: "-1" },
    /^Invalid REVERSE_PROXY_RECONNECT_DELAY '-1'/,
  );
  await fails(
    [...GW, ...CMD],
    { REVERSE_PROXY_KEEPALIVE: "0" },
    /^Invalid REVERSE_PROXY_KEEPALIVE '0'/,
  );
});

Deno.test("resolveConnectConfig() checks an overridden value too", async () => {
  await fails(
    [...GW, ...CMD, "--max-retries", "2"],
    { REVERSE_PROXY_MAX_RETRIES: "x" },
    /REVERSE_PROXY_MAX_RETRIES/,
  );
});

Deno.test("resolveConnectConfig() treats an empty environment variable as unset", async () => {
  const { settings } = await run(CMD, {
    REVERSE_PROXY_GATEWAY: "gw.example.com",
    REVERSE_PROXY_MAX_RETRIES: "",
    REVERSE_PROXY_TOKEN: "  ",
  });
  assert.equal(settings.maxRetries, 0);
  assert.equal(settings.token, undefined);
});

// Logging

Deno.test("resolveConnectConfig() reads log levels in any case, including the old Python names", async () => {
  const cases: [string, string][] = [
    ["TRACE", "trace"],
    ["Debug", "debug"],
    ["info", "info"],
    ["WARN", "warning"],
    ["warning", "warning"],
    ["ERROR", "error"],
    ["CRITICAL", "fatal"],
  ];
  for (const [name, level] of cases) {
    const { settings } = await run([...GW, ...CMD, "--log-level", name]);
    assert.equal(settings.logLevel, level, name);
  }
});

Deno.test("resolveConnectConfig() refuses an unknown log level or format, listing the choices", async () => {
  await fails(
    [...GW, ...CMD, "--log-level", "loud"],
    {},
    /^Invalid --log-level 'loud': expected a log level \(trace, debug, info, warning, error, critical/,
  );
  await fails(
    [...GW, ...CMD],
    { REVERSE_PROXY_LOG_LEVEL: "loud" },
    /^Invalid REVERSE_PROXY_LOG_LEVEL 'loud'/,
  );
  await fails(
    [...GW, ...CMD, "--log-format", "xml"],
    {},
    /^Invalid --log-format 'xml': expected text or json/,
  );
});

Deno.test("resolveConnectConfig() lets --verbose win over --log-level", async () => {
  const { settings } = await run([...GW, ...CMD, "--log-level", "error", "--verbose"]);
  assert.equal(settings.logLevel, "debug");
});

Deno.test("resolveConnectConfig() reads the log format in any case", async () => {
  const { settings } = await run([...GW, ...CMD], { REVERSE_PROXY_LOG_FORMAT: "JSON" });
  assert.equal(settings.logFormat, "json");
});

// Precedence: flag > environment > config file > default, for each class of setting

interface PrecedenceCase {
  name: string;
  flag: string[];
  env: Record<string, string>;
  file: string;
  read: (settings: ConnectSettings) => unknown;
  expect: { flag: unknown; env: unknown; file: unknown; none: unknown };
}

const PRECEDENCE: PrecedenceCase[] = [
  {
    name: "gateway",
    flag: ["--gateway", "flag.example"],
    env: { REVERSE_PROXY_GATEWAY: "env.example" },
    file: "gateway: file.example",
    read: (s) => s.gatewayUrl.hostname,
    expect: { flag: "flag.example", env: "env.example", file: "file.example", none: undefined },
  },
  {
    name: "reconnect delay",
    flag: ["--reconnect-delay", "4"],
    env: { REVERSE_PROXY_RECONNECT_DELAY: "3" },
    file: "reconnect_delay: 2",
    read: (s) => s.reconnectDelay,
    expect: { flag: 4, env: 3, file: 2, none: 1 },
  },
  {
    name: "max retries",
    flag: ["--max-retries", "7"],
    env: { REVERSE_PROXY_MAX_RETRIES: "6" },
    file: "max_retries: 5",
    read: (s) => s.maxRetries,
    expect: { flag: 7, env: 6, file: 5, none: 0 },
  },
  {
    name: "keepalive",
    flag: ["--keepalive", "40"],
    env: { REVERSE_PROXY_KEEPALIVE: "50" },
    file: "keepalive: 60",
    read: (s) => s.keepalive,
    expect: { flag: 40, env: 50, file: 60, none: 30 },
  },
  {
    name: "log level",
    flag: ["--log-level", "error"],
    env: { REVERSE_PROXY_LOG_LEVEL: "warning" },
    file: "log_level: debug",
    read: (s) => s.logLevel,
    expect: { flag: "error", env: "warning", file: "debug", none: "info" },
  },
  {
    name: "log level from --verbose",
    flag: ["--verbose"],
    env: { REVERSE_PROXY_LOG_LEVEL: "error" },
    file: "verbose: true",
    read: (s) => s.logLevel,
    expect: { flag: "debug", env: "error", file: "debug", none: "info" },
  },
  {
    name: "transport",
    flag: ["--transport", "SSE"],
    env: { REVERSE_PROXY_TRANSPORT: "websocket" },
    file: "transport: auto",
    read: (s) => s.transport,
    expect: { flag: "sse", env: "websocket", file: "auto", none: undefined },
  },
  {
    name: "log format",
    flag: ["--log-format", "json"],
    env: { REVERSE_PROXY_LOG_FORMAT: "text" },
    file: "log_format: json",
    read: (s) => s.logFormat,
    expect: { flag: "json", env: "text", file: "json", none: "text" },
  },
  {
    name: "token",
    flag: ["--token", "flag-token"],
    env: { REVERSE_PROXY_TOKEN: "env-token" },
    file: "token: file-token",
    read: (s) => [s.token, s.tokenSource],
    expect: {
      flag: ["flag-token", "flag"],
      env: ["env-token", "env"],
      file: ["file-token", "config"],
      none: [undefined, undefined],
    },
  },
  {
    name: "server name (no environment variable)",
    flag: ["--server-name", "flag-name"],
    env: {},
    file: "server_name: file-name",
    read: (s) => s.servers[0]?.name,
    expect: { flag: "flag-name", env: "file-name", file: "file-name", none: undefined },
  },
  {
    name: "command (no environment variable)",
    flag: ["--local-stdio", "flag-cmd"],
    env: {},
    file: "local_stdio: file-cmd",
    read: (s) => stdio(s).command,
    expect: { flag: ["flag-cmd"], env: ["file-cmd"], file: ["file-cmd"], none: undefined },
  },
];

Deno.test("resolveConnectConfig() gives flags precedence over environment over file over defaults", async () => {
  await withDir(async (dir) => {
    for (const c of PRECEDENCE) {
      // The base supplies whatever the case does not, from the lowest layer that lets the case win
      const base = c.name.startsWith("gateway") ? [] : ["--gateway", "base.example"];
      const baseCmd = c.name.startsWith("command") ? [] : ["--local-stdio", "base-cmd"];
      const file = await write(dir, "cfg.yaml", `${c.file}\n`);
      const config = ["--config", file];
      const all = await run([...base, ...baseCmd, ...c.flag, ...config], c.env);
      assert.deepEqual(c.read(all.settings), c.expect.flag, `${c.name}: flag`);
      const envAndFile = await run([...base, ...baseCmd, ...config], c.env);
      assert.deepEqual(c.read(envAndFile.settings), c.expect.env, `${c.name}: environment`);
      const fileOnly = await run([...base, ...baseCmd, ...config]);
      assert.deepEqual(c.read(fileOnly.settings), c.expect.file, `${c.name}: file`);
      if (
        c.expect.none !== undefined || !["gateway", "command"].some((n) => c.name.startsWith(n))
      ) {
        const none = await run([...base, ...baseCmd]);
        assert.deepEqual(c.read(none.settings), c.expect.none, `${c.name}: default`);
      }
    }
  });
});

Deno.test("resolveConnectConfig() takes a --token-file over REVERSE_PROXY_TOKEN", async () => {
  await withDir(async (dir) => {
    const path = await write(dir, "token", "file-token\n");
    const { settings } = await run([...GW, ...CMD, "--token-file", path], {
      REVERSE_PROXY_TOKEN: "env-token",
    });
    assert.equal(settings.token, "file-token");
    assert.equal(settings.tokenSource, "file");
  });
});

Deno.test("resolveConnectConfig() reads REVERSE_PROXY_TOKEN_FILE", async () => {
  await withDir(async (dir) => {
    const path = await write(dir, "token", `  ${TOKEN}\r\n\n`);
    const { settings, warnings } = await run([...GW, ...CMD], { REVERSE_PROXY_TOKEN_FILE: path });
    assert.equal(settings.token, TOKEN);
    assert.equal(settings.tokenSource, "file");
    assert.deepEqual(warnings, []);
  });
});

// Tokens and warnings

Deno.test("resolveConnectConfig() warns that --token shows in the process list, without the token", async () => {
  const { settings, warnings } = await run([...GW, ...CMD, "--token", TOKEN]);
  assert.equal(settings.token, TOKEN);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /process list/);
  assert.match(warnings[0]!, /--token-file/);
  assert.match(warnings[0]!, /REVERSE_PROXY_TOKEN/);
  assert.ok(!warnings[0]!.includes(TOKEN));
});

Deno.test("resolveConnectConfig() does not warn about a token from the environment", async () => {
  const { warnings } = await run([...GW, ...CMD], { REVERSE_PROXY_TOKEN: TOKEN });
  assert.deepEqual(warnings, []);
});

Deno.test("resolveConnectConfig() warns when a token would travel in clear text to another host", async () => {
  const { warnings } = await run(["--gateway", "http://gw.example.com:8080", ...CMD], {
    REVERSE_PROXY_TOKEN: TOKEN,
  });
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /clear text to gw\.example\.com:8080/);
  assert.match(warnings[0]!, /wss:\/\//);
  assert.ok(!warnings[0]!.includes(TOKEN));
});

Deno.test("resolveConnectConfig() does not warn about clear text to loopback or without a token", async () => {
  for (const gateway of ["ws://localhost:4444", "http://127.0.0.1:4444", "ws://[::1]:4444"]) {
    const { warnings } = await run(["--gateway", gateway, ...CMD], { REVERSE_PROXY_TOKEN: TOKEN });
    assert.deepEqual(warnings, [], gateway);
  }
  const { warnings } = await run(["--gateway", "ws://gw.example.com", ...CMD]);
  assert.deepEqual(warnings, []);
});

Deno.test("resolveConnectConfig() refuses malformed tokens without repeating them", async () => {
  await fails([...GW, ...CMD, "--token", ""], {}, /^Invalid --token \(value hidden\): it is empty/);
  await fails(
    [...GW, ...CMD],
    { REVERSE_PROXY_TOKEN: `Bearer ${TOKEN}` },
    /^Invalid REVERSE_PROXY_TOKEN \(value hidden\): it starts with 'Bearer '/,
  );
  await fails(
    [...GW, ...CMD],
    { REVERSE_PROXY_TOKEN: `${TOKEN} ${TOKEN}` },
    /^Invalid REVERSE_PROXY_TOKEN \(value hidden\): it contains whitespace/,
  );
  await withDir(async (dir) => {
    const file = await write(dir, "cfg.yaml", `token: 12345\n`);
    await fails(
      [...GW, ...CMD, "--config", file],
      {},
      /^Invalid token \(value hidden\) in .*cfg\.yaml: it is a number; expected the bearer token as a string/,
    );
  });
});

Deno.test("resolveConnectConfig() refuses --token together with --token-file", async () => {
  await fails(
    [...GW, ...CMD, "--token", TOKEN, "--token-file", "/x"],
    {},
    /Both --token and --token-file are set/,
  );
  await fails(
    [...GW, ...CMD],
    { REVERSE_PROXY_TOKEN: TOKEN, REVERSE_PROXY_TOKEN_FILE: "/x" },
    /Both REVERSE_PROXY_TOKEN and REVERSE_PROXY_TOKEN_FILE/,
  );
});

Deno.test("resolveConnectConfig() refuses an empty or unreadable token file, naming its path", async () => {
  await withDir(async (dir) => {
    const empty = await write(dir, "empty", " \n\n");
    await fails(
      [...GW, ...CMD, "--token-file", empty],
      {},
      /^Invalid token file .*empty \(from --token-file\): the file is empty/,
    );
    const missing = join(dir, "missing");
    await fails(
      [...GW, ...CMD, "--token-file", missing],
      {},
      new RegExp(
        `^Cannot read token file ${missing} \\(from --token-file\\): No such file or directory`,
      ),
    );
    const twoLines = await write(dir, "two", `${TOKEN}\nsecond-line\n`);
    const message = await fails(
      [...GW, ...CMD, "--token-file", twoLines],
      {},
      /contains whitespace/,
    );
    assert.ok(!message.includes("second-line"));
  });
});

Deno.test("resolveConnectConfig() never puts the token in a message, whatever else is wrong", async () => {
  const bad: [string[], Record<string, string>][] = [
    [[...CMD, "--token", TOKEN], {}],
    [[...GW, "--token", TOKEN], {}],
    [[...GW, ...CMD, "--token", TOKEN, "--max-retries", "x"], {}],
    [["--gateway", `https://gw.example.com/?access_token=${TOKEN}`, ...CMD], {}],
    [["--gateway", `https://user:${TOKEN}@gw.example.com`, ...CMD], {}],
    [[...GW, ...CMD, `--token=${TOKEN}`, "--token-file", "/nonexistent"], {}],
    [[...GW, ...CMD, "--token", `${TOKEN}\nmore`], {}],
    [[...GW, ...CMD], { REVERSE_PROXY_TOKEN: `${TOKEN} x` }],
  ];
  for (const [args, env] of bad) await fails(args, env);
});

// Config files

Deno.test("resolveConnectConfig() reads every setting from a YAML file with snake_case keys", async () => {
  await withDir(async (dir) => {
    const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    await write(dir, "ca.pem", pem);
    await write(dir, "token.txt", `${TOKEN}\n`);
    const file = await write(
      dir,
      "cfg.yaml",
      `# everything
local_stdio: "uvx mcp-server-git --repository '/my repo'"
gateway: https://gw.example.com/prefix
token_file: token.txt
server_name: git
server_description: Git tools
reconnect_delay: 2.5
max_retries: 4
keepalive: 15
log_level: WARNING
log_format: json
cert: ca.pem
health_listen: "[::1]:9464"
max_server_queue_bytes: 32MiB
max_server_queue_messages: 500
shutdown_grace: 2.5
transport: sse
websocket_retry: 120
`,
    );
    const { settings, warnings } = await run(["--config", file]);
    assert.deepEqual(settings, {
      servers: [{
        name: "git",
        description: "Git tools",
        isolation: "shared",
        origin: `local_stdio in ${file}`,
        transport: {
          kind: "stdio",
          command: ["uvx", "mcp-server-git", "--repository", "/my repo"],
          commandText: "uvx mcp-server-git --repository '/my repo'",
        },
      }],
      manyServers: false,
      gateway: "https://gw.example.com/prefix",
      gatewayUrl: new URL("wss://gw.example.com/prefix/reverse-proxy/ws"),
      token: TOKEN,
      tokenSource: "file",
      reconnectDelay: 2.5,
      maxRetries: 4,
      keepalive: 15,
      logLevel: "warning",
      logFormat: "json",
      caCert: pem,
      caCertPath: join(dir, "ca.pem"),
      healthListen: "[::1]:9464",
      maxServerQueueBytes: 32 * 1024 * 1024,
      maxServerQueueMessages: 500,
      shutdownGrace: 2.5,
      transport: "sse",
      websocketRetry: 120,
    });
    assert.deepEqual(warnings, []);
  });
});

Deno.test("resolveConnectConfig() reads the server queue bounds and the shutdown grace from flags", async () => {
  const { settings } = await run([
    ...GW,
    ...CMD,
    "--max-server-queue-bytes",
    "512KiB",
    "--max-server-queue-messages",
    "20",
    "--shutdown-grace",
    "0.5",
  ]);
  assert.equal(settings.maxServerQueueBytes, 512 * 1024);
  assert.equal(settings.maxServerQueueMessages, 20);
  assert.equal(settings.shutdownGrace, 0.5);
  const defaults = await run([...GW, ...CMD]);
  assert.equal(
    defaults.settings.maxServerQueueBytes,
    undefined,
    "the supervisor's default applies",
  );
});

Deno.test("resolveConnectConfig() refuses bad server queue bounds and grace, naming flag and value", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["--max-server-queue-bytes", "12"],
      /^Invalid --max-server-queue-bytes '12': expected a size of at least 1KiB: bytes, or a number with KiB or MiB, for example --max-server-queue-bytes 64MiB$/,
    ],
    [["--max-server-queue-bytes", "1.5MiB"], /^Invalid --max-server-queue-bytes '1.5MiB'/],
    [["--max-server-queue-bytes", "lots"], /^Invalid --max-server-queue-bytes 'lots'/],
    [
      ["--max-server-queue-messages", "0"],
      /^Invalid --max-server-queue-messages '0': expected a whole number of messages, 1 or more, for example --max-server-queue-messages 10000$/,
    ],
    [["--max-server-queue-messages", "2.5"], /^Invalid --max-server-queue-messages '2.5'/],
    [["--shutdown-grace", "0"], /^Invalid --shutdown-grace '0': expected a number of seconds/],
  ];
  for (const [args, pattern] of cases) await fails([...GW, ...CMD, ...args], {}, pattern);
});

Deno.test("resolveConnectConfig() reads every setting from a JSON file with kebab-case keys", async () => {
  await withDir(async (dir) => {
    const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const caPath = await write(dir, "ca.pem", pem);
    const tokenPath = await write(dir, "token.txt", TOKEN);
    const file = await write(
      dir,
      "cfg.json",
      JSON.stringify({
        "local-stdio": ["python3", "-c", "print('x y')"],
        gateway: "gw.example.com:8443",
        "token-file": tokenPath,
        "server-name": "py",
        "server-description": "Python",
        "reconnect-delay": 3,
        "max-retries": 9,
        keepalive: 20,
        "log-level": "debug",
        "log-format": "text",
        cert: caPath,
        "health-listen": "0.0.0.0:0",
      }),
    );
    const { settings } = await run(["--config", file]);
    assert.deepEqual(stdio(settings).command, ["python3", "-c", "print('x y')"]);
    assert.equal(stdio(settings).commandText, `python3 -c 'print('"'"'x y'"'"')'`);
    assert.equal(settings.gatewayUrl.href, "wss://gw.example.com:8443/reverse-proxy/ws");
    assert.equal(settings.token, TOKEN);
    assert.equal(settings.servers[0]?.name, "py");
    assert.equal(settings.servers[0]?.description, "Python");
    assert.equal(settings.reconnectDelay, 3);
    assert.equal(settings.maxRetries, 9);
    assert.equal(settings.keepalive, 20);
    assert.equal(settings.logLevel, "debug");
    assert.equal(settings.logFormat, "text");
    assert.equal(settings.caCert, pem);
    assert.equal(settings.caCertPath, caPath);
    assert.equal(settings.healthListen, "0.0.0.0:0");
  });
});

Deno.test("resolveConnectConfig() reads the old client's keys: local_stdio, log_level, verbose", async () => {
  await withDir(async (dir) => {
    const file = await write(
      dir,
      "old.yml",
      "gateway: https://gw\nlocal_stdio: srv\nlog_level: INFO\nverbose: true\n",
    );
    const { settings } = await run(["--config", file]);
    assert.deepEqual(stdio(settings).command, ["srv"]);
    assert.equal(settings.logLevel, "debug");
  });
});

Deno.test("resolveConnectConfig() guesses the format of other file names from the first character", async () => {
  await withDir(async (dir) => {
    const json = await write(
      dir,
      "cfg.conf",
      `{"gateway": "gw.example.com", "local_stdio": "srv"}`,
    );
    assert.equal((await run(["--config", json])).settings.gateway, "gw.example.com");
    const yaml = await write(dir, "cfg", "gateway: gw.example.com\nlocal_stdio: srv\n");
    assert.equal((await run(["--config", yaml])).settings.gateway, "gw.example.com");
    // Windows editors start a file with a byte-order mark: it is no part of the settings.
    for (const name of ["bom.json", "bom.conf", "bom.yaml"]) {
      const text = name.endsWith(".yaml")
        ? "gateway: gw.example.com\nlocal_stdio: srv\n"
        : `{"gateway": "gw.example.com", "local_stdio": "srv"}`;
      const file = await write(dir, name, `\uFEFF${text}`);
      assert.equal((await run(["--config", file])).settings.gateway, "gw.example.com", name);
    }
  });
});

Deno.test("resolveConnectConfig() names an unknown config key and suggests the closest", async () => {
  await withDir(async (dir) => {
    const cases: [string, RegExp][] = [
      ["max_retry: 3", /^Unknown key 'max_retry' in .*cfg\.yaml: did you mean 'max_retries'\?/],
      ["maxRetries: 3", /^Unknown key 'maxRetries' .*did you mean 'max_retries'\?/],
      ["server-nme: x", /^Unknown key 'server-nme' .*did you mean 'server-name'\?/],
      ["local_stdio-x: x", /^Unknown key 'local_stdio-x'/],
      ["colour: blue", /^Unknown key 'colour' in .*: known keys are servers, local_stdio, /],
      ["config: other.yaml", /^Unknown key 'config' .*cannot name another config file/],
    ];
    for (const [line, pattern] of cases) {
      const file = await write(dir, "cfg.yaml", `gateway: gw\nlocal_stdio: srv\n${line}\n`);
      await fails(["--config", file], {}, pattern);
    }
  });
});

Deno.test("resolveConnectConfig() refuses one setting spelled both ways in a file", async () => {
  await withDir(async (dir) => {
    const file = await write(dir, "cfg.yaml", "max_retries: 1\nmax-retries: 2\n");
    await fails(
      [...GW, ...CMD, "--config", file],
      {},
      /^Both 'max_retries' and 'max-retries' are set in .*cfg\.yaml/,
    );
  });
});

Deno.test("resolveConnectConfig() names key, file, value and expectation for a wrongly typed value", async () => {
  await withDir(async (dir) => {
    const yamlCases: [string, RegExp][] = [
      [
        'max_retries: "five"',
        /^Invalid max_retries 'five' \(a string\) in .*cfg\.yaml: expected a whole number, 0 or more.*max_retries: 5/,
      ],
      ['max_retries: "5"', /^Invalid max_retries '5' \(a string\) in .*cfg\.yaml/],
      ["max_retries: 2.5", /^Invalid max_retries 2\.5 \(a number\) in .*/],
      [
        "keepalive: -1",
        /^Invalid keepalive -1 \(a number\) in .*cfg\.yaml: expected a number of seconds greater than 0/,
      ],
      ["keepalive: .inf", /^Invalid keepalive Infinity \(a number\) in .*/],
      [
        "reconnect-delay: 0",
        /^Invalid reconnect-delay 0 \(a number\) in .*cfg\.yaml.*reconnect-delay: 2\.5/,
      ],
      ["verbose: yes", /^Invalid verbose 'yes' \(a string\) in .*: expected true or false/],
      ["gateway: [a, b]", /^Invalid gateway \(a list\) in .*: expected a gateway URL/],
      [
        "server_name:",
        /^Invalid server_name \(empty\) in .*: expected a name of 1 to 128 characters/,
      ],
      [
        "local_stdio: 42",
        /^Invalid local_stdio 42 \(a number\) in .*: expected a command string or a list of strings/,
      ],
      [
        "local_stdio: []",
        /^Invalid local_stdio \(a list\) in .*: expected a non-empty list of strings/,
      ],
      [
        "local_stdio: [srv, 1]",
        /^Invalid local_stdio \(a list\) in .*: expected a non-empty list of strings/,
      ],
      [
        'local_stdio: "srv \'x"',
        /^Invalid local_stdio 'srv 'x' \(a string\) in .*: Unclosed single quote at character 5/,
      ],
      ["log_level: loud", /^Invalid log_level 'loud' \(a string\) in .*: expected a log level/],
      ["health_listen: 9464", /^Invalid health_listen 9464 \(a number\) in .*: expected HOST:PORT/],
    ];
    for (const [line, pattern] of yamlCases) {
      const file = await write(dir, "cfg.yaml", `${line}\n`);
      await fails([...GW, ...CMD, "--config", file], {}, pattern);
    }
    const json = await write(dir, "cfg.json", `{"max-retries": "five"}`);
    await fails(
      [...GW, ...CMD, "--config", json],
      {},
      /^Invalid max-retries 'five' \(a string\) in .*cfg\.json.*"max-retries": 5/,
    );
  });
});

Deno.test("resolveConnectConfig() requires a mapping at the top of a config file", async () => {
  await withDir(async (dir) => {
    const cases: [string, string, RegExp][] = [
      ["list.yaml", "- a\n- b\n", /holds a list/],
      ["scalar.yaml", "hello\n", /holds a string/],
      ["null.yaml", "~\n", /holds nothing \(null\)/],
      ["list.json", "[1]", /holds a list/],
    ];
    for (const [name, text, pattern] of cases) {
      const file = await write(dir, name, text);
      await fails(
        [...GW, ...CMD, "--config", file],
        {},
        /must hold a mapping of settings at the top level/,
        pattern,
      );
    }
  });
});

Deno.test("resolveConnectConfig() reports YAML syntax errors with file, line and column", async () => {
  await withDir(async (dir) => {
    const file = await write(dir, "cfg.yaml", `gateway: gw\ntoken: "${TOKEN}\n`);
    await fails(
      ["--config", file],
      {},
      new RegExp(`^Invalid YAML in config file ${file} at line 3, column 1: `),
    );
    const indent = await write(dir, "indent.yaml", "a: [1, 2\nb: 3\n");
    await fails(["--config", indent], {}, /at line 2, column 1: deficient indentation/);
    const duplicate = await write(dir, "dup.yaml", "gateway: a\ngateway: b\n");
    await fails(["--config", duplicate], {}, /at line 2, column \d+: duplicated mapping key/);
    const empty = await write(dir, "empty.yaml", "# nothing\n");
    await fails(
      ["--config", empty],
      {},
      /^Invalid YAML in config file .*empty\.yaml: expected a document, but the input is empty/,
    );
  });
});

Deno.test("resolveConnectConfig() reports JSON syntax errors with line and column, never the text", async () => {
  await withDir(async (dir) => {
    const comma = await write(dir, "cfg.json", `{\n  "gateway": "gw",\n}`);
    await fails(
      ["--config", comma],
      {},
      new RegExp(`^Invalid JSON in config file ${comma} at line 3, column 1: `),
    );
    const leak = await write(dir, "leak.json", `{"token": ${TOKEN}}`);
    await fails(
      ["--config", leak],
      {},
      /^Invalid JSON in config file .*leak\.json: Unexpected token/,
    );
  });
});

Deno.test("resolveConnectConfig() names an unreadable config file and the reason", async () => {
  await withDir(async (dir) => {
    const missing = join(dir, "nope.yaml");
    await fails(
      ["--config", missing],
      {},
      new RegExp(
        `^Cannot read config file ${missing} \\(from --config\\): No such file or directory \\(os error 2\\); check`,
      ),
    );
    await fails(["--config", dir], {}, /^Cannot read config file .*: Is a directory/);
  });
  await fails(["--config", ""], {}, /^Invalid --config '': it is empty/);
});

Deno.test("resolveConnectConfig() refuses a token and a token_file in the same file", async () => {
  await withDir(async (dir) => {
    const file = await write(dir, "cfg.yaml", `token: ${TOKEN}\ntoken_file: t.txt\n`);
    await fails(
      [...GW, ...CMD, "--config", file],
      {},
      /^Both token in .*cfg\.yaml and token_file in .*cfg\.yaml are set/,
    );
  });
});

// Certificates, health address, names

Deno.test("resolveConnectConfig() reads --cert and keeps its text and path", async () => {
  await withDir(async (dir) => {
    const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const path = await write(dir, "ca.pem", pem);
    const { settings } = await run([...GW, ...CMD, "--cert", path]);
    assert.equal(settings.caCert, pem);
    assert.equal(settings.caCertPath, path);
  });
});

Deno.test("resolveConnectConfig() refuses a missing or non-PEM --cert, naming its path", async () => {
  await withDir(async (dir) => {
    const missing = join(dir, "none.pem");
    await fails(
      [...GW, ...CMD, "--cert", missing],
      {},
      new RegExp(`^Cannot read CA certificate file ${missing} \\(from --cert\\): No such file`),
    );
    const junk = await write(dir, "junk.pem", "hello\n");
    await fails(
      [...GW, ...CMD, "--cert", junk],
      {},
      /^Invalid CA certificate file .*junk\.pem \(from --cert\): it holds no PEM certificate/,
    );
  });
});

Deno.test("resolveConnectConfig() refuses a malformed --health-listen", async () => {
  for (const value of ["9464", "localhost", ":9464", "host:99999", "::1:9464", "a b:1"]) {
    await fails(
      [...GW, ...CMD, "--health-listen", value],
      {},
      new RegExp(`^Invalid --health-listen '${value.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}'`),
    );
  }
});

Deno.test("resolveConnectConfig() checks registration name and description lengths", async () => {
  await fails(
    [...GW, ...CMD, "--server-name", "x".repeat(129)],
    {},
    /^Invalid --server-name 'x+…': expected a name of at most 128 characters/,
  );
  await fails(
    [...GW, ...CMD, "--server-name", " "],
    {},
    /^Invalid --server-name ' ': expected a name of 1 to 128/,
  );
  await fails(
    [...GW, ...CMD, "--server-description", "d".repeat(1025)],
    {},
    /at most 1024 characters/,
  );
});

Deno.test("resolveConnectConfig() wraps gateway URL errors with the setting's name", async () => {
  await fails(
    ["--gateway", "ftp://gw", ...CMD],
    {},
    /^Invalid --gateway: Unsupported scheme 'ftp:\/\/'/,
  );
  await fails(
    CMD,
    { REVERSE_PROXY_GATEWAY: "https:///x" },
    /^Invalid REVERSE_PROXY_GATEWAY: Gateway URL .* has no host/,
  );
  await withDir(async (dir) => {
    const file = await write(dir, "cfg.yaml", `gateway: "https://gw/?token=${TOKEN}"\n`);
    await fails(
      [...CMD, "--config", file],
      {},
      /^Invalid gateway in .*cfg\.yaml: Gateway URL carries the query parameter 'token'/,
    );
  });
});

Deno.test("resolveConnectConfig() takes the old Python client's whole surface: its nine flags, five variables and file keys", async () => {
  // The flags of mcpgateway.reverse_proxy's argparse, written as its users write them.
  const fromFlags = await run([
    "--local-stdio",
    "srv --x",
    "--gateway",
    "https://gw.example.com/prefix",
    "--token",
    TOKEN,
    "--reconnect-delay",
    "1.0",
    "--max-retries",
    "5",
    "--keepalive",
    "20",
    "--log-level",
    "CRITICAL",
    "--verbose",
  ]);
  assert.deepEqual(stdio(fromFlags.settings).command, ["srv", "--x"]);
  assert.equal(fromFlags.settings.gatewayUrl.href, "wss://gw.example.com/prefix/reverse-proxy/ws");
  assert.equal(fromFlags.settings.token, TOKEN);
  assert.deepEqual(
    [
      fromFlags.settings.reconnectDelay,
      fromFlags.settings.maxRetries,
      fromFlags.settings.keepalive,
    ],
    [1, 5, 20],
  );
  assert.equal(fromFlags.settings.logLevel, "debug", "--verbose wins, as in the old client");
  const fromEnv = await run(["--local-stdio", "srv"], {
    REVERSE_PROXY_GATEWAY: "https://gw.example.com",
    REVERSE_PROXY_TOKEN: TOKEN,
    REVERSE_PROXY_RECONNECT_DELAY: "2.5",
    REVERSE_PROXY_MAX_RETRIES: "3",
    REVERSE_PROXY_LOG_LEVEL: "WARNING",
  });
  assert.deepEqual(
    [fromEnv.settings.token, fromEnv.settings.reconnectDelay, fromEnv.settings.maxRetries],
    [TOKEN, 2.5, 3],
  );
  assert.equal(fromEnv.settings.logLevel, "warning");
  await withDir(async (dir) => {
    // The old client read every name of its argparse namespace from the file (and JSON when the name
    // does not end in .yaml or .yml).
    const json = await write(
      dir,
      "old.json",
      JSON.stringify({
        local_stdio: "srv",
        gateway: "https://gw.example.com",
        token: TOKEN,
        reconnect_delay: 1.5,
        max_retries: 2,
        keepalive: 15,
        log_level: "ERROR",
        verbose: false,
      }),
    );
    const { settings } = await run(["--config", json]);
    assert.deepEqual(
      [settings.token, settings.reconnectDelay, settings.maxRetries, settings.keepalive],
      [TOKEN, 1.5, 2, 15],
    );
    assert.equal(settings.logLevel, "error");
  });
});
