#!/usr/bin/env bash
# `deno task test`: the Debian components the fixtures run, format, lint, type check, then the tests in two
# phases. Every test but the attacks runs in parallel; the attacks (tests/attack/) then run one at a time,
# because each asserts serve's RSS against a bound, and RSS measured beside other tests measures their load
# (how late the garbage collector runs), not what serve holds. Both phases always run; the exit status
# fails if either does. Each phase ends with deno's "ok | N passed | N failed" line (.ci/run sums them).
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure_deps.sh || exit 1
deno fmt --check || exit 1
deno lint || exit 1
deno check main.ts lib/ tests/ scripts/ || exit 1

status=0
deno test --allow-all --doc --parallel --ignore=tests/attack/,dist/,coverage/,node_modules/,bench-results/ || status=1
deno test --allow-all tests/attack/ || status=1
exit "$status"
