import assert from "node:assert/strict";
import { formatHostPort, parseHostPort } from "../../lib/util/host_port.ts";

Deno.test("parseHostPort() reads IPv4, bracketed IPv6 and hostnames, ports 0 to 65535", () => {
  const cases: [string, string, number][] = [
    ["127.0.0.1:9464", "127.0.0.1", 9464],
    ["0.0.0.0:0", "0.0.0.0", 0],
    ["[::1]:8080", "::1", 8080],
    ["[::]:9090", "::", 9090],
    ["[::ffff:127.0.0.1]:1", "::ffff:127.0.0.1", 1],
    ["localhost:65535", "localhost", 65535],
    ["host.docker.internal:80", "host.docker.internal", 80],
    ["my_host-1.example.:443", "my_host-1.example.", 443],
    ["  127.0.0.1:1  ", "127.0.0.1", 1],
  ];
  for (const [text, hostname, port] of cases) {
    assert.deepEqual(parseHostPort(text), { hostname, port }, text);
  }
});

Deno.test("parseHostPort() says what is wrong, in words a user can act on", () => {
  const cases: [string, RegExp][] = [
    ["", /^it is empty$/],
    ["9464", /^the port is missing$/],
    ["localhost", /^the port is missing$/],
    ["host:", /^the port is missing$/],
    [":9464", /^the host is missing: use 127\.0\.0\.1 for this machine only, or 0\.0\.0\.0/],
    ["host:70000", /^port 70000 is out of range 0 to 65535$/],
    ["host:123456", /^the port is not a number$/],
    ["host:8o", /^the port is not a number$/],
    ["::1:9464", /^an IPv6 address must be in brackets, as in \[::1\]:8080$/],
    ["[::1]9464", /^the port is missing after the \]$/],
    ["[::1:9464", /^the IPv6 address has no closing \]$/],
    ["[localhost]:1", /^'localhost' in brackets is not an IPv6 address$/],
    ["300.1.1.1:80", /^'300\.1\.1\.1' is not an IPv4 address: each part is 0 to 255$/],
    ["a b:1", /^'a b' is not a hostname/],
    ["-bad:1", /^'-bad' is not a hostname/],
    ["http://x:1", /^a listen address has no scheme: write HOST:PORT, without http:\/\//],
    ["x/y:1", /^'x\/y' is not a hostname/],
  ];
  for (const [text, pattern] of cases) {
    assert.throws(
      () => parseHostPort(text),
      (error: unknown) => error instanceof TypeError && pattern.test(error.message),
      JSON.stringify(text),
    );
  }
});

Deno.test("formatHostPort() brackets IPv6 and round-trips with parseHostPort()", () => {
  for (const text of ["127.0.0.1:1", "[::1]:8080", "localhost:0"]) {
    assert.equal(formatHostPort(parseHostPort(text)), text);
  }
});
