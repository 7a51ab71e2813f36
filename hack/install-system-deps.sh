#!/usr/bin/env bash
# Install the system packages the test suite needs: PostgreSQL and Redis servers
# (the suite starts its own throwaway servers; nothing is left running).
# Idempotent: does nothing when the binaries are already present.
set -euo pipefail

need=()
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [[ -z "$pg_bin" || ! -x "$pg_bin/postgres" || ! -x "$pg_bin/initdb" ]]; then
  need+=(postgresql postgresql-contrib)
fi
command -v pg_dump >/dev/null 2>&1 || need+=(postgresql-client)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)

if ((${#need[@]} == 0)); then
  echo "system deps: PostgreSQL ($pg_bin) and Redis already installed"
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || { echo "need root or sudo to install: ${need[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "system deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian package starts its own servers; the suite runs its own, so stop them.
if command -v service >/dev/null 2>&1; then
  $sudo service redis-server stop >/dev/null 2>&1 || true
  $sudo service postgresql stop >/dev/null 2>&1 || true
fi
echo "system deps: done"
