// Which servers connect carries: the one-server forms (`--local-stdio`, `-- CMD`, `--local-streamable-http`,
// `--local-sse`) or a list (`--server` specs, the config file's `servers:`). The set is one setting: the
// highest layer that defines it wins whole, and one layer may define it only one way.

import { ConfigError } from "../util/errors.ts";
import { joinCommand } from "../util/shell_words.ts";
import { commandFromString } from "./config_check.ts";
import type { Given, Key, Layer } from "./config_layers.ts";
import { isolationOf, type IsolationOrigin } from "./isolation_settings.ts";
import { type EntrySources, resolveEntry, upstreamUrl } from "./server_entries.ts";
import { parseServerSpec } from "./server_flag.ts";
import { CONNECT_DEFAULTS, type ServerSpec } from "./settings.ts";

/** The server set and what resolving it found worth a warning. */
export interface ServerSet {
  servers: ServerSpec[];
  /** True when it came from `--server` or `servers:`. */
  manyServers: boolean;
  warnings: string[];
}

const FORMS: readonly Key[] = ["servers", "local_stdio", "local_streamable_http", "local_sse"];
const NONE_GIVEN =
  'No local server given: pass --server name=NAME,stdio="CMD ARGS" (repeatable), --local-stdio "CMD ARGS", -- CMD ARGS, --local-streamable-http URL or --local-sse URL, or add servers: (or local_stdio) to the config file';

/**
 * Resolves the server set from the flags (with the words after `--`) and the config file.
 *
 * @throws {ConfigError} For no server, two ways of giving it in one layer, a bad entry, or two servers
 * with one name.
 */
export async function resolveServerSet(
  layers: { flags: Layer; file: Layer; commandArgs: string[] | undefined },
  sources: EntrySources,
): Promise<ServerSet> {
  const { flags, file, commandArgs } = layers;
  const flagForms = FORMS.filter((key) => flags.has(key));
  // The file's set is overridden whole, but checked all the same: a typo there bites the day the flags go.
  if (commandArgs !== undefined || flagForms.length > 0) await checkOverridden(file);
  if (commandArgs !== undefined) {
    if (flagForms.length > 0) {
      throw new ConfigError(
        `Both ${flags.get(flagForms[0]!)!.name} and a command after -- are given: use one of them`,
      );
    }
    if (commandArgs.length === 0 || commandArgs[0] === "") {
      throw new ConfigError(
        "Nothing follows --: put the server command and its arguments after it, as in -- npx -y my-server",
      );
    }
    return oneServer(
      {
        kind: "stdio",
        command: commandArgs,
        commandText: joinCommand(commandArgs),
      },
      { origin: "-- CMD ARGS", layers: [flags, file] },
    );
  }
  const layer = flagForms.length > 0 ? flags : file;
  const forms = FORMS.filter((key) => layer.has(key));
  if (forms.length === 0) throw new ConfigError(NONE_GIVEN);
  if (forms.length > 1) {
    const names = forms.map((key) => layer.get(key)!.where);
    throw new ConfigError(`Both ${names.join(" and ")} are given: give the servers one way only`);
  }
  const given = layer.get(forms[0]!)!;
  switch (given.key) {
    case "servers":
      return await manyServers(given, { flags, file }, sources);
    case "local_stdio": {
      const words = Array.isArray(given.value) ? given.value as string[] : commandFromString(given);
      const text = Array.isArray(given.value) ? joinCommand(words) : String(given.value);
      return oneServer(
        { kind: "stdio", command: words, commandText: text },
        { origin: given.where, layers: [flags, file] },
      );
    }
    default: {
      const origin = { where: given.where, layer: given.layer as "flag" | "config" };
      const url = upstreamUrl(origin, given.name, given.value);
      return oneServer(
        {
          kind: given.key === "local_sse" ? "sse" : "http",
          url,
          headers: [],
          timeoutMs: CONNECT_DEFAULTS.upstreamTimeout * 1000,
        },
        { origin: given.where, layers: [flags, file] },
      );
    }
  }
}

/**
 * What resolving an overridden set may read: nothing. Its entries are checked for what they say, not for
 * the secret files and variables they name (which need not exist where the flags are used instead).
 */
const UNREAD: EntrySources = {
  env: () => "unread",
  readTextFile: () => Promise.resolve("-----BEGIN CERTIFICATE-----"),
};

/** Checks the file's server set that flags override: its entries, its names, its URLs. */
async function checkOverridden(file: Layer): Promise<void> {
  const servers = file.get("servers");
  if (servers !== undefined) {
    await manyServers(servers, { flags: new Map(), file: new Map() }, UNREAD);
  }
  for (const key of ["local_streamable_http", "local_sse"] as const) {
    const given = file.get(key);
    if (given !== undefined) {
      upstreamUrl({ where: given.where, layer: "config" }, given.name, given.value);
    }
  }
}

/** A one-server form: `--server-name` and `--server-description` apply to it. */
function oneServer(
  transport: ServerSpec["transport"],
  context: { origin: string; layers: Layer[] },
): ServerSet {
  const first = (key: Key): Given | undefined => {
    for (const layer of context.layers) {
      const given = layer.get(key);
      if (given !== undefined) return given;
    }
    return undefined;
  };
  // Each of the three may come from its own layer (`isolation` in a file, `--max-instances` as a flag).
  const isolation = first("isolation");
  const maxInstances = first("max_instances");
  const idleTimeout = first("instance_idle_timeout");
  const originOf = (given: Given | undefined): IsolationOrigin => ({
    where: given?.where ?? context.origin,
    layer: given?.layer === "config" ? "config" : "flag",
  });
  const spec: ServerSpec = {
    ...isolationOf(originOf(isolation), {
      isolation: isolation?.value,
      max_instances: maxInstances?.value,
      instance_idle_timeout: idleTimeout?.value,
      origins: {
        max_instances: originOf(maxInstances),
        instance_idle_timeout: originOf(idleTimeout),
      },
    }),
    transport,
    origin: context.origin,
  };
  const name = first("server_name");
  if (name !== undefined) spec.name = String(name.value).trim();
  else if (spec.isolation === "per-client") {
    // Instances start only when clients come: connect cannot learn the name from the server first.
    throw new ConfigError(
      `${
        isolation!.where
      } per-client needs a name to register (no server runs before a client comes to ask for it): add --server-name NAME`,
    );
  }
  const description = first("server_description");
  if (description !== undefined) spec.description = String(description.value);
  return { servers: [spec], manyServers: false, warnings: [] };
}

async function manyServers(
  given: Given,
  layers: { flags: Layer; file: Layer },
  sources: EntrySources,
): Promise<ServerSet> {
  for (
    const key of [
      "server_name",
      "server_description",
      "isolation",
      "max_instances",
      "instance_idle_timeout",
    ] as const
  ) {
    const stray = layers.flags.get(key) ?? layers.file.get(key);
    if (stray !== undefined) {
      throw new ConfigError(
        `${stray.where} applies to the one-server forms; with ${given.where} give each server its ${
          key === "server_name" ? "name" : key === "server_description" ? "description" : key
        } in its own entry`,
      );
    }
  }
  const entries = given.value as unknown[];
  const servers: ServerSpec[] = [];
  const warnings: string[] = [];
  for (const [i, raw] of entries.entries()) {
    const origin = given.layer === "flag"
      ? { where: `--server #${i + 1}`, layer: "flag" as const }
      : {
        where: `servers[${i}] in ${given.file}`,
        layer: "config" as const,
        ...(given.file === undefined ? {} : { file: given.file }),
      };
    const entry = given.layer === "flag" ? parseServerSpec(String(raw), i + 1) : raw;
    const resolved = await resolveEntry(entry, origin, sources);
    const name = resolved.spec.name!;
    const twin = servers.find((s) => s.name!.toLowerCase() === name.toLowerCase());
    if (twin !== undefined) {
      throw new ConfigError(
        `Two servers are named ${name} (${twin.origin} and ${resolved.spec.origin}): each name is a URL at the gateway, give each server its own`,
      );
    }
    servers.push(resolved.spec);
    warnings.push(...resolved.warnings);
  }
  return { servers, manyServers: true, warnings };
}
