// The one HOST:PORT grammar of every listen address (`serve --listen`, `--health-listen`): IPv4, a
// bracketed IPv6 address, or a hostname, then a port from 0 to 65535.

/** A listen address split into its parts. */
export interface HostPort {
  /** IPv4 address, IPv6 address without brackets, or hostname. */
  hostname: string;
  /** 0 to 65535; 0 picks a free port. */
  port: number;
}

/** What a HOST:PORT should look like, for the `expected` part of a message. */
export const HOST_PORT_EXPECTED =
  "HOST:PORT such as 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080 (port 0 picks a free one)";

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;
const IPV6 = /^[0-9A-Fa-f:.]+$/;
const LABEL = /^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?$/;
const MAX_HOSTNAME = 253;

/**
 * Splits `HOST:PORT`. IPv6 hosts go in brackets (`[::1]:8080`); surrounding whitespace is ignored.
 *
 * @throws {TypeError} Saying what is wrong in words a user can act on (without repeating the value,
 * which the caller names together with the setting).
 *
 * @example
 * ```ts
 * import { parseHostPort } from "./host_port.ts";
 * parseHostPort("[::1]:9464"); // { hostname: "::1", port: 9464 }
 * parseHostPort("localhost:0"); // { hostname: "localhost", port: 0 }
 * ```
 */
export function parseHostPort(text: string): HostPort {
  const trimmed = text.trim();
  if (trimmed === "") throw new TypeError("it is empty");
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed)) {
    throw new TypeError(
      "a listen address has no scheme: write HOST:PORT, without http:// or ws://",
    );
  }
  let host: string;
  let portText: string;
  if (trimmed.startsWith("[")) {
    const close = trimmed.indexOf("]");
    if (close === -1) throw new TypeError("the IPv6 address has no closing ]");
    host = trimmed.slice(1, close);
    const rest = trimmed.slice(close + 1);
    if (!rest.startsWith(":")) throw new TypeError("the port is missing after the ]");
    portText = rest.slice(1);
    if (!IPV6.test(host) || !host.includes(":")) {
      throw new TypeError(`'${host}' in brackets is not an IPv6 address`);
    }
  } else {
    const colon = trimmed.lastIndexOf(":");
    if (colon === -1) throw new TypeError("the port is missing");
    host = trimmed.slice(0, colon);
    portText = trimmed.slice(colon + 1);
    if (host.includes(":")) {
      throw new TypeError("an IPv6 address must be in brackets, as in [::1]:8080");
    }
    checkHost(host);
  }
  if (!/^\d{1,5}$/.test(portText)) {
    throw new TypeError(portText === "" ? "the port is missing" : "the port is not a number");
  }
  const port = Number(portText);
  if (port > 65535) throw new TypeError(`port ${port} is out of range 0 to 65535`);
  return { hostname: host, port };
}

function checkHost(host: string): void {
  if (host === "") {
    throw new TypeError(
      "the host is missing: use 127.0.0.1 for this machine only, or 0.0.0.0 for every interface",
    );
  }
  if (IPV4.test(host)) {
    if (host.split(".").some((octet) => Number(octet) > 255)) {
      throw new TypeError(`'${host}' is not an IPv4 address: each part is 0 to 255`);
    }
    return;
  }
  const labels = host.replace(/\.$/, "").split(".");
  if (host.length > MAX_HOSTNAME || !labels.every((label) => LABEL.test(label))) {
    throw new TypeError(
      `'${host}' is not a hostname: letters, digits, '-' and '.', at most ${MAX_HOSTNAME} characters`,
    );
  }
}

/**
 * Writes a host and port back as text, bracketing IPv6 addresses, for URLs and messages.
 *
 * @example
 * ```ts
 * import { formatHostPort } from "./host_port.ts";
 * formatHostPort({ hostname: "::1", port: 80 }); // "[::1]:80"
 * ```
 */
export function formatHostPort(address: HostPort): string {
  const host = address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname;
  return `${host}:${address.port}`;
}
