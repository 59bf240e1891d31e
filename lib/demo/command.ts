// `mcp-rproxy demo`: the whole product on loopback in one command. Starts our gateway with a fresh token,
// tunnels a real MCP server to it, drives it with the official MCP SDK client, prints what happened and
// how to connect any MCP client, and runs until the signal aborts.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { parseArgs } from "node:util";
import { Supervisor } from "../connect/supervisor.ts";
import { ConfigError, ExitCode } from "../util/errors.ts";
import { startGateway } from "../serve/gateway.ts";
import { createTokenStore } from "../serve/token_store.ts";
import { normalizeGatewayUrl } from "../connect/link_url.ts";
import type { Registration } from "../connect/link_outcome.ts";
import { setupLogging } from "../util/log.ts";
import type { ConnectSettings } from "../connect/settings.ts";
import { splitCommand } from "../util/shell_words.ts";
import { VERSION } from "../util/version.ts";

/** Options of {@link demoCommand}. */
export interface DemoOptions {
  /** Aborting it stops everything cleanly. */
  signal: AbortSignal;
  /** Where the demo's report goes; stdout by default. */
  print?: (line: string) => void;
  /** Receives a function that kills the tunneled server at once (for a second Ctrl-C). */
  onKill?: (kill: () => void) => void;
}

const HELP = `mcp-rproxy demo: serve + connect + an MCP client on loopback, needing nothing else

Usage: mcp-rproxy demo [--port N] [--server "COMMAND"] [--verbose]

  --port N          port of the demo gateway on 127.0.0.1 (default: a free one)
  --server CMD      tunnel this MCP stdio server instead of the built-in demo server,
                    e.g. --server "npx -y @modelcontextprotocol/server-everything"
  --verbose         show the logs of the gateway and the tunnel
`;

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

function writeLine(line: string): void {
  const bytes = new TextEncoder().encode(line + "\n");
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}

function firstText(result: unknown): string {
  const content = (result as { content?: { type?: string; text?: string }[] }).content;
  return content?.find((c) => c.type === "text")?.text ?? JSON.stringify(result);
}

/** Runs the demo until the signal aborts. Returns the exit code. */
export async function demoCommand(args: string[], options: DemoOptions): Promise<number> {
  const { signal, print = writeLine } = options;
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        port: { type: "string" },
        server: { type: "string" },
        verbose: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new ConfigError(
      `${(error as Error).message}; run 'mcp-rproxy demo --help' for the options`,
    );
  }
  if (values.help) {
    print(HELP);
    return ExitCode.Ok;
  }
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(
      `--port must be a port number from 0 to 65535: got ${JSON.stringify(values.port)}`,
    );
  }
  let command: string[];
  try {
    command = values.server === undefined ? demoServerCommand() : splitCommand(values.server);
  } catch (error) {
    throw new ConfigError(`--server ${JSON.stringify(values.server)}: ${(error as Error).message}`);
  }
  await setupLogging({ level: values.verbose ? "debug" : "warning", format: "text" });

  const token = crypto.randomUUID().replaceAll("-", "") + crypto.randomUUID().replaceAll("-", "");
  const gateway = await startGateway({
    tokens: await createTokenStore({ tokensFile: `${token}: demo\n` }),
    hostname: "127.0.0.1",
    port,
  });
  const tunnelStop = new AbortController();
  let registration: Registration | undefined;
  let registered!: () => void;
  const isRegistered = new Promise<void>((resolve) => registered = resolve);
  const settings: ConnectSettings = {
    command,
    commandText: values.server ?? "mcp-rproxy demo-server (built in)",
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
  options.onKill?.(() => tunnel.kill());
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
    if (outcome !== "registered" || registration === undefined) return ExitCode.Ok;
    const mcpUrl = registration.mcpUrl ??
      `${gateway.url}/servers/${encodeURIComponent(registration.name ?? "")}/mcp`;
    print(
      `  connect   tunneled '${settings.commandText}' (pid ${tunnel.serverPid}) as '${registration.name}'`,
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
    return ExitCode.Ok;
  } finally {
    await client?.close().catch(() => {});
    tunnelStop.abort();
    await running.catch(() => {});
    await gateway.close();
    print("demo stopped");
  }
}
