import assert from "node:assert/strict";
import { parseServerSpec } from "../../lib/connect/server_flag.ts";
import { ConfigError } from "../../lib/util/errors.ts";

function refused(text: string, pattern: RegExp): string {
  let caught: unknown;
  try {
    parseServerSpec(text, 2);
  } catch (error: unknown) {
    caught = error;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError for ${text}`);
  assert.match(caught.message, /^Invalid --server #2: /);
  assert.match(caught.message, pattern);
  return caught.message;
}

Deno.test("parseServerSpec() reads each key into the shape of a servers: entry", () => {
  assert.deepEqual(
    parseServerSpec(
      'name=git,description="Git, for /srv",stdio="uvx mcp-server-git --repository \'/my repo\'",cwd=/srv,env=A=1,env=B=x=y',
      1,
    ),
    {
      name: "git",
      description: "Git, for /srv",
      command: "uvx mcp-server-git --repository '/my repo'",
      cwd: "/srv",
      env: { A: "1", B: "x=y" },
    },
  );
  assert.deepEqual(
    parseServerSpec(
      'name=docs,http=http://127.0.0.1:9000/mcp?a=1,header="X-Api-Version: 2",header-env="X-Key: DOCS_KEY",header-file="X-Other: /run/o",bearer-file=/run/t,cert=ca.pem,timeout=5,isolation=shared',
      1,
    ),
    {
      name: "docs",
      http: "http://127.0.0.1:9000/mcp?a=1",
      headers: {
        "X-Api-Version": "2",
        "X-Key": { env: "DOCS_KEY" },
        "X-Other": { file: "/run/o" },
      },
      bearer_file: "/run/t",
      cert: "ca.pem",
      timeout: "5",
      isolation: "shared",
    },
  );
});

Deno.test("parseServerSpec() takes a value the shell stripped of its quotes up to the next comma", () => {
  // What bash passes for --server name=git,stdio="uvx mcp-server-git"
  assert.deepEqual(parseServerSpec("name=git,stdio=uvx mcp-server-git", 1), {
    name: "git",
    command: "uvx mcp-server-git",
  });
  assert.deepEqual(parseServerSpec("name=d,header=Authorization: Bearer abc", 1).headers, {
    Authorization: "Bearer abc",
  });
});

Deno.test('parseServerSpec() unquotes \\" and \\\\ inside a double-quoted value, and keeps commas there', () => {
  assert.equal(
    parseServerSpec('name=x,stdio="echo \\"a,b\\" c\\\\d"', 1).command,
    'echo "a,b" c\\d',
  );
});

Deno.test("parseServerSpec() refuses unknown, repeated and malformed keys, naming keys and never values", () => {
  const message = refused(
    'name=docs,stdo="x",header="Authorization: Bearer s3cret-value"',
    /unknown key 'stdo' \(did you mean 'stdio'\?\); keys are name, description, stdio/,
  );
  assert.ok(!message.includes("s3cret-value"));
  refused("name=a,name=b", /key 'name' is given twice/);
  refused('name=a,stdio="unclosed', /the quoted value of 'stdio' has no closing quote/);
  refused('name=a,stdio="x"y', /a comma must follow the quoted value of 'stdio'/);
  refused("name=a,,stdio=x", /an empty item/);
  refused("justtext", /'justtext' is not key=value/);
  refused("name=a,env=NOEQUALS", /env needs NAME=VALUE \(got no '='\)/);
  refused("name=a,env==x", /env needs NAME=VALUE \(got no name before a '='\)/);
  refused("name=a,header=NoColon", /header needs 'Name: value' \(got no ':'\)/);
  refused('name=a,header="X: 1",header-env="x: V"', /header x is given twice/);
  refused("", /it is empty/);
});
