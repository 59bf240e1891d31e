// Byte sizes as people write them on a command line: `1048576`, `512KiB`, `16MiB`, `3 mb`.

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 * 1024,
  mb: 1024 * 1024,
  mib: 1024 * 1024,
};

/**
 * Parses a whole number of bytes with an optional `KiB`/`MiB` suffix (`K`, `KB`, `M`, `MB` mean the
 * same: binary units); any case, spaces allowed before the unit. Undefined when it is not one.
 *
 * @example
 * ```ts
 * import { parseByteSize } from "./byte_size.ts";
 * parseByteSize("16MiB"); // 16777216
 * parseByteSize("4 kb"); // 4096
 * parseByteSize("1.5MiB"); // undefined
 * ```
 */
export function parseByteSize(text: string): number | undefined {
  const match = /^(\d+)\s*([a-z]*)$/i.exec(text.trim());
  const factor = UNITS[match?.[2]?.toLowerCase() ?? "?"];
  if (match === null || factor === undefined) return undefined;
  const value = Number(match[1]) * factor;
  return Number.isSafeInteger(value) ? value : undefined;
}

/**
 * Writes a byte count the way the help and docs do: whole MiB as `32MiB`, whole KiB as `256KiB`.
 *
 * @example
 * ```ts
 * import { formatByteSize } from "./byte_size.ts";
 * formatByteSize(32 * 1024 * 1024); // "32MiB"
 * formatByteSize(1000); // "1000"
 * ```
 */
export function formatByteSize(bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / 1024 / 1024}MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024}KiB`;
  return String(bytes);
}
