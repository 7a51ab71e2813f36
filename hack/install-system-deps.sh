#!/usr/bin/env bash
# Install the Debian packages the project's own scripts and tests need on a bare
# machine, and nothing when they are all there (idempotent):
#
#   PostgreSQL server + client tools  the suite starts its own throwaway servers
#                                     (initdb, pg_ctl, postgres, psql, pg_dump,
#                                     pg_restore: tests/support/servers.py, backups)
#   Redis server + redis-cli          the same (tests/support/servers.py, backups)
#   python3 with venv                 `make setup` creates .venv; hack/install-tools.sh
#                                     puts each linter in its own venv
#   git                               tests/cluster/test_chart.py takes the previous
#                                     chart from the repository's history
#   curl, ca-certificates, unzip      hack/k8s-binaries.sh fetches the pinned Go
#                                     toolchain when no Go 1.21+ is installed
#   docker.io, containerd, runc,      hack/images.sh runs its own dockerd (never the
#   containernetworking-plugins,      system service) to build the images from a
#   debootstrap, iptables             debootstrap base; a real node runs containerd,
#                                     runc and the CNI plugins
#   iproute2, procps, nftables,       the real node's bridge, sysctls and teardown;
#   busybox-static                    the image of the real-node cluster tests
#   jq                                docs/operations-guide.md pipes logs and status
#                                     through it; tests/e2e runs the guide's commands
#
# Not here, on purpose: Go (hack/k8s-binaries.sh fetches it), wrk (bench/api_health.py
# installs it when it runs as root), Lua (the gitops tests use the lupa wheel).
#
#   hack/install-system-deps.sh          install what is missing
#   hack/install-system-deps.sh --check  list the missing packages, exit 1 if any
set -euo pipefail

log_prefix=system-deps
# NB: no dirname: --check must run on a machine that has nothing but bash.
case "${BASH_SOURCE[0]}" in
  */*) here="${BASH_SOURCE[0]%/*}" ;;
  *) here=. ;;
esac
# shellcheck source=hack/lib.sh
. "${here}/lib.sh"

have() { command -v "$1" >/dev/null 2>&1; }
# NB: also /usr/sbin, which a user's PATH often lacks (root's has it).
have_sbin() { have "$1" || [[ -x "/usr/sbin/$1" ]]; }

pg_bin=""
for folder in /usr/lib/postgresql/*/bin; do
  # NB: the glob sorts 10 before 9; keep the highest version.
  if [[ -x "${folder}/postgres" && -x "${folder}/initdb" && -x "${folder}/pg_ctl" ]]; then
    if [[ -z "${pg_bin}" ]] || [[ "$(printf '%s\n%s\n' "${pg_bin}" "${folder}" | sort -V | tail -n 1)" == "${folder}" ]]; then
      pg_bin="${folder}"
    fi
  fi
done

need=()
[[ -n "${pg_bin}" ]] || need+=(postgresql postgresql-contrib)
{ have psql && have pg_dump && have pg_restore; } || need+=(postgresql-client)
have redis-server || need+=(redis-server)
have redis-cli || need+=(redis-tools)
{ have python3 && python3 -c 'import ensurepip, venv' 2>/dev/null; } || need+=(python3 python3-venv)
have git || need+=(git)
{ have curl || have wget; } || need+=(curl)
compgen -G '/etc/ssl/certs/*.pem' >/dev/null || need+=(ca-certificates)
{ have unzip || have python3; } || need+=(unzip)
# hack/images.sh runs these two by path (a newer docker client may come first on PATH).
[[ -x /usr/sbin/dockerd && -x /usr/bin/docker ]] || need+=(docker.io)
have containerd || need+=(containerd)
have_sbin runc || need+=(runc)
[[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
have_sbin debootstrap || need+=(debootstrap)
have_sbin iptables || need+=(iptables)
# The real node (traderbot-cluster up --real-node) also needs ip and sysctl
# (iproute2, procps), nft to drop the tables iptables-nft made, and a static
# busybox: the cluster tests build their pods' image from it (no libc inside).
have_sbin ip || need+=(iproute2)
have_sbin sysctl || need+=(procps)
have_sbin nft || need+=(nftables)
[[ "$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null)" == "install ok installed" ]] \
  || need+=(busybox-static)
have jq || need+=(jq)

case "${1:-}" in
  --check)
    if ((${#need[@]})); then
      log "missing: ${need[*]}"
      exit 1
    fi
    exit 0
    ;;
  "") ;;
  *) usage_error "$0 [--check]" ;;
esac

if ((${#need[@]} == 0)); then
  log "all present (PostgreSQL in ${pg_bin})"
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  have sudo || { log "need root or sudo to install: ${need[*]}"; exit 1; }
  sudo="sudo"
fi
log "installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
# NB: no package may start its service while it is installed (policy-rc.d
# answers 101, "not allowed"): a system dockerd would turn IP forwarding on
# and add a bridge and iptables rules; hack/images.sh runs its own engine.
policy=/usr/sbin/policy-rc.d
if [[ ! -e "${policy}" ]]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "${policy}" >/dev/null
  $sudo chmod 0755 "${policy}"
  trap '$sudo rm -f "${policy}"' EXIT
fi
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian packages start their own servers; the suite runs its own, so stop them.
if have service; then
  $sudo service redis-server stop >/dev/null 2>&1 || true
  $sudo service postgresql stop >/dev/null 2>&1 || true
fi
log "done"
