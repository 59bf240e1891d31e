// The config-file layer of `connect`: a YAML or JSON file of settings, read and checked for shape and
// key names. js-yaml is loaded only when a YAML file is read.

import { closest } from "../util/did_you_mean.ts";
import { ConfigError, describeKind, unreadableFile } from "../util/errors.ts";
import { type Given, type Key, KEYS, type Layer } from "./config_layers.ts";

/** The format of a config file. */
export type FileFormat = "yaml" | "json";

/**
 * `.yaml`/`.yml` is YAML and `.json` is JSON; any other name is JSON if it starts with `{`, else YAML.
 *
 * @example
 * ```ts
 * import { formatOf } from "./config_file.ts";
 * formatOf("proxy.conf", '{"gateway": "gw"}'); // "json"
 * ```
 */
export function formatOf(path: string, text: string): FileFormat {
  const lower = path.toLowerCase();
  if (lower.endsWith(".json")) return "json";
  if (lower.endsWith(".yaml") || lower.endsWith(".yml")) return "yaml";
  return text.trimStart().startsWith("{") ? "json" : "yaml";
}

/**
 * Reads the config file at `path` into a layer of settings, each remembering its key as written.
 *
 * @throws {ConfigError} When the file cannot be read or parsed, is not a mapping, has an unknown key
 * (with the nearest known one), or spells one setting both ways. Messages never quote the file's text.
 */
export async function configLayer(
  path: string,
  readTextFile: (path: string) => Promise<string>,
): Promise<Layer> {
  let text: string;
  try {
    text = await readTextFile(path);
  } catch (error: unknown) {
    throw unreadableFile({ what: "config file", path, setting: "--config", cause: error });
  }
  // A byte-order mark (Windows editors write one) is no part of the settings; JSON.parse refuses it.
  if (text.startsWith("\uFEFF")) text = text.slice(1);
  const format = formatOf(path, text);
  const data = format === "json" ? parseJson(text, path) : await parseYaml(text, path);
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new ConfigError(
      `Config file ${path} must hold a mapping of settings at the top level, but holds ${
        describeKind(data)
      }: write for example "gateway: https://gw.example.com" (YAML) or {"gateway": "https://gw.example.com"} (JSON)`,
    );
  }
  const layer: Layer = new Map();
  for (const [name, value] of Object.entries(data)) {
    const key = keyOf(name);
    if (key === undefined) {
      const hint = name.toLowerCase() === "config"
        ? "a config file cannot name another config file"
        : suggestKey(name);
      throw new ConfigError(`Unknown key '${name}' in ${path}: ${hint}`);
    }
    const earlier = layer.get(key);
    if (earlier !== undefined) {
      throw new ConfigError(
        `Both '${earlier.name}' and '${name}' are set in ${path}: they are the same setting, keep one`,
      );
    }
    const given: Given = {
      key,
      layer: "config",
      name,
      where: `${name} in ${path}`,
      value,
      file: path,
      format,
    };
    layer.set(key, given);
  }
  return layer;
}

async function parseYaml(text: string, path: string): Promise<unknown> {
  // Loaded only for a YAML config file: js-yaml costs connect 3 MiB of resident memory.
  const { load, YAMLException } = await import("js-yaml");
  try {
    return load(text);
  } catch (error: unknown) {
    if (!(error instanceof YAMLException)) throw error;
    // Only the reason and the position: js-yaml's message quotes the file, which may hold a token
    const at = error.mark === undefined
      ? ""
      : ` at line ${error.mark.line + 1}, column ${error.mark.column + 1}`;
    throw new ConfigError(
      `Invalid YAML in config file ${path}${at}: ${error.reason}; fix the file or check it with a YAML linter`,
      { cause: error },
    );
  }
}

function parseJson(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error: unknown) {
    if (!(error instanceof SyntaxError)) throw error;
    const lineColumn = /\(line (\d+) column (\d+)\)/.exec(error.message);
    const at = lineColumn ? ` at line ${lineColumn[1]}, column ${lineColumn[2]}` : "";
    // V8 quotes part of the text after `, "` or `, ..."`; the file may hold a token, so cut it off
    const reason = error.message
      .replace(/ in JSON at position .*$/s, "")
      .replace(/, (\.\.\.)?".*$/s, "");
    throw new ConfigError(
      `Invalid JSON in config file ${path}${at}: ${reason}; fix the file (JSON allows no comments or trailing commas) or use YAML`,
      { cause: error },
    );
  }
}

/** The setting a key names, in one spelling: all underscores or all hyphens. */
function keyOf(name: string): Key | undefined {
  if (!/^[a-z]+([_-][a-z]+)*$/.test(name)) return undefined;
  if (name.includes("_") && name.includes("-")) return undefined;
  const snake = name.replaceAll("-", "_");
  return (KEYS as readonly string[]).includes(snake) ? snake as Key : undefined;
}

function suggestKey(name: string): string {
  const kebab = name.includes("-");
  const spelled = KEYS.map((key) => kebab ? key.replaceAll("_", "-") : key);
  const close = closest(name, spelled);
  const known = KEYS.join(", ");
  return close === undefined
    ? `known keys are ${known} (or the same with - instead of _)`
    : `did you mean '${close}'? Known keys are ${known} (or the same with - instead of _)`;
}
