// The deployment files under docs/ are what users copy: each must parse as strict YAML, and every
// container's mcp-rproxy command line in them must be one the program accepts.

import assert from "node:assert/strict";
import * as yaml from "js-yaml";
import { resolveConnectConfig } from "../lib/connect/config.ts";
import { parseServeArgs } from "../lib/serve/config.ts";

const ROOT = new URL("../", import.meta.url);
const MANIFESTS = ["docs/compose.yaml", "docs/kubernetes/deployment.yaml"];

/** The argument lists of every container in a compose file or Kubernetes manifest, in order. */
function commandLines(document: unknown): string[][] {
  const found: string[][] = [];
  const visit = (node: unknown) => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (node === null || typeof node !== "object") return;
    for (const [key, value] of Object.entries(node)) {
      const isArgs = (key === "command" || key === "args") && Array.isArray(value) &&
        ["serve", "connect"].includes(String(value[0]));
      if (isArgs) found.push(value.map(String));
      else visit(value);
    }
  };
  visit(document);
  return found;
}

/** The environment the Dockerfile sets (`ENV NAME=value` lines). */
async function imageEnv(): Promise<Map<string, string>> {
  const dockerfile = await Deno.readTextFile(new URL("Dockerfile", ROOT));
  const env = new Map<string, string>();
  for (const [, name, value] of dockerfile.matchAll(/^ENV ([A-Z_]+)=(\S+)$/gm)) {
    env.set(name!, value!);
  }
  return env;
}

/** Parses one command line as the program in the image would; throws on a bad flag. */
async function accept(line: string[], image: Map<string, string>): Promise<void> {
  const [command, ...args] = line;
  const env = (name: string) => image.get(name);
  if (command === "serve") {
    assert.equal(typeof parseServeArgs(args, env), "object", line.join(" "));
    return;
  }
  const result = await resolveConnectConfig(args, {
    // Kubernetes gives the token as a file; compose as an environment variable.
    env: (name) => name === "REVERSE_PROXY_TOKEN" ? "from-the-environment" : env(name),
    readTextFile: () => Promise.resolve("from-a-file"),
  });
  assert.equal(result.kind, "run", line.join(" "));
}

for (const path of MANIFESTS) {
  Deno.test(`${path} parses as strict YAML and every mcp-rproxy command line in it is accepted`, async () => {
    const documents = yaml.loadAll(await Deno.readTextFile(new URL(path, ROOT)));
    const lines = documents.flatMap(commandLines);
    assert.deepEqual(lines.map((line) => line[0]).sort(), ["connect", "serve"]);
    const image = await imageEnv();
    assert.equal(image.get("MCP_RPROXY_STATE_DIR"), "/var/lib/mcp-rproxy");
    for (const line of lines) await accept(line, image);
  });
}

Deno.test("commandLines() finds command and args lists that start with serve or connect", () => {
  const lines = commandLines({
    services: { a: { command: ["serve", "--x"] }, b: { command: ["sh", "-c"] } },
    spec: [{ containers: [{ args: ["connect", "--y"] }] }],
  });
  assert.deepEqual(lines, [["serve", "--x"], ["connect", "--y"]]);
});
