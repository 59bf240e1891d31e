// The replica deployment files in docs/: HAProxy's config passes `haproxy -c` (Debian's HAProxy), and the
// compose file is valid YAML whose services are what docs/scaling.md says: Redis, three replicas with
// the cluster flags (secrets mounted, never inline), HAProxy and connect through it.

import assert from "node:assert/strict";
import { load } from "js-yaml";
import { checkHaproxyConfig } from "./fixtures/haproxy.ts";

const DOCS = new URL("../docs/", import.meta.url);

Deno.test("docs/haproxy-replicas.cfg passes haproxy -c and balances per request over three replicas", async () => {
  const config = await Deno.readTextFile(new URL("haproxy-replicas.cfg", DOCS));
  const verdict = await checkHaproxyConfig(config);
  assert.ok(verdict.ok, verdict.output);
  assert.match(config, /balance roundrobin/);
  assert.doesNotMatch(config, /\bcookie\b|stick-table|balance source/, "no sticky sessions");
  assert.equal([...config.matchAll(/^\s+server serve-\d serve-\d:8080 port 9090$/gm)].length, 3);
  assert.match(config, /option httpchk GET \/readyz/);
  // The check must be able to fail: a broken config is refused.
  assert.ok(
    !(await checkHaproxyConfig(config.replace("balance roundrobin", "balance nonsense"))).ok,
  );
});

Deno.test("docs/compose-replicas.yaml runs Redis, three replicas, HAProxy and connect through it", async () => {
  const text = await Deno.readTextFile(new URL("compose-replicas.yaml", DOCS));
  const compose = load(text) as { services: Record<string, Record<string, unknown>> };
  const services = compose.services;
  assert.deepEqual(Object.keys(services).sort(), [
    "connect",
    "haproxy",
    "redis",
    "serve-1",
    "serve-2",
    "serve-3",
  ]);
  for (const name of ["serve-1", "serve-2", "serve-3"]) {
    // The replicas share an anchor (`<<: *serve`), which Compose merges; js-yaml keeps it as a key.
    const raw = services[name]!;
    const service = { ...(raw["<<"] as Record<string, unknown> | undefined), ...raw };
    const command = service.command as string[];
    assert.ok(command.includes("--cluster-secret-file=/etc/mcp-rproxy/cluster.secret"), name);
    const env = service.environment as Record<string, string>;
    assert.match(env.MCP_RPROXY_REDIS_URL!, /^redis:\/\/redis:6379/);
    assert.ok((service.volumes as string[]).some((v) => v.startsWith("./cluster.secret:")));
  }
  assert.ok((services.connect!.command as string[]).includes("--gateway=http://haproxy:8080"));
  assert.ok(
    (services.haproxy!.volumes as string[]).includes(
      "./haproxy-replicas.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro",
    ),
  );
});
