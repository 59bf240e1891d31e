// SqliteStore keeps the StateStore contract (store_contract.ts), keeps what it wrote across a reopen, and
// refuses a directory it cannot use with a message that names the path and the fix.

import assert from "node:assert/strict";
import { ConfigError } from "../../../lib/util/errors.ts";
import { StateInUseError } from "../../../lib/serve/errors.ts";
import { SCHEMA_VERSION, SqliteStore, STATE_FILE } from "../../../lib/serve/state/sqlite_store.ts";
import { stateStoreContract } from "./store_contract.ts";

let dir: string | undefined;
stateStoreContract({
  name: "SqliteStore",
  open: async (now) => {
    dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-state-" });
    return await SqliteStore.open({ dir, now });
  },
  cleanup: async () => {
    if (dir !== undefined) await Deno.remove(dir, { recursive: true });
    dir = undefined;
  },
});

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-state-" });
  try {
    await body(dir);
  } finally {
    await Deno.chmod(dir, 0o700).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("SqliteStore keeps records across a reopen, TTLs included, in <dir>/serve.sqlite", async () => {
  await withDir(async (dir) => {
    let clock = 1_000_000;
    const first = await SqliteStore.open({ dir, now: () => clock });
    await first.write([
      { op: "set", key: { space: "tunnel", id: "t1" }, value: '{"v":1}' },
      { op: "set", key: { space: "client", id: "c1" }, value: "c", ttlMs: 1000 },
    ]);
    await first.close();
    assert.ok((await Deno.stat(`${dir}/${STATE_FILE}`)).isFile);
    const second = await SqliteStore.open({ dir, now: () => clock });
    try {
      assert.equal(second.durable, true);
      assert.equal(second.location, `${dir}/${STATE_FILE}`);
      assert.equal(await second.get({ space: "tunnel", id: "t1" }), '{"v":1}');
      assert.equal(await second.get({ space: "client", id: "c1" }), "c");
      clock += 1001;
      assert.equal(await second.get({ space: "client", id: "c1" }), undefined);
    } finally {
      await second.close();
    }
  });
});

Deno.test("SqliteStore creates a missing state directory with mode 0700", async () => {
  await withDir(async (dir) => {
    const nested = `${dir}/a/b`;
    const store = await SqliteStore.open({ dir: nested });
    await store.close();
    assert.equal((await Deno.stat(nested)).mode! & 0o777, 0o700);
  });
});

Deno.test("SqliteStore refuses a second opener of the same directory: StateInUseError names the file", async () => {
  await withDir(async (dir) => {
    const first = await SqliteStore.open({ dir });
    try {
      const error = await SqliteStore.open({ dir }).then(() => undefined, (e: unknown) => e);
      assert.ok(error instanceof StateInUseError, String(error));
      assert.match(error.message, new RegExp(`${dir}/serve.sqlite is in use by another process`));
      assert.match(error.message, /own --state-dir/);
    } finally {
      await first.close();
    }
    // Released on close: it opens again.
    await (await SqliteStore.open({ dir })).close();
  });
});

Deno.test("SqliteStore refuses a corrupt file with a ConfigError that says how to fix it", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/${STATE_FILE}`, "this is no database ".repeat(100));
    const error = await SqliteStore.open({ dir }).then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof ConfigError, String(error));
    assert.match(error.message, /serve\.sqlite is corrupt/);
    assert.match(error.message, /move it away/);
    assert.match(error.message, /--state-dir none/);
  });
});

Deno.test("SqliteStore refuses a state 'directory' that is a file", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/file`, "x");
    const error = await SqliteStore.open({ dir: `${dir}/file` }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(error instanceof ConfigError, String(error));
    assert.match(error.message, /is not a directory|not a directory/);
    assert.match(error.message, /--state-dir none/);
  });
});

Deno.test("SqliteStore refuses a file written by a newer schema", async () => {
  await withDir(async (dir) => {
    await (await SqliteStore.open({ dir })).close();
    const { DatabaseSync } = await import("node:sqlite");
    const db = new DatabaseSync(`${dir}/${STATE_FILE}`);
    db.prepare("INSERT INTO schema_version (version) VALUES (?)").run(SCHEMA_VERSION + 1);
    db.close();
    const error = await SqliteStore.open({ dir }).then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof ConfigError, String(error));
    assert.match(error.message, new RegExp(`schema version ${SCHEMA_VERSION + 1}, newer`));
  });
});
