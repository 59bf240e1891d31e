// Every way a dial fails, for real, reaches the user as one log line that names the cause and the fix,
// and the same sentence ends the final error once the retries are exhausted (issue 18).

import assert from "node:assert/strict";
import { startTinyproxy } from "../fixtures/forward_proxy.ts";
import { DEMO_SERVER, startProxy } from "../fixtures/proxy_process.ts";
import { startTestGateway, TOKENS } from "../fixtures/test_gateway.ts";

const TLS_DIR = new URL("../fixtures/tls/", import.meta.url).pathname;

/** A listener that answers every request with 404, over TLS when given a certificate. */
function startListener(tls?: { cert: string; key: string }): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: () => {},
    ...(tls ?? {}),
  }, () => new Response("not here", { status: 404 }));
}

async function tlsListener(name: "server" | "expired"): Promise<Deno.HttpServer<Deno.NetAddr>> {
  return startListener({
    cert: await Deno.readTextFile(`${TLS_DIR}${name}.pem`),
    key: await Deno.readTextFile(`${TLS_DIR}${name}.key`),
  });
}

/**
 * Runs connect against `gateway` with one retry; returns the `connect_failed` message, the final error
 * and how long until exit. Asserts that the two agree and that connect exited 1.
 */
async function dialFailure(
  gateway: string,
  options: { extra?: string[]; env?: Record<string, string> } = {},
): Promise<{ error: string; kind: string; fatal: string; ms: number }> {
  const started = performance.now();
  await using proxy = startProxy([
    "connect",
    "--gateway",
    gateway,
    "--log-format",
    "json",
    "--max-retries",
    "1",
    "--reconnect-delay",
    "0.01",
    ...(options.extra ?? []),
    "--",
    ...DEMO_SERVER,
  ], { env: { DENO_NO_UPDATE_CHECK: "1", ...options.env } });
  assert.equal(await proxy.exitCode(20_000), 1);
  const ms = performance.now() - started;
  const failures = proxy.lines.filter((l) => l.json?.event === "connect_failed");
  assert.equal(failures.length, 2, "one attempt and one retry");
  const failed = failures[0]!.json!;
  assert.equal(failed.message, failed.error, "the log line is the sentence itself");
  const fatal = String((await proxy.waitForEvent("fatal", 1_000)).error);
  // The last attempt's error, not the first's: a message may name the moment of the attempt (the TLS
  // verification time of an expired certificate).
  assert.equal(
    fatal,
    `Giving up after 1 reconnect attempt; last error: ${failures[1]!.json!.error}`,
  );
  return { error: String(failed.error), kind: String(failed.kind), fatal, ms };
}

function escaped(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

Deno.test("https:// to a plain-HTTP port: the gateway answered plain HTTP, use http:// or ws://", async () => {
  await using listener = startListener();
  const url = `wss://127.0.0.1:${listener.addr.port}/reverse-proxy/ws`;
  const { error, kind } = await dialFailure(`https://127.0.0.1:${listener.addr.port}`);
  assert.equal(kind, "unreachable");
  assert.match(
    error,
    new RegExp(
      `^The gateway at ${
        escaped(url)
      } answered plain HTTP: use http:// or ws:// in --gateway \\(received corrupt message of type InvalidContentType\\)$`,
    ),
  );
});

Deno.test("http:// to a TLS port: the gateway expects TLS, use https:// or wss://", async () => {
  await using listener = await tlsListener("server");
  const { error } = await dialFailure(`http://localhost:${listener.addr.port}`);
  assert.match(
    error,
    new RegExp(
      `^The gateway at ws://localhost:${listener.addr.port}/reverse-proxy/ws did not answer plain HTTP; it most likely expects TLS: use https:// or wss:// in --gateway \\(`,
    ),
  );
});

Deno.test("an unreachable gateway: nothing accepts connections at host:port, start it or fix the address", async () => {
  const free = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = free.addr.port;
  free.close();
  const { error } = await dialFailure(`http://127.0.0.1:${port}`);
  assert.match(
    error,
    new RegExp(
      `^Nothing accepts connections at 127\\.0\\.0\\.1:${port} \\(connection refused\\): start the gateway, or fix the host and port in --gateway`,
    ),
  );
});

Deno.test("a host name that does not resolve (.invalid) fails at once and says to check the host", async () => {
  const { error, ms } = await dialFailure("https://gateway.mcp-rproxy.invalid");
  assert.match(
    error,
    /^The host name 'gateway\.mcp-rproxy\.invalid' does not resolve \(DNS lookup failed\): check the host in --gateway \(dns error\)$/,
  );
  // Two dials and the server's start-up: a DNS failure must not wait for any timeout.
  assert.ok(ms < 10_000, `took ${Math.round(ms)} ms`);
});

Deno.test("a proxy refusing CONNECT (tinyproxy, HTTPS_PROXY) names the proxy, the port and NO_PROXY", async () => {
  await using gateway = await tlsListener("server");
  // Debian's default: CONNECT only to port 443, so the gateway's port gets 403.
  await using proxy = await startTinyproxy({ logLevel: "Connect" });
  const { error } = await dialFailure(`https://localhost:${gateway.addr.port}`, {
    extra: ["--cert", `${TLS_DIR}ca.pem`],
    env: { HTTPS_PROXY: proxy.url, NO_PROXY: "" },
  });
  assert.match(
    error,
    new RegExp(
      `^The proxy \\(HTTPS_PROXY/HTTP_PROXY\\) refused to open a tunnel to localhost:${gateway.addr.port}: allow that port on the proxy, or bypass the proxy for this host with NO_PROXY=localhost \\(unsuccessful tunnel\\)$`,
    ),
  );
  await proxy.waitForOutput(
    new RegExp(`CONNECT.*${gateway.addr.port}|${gateway.addr.port}.*CONNECT|Refused CONNECT`),
    5_000,
  );
});

Deno.test("a proxy that drops the WebSocket upgrade (tinyproxy before serve: HTTP 426) is named, with NO_PROXY as the fix", async () => {
  const gateway = await startTestGateway();
  try {
    await using proxy = await startTinyproxy();
    // --transport websocket: auto would move to the SSE link here (tests/e2e/sse_link_test.ts).
    const { error, kind } = await dialFailure(gateway.url, {
      extra: ["--transport", "websocket"],
      env: { HTTP_PROXY: proxy.url, NO_PROXY: "", REVERSE_PROXY_TOKEN: TOKENS.alice },
    });
    assert.equal(kind, "http-status");
    assert.match(
      error,
      /answered the WebSocket upgrade with HTTP 426: something in between dropped the upgrade \(a proxy in HTTP_PROXY\/HTTPS_PROXY, or a web server that does not forward WebSocket\): bypass the proxy with NO_PROXY=127\.0\.0\.1, or let it pass WebSocket$/,
    );
  } finally {
    await gateway.close();
  }
});

Deno.test("an expired certificate: says when it expired and to renew it", async () => {
  await using gateway = await tlsListener("expired");
  const { error } = await dialFailure(`https://localhost:${gateway.addr.port}`, {
    extra: ["--cert", `${TLS_DIR}other-ca.pem`],
  });
  assert.match(
    error,
    /presented a TLS certificate that expired on 2020-01-02T00:00:00\.000Z: renew the certificate on the gateway \(invalid peer certificate: certificate expired/,
  );
});

Deno.test("a certificate from another CA than --cert names the file and asks for the right CA", async () => {
  await using gateway = await tlsListener("server");
  const { error } = await dialFailure(`https://localhost:${gateway.addr.port}`, {
    extra: ["--cert", `${TLS_DIR}other-ca.pem`],
  });
  assert.match(
    error,
    new RegExp(
      `presented a TLS certificate not signed by the CA in --cert ${
        escaped(TLS_DIR)
      }other-ca\\.pem \\(nor by a public CA\\): pass the CA that signed the gateway's certificate \\(invalid peer certificate: UnknownIssuer\\)$`,
    ),
  );
});

Deno.test("a certificate from a private CA without --cert says to pass it with --cert", async () => {
  await using gateway = await tlsListener("server");
  const { error } = await dialFailure(`https://localhost:${gateway.addr.port}`);
  assert.match(
    error,
    /presented a TLS certificate not signed by a CA this machine trusts: pass the CA that signed it with --cert CA\.pem \(invalid peer certificate: UnknownIssuer\)$/,
  );
});
