// Unit tests of the sentences a failed dial becomes, for the causes and statuses the e2e tests cannot
// produce on loopback (a certificate for another name, a reset, a gateway behind a load balancer).

import assert from "node:assert/strict";
import { describeFailure, describeStatus } from "../../lib/connect/dial_failure.ts";
import { classifyFailure } from "../../lib/connect/link_socket.ts";

const URL_WSS = new URL("wss://gw.example.com/mcp/reverse-proxy/ws");

Deno.test("classifyFailure() reads each runtime text Deno 2.9 gives into its cause", () => {
  const cases: [string, string][] = [
    ["received corrupt message of type InvalidContentType", "tls-plain-http"],
    ["invalid HTTP version parsed", "tls-expected"],
    ["tcp connect error", "refused"],
    ["dns error", "dns"],
    ["unsuccessful tunnel", "proxy"],
    ["invalid peer certificate: UnknownIssuer", "tls-untrusted"],
    [
      "invalid peer certificate: certificate expired: verification time 1796140145 (UNIX), but certificate is not valid after 1577923200 (218216945 seconds ago)",
      "tls-expired",
    ],
    ["invalid peer certificate: NotValidForName", "tls-name"],
    ["connection reset by peer", "reset"],
    ["something new", "other"],
  ];
  for (const [text, cause] of cases) assert.equal(classifyFailure(text), cause, text);
});

Deno.test("describeFailure() names the host the certificate does not cover", () => {
  assert.equal(
    describeFailure("tls-name", { url: URL_WSS, runtimeText: "NotValidForName" }),
    "The gateway at wss://gw.example.com/mcp/reverse-proxy/ws presented a TLS certificate that is not valid for 'gw.example.com': use a host name the certificate names in --gateway (NotValidForName)",
  );
});

Deno.test("describeFailure() spells out the scheme's default port", () => {
  assert.match(
    describeFailure("refused", { url: URL_WSS, runtimeText: "tcp connect error" }),
    /^Nothing accepts connections at gw\.example\.com:443 /,
  );
});

Deno.test("describeStatus() explains 200/426, 404 and 502-504, and says only the status otherwise", () => {
  assert.match(describeStatus(200, URL_WSS), /HTTP 200: something in between dropped the upgrade/);
  assert.match(describeStatus(426, URL_WSS), /HTTP 426: something in between dropped the upgrade/);
  assert.match(
    describeStatus(404, URL_WSS),
    /HTTP 404: nothing serves that path: check the path prefix/,
  );
  assert.match(describeStatus(502, URL_WSS), /HTTP 502: a proxy or load balancer in front of it/);
  assert.equal(
    describeStatus(500, URL_WSS),
    "The gateway at wss://gw.example.com/mcp/reverse-proxy/ws answered the WebSocket upgrade with HTTP 500",
  );
});
