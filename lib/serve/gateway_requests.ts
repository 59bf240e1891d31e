// What the gateway reads of a request before routing it: path segments decoded (or refused), and the origins
// a browser shows for the gateway itself.

/** A path segment decoded; undefined when its percent-escapes are malformed (answered 400). */
export function decodeSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "::1" || hostname.startsWith("127.");
}

/** Origins a browser shows for the gateway itself. */
export function ownOrigins(hostname: string, port: number, publicUrl: URL | undefined): string[] {
  const hosts = isLoopback(hostname)
    ? ["localhost", "127.0.0.1", "[::1]"]
    : hostname === "0.0.0.0" || hostname === "::"
    ? []
    : [hostname.includes(":") ? `[${hostname}]` : hostname];
  const origins = hosts.flatMap((h) => [`http://${h}:${port}`, `https://${h}:${port}`]);
  if (publicUrl !== undefined) origins.push(publicUrl.origin);
  return origins;
}
