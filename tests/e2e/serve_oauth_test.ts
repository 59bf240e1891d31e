// The real program as an OAuth resource server: `mcp-rproxy serve --oauth-issuer` (a subprocess) trusts a
// real authorization server (oidc-provider), `mcp-rproxy connect` tunnels the demo server with a static
// token mapped to the user's OAuth owner, and the official SDK's OAuth client signs the user in and calls a
// tool. Also: an issuer that cannot be reached is logged and leaves static tokens working.

import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { completeAuthorization } from "../fixtures/oauth_flow.ts";
import { InMemoryOAuthProvider } from "../fixtures/oauth_client_provider.ts";
import { startOAuthServer } from "../fixtures/oauth_server.ts";
import { DEMO_SERVER, startProxy } from "../fixtures/proxy_process.ts";
import { within } from "../fixtures/test_gateway.ts";

const CONNECT_TOKEN = "tok-e2e-oauth-connect-0123456789";
const STATIC_CLIENT = "tok-e2e-static-client-0123456789";

async function withTokensFile<T>(text: string, fn: (path: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "serve-oauth-test-" });
  try {
    const path = `${dir}/tokens.yaml`;
    await Deno.writeTextFile(path, text);
    return await fn(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("serve --oauth-issuer: the SDK's OAuth client calls a tool of a server tunneled by connect", async () => {
  const as = await startOAuthServer();
  try {
    const owner = `oauth:${as.issuer}#alice`;
    await withTokensFile(
      `${CONNECT_TOKEN}: {owner: ${JSON.stringify(owner)}, roles: [connect]}\n`,
      async (tokensFile) => {
        await using serve = startProxy([
          "serve",
          "--listen",
          "127.0.0.1:0",
          "--tokens-file",
          tokensFile,
          "--oauth-issuer",
          as.issuer,
          "--log-format",
          "json",
        ]);
        const discovered = await serve.waitForEvent("oauth_discovered", 20_000);
        assert.equal(discovered.jwksUri, `${as.issuer}/jwks`);
        const url = String((await serve.waitForEvent("listening", 20_000)).url);
        await using connect = startProxy(
          [
            "connect",
            "--gateway",
            url,
            "--server-name",
            "demo",
            "--log-format",
            "json",
            "--",
            ...DEMO_SERVER,
          ],
          { env: { REVERSE_PROXY_TOKEN: CONNECT_TOKEN } },
        );
        const registered = await connect.waitForEvent("registered", 30_000);
        const mcpUrl = new URL(String(registered.mcpUrl));
        assert.equal(mcpUrl.href, `${url}/servers/demo/mcp`);

        const provider = new InMemoryOAuthProvider();
        const first = new Client({ name: "e2e-oauth", version: "1" });
        const client = new Client({ name: "e2e-oauth", version: "1" });
        try {
          await assert.rejects(
            within(
              first.connect(new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider })),
              10_000,
              "the unauthorized connect",
            ),
            UnauthorizedError,
          );
          const authorizationUrl = provider.authorizationUrls[0];
          assert.ok(authorizationUrl, "an authorization URL for the user");
          const redirect = await completeAuthorization(authorizationUrl.href, { login: "alice" });
          const finishing = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
          await within(
            finishing.finishAuth(redirect.searchParams.get("code") ?? ""),
            10_000,
            "the code exchange",
          );
          await finishing.close();
          await within(
            client.connect(new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider })),
            10_000,
            "the authorized connect",
          );
          const result = await client.callTool(
            { name: "echo", arguments: { message: "hello over OAuth" } },
            undefined,
            { timeout: 10_000 },
          );
          const content = result.content as { type: string; text: string }[];
          assert.match(content[0]!.text, /hello over OAuth/);
        } finally {
          await first.close();
          await client.close();
        }
        // Tokens never reach the log.
        const accessToken = provider.tokens()?.access_token ?? "";
        assert.ok(accessToken !== "" && !serve.text().includes(accessToken));
        assert.ok(!serve.text().includes(CONNECT_TOKEN));
      },
    );
  } finally {
    await as.stop();
  }
});

Deno.test("serve --oauth-issuer with an issuer that cannot be reached logs it, starts, and static tokens work", async () => {
  // A port nothing listens on: bound, then released.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  await withTokensFile(
    `${STATIC_CLIENT}: {owner: alice, roles: [client]}\n`,
    async (tokensFile) => {
      await using serve = startProxy([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tokens-file",
        tokensFile,
        "--oauth-issuer",
        `http://127.0.0.1:${port}`,
        "--log-format",
        "json",
      ]);
      const failed = await serve.waitForEvent("oauth_discovery_failed", 20_000);
      assert.equal(failed.issuer, `http://127.0.0.1:${port}`);
      assert.match(String(failed.error), /no discovery document/);
      const url = String((await serve.waitForEvent("listening", 20_000)).url);
      const fine = await fetch(`${url}/reverse-proxy/sessions`, {
        headers: { authorization: `Bearer ${STATIC_CLIENT}` },
        signal: AbortSignal.timeout(10_000),
      });
      assert.equal(fine.status, 200);
      await fine.body?.cancel();
      // The 401 still points OAuth clients to the metadata, which names the configured issuer.
      const refused = await fetch(`${url}/reverse-proxy/sessions`, {
        signal: AbortSignal.timeout(10_000),
      });
      assert.equal(refused.status, 401);
      await refused.body?.cancel();
      const metadataUrl = /resource_metadata="([^"]+)"/.exec(
        refused.headers.get("www-authenticate") ?? "",
      )?.[1];
      assert.equal(
        metadataUrl,
        `${url}/.well-known/oauth-protected-resource/reverse-proxy/sessions`,
      );
      const metadata = await fetch(metadataUrl!, { signal: AbortSignal.timeout(10_000) });
      assert.deepEqual((await metadata.json()).authorization_servers, [`http://127.0.0.1:${port}`]);
    },
  );
});
