// `deno task install`: puts an `mcp-rproxy` command on the PATH from this checkout, with `deno install
// --global`. One shim for every command, with all permissions: see the README ("Install") for why.

import { isAbsolute, resolve } from "node:path";
import { parseArgs } from "node:util";

const ROOT = new URL("..", import.meta.url).pathname;

/** The name of the installed command. */
export const COMMAND_NAME = "mcp-rproxy";

const HELP = `Usage: deno task install [--root DIR]

Installs the '${COMMAND_NAME}' command from this checkout: DIR/bin/${COMMAND_NAME}, a shim that runs
'deno run --allow-all --quiet --unstable-lazy-dynamic-imports' on this checkout's main.ts (run it again after changing deno.json).

  --root DIR   installation root (default: $DENO_INSTALL_ROOT, else ~/.deno)
  -h, --help   show this help and exit
`;

/** The `deno install` arguments that install the shim under `root`. */
export function installArgs(root: string): string[] {
  return [
    "install",
    "--global",
    "--quiet",
    "--allow-all",
    // Loads `serve` and the demo only when they run (without it, Deno reads their whole module graph,
    // npm packages included, at every start: ≈ 25 ms before connect could spawn its server; see
    // docs/performance.md). The bundle cannot use it: its chunks would then need --allow-read.
    "--unstable-lazy-dynamic-imports",
    "--force",
    "--name",
    COMMAND_NAME,
    "--config",
    `${ROOT}deno.json`,
    "--root",
    root,
    `${ROOT}main.ts`,
  ];
}

/**
 * The installation root: the flag, else Deno's own DENO_INSTALL_ROOT, else ~/.deno (Deno's default). A
 * relative one is taken from where `deno task` was started (INIT_CWD), not from the checkout.
 */
export function installRoot(
  flag: string | undefined,
  env: (name: string) => string | undefined,
): string {
  const chosen = [flag, env("DENO_INSTALL_ROOT")].find((v) => v !== undefined && v !== "");
  if (chosen !== undefined) {
    return isAbsolute(chosen) ? chosen : resolve(env("INIT_CWD") ?? Deno.cwd(), chosen);
  }
  const home = env("HOME") ?? env("USERPROFILE");
  if (home === undefined) {
    throw new Error("Cannot tell where to install: set HOME, DENO_INSTALL_ROOT or pass --root DIR");
  }
  return `${home}/.deno`;
}

/** True if an executable file named `name` is in one of the PATH's directories. */
function onPath(name: string, path: string | undefined): string | undefined {
  for (const dir of (path ?? "").split(Deno.build.os === "windows" ? ";" : ":")) {
    if (dir === "") continue;
    for (const file of Deno.build.os === "windows" ? [`${name}.exe`, `${name}.cmd`] : [name]) {
      try {
        if (Deno.statSync(`${dir}/${file}`).isFile) return dir;
      } catch {
        // Not there.
      }
    }
  }
  return undefined;
}

if (import.meta.main) {
  let values: { root?: string | undefined; help?: boolean | undefined };
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: { root: { type: "string" }, help: { type: "boolean", short: "h" } },
    }));
  } catch (error: unknown) {
    console.error(`install: ${(error as Error).message}; run 'deno task install --help'`);
    Deno.exit(2);
  }
  if (values.help) {
    console.log(HELP.trimEnd());
    Deno.exit(0);
  }
  const root = installRoot(values.root, (name) => Deno.env.get(name));
  const result = await new Deno.Command(Deno.execPath(), {
    args: installArgs(root),
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!result.success) Deno.exit(result.code || 1);
  const bin = `${root}/bin`;
  const path = Deno.env.get("PATH");
  console.log(
    `Installed ${bin}/${COMMAND_NAME} (runs this checkout's main.ts with all permissions)`,
  );
  if (onPath(COMMAND_NAME, path) !== bin) {
    console.log(`Add it to your PATH:  export PATH="${bin}:$PATH"`);
  }
  if (onPath("deno", path) === undefined) {
    // The shim runs `deno` by name: Deno reached through npx alone is not enough.
    console.log("The command runs 'deno', which is not on your PATH: npm install -g deno@2.9.6");
  }
}
