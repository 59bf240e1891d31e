// main.ts's one exit-code map: every outcome a command can have, and its documented code.

import assert from "node:assert/strict";
import { ExitCode, exitCodeFor } from "../main.ts";
import {
  AuthRefusedError,
  EvictedError,
  RetriesExhaustedError,
  ServerStartError,
} from "../lib/connect/errors.ts";
import { UnhealthyError } from "../lib/healthcheck/command.ts";
import { ConfigError, ListenError } from "../lib/util/errors.ts";

Deno.test("ExitCode keeps the codes the README documents", () => {
  assert.deepEqual(ExitCode, {
    Ok: 0,
    Failure: 1,
    Usage: 2,
    AuthRefused: 3,
    Evicted: 4,
    Interrupted: 130,
  });
});

Deno.test("exitCodeFor() maps each outcome to its exit code", () => {
  const notCapable = new Deno.errors.NotCapable(
    'Requires net access to "x", run again with --allow-net',
  );
  const cases: [unknown, number][] = [
    [undefined, 0],
    [new ConfigError("bad flag"), 2],
    [notCapable, 2],
    [new RetriesExhaustedError("gave up", { cause: notCapable }), 2],
    [new ServerStartError("cannot spawn", { cause: notCapable }), 2],
    [new AuthRefusedError("HTTP 401"), 3],
    [new EvictedError("evicted"), 4],
    [new RetriesExhaustedError("gave up"), 1],
    [new ServerStartError("exited at once"), 1],
    [new ListenError("in use"), 1],
    [new ListenError("port 80", { cause: new Deno.errors.PermissionDenied("denied") }), 1],
    [new UnhealthyError("HTTP 503"), 1],
    [new Error("bug"), 1],
    ["a string thrown", 1],
  ];
  for (const [outcome, code] of cases) {
    assert.equal(exitCodeFor(outcome), code, String(outcome));
  }
});
