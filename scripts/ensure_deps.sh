#!/usr/bin/env bash
# Installs the Debian programs that the test fixtures run (redis-server, haproxy, tinyproxy) when they are
# missing, so a fresh machine passes the tests instead of skipping them. Quick (no apt call) when all are present.
#
# Usage: scripts/ensure_deps.sh        (root, or sudo available; apt reachable)
set -euo pipefail

# package:binary pairs; the binary is looked up on PATH and in the usual Debian folders, because a
# non-login PATH may lack /usr/sbin where haproxy (and on some releases tinyproxy) lives.
WANTED=(redis-server:redis-server haproxy:haproxy tinyproxy:tinyproxy)

have() {
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ] || [ -x "/sbin/$1" ]
}

missing=()
for pair in "${WANTED[@]}"; do
  pkg=${pair%%:*}
  bin=${pair#*:}
  have "$bin" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_deps: missing ${missing[*]} and no apt-get here (not Debian/Ubuntu). Fix: install" \
    "${missing[*]} with this system's package manager" >&2
  exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
  else
    echo "ensure_deps: missing ${missing[*]}; not root and no sudo. Fix: as root run" \
      "apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi

# Debian's postinst scripts start redis-server (port 6379), haproxy and tinyproxy (8888) as services where
# an init system runs. Tests use ephemeral ports only, but a stray daemon holds memory and ports for nothing:
# a policy-rc.d that answers 101 ("action forbidden") keeps invoke-rc.d and deb-systemd-invoke from starting
# them. An existing policy-rc.d (Docker images ship one) is left untouched.
POLICY=/usr/sbin/policy-rc.d
placed_policy=0
cleanup() {
  if [ "$placed_policy" -eq 1 ]; then "${SUDO[@]}" rm -f "$POLICY"; fi
}
trap cleanup EXIT
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
  "${SUDO[@]}" chmod 755 "$POLICY"
  placed_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
install() {
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}" >"$log" 2>&1
}

for pkg in "${missing[@]}"; do echo "ensure_deps: installing $pkg (apt-get)"; done
# The package lists may be absent or stale (404 on an old version): refresh them only when an install fails.
if ! install; then
  if ! "${SUDO[@]}" apt-get update -qq >"$log" 2>&1 || ! install; then
    echo "ensure_deps: could not install ${missing[*]}; apt said:" >&2
    tail -n 20 "$log" >&2
    echo "ensure_deps: fix: as root run" \
      "apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    rm -f "$log"
    exit 1
  fi
fi
rm -f "$log"

for pair in "${WANTED[@]}"; do
  bin=${pair#*:}
  if ! have "$bin"; then
    echo "ensure_deps: $bin still not found after installing ${pair%%:*}" >&2
    exit 1
  fi
done
