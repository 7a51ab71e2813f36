#!/usr/bin/env bash
# Build (or reuse) the pinned promtool that checks and unit-tests the chart's alert rules.
#
# promtool has no PyPI wheel; it is built from the Go module proxy through the
# wrapper module hack/promtool-build/ (go.mod and go.sum pin every module), with
# the Go that hack/k8s-binaries.sh uses (PATH's Go 1.21+, else the pinned
# toolchain it fetches from the proxy, SHA-256 checked). The binary lands in a
# cache outside the repository and is never rebuilt once present.
#
# NB: built with the `remove_all_sd` tag: promtool's service-discovery plugins
# (AWS, Azure, GCE, ...) are not needed to check or test rules; with them the build
# took 2.6 times the CPU (617 s against 237 s on 2 cores, 13 min against 5).
# Kubernetes discovery stays (promtool imports it directly).
#
#   hack/promtool.sh               build when missing, print the binary's path last
#   hack/promtool.sh --print-path  print the binary's path only, build nothing
#   hack/promtool.sh --check       exit 1 unless it is built
#
# Environment:
#   TRADERBOT_TOOLS_DIR      root folder (default: ~/.cache/traderbot/tools)
#   TRADERBOT_GO_BUILD_JOBS  go build -p (default 2: the machines have 2 cores)
set -euo pipefail

# The Go module github.com/prometheus/prometheus v0.X.Y is Prometheus 3.X.Y.
PROMETHEUS_MODULE_VERSION=v0.316.0
PROMETHEUS_VERSION=3.16.0

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build_root="${here}/promtool-build"
tools_root="${TRADERBOT_TOOLS_DIR:-${XDG_CACHE_HOME:-${HOME}/.cache}/traderbot/tools}"
tool_dir="${tools_root}/promtool-${PROMETHEUS_VERSION}"
binary="${tool_dir}/promtool"

log_prefix=promtool
# shellcheck source=hack/lib.sh
. "${here}/lib.sh"

case "${1:-}" in
  --print-path)
    printf '%s\n' "${binary}"
    exit 0
    ;;
  --check)
    if [[ ! -x "${binary}" ]]; then
      log "missing: ${binary} (run hack/promtool.sh or make promtool)"
      exit 1
    fi
    exit 0
    ;;
  "") ;;
  *) usage_error "$0 [--print-path|--check]" ;;
esac

mkdir -p "${tool_dir}"
# One build at a time: a second caller waits, then finds the work done.
hold_lock "${tool_dir}/.build.lock"
if [[ -x "${binary}" ]]; then
  log "have promtool ${PROMETHEUS_VERSION}: ${binary}"
  printf '%s\n' "${binary}"
  exit 0
fi

go_bin="$(bash "${here}/k8s-binaries.sh" --fetch-go)"
go_root="$(GOTOOLCHAIN=local "${go_bin}" env GOROOT)"
export GOROOT="${go_root}"
export PATH="${go_root}/bin:${PATH}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
export GOFLAGS="-buildvcs=false -mod=readonly"
jobs="${TRADERBOT_GO_BUILD_JOBS:-2}"

# What `promtool --version` prints (Prometheus' release ldflags, without a git revision).
ldflags="-s -w"
ldflags+=" -X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION}"
ldflags+=" -X github.com/prometheus/common/version.Branch=module-${PROMETHEUS_MODULE_VERSION}"

tmp="${binary}.tmp.$$"
build_log="${tool_dir}/build.log"
log "building promtool ${PROMETHEUS_VERSION} with $(go version) (5-8 min and 1 GB of modules on a cold cache)"
start=${SECONDS}
trap 'rm -f "${tmp}"' EXIT
if ! (
  cd "${build_root}"
  go build -trimpath -p "${jobs}" -tags remove_all_sd -ldflags "${ldflags}" -o "${tmp}" \
    github.com/prometheus/prometheus/cmd/promtool
) >"${build_log}" 2>&1; then
  log "FAILED to build promtool; last lines of ${build_log}:"
  tail -n 40 "${build_log}" >&2
  exit 1
fi
mv -f "${tmp}" "${binary}"
trap - EXIT
took=$((SECONDS - start))
printf 'promtool %ss %s\n' "${took}" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"${tool_dir}/build-times.txt"
log "built promtool ${PROMETHEUS_VERSION} in ${took}s"
printf '%s\n' "${binary}"
