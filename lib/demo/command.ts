// `mcp-rproxy demo`: the whole product on loopback in one command. Starts our gateway with a fresh token,
// tunnels a real MCP server to it, drives it with the official MCP SDK client, prints what happened and
// how to connect any MCP client, and runs until the signal aborts.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Supervisor } from "../connect/supervisor.ts";
import { parseFlags, wantsHelp } from "../util/cli_flags.ts";
import type { CommandContext } from "../util/command.ts";
import { invalidSetting, listenError } from "../util/errors.ts";
import { type Gateway, startGateway } from "../serve/gateway.ts";
import { createTokenStore } from "../serve/token_store.ts";
import { normalizeGatewayUrl } from "../connect/link_url.ts";
import type { Registration } from "../connect/link_outcome.ts";
import type { ConnectSettings } from "../connect/settings.ts";
import { splitCommand } from "../util/shell_words.ts";
import { VERSION } from "../util/version.ts";

const HELP = `mcp-rproxy demo: serve + connect + an MCP client on loopback, needing nothing else

Usage: mcp-rproxy demo [--port N] [--server "COMMAND"] [--verbose]

  --port N          port of the demo gateway on 127.0.0.1 (default: a free one)
  --server CMD      tunnel this MCP stdio server instead of the built-in demo server,
                    e.g. --server "npx -y @modelcontextprotocol/server-everything"
  --verbose         show the logs of the gateway and the tunnel
  -h, --help        show this help and exit
  -V, --version     show the version and exit
`;

const DEMO_FLAGS = {
  port: { type: "string" },
  server: { type: "string" },
  verbose: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
} as const;

/**
 * The command that starts our built-in MCP server: the same program with the hidden `demo-server`
 * command. A compiled binary is its own interpreter; under `deno run` the script is run again, with no
 * permissions (the demo server needs none).
 */
export function demoServerCommand(): string[] {
  const exec = Deno.execPath();
  const isDeno = /(^|[\\/])deno(\.exe)?$/i.test(exec);
  if (!isDeno) return [exec, "demo-server"];
  const main = new URL(Deno.mainModule);
  const script = main.protocol === "file:" ? decodeURIComponent(main.pathname) : main.href;
  return [exec, "run", "--quiet", "--no-prompt", script, "demo-server"];
}

function firstText(result: unknown): string {
  const content = (result as { content?: { type?: string; text?: string }[] }).content;
  return content?.find((c) => c.type === "text")?.text ?? JSON.stringify(result);
}

/**
 * Runs the demo until the signal aborts, printing its report to stdout.
 *
 * @throws {ConfigError} Bad flags (exit code 2).
 * @throws {ListenError} The `--port` is taken (exit code 1).
 */
export async function demoCommand(args: string[], context: CommandContext): Promise<void> {
  const { signal } = context;
  const print = (line: string) => context.stdout(`${line}\n`);
  if (wantsHelp(args)) {
    context.stdout(HELP);
    return;
  }
  const { values } = parseFlags(args, { command: "demo", flags: DEMO_FLAGS });
  if (values.version) {
    print(VERSION);
    return;
  }
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!/^\d{1,5}$/.test(values.port ?? "0") || port > 65535) {
    throw invalidSetting({
      setting: "--port",
      value: values.port,
      expected: "a port number from 0 to 65535 (0 picks a free one)",
      example: "--port 8080",
    });
  }
  let command: string[];
  try {
    command = values.server === undefined ? demoServerCommand() : splitCommand(values.server);
  } catch (error: unknown) {
    if (!(error instanceof SyntaxError)) throw error;
    throw invalidSetting({ setting: "--server", value: values.server, problem: error.message }, {
      cause: error,
    });
  }
  await context.setupLogging({ level: values.verbose ? "debug" : "warning", format: "text" });

  const token = crypto.randomUUID().replaceAll("-", "") + crypto.randomUUID().replaceAll("-", "");
  let gateway: Gateway;
  try {
    gateway = await startGateway({
      tokens: await createTokenStore({ tokensFile: `${token}: demo\n` }),
      hostname: "127.0.0.1",
      port,
    });
  } catch (error: unknown) {
    throw listenError(error, { address: `127.0.0.1:${port}`, setting: "--port" }) ?? error;
  }
  const tunnelStop = new AbortController();
  let registration: Registration | undefined;
  let registered!: () => void;
  const isRegistered = new Promise<void>((resolve) => registered = resolve);
  const commandText = values.server ?? "mcp-rproxy demo-server (built in)";
  const settings: ConnectSettings = {
    servers: [{
      isolation: "shared",
      transport: { kind: "stdio", command, commandText },
      origin: "--server",
    }],
    manyServers: false,
    gateway: gateway.url,
    gatewayUrl: normalizeGatewayUrl(gateway.url),
    token,
    tokenSource: "flag",
    reconnectDelay: 0.2,
    maxRetries: 0,
    keepalive: 30,
    logLevel: values.verbose ? "debug" : "warning",
    logFormat: "text",
  };
  const tunnel = new Supervisor({
    settings,
    signal: tunnelStop.signal,
    onRegistered: (r) => {
      registration = r;
      registered();
    },
  });
  context.onHardStop(() => tunnel.kill());
  const running = tunnel.run();
  let client: Client | undefined;
  try {
    print(`mcp-rproxy ${VERSION} demo: everything below runs on this machine, over 127.0.0.1`);
    print(`  serve     gateway listening on ${gateway.url}`);
    const outcome = await Promise.race([
      isRegistered.then(() => "registered" as const),
      running.then(() => "stopped" as const),
      new Promise<"aborted">((resolve) =>
        signal.addEventListener("abort", () => resolve("aborted"), { once: true })
      ),
    ]);
    if (outcome !== "registered" || registration === undefined) return;
    const mcpUrl = registration.mcpUrl ??
      `${gateway.url}/servers/${encodeURIComponent(registration.name ?? "")}/mcp`;
    print(
      `  connect   tunneled '${commandText}' (pid ${tunnel.serverPid}) as '${registration.name}'`,
    );

    client = new Client({ name: "mcp-rproxy-demo-client", version: VERSION });
    const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), {
      requestInit: { headers: { Authorization: `Bearer ${token}` } },
    });
    await client.connect(transport);
    const info = client.getServerVersion();
    print(
      `  client    initialize → ${info?.name} ${info?.version} (protocol ${
        transport.protocolVersion ?? "?"
      })`,
    );
    const { tools } = await client.listTools();
    print(`  client    tools/list → ${tools.map((t: { name: string }) => t.name).join(", ")}`);
    if (tools.some((t: { name: string }) => t.name === "echo")) {
      const result = await client.callTool({
        name: "echo",
        arguments: { message: "hello through the tunnel" },
      });
      print(`  client    tools/call echo → ${firstText(result)}`);
    }
    print("");
    print("Point any MCP client (Streamable HTTP) at:");
    print(`  URL     ${mcpUrl}`);
    print(`  Header  Authorization: Bearer ${token}`);
    print("");
    print("Press Ctrl-C to stop.");
    if (!signal.aborted) {
      await Promise.race([
        running,
        new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true })),
      ]);
    }
  } finally {
    await client?.close().catch(() => {});
    tunnelStop.abort();
    await running.catch(() => {});
    await gateway.close();
    print("demo stopped");
  }
}
