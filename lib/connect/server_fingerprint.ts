// What makes two definitions of a server the same server, for a reload: everything that changes how it
// is started, reached or registered (its command, environment, URL, header values, CA, timeout, name,
// description, isolation), and nothing else (where in the file it was written).

import type { ServerSpec } from "./settings.ts";

/**
 * A text that is equal for two specs exactly when a reload should leave the server running. It holds
 * header values (a rotated secret restarts the server, so that the new one is used): keep it in memory
 * only, never log it.
 *
 * @example
 * ```ts
 * import { fingerprint } from "./server_fingerprint.ts";
 * const git = { name: "git", isolation: "shared" as const, origin: "--server #1",
 *   transport: { kind: "stdio" as const, command: ["uvx", "mcp-server-git"], commandText: "uvx mcp-server-git" } };
 * fingerprint(git) === fingerprint({ ...git, origin: "servers[0] in a.yaml" }); // true
 * ```
 */
export function fingerprint(spec: ServerSpec): string {
  const transport = spec.transport;
  const how = transport.kind === "stdio"
    ? {
      kind: transport.kind,
      command: transport.command,
      env: transport.env === undefined ? null : sorted(transport.env),
      cwd: transport.cwd ?? null,
    }
    : {
      kind: transport.kind,
      url: transport.url.href,
      headers: transport.headers.map((h) => [h.name.toLowerCase(), h.value]).sort(),
      caCert: transport.caCert ?? null,
      timeoutMs: transport.timeoutMs,
    };
  return JSON.stringify({
    name: spec.name ?? null,
    description: spec.description ?? null,
    isolation: spec.isolation,
    maxInstances: spec.maxInstances ?? null,
    instanceIdleTimeout: spec.instanceIdleTimeout ?? null,
    how,
  });
}

function sorted(record: Record<string, string>): [string, string][] {
  return Object.entries(record).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0);
}
