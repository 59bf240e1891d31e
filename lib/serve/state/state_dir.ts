// Where serve keeps its state (`--state-dir`): a directory, or `none` for memory only. The default is the
// per-user state directory of the XDG Base Directory spec, which a user would look in for it.

import { ConfigError } from "../../util/errors.ts";

/** The environment variable of `--state-dir`. */
export const STATE_DIR_ENV = "MCP_RPROXY_STATE_DIR";

/** The value of `--state-dir` that keeps state in memory only. */
export const NO_STATE_DIR = "none";

/** The state directory the container image uses (Dockerfile: a volume owned by the runtime user). */
export const CONTAINER_STATE_DIR = "/var/lib/mcp-rproxy";

/** Where serve keeps its state, and which setting chose it (for messages). */
export interface StateDirChoice {
  /** The directory; undefined for memory only. */
  dir: string | undefined;
  /** `--state-dir`, `MCP_RPROXY_STATE_DIR`, or the default and what it was made of. */
  setting: string;
}

/**
 * The state directory: `--state-dir`, else `MCP_RPROXY_STATE_DIR`, else `$XDG_STATE_HOME/mcp-rproxy`
 * (when that is an absolute path, as the spec requires), else `$HOME/.local/state/mcp-rproxy`. `none`
 * (any case) keeps state in memory only. Environment variables are read only when needed, so that a
 * `--state-dir` needs no `--allow-env` for them.
 *
 * @throws {ConfigError} An empty flag, or no default (neither variable set).
 *
 * @example
 * ```ts
 * import { resolveStateDir } from "./state_dir.ts";
 * resolveStateDir(undefined, (name) => name === "HOME" ? "/home/ada" : undefined).dir;
 * // "/home/ada/.local/state/mcp-rproxy"
 * ```
 */
export function resolveStateDir(
  flag: string | undefined,
  env: (name: string) => string | undefined,
): StateDirChoice {
  const given = flag === undefined
    ? { setting: STATE_DIR_ENV, text: env(STATE_DIR_ENV)?.trim() ?? "" }
    : { setting: "--state-dir", text: flag.trim() };
  if (flag !== undefined && given.text === "") {
    throw new ConfigError(
      `--state-dir is empty: give the directory for serve's state, or --state-dir ${NO_STATE_DIR} to keep it in memory only`,
    );
  }
  if (given.text !== "") {
    const none = given.text.toLowerCase() === NO_STATE_DIR;
    return { dir: none ? undefined : given.text, setting: given.setting };
  }
  const xdg = env("XDG_STATE_HOME")?.trim() ?? "";
  if (xdg.startsWith("/")) {
    return {
      dir: `${xdg.replace(/\/+$/, "")}/mcp-rproxy`,
      setting: "default, from XDG_STATE_HOME",
    };
  }
  const home = env("HOME")?.trim() ?? "";
  if (home !== "") {
    return {
      dir: `${home.replace(/\/+$/, "")}/.local/state/mcp-rproxy`,
      setting: "default, from HOME",
    };
  }
  throw new ConfigError(
    `No state directory: neither HOME nor XDG_STATE_HOME is set; give --state-dir DIR (or ${STATE_DIR_ENV}), or --state-dir ${NO_STATE_DIR} to keep state in memory only`,
  );
}
