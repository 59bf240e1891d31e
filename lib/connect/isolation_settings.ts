// A server's isolation settings, from a `servers:` entry, a `--server` spec or the one-server flags:
// `isolation` (shared or per-client) and, for per-client, `max_instances` and `instance_idle_timeout`,
// checked by one set of rules wherever they were written.

import { type Isolation, ISOLATIONS } from "../protocol/frames.ts";
import { ConfigError, describeValue } from "../util/errors.ts";
import type { ServerSpec } from "./settings.ts";

/** Live instances of one per-client server, at most, whatever is configured. */
const MAX_INSTANCES = 1024;
/** Longest idle timeout, in seconds. */
const MAX_SECONDS = 86_400;

/** Where the settings were written: `--server #2`, `servers[1] in FILE`, `--isolation`. */
export interface IsolationOrigin {
  where: string;
  /** Flags give text; a config file gives typed values. */
  layer: "flag" | "config";
}

function fail(origin: IsolationOrigin, problem: string): ConfigError {
  return new ConfigError(`Invalid ${origin.where}: ${problem}`);
}

/** The keys of a server's isolation settings. */
export type IsolationKey = "isolation" | "max_instances" | "instance_idle_timeout";

/** The isolation settings of a server, as the keys name them (a flag layer gives text). */
export interface IsolationKeys {
  isolation?: unknown;
  max_instances?: unknown;
  instance_idle_timeout?: unknown;
  /**
   * Where each key was written, when they come from different places (the one-server forms take each
   * from a flag, a variable or a file): a message names that place, and a value is read as text or
   * typed by its own layer. A key not listed was written at the `origin` of {@link isolationOf}.
   */
  origins?: Partial<Record<IsolationKey, IsolationOrigin>>;
}

/**
 * Checks and resolves `isolation` and, for `per-client`, `max_instances` and `instance_idle_timeout`
 * (which mean nothing for a shared server, so they are refused there).
 *
 * @throws {ConfigError} Naming the key, the value seen and what is expected.
 */
export function isolationOf(
  origin: IsolationOrigin,
  keys: IsolationKeys,
): Pick<ServerSpec, "isolation" | "maxInstances" | "instanceIdleTimeout"> {
  const at = (key: IsolationKey): IsolationOrigin => keys.origins?.[key] ?? origin;
  const value = keys.isolation ?? "shared";
  if (typeof value !== "string" || !ISOLATIONS.includes(value.trim() as Isolation)) {
    throw fail(
      at("isolation"),
      `isolation ${describeValue(value)} is not one of ${ISOLATIONS.join(", ")}`,
    );
  }
  const isolation = value.trim() as Isolation;
  if (isolation === "shared") {
    for (const key of ["max_instances", "instance_idle_timeout"] as const) {
      if (keys[key] !== undefined) {
        throw fail(at(key), `${key} applies to isolation per-client (this server is shared)`);
      }
    }
    return { isolation };
  }
  const spec: Pick<ServerSpec, "isolation" | "maxInstances" | "instanceIdleTimeout"> = {
    isolation,
  };
  if (keys.max_instances !== undefined) {
    const where = at("max_instances");
    const max = numberOf(where, keys.max_instances);
    if (!(Number.isSafeInteger(max) && max >= 1 && max <= MAX_INSTANCES)) {
      throw fail(
        where,
        `max_instances ${
          describeValue(keys.max_instances, { typed: where.layer === "config" })
        } must be a whole number from 1 to ${MAX_INSTANCES}`,
      );
    }
    spec.maxInstances = max;
  }
  if (keys.instance_idle_timeout !== undefined) {
    const where = at("instance_idle_timeout");
    const seconds = numberOf(where, keys.instance_idle_timeout);
    if (!(seconds >= 0 && seconds <= MAX_SECONDS)) {
      throw fail(
        where,
        `instance_idle_timeout ${
          describeValue(keys.instance_idle_timeout, { typed: where.layer === "config" })
        } must be a number of seconds from 0 (never) to ${MAX_SECONDS}`,
      );
    }
    spec.instanceIdleTimeout = seconds;
  }
  return spec;
}

/** A number from a file, or from the text of a flag; NaN otherwise. */
function numberOf(origin: IsolationOrigin, value: unknown): number {
  if (typeof value === "number") return value;
  return typeof value === "string" && origin.layer === "flag" && /^\d+(\.\d*)?$/.test(value.trim())
    ? Number(value)
    : NaN;
}
