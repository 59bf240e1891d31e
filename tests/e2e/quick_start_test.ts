// The README's Quick start, run as written: its code blocks are read from the README, only the placeholders
// are replaced (a local serve for the gateways, server-everything for `uvx …`), every command runs for
// real with the `mcp-rproxy` that its own install command puts on the PATH, every file a command names
// must exist when that command runs, and a tool call through each tunnel works with the official MCP SDK.

import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { delay } from "../../lib/util/delay.ts";
import { commands, readmeSection, shellBlocks } from "../fixtures/readme.ts";
import { processAlive } from "../fixtures/proxy_process.ts";
import { descendants } from "../fixtures/terminal.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Flags whose value is a file the command reads (outputs such as `--out` are created, not used). */
const FILE_FLAGS = [
  "--token-file",
  "--tokens-file",
  "--config",
  "--cert",
  "--tls-cert",
  "--tls-key",
  "--jwt-secret-file",
];

/** A port that was free a moment ago: the Quick start's serve needs a concrete one. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** A long-running command of the Quick start, started in its own process group. */
interface Running {
  command: string;
  child: Deno.ChildProcess;
  output: () => string;
  started: number[];
}

/** Everything the run keeps track of: the shell environment, what runs, the files. */
class QuickStart {
  readonly home: string;
  readonly work: string;
  readonly root: string;
  readonly exports: string[] = [];
  readonly running: Running[] = [];

  constructor(dir: string) {
    this.home = `${dir}/home`;
    this.work = `${dir}/work`;
    this.root = `${dir}/deno-install`;
    Deno.mkdirSync(this.home);
    Deno.mkdirSync(this.work);
  }

  env(): Record<string, string> {
    const env = Deno.env.toObject();
    return {
      ...env,
      HOME: this.home,
      // The npm cache stays the user's: npx would otherwise download server-everything every run.
      npm_config_cache: env.npm_config_cache ?? `${Deno.env.get("HOME")}/.npm`,
      DENO_INSTALL_ROOT: this.root,
      PATH: `${this.root}/bin:${env.PATH ?? ""}`,
      NO_COLOR: "1",
    };
  }

  /** The files a command names: file flags, and `*_FILE` variables exported before it. */
  namedFiles(command: string): string[] {
    const words = command.split(/\s+/);
    const files = words.flatMap((word, i) =>
      FILE_FLAGS.includes(word) && words[i + 1] !== undefined ? [words[i + 1]!] : []
    );
    if (/^mcp-rproxy\b/.test(command)) {
      for (const line of this.exports) {
        const match = /^export \w+_FILE=(\S+)$/.exec(line);
        if (match) files.push(match[1]!);
      }
    }
    return files.map((file) =>
      file.startsWith("~/")
        ? `${this.home}/${file.slice(2)}`
        : file.startsWith("/")
        ? file
        : `${this.work}/${file}`
    );
  }

  /** Runs a command that ends, with the exports made so far; `stdin` is what the user types. */
  async run(command: string, stdin = ""): Promise<string> {
    const child = new Deno.Command("bash", {
      args: ["-e", "-c", [...this.exports, command].join("\n")],
      cwd: this.work,
      env: this.env(),
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(120_000),
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
    const output = await child.output();
    const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, `'${command}' failed:\n${text}`);
    return text;
  }

  /** Starts a command that runs until stopped, in its own process group, and waits for `ready`. */
  async start(command: string, ready: RegExp): Promise<RegExpExecArray> {
    const child = new Deno.Command("bash", {
      args: ["-e", "-c", [...this.exports, `exec ${command}`].join("\n")],
      cwd: this.work,
      env: this.env(),
      clearEnv: true,
      detached: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let text = "";
    let exited = false;
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) text += chunk;
    };
    const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
    void child.status.then(() => exited = true);
    const running: Running = { command, child, output: () => text, started: [] };
    this.running.push(running);
    const until = performance.now() + 120_000;
    for (;;) {
      const match = ready.exec(text);
      if (match) {
        running.started = [child.pid, ...descendants(child.pid)];
        void pumps;
        return match;
      }
      if (exited || performance.now() > until) {
        throw new Error(`'${command}' never printed ${ready}:\n${text}`);
      }
      await delay(50);
    }
  }

  /** SIGTERM to every group started; each must exit 0 and leave nothing running. */
  async stopAll(): Promise<void> {
    for (const { child } of this.running.reverse()) {
      try {
        Deno.kill(-child.pid, "SIGTERM");
      } catch {
        // Exited already; its status says how.
      }
    }
    const codes = await Promise.all(this.running.map(async ({ child, command, output }) => {
      const timer = setTimeout(() => Deno.kill(-child.pid, "SIGKILL"), 20_000);
      try {
        return { command, code: (await child.status).code, output: output() };
      } finally {
        clearTimeout(timer);
      }
    }));
    for (const { command, code, output } of codes) {
      assert.equal(code, 0, `'${command}' did not stop cleanly:\n${output}`);
    }
    const started = this.running.flatMap((r) => r.started);
    for (let i = 0; i < 250 && started.some(processAlive); i++) await delay(20);
    assert.deepEqual(started.filter(processAlive), [], "processes outlived the Quick start");
  }
}

/** Calls `echo` through an MCP URL with a bearer token, with the official SDK client. */
async function echoThrough(url: string, token: string): Promise<string> {
  const client = new Client({ name: "quick-start-test", version: "1" });
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
  try {
    await client.connect(transport);
    const result = await client.callTool({
      name: "echo",
      arguments: { message: "hello through the Quick start" },
    });
    const content = result.content as { type: string; text?: string }[];
    return content.find((c) => c.type === "text")?.text ?? JSON.stringify(result);
  } finally {
    await client.close();
  }
}

Deno.test("the README's Quick start runs as written, with only its placeholders replaced", async () => {
  const blocks = shellBlocks(readmeSection("Quick start")).map(commands);
  const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-quick-start-" });
  const quick = new QuickStart(dir);
  const gatewayPort = freePort();
  const contextForgePort = freePort();
  // Each placeholder must be in the Quick start: a README that lost one would otherwise run untested.
  const placeholders: [string, string][] = [
    ["0.0.0.0:8080", `127.0.0.1:${gatewayPort}`],
    ["https://gw.example.com", `http://127.0.0.1:${gatewayPort}`],
    ["https://gateway.example.com", `http://127.0.0.1:${contextForgePort}`],
    ["uvx mcp-server-git", "npx -y @modelcontextprotocol/server-everything"],
  ];
  const all = blocks.flat().join("\n");
  for (const [placeholder] of placeholders) {
    assert.ok(all.includes(placeholder), `the Quick start names ${placeholder}`);
  }
  const tunnels: { url: string; tokenFile: string }[] = [];
  let contextForgeToken = "";
  try {
    for (const block of blocks) {
      for (const written of block) {
        const command = placeholders.reduce((c, [from, to]) => c.replaceAll(from, to), written);
        for (const file of quick.namedFiles(command)) {
          assert.ok(
            isFile(file),
            `'${written}' uses ${file}, which no earlier command created`,
          );
        }
        if (command === "deno task install") {
          // Run where the user runs it: in the checkout.
          const output = await new Deno.Command("bash", {
            args: ["-e", "-c", command],
            cwd: ROOT,
            env: quick.env(),
            clearEnv: true,
            signal: AbortSignal.timeout(120_000),
          }).output();
          assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
        } else if (command.startsWith("export ")) {
          quick.exports.push(command);
        } else if (/^mcp-rproxy serve /.test(command)) {
          await quick.start(command, /listening on http:\/\/127\.0\.0\.1:\d+/i);
        } else if (/^mcp-rproxy (connect )?-/.test(command)) {
          const [, url] = await quick.start(command, /Registered with the gateway.*mcpUrl=(\S+)/);
          const tokenFile = /--token-file (\S+)/.exec(command)?.[1] ??
            "~/.config/mcp-rproxy/token";
          tunnels.push({ url: url!, tokenFile });
        } else if (command.includes("cat >")) {
          // The user pastes the token their ContextForge admin gave them: here, one of a stand-in
          // gateway (our serve, which accepts ContextForge's clients too) started from a token new.
          contextForgeToken = await startContextForgeStandIn(quick, dir, contextForgePort);
          await quick.run(command, `${contextForgeToken}\n`);
        } else {
          await quick.run(command);
        }
      }
    }
    assert.equal(tunnels.length, 2, "two tunnels: to our gateway and to the ContextForge one");
    for (const { url, tokenFile } of tunnels) {
      const path = tokenFile.startsWith("~/")
        ? `${quick.home}/${tokenFile.slice(2)}`
        : `${quick.work}/${tokenFile}`;
      const token = (await Deno.readTextFile(path)).trim();
      assert.equal(await echoThrough(url, token), "Echo: hello through the Quick start");
    }
    assert.ok(tunnels.some((t) => t.url.endsWith("/servers/git/mcp")), "--server-name git");
    await quick.stopAll();
  } finally {
    for (const { child } of quick.running) {
      try {
        Deno.kill(-child.pid, "SIGKILL");
      } catch {
        // Stopped already: the normal case.
      }
      await child.status;
    }
    await Deno.remove(dir, { recursive: true });
  }
});

/** A serve on `port` with its own tokens file and token, in a directory of its own; returns the token. */
async function startContextForgeStandIn(
  quick: QuickStart,
  dir: string,
  port: number,
): Promise<string> {
  const standIn = `${dir}/context-forge`;
  await Deno.mkdir(standIn);
  const token = await quick.run(
    `cd ${standIn} && mcp-rproxy token new --owner admin@example.com 2>/dev/null`,
  );
  await quick.start(
    // Its own state directory: the README's serve keeps the default one in the same HOME.
    `mcp-rproxy serve --listen 127.0.0.1:${port} --tokens-file ${standIn}/tokens.yaml --state-dir ${standIn}/state`,
    /listening on http:\/\/127\.0\.0\.1:\d+/i,
  );
  return token.trim();
}
