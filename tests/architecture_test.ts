// The tree's own rules, checked: imports point one way (connect/ and serve/ → protocol/ → util/; only
// demo/ uses both ends), and every file in lib/ opens with a line on its one concept.

import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const LIB = join(ROOT, "lib");

/** What each folder of lib/ may import from lib/. */
const MAY_IMPORT: Record<string, readonly string[]> = {
  util: ["util"],
  protocol: ["protocol", "util"],
  connect: ["connect", "protocol", "util"],
  serve: ["serve", "protocol", "util"],
  demo: ["demo", "connect", "serve", "protocol", "util"],
  healthcheck: ["healthcheck", "util"],
};

function libFiles(dir = LIB): string[] {
  const files: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) files.push(...libFiles(path));
    else if (entry.name.endsWith(".ts")) files.push(path);
  }
  return files.sort();
}

/** The relative module specifiers of a file: static imports, re-exports and dynamic imports. */
function relativeImports(text: string): string[] {
  const found: string[] = [];
  const pattern = /(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g;
  for (const match of text.matchAll(pattern)) found.push(match[1]!);
  return found;
}

Deno.test("lib/ folders import only in the allowed direction", () => {
  const violations: string[] = [];
  for (const file of libFiles()) {
    const folder = relative(LIB, file).split("/")[0]!;
    const allowed = MAY_IMPORT[folder];
    if (allowed === undefined) {
      violations.push(`${relative(ROOT, file)}: lib/${folder}/ is not a known layer`);
      continue;
    }
    for (const specifier of relativeImports(Deno.readTextFileSync(file))) {
      const target = resolve(dirname(file), specifier);
      const rel = relative(LIB, target);
      if (rel.startsWith("..")) {
        // Outside lib/: only deno.json (the version) may be read.
        if (!target.endsWith("deno.json")) {
          violations.push(`${relative(ROOT, file)} imports ${specifier} outside lib/`);
        }
        continue;
      }
      const layer = rel.split("/")[0]!;
      if (!allowed.includes(layer)) {
        violations.push(`${relative(ROOT, file)} (${folder}) imports ${specifier} (${layer})`);
      }
    }
  }
  assert.deepEqual(violations, []);
});

Deno.test("the import parser finds static and dynamic imports", () => {
  // The check above must not pass vacuously: its parser finds the imports of a known file.
  const text = Deno.readTextFileSync(join(LIB, "connect", "server_runner.ts"));
  assert.ok(relativeImports(text).includes("./tunnel.ts"));
  assert.ok(relativeImports('const m = await import("../serve/command.ts");').length === 1);
});

Deno.test("every file in lib/ opens with a comment on its role", () => {
  const missing = libFiles().filter((file) => !Deno.readTextFileSync(file).startsWith("// ")).map((
    file,
  ) => relative(ROOT, file));
  assert.deepEqual(missing, []);
});

/** Past this many lines a file usually holds two concepts (house style says about 400). */
const MAX_LINES = 450;

Deno.test(`no file in lib/ runs past ${MAX_LINES} lines`, () => {
  const long = libFiles().map((file) => ({
    file: relative(ROOT, file),
    lines: Deno.readTextFileSync(file).split("\n").length - 1,
  })).filter(({ lines }) => lines > MAX_LINES);
  assert.deepEqual(long, [], "split these along their seams");
});
