// Secrets never reach the logs, at debug level, in both log formats: the real `serve` and `connect`
// programs run as subprocesses, the test drives every path that handles a secret (bearer tokens of links
// and clients, JWTs and their secret, the resume secret of register_ack, downstream `authentication` in
// frames), then searches everything the program wrote for each secret.

import assert from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { Gateway } from "../../lib/serve/gateway.ts";
import { signJwt } from "../fixtures/jwt.ts";
import { initializeMcp, postMcp, rpc } from "../fixtures/mcp_http.ts";
import { DEMO_SERVER, type ProxyProcess, startProxy } from "../fixtures/proxy_process.ts";
import { isRequest, payloadOf, registerResumable, resumeAs } from "../fixtures/resumable_tunnel.ts";
import {
  connectClient,
  startTestGateway,
  TOKENS,
  TOKENS_FILE,
  TunnelClient,
  within,
} from "../fixtures/test_gateway.ts";
import { startWsTap } from "../fixtures/ws_tap.ts";

const FORMATS = ["json", "text"] as const;
const DOWNSTREAM_SECRET = "downstream-secret-3c1f0e9a7b";
const JWT_SECRET = "serve-jwt-secret-for-the-logging-test-0123";

/** Fails naming each secret found in what the program wrote. */
function assertNoSecrets(proxy: ProxyProcess, secrets: Record<string, string>): void {
  const text = proxy.text();
  const leaked = Object.entries(secrets).filter(([, secret]) => text.includes(secret));
  assert.deepEqual(leaked.map(([what]) => what), [], "secrets in the logs");
}

/** Waits for a log line: a JSON record with `event`, or a text line matching `text`. */
async function waitLogged(
  proxy: ProxyProcess,
  format: "json" | "text",
  match: { event: string; text: RegExp },
  from = 0,
): Promise<string> {
  const line = await proxy.waitForLine(
    (l) => format === "json" ? l.json?.event === match.event : match.text.test(l.raw),
    30_000,
    from,
  );
  return line.raw;
}

for (const format of FORMATS) {
  Deno.test(`serve --log-level debug --log-format ${format} never logs tokens, JWTs, resume secrets or frame credentials`, async () => {
    const dir = await Deno.makeTempDir();
    const tunnels: TunnelClient[] = [];
    try {
      await Deno.writeTextFile(`${dir}/tokens.yaml`, TOKENS_FILE);
      // The JWT secret from a file in one run, from the environment in the other.
      const jwtFlags = format === "json" ? ["--jwt-secret-file", `${dir}/jwt.secret`] : [];
      if (format === "json") await Deno.writeTextFile(`${dir}/jwt.secret`, `${JWT_SECRET}\n`);
      await using serve = startProxy([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tokens-file",
        `${dir}/tokens.yaml`,
        ...jwtFlags,
        "--log-level",
        "debug",
        "--log-format",
        format,
      ], format === "text" ? { env: { MCP_RPROXY_JWT_SECRET: JWT_SECRET } } : {});
      const listening = await serve.waitForLine((l) => /Gateway listening on/.test(l.raw), 30_000);
      const url = listening.raw.match(/http:\/\/127\.0\.0\.1:\d+/)![0];
      const gateway: Gateway = {
        url,
        port: Number(new URL(url).port),
        close: () => Promise.resolve(),
      };
      const now = Math.floor(Date.now() / 1000);
      const jwt = await signJwt({ sub: "logger", exp: now + 600 }, { secret: JWT_SECRET });
      const expiredJwt = await signJwt({ sub: "logger", exp: now - 600 }, { secret: JWT_SECRET });
      const wrongLinkToken = "wrong-link-token-5d2b7c0e91";
      const wrongClientToken = "wrong-client-token-8a4e1f6c23";

      // A link with a tokens-file token that resumes, with credentials in its frames.
      const first = await registerResumable(gateway, "sec");
      tunnels.push(first.tunnel);
      first.tunnel.send({
        type: "notification",
        sessionId: first.sessionId,
        seq: 2,
        ack: 2,
        authentication: { Authorization: `Bearer ${DOWNSTREAM_SECRET}` },
        payload: { jsonrpc: "2.0", method: "notifications/message", params: { level: "info" } },
      });
      first.tunnel.send({
        type: "bogus",
        sessionId: first.sessionId,
        authentication: { Authorization: `Bearer ${DOWNSTREAM_SECRET}` },
      });
      first.tunnel.socket.send(`{"type":"notification","authentication":"${DOWNSTREAM_SECRET}"`);
      // An MCP client with a client-only token, calling through the link.
      const session = await initializeMcp(gateway, "sec", {
        token: TOKENS.aliceClientOnly,
      });
      const listed = postMcp(gateway, "sec", rpc(1, "tools/list"), {
        session,
        token: TOKENS.aliceClientOnly,
        accept: "application/json",
      });
      const call = await first.tunnel.next(isRequest("tools/list"), 10_000, "tools/list");
      first.tunnel.send({
        type: "response",
        sessionId: first.sessionId,
        seq: 3,
        ack: Number(call.seq),
        payload: { jsonrpc: "2.0", id: payloadOf(call).id, result: { tools: [] } },
      });
      assert.equal(
        (await (await within(listed, 10_000, "tools/list")).json()).result.tools.length,
        0,
      );
      // Refusals: wrong tokens and an expired JWT, for links and clients.
      for (const token of [wrongLinkToken, expiredJwt]) {
        await assert.rejects(TunnelClient.open(gateway, token), /401/);
      }
      for (const token of [wrongClientToken, expiredJwt]) {
        const refused = await postMcp(gateway, "sec", rpc(2, "tools/list"), { token });
        assert.equal(refused.status, 401);
        await refused.body?.cancel();
      }
      // A JWT link and client.
      const jwtLink = await TunnelClient.open(gateway, jwt);
      tunnels.push(jwtLink);
      const jwtAck = await jwtLink.register("jwt-server");
      assert.equal(jwtAck.status, "success");
      const jwtResume = (jwtAck.resume as { token: string }).token;
      const jwtClient = await postMcp(gateway, "other", rpc(3, "tools/list"), {
        token: jwt,
        session: "none",
      });
      assert.equal(jwtClient.status, 404, "authenticated, then no such session");
      await jwtClient.body?.cancel();
      // Resumptions: a wrong secret, then the right one.
      await first.tunnel.close();
      const guessed = await resumeAs(gateway, TOKENS.alice, {
        sessionId: first.sessionId,
        token: `${first.token.slice(0, -4)}AAAA`,
        ack: 3,
      }, "guess");
      tunnels.push(guessed.tunnel);
      assert.equal(guessed.ack.resumeError, "bad-token");
      const back = await resumeAs(gateway, TOKENS.alice, {
        sessionId: first.sessionId,
        token: first.token,
        ack: 3,
      }, "sec");
      tunnels.push(back.tunnel);
      assert.equal(back.ack.resumed, true);

      for (const tunnel of tunnels) await tunnel.close();
      serve.signal("SIGTERM");
      assert.equal(await serve.exitCode(15_000), 0);
      // Debug records were written: the test saw the level it claims to test.
      assert.match(serve.text(), format === "json" ? /"event":"link_accepted"/ : /Accepted link/);
      assert.match(
        serve.text(),
        format === "json" ? /"event":"token_refused"/ : /Refused a bearer/,
      );
      assertNoSecrets(serve, {
        ...Object.fromEntries(Object.entries(TOKENS).map(([k, v]) => [`token ${k}`, v])),
        "wrong link token": wrongLinkToken,
        "wrong client token": wrongClientToken,
        "JWT": jwt,
        "JWT signature": jwt.split(".")[2]!,
        "expired JWT": expiredJwt,
        "JWT secret": JWT_SECRET,
        "resume secret": first.token,
        "guessed resume secret": `${first.token.slice(0, -4)}AAAA`,
        "JWT link's resume secret": jwtResume,
        "downstream authentication": DOWNSTREAM_SECRET,
      });
    } finally {
      for (const tunnel of tunnels) await tunnel.close();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/** Adds downstream credentials to every request frame, as contract B does. */
function withAuthentication(text: string): string {
  const frame = JSON.parse(text);
  if (frame.type !== "request") return text;
  return JSON.stringify({
    ...frame,
    authentication: { Authorization: `Bearer ${DOWNSTREAM_SECRET}` },
    authType: "bearer",
  });
}

for (const format of FORMATS) {
  Deno.test(`connect --log-level debug --log-format ${format} never logs its token, the resume secret or downstream credentials`, async () => {
    const gateway = await startTestGateway();
    let client: Client | undefined;
    try {
      await using tap = await startWsTap({
        target: gateway.url.replace(/^http/, "ws"),
        rewriteDown: withAuthentication,
      });
      await using proxy = startProxy([
        "connect",
        "--gateway",
        tap.url,
        "--server-name",
        "sec",
        "--log-level",
        "debug",
        "--log-format",
        format,
        "--keepalive",
        "0.2",
        "--reconnect-delay",
        "0.05",
        "--",
        ...DEMO_SERVER,
      ], { env: { REVERSE_PROXY_TOKEN: TOKENS.alice } });
      await waitLogged(proxy, format, { event: "registered", text: /Registered with the gateway/ });
      client = await connectClient(gateway, "sec", TOKENS.alice);
      await within(
        client.callTool({ name: "echo", arguments: { message: "before" } }),
        10_000,
        "echo",
      );
      const from = proxy.lines.length;
      tap.cut();
      await waitLogged(proxy, format, { event: "resumed", text: /Resumed session/ }, from);
      await within(
        client.callTool({ name: "echo", arguments: { message: "after" } }),
        10_000,
        "echo after the resume",
      );
      proxy.signal("SIGTERM");
      assert.equal(await proxy.exitCode(15_000), 0);

      const frames = tap.frames.map((f) => ({ ...f, frame: JSON.parse(f.text) }));
      const ack = frames.find((f) => f.direction === "down" && f.frame.type === "register_ack");
      const resumeSecret = String(ack?.frame.resume?.token);
      assert.ok(resumeSecret.length >= 32, "the gateway issued a resume secret");
      assert.ok(
        frames.some((f) => f.direction === "up" && f.frame.resume?.token === resumeSecret),
        "connect presented the resume secret",
      );
      assert.ok(
        frames.some((f) => f.direction === "down" && f.frame.authentication !== undefined),
        "frames with downstream credentials reached connect",
      );
      assert.match(proxy.text(), /gateway request/, "debug records of frames were written");
      assertNoSecrets(proxy, {
        "bearer token": TOKENS.alice,
        "resume secret": resumeSecret,
        "downstream authentication": DOWNSTREAM_SECRET,
      });
    } finally {
      await client?.close();
      await gateway.close();
    }
  });
}
