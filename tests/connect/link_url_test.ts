import assert from "node:assert/strict";
import { isLoopbackHost, normalizeGatewayUrl } from "../../lib/connect/link_url.ts";

function href(input: string): string {
  return normalizeGatewayUrl(input).href;
}

Deno.test("normalizeGatewayUrl() maps https and http to wss and ws", () => {
  assert.equal(href("https://gw.example.com"), "wss://gw.example.com/reverse-proxy/ws");
  assert.equal(href("http://gw.example.com:8080"), "ws://gw.example.com:8080/reverse-proxy/ws");
});

Deno.test("normalizeGatewayUrl() accepts any scheme case", () => {
  assert.equal(href("HTTPS://GW.example.com"), "wss://gw.example.com/reverse-proxy/ws");
  assert.equal(href("Ws://localhost:4444"), "ws://localhost:4444/reverse-proxy/ws");
  assert.equal(href("WSS://h/reverse-proxy/ws"), "wss://h/reverse-proxy/ws");
});

Deno.test("normalizeGatewayUrl() keeps a path prefix", () => {
  assert.equal(href("https://h/prefix"), "wss://h/prefix/reverse-proxy/ws");
  assert.equal(href("https://h/a/b/"), "wss://h/a/b/reverse-proxy/ws");
  assert.equal(href("wss://h/prefix/reverse-proxy"), "wss://h/prefix/reverse-proxy/ws");
  assert.equal(href("wss://h/prefix/reverse-proxy/ws"), "wss://h/prefix/reverse-proxy/ws");
});

Deno.test("normalizeGatewayUrl() completes a partial endpoint", () => {
  assert.equal(href("wss://h/reverse-proxy"), "wss://h/reverse-proxy/ws");
  assert.equal(href("wss://h/reverse-proxy/"), "wss://h/reverse-proxy/ws");
  assert.equal(href("wss://h/reverse-proxy/ws"), "wss://h/reverse-proxy/ws");
});

Deno.test("normalizeGatewayUrl() ignores trailing slashes", () => {
  assert.equal(href("https://h/"), "wss://h/reverse-proxy/ws");
  assert.equal(href("https://h///"), "wss://h/reverse-proxy/ws");
  assert.equal(href("wss://h/reverse-proxy/ws//"), "wss://h/reverse-proxy/ws");
});

Deno.test("normalizeGatewayUrl() treats an address without scheme as wss", () => {
  assert.equal(href("localhost:8080"), "wss://localhost:8080/reverse-proxy/ws");
  assert.equal(href("gw.example.com"), "wss://gw.example.com/reverse-proxy/ws");
  assert.equal(href("gw.example.com/prefix/"), "wss://gw.example.com/prefix/reverse-proxy/ws");
  assert.equal(href("  gw.example.com  "), "wss://gw.example.com/reverse-proxy/ws");
});

Deno.test("normalizeGatewayUrl() accepts IPv6 literals", () => {
  assert.equal(href("[::1]:8080"), "wss://[::1]:8080/reverse-proxy/ws");
  assert.equal(href("http://[::1]:8080/p"), "ws://[::1]:8080/p/reverse-proxy/ws");
});

Deno.test("normalizeGatewayUrl() keeps ordinary query parameters after the path", () => {
  assert.equal(href("https://h/p?tenant=a"), "wss://h/p/reverse-proxy/ws?tenant=a");
  assert.equal(href("https://h?"), "wss://h/reverse-proxy/ws");
});

Deno.test("normalizeGatewayUrl() drops the default port", () => {
  assert.equal(href("https://h:443/x"), "wss://h/x/reverse-proxy/ws");
});

function rejects(input: string, pattern: RegExp): TypeError {
  let caught: unknown;
  try {
    normalizeGatewayUrl(input);
  } catch (error: unknown) {
    caught = error;
  }
  assert.ok(caught instanceof TypeError, `expected a TypeError for ${input}`);
  assert.match(caught.message, pattern);
  return caught;
}

Deno.test("normalizeGatewayUrl() throws TypeError on an unsupported scheme", () => {
  const error = rejects("ftp://h", /Unsupported scheme 'ftp:\/\/'/);
  assert.match(error.message, /use https:\/\/ or wss:\/\//);
  rejects("FILE:///etc/passwd", /Unsupported scheme 'file:\/\/'/);
});

Deno.test("normalizeGatewayUrl() throws TypeError on an empty address or host", () => {
  rejects("", /Gateway URL is empty/);
  rejects("   ", /Gateway URL is empty/);
  rejects("https:///path", /has no host/);
  rejects("https://", /not a valid URL|has no host/);
});

Deno.test("normalizeGatewayUrl() throws TypeError on an invalid URL", () => {
  rejects("https://h:99999", /'https:\/\/h:99999' is not a valid URL/);
  rejects("wss://exa mple.com", /is not a valid URL/);
});

Deno.test("normalizeGatewayUrl() refuses tokens in the query string without repeating them", () => {
  for (
    const name of [
      "token",
      "access_token",
      "accessToken",
      "auth",
      "jwt",
      "api_key",
      "apikey",
      "id-token",
      "X-Api-Key",
      "client_secret",
      "sig",
      "X-Amz-Signature",
      "db_password",
    ]
  ) {
    const error = rejects(`https://h/p?x=1&${name}=s3cr3t-value`, new RegExp(`'${name}'`));
    assert.match(error.message, /never be sent in a URL/);
    assert.match(error.message, /--token-file or REVERSE_PROXY_TOKEN/);
    assert.doesNotMatch(error.message, /s3cr3t-value/);
  }
});

Deno.test("normalizeGatewayUrl() refuses user:password credentials without repeating them", () => {
  const error = rejects("https://me:s3cr3t-value@h", /user:password/);
  assert.doesNotMatch(error.message, /s3cr3t-value/);
});

Deno.test("normalizeGatewayUrl() never repeats a secret from an unparsable URL", () => {
  const bad = rejects("https://h:99999/?token=s3cr3t-value", /not a valid URL/);
  assert.doesNotMatch(bad.message, /s3cr3t-value/);
  const userinfo = rejects("https://me:s3cr3t-value@h:99999", /not a valid URL/);
  assert.doesNotMatch(userinfo.message, /s3cr3t-value/);
  const fragment = rejects("https://h/#access_token=s3cr3t-value", /#fragment/);
  assert.doesNotMatch(fragment.message, /s3cr3t-value/);
});

Deno.test("isLoopbackHost() recognizes loopback names and addresses", () => {
  for (
    const input of [
      "ws://localhost:1",
      "ws://LOCALHOST.",
      "ws://app.localhost",
      "ws://127.0.0.1",
      "ws://127.1.2.3",
      "ws://127.1",
      "ws://[::1]:8080",
      "ws://[::ffff:127.0.0.1]",
    ]
  ) {
    assert.equal(isLoopbackHost(new URL(input)), true, input);
  }
});

Deno.test("isLoopbackHost() rejects other hosts", () => {
  for (
    const input of [
      "ws://gateway.example.com",
      "ws://localhost.example.com",
      "ws://10.0.0.1",
      "ws://0.0.0.0",
      "ws://128.0.0.1",
      "ws://[::2]",
      "ws://[::ffff:10.0.0.1]",
    ]
  ) {
    assert.equal(isLoopbackHost(new URL(input)), false, input);
  }
});
