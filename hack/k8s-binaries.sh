#!/usr/bin/env bash
# Build (or reuse) the pinned binaries of the local Kubernetes control plane.
#
# Everything is built from the Go module proxy through the wrapper modules in
# hack/k8s-build/, so nothing but Go and the proxy is needed. Binaries land in
# a cache outside the repository and are never rebuilt once present.
#
#   hack/k8s-binaries.sh              build what is missing, print the folder last
#   hack/k8s-binaries.sh --print-dir  print the folder only, build nothing
#   hack/k8s-binaries.sh --check      exit 1 unless every binary is present
#
# Environment:
#   TRADERBOT_K8S_BIN_DIR  output folder (default: the versioned cache below)
#   KUBEBUILDER_ASSETS     a folder of ready binaries (e.g. from setup-envtest);
#                          any binary found there is used and not built
#   TRADERBOT_GO_BUILD_JOBS  go build -p (default 2: the machines have 2 cores)
set -euo pipefail

KUBERNETES_VERSION=v1.34.4
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.7.0
HELM_VERSION=v3.21.4

# NB: keep in step with VERSION_TAG in
# operator/traderbot_operator/testing/binaries.py (a test compares them).
VERSION_TAG="k8s-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}"

BINARIES=(kube-apiserver etcd kwok kube-controller-manager kube-scheduler kubectl helm)

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build_root="${here}/k8s-build"
cache_root="${XDG_CACHE_HOME:-${HOME}/.cache}/traderbot/k8s/${VERSION_TAG}"
bin_dir="${TRADERBOT_K8S_BIN_DIR:-${cache_root}/bin}"
assets="${KUBEBUILDER_ASSETS:-}"

log() { printf '[k8s-binaries] %s\n' "$*" >&2; }

# Where a binary is found: KUBEBUILDER_ASSETS first, then our own folder.
locate() {
  local name="$1"
  if [[ -n "${assets}" && -x "${assets}/${name}" ]]; then
    printf '%s\n' "${assets}/${name}"
  elif [[ -x "${bin_dir}/${name}" ]]; then
    printf '%s\n' "${bin_dir}/${name}"
  else
    return 1
  fi
}

case "${1:-}" in
  --print-dir)
    printf '%s\n' "${bin_dir}"
    exit 0
    ;;
  --check)
    missing=0
    for name in "${BINARIES[@]}"; do
      if ! locate "${name}" >/dev/null; then
        log "missing: ${name}"
        missing=1
      fi
    done
    exit "${missing}"
    ;;
  "") ;;
  *)
    echo "usage: $0 [--print-dir|--check]" >&2
    exit 2
    ;;
esac

command -v go >/dev/null || {
  log "go is not installed: install Go 1.21 or newer (it fetches the pinned toolchain itself)"
  exit 1
}

mkdir -p "${bin_dir}"
# One build at a time per folder: a second caller waits, then finds the work done.
exec 9>"${bin_dir}/.build.lock"
if ! flock -n 9; then
  log "another build holds ${bin_dir}/.build.lock; waiting for it"
  flock 9
fi

# NB: `auto` lets a Go older than a wrapper module's `go` line (1.21+) fetch the
# matching toolchain from the Go module proxy (golang.org/toolchain); a new
# enough local Go is used as it is. Set GOTOOLCHAIN=local to forbid the fetch.
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
export GOFLAGS="-buildvcs=false -mod=readonly"
jobs="${TRADERBOT_GO_BUILD_JOBS:-2}"
times_file="${bin_dir}/build-times.txt"

k8s_ldflags() {
  local minor date
  minor="$(echo "${KUBERNETES_VERSION}" | cut -d. -f2)"
  # The release date of the module on the proxy: reproducible, unlike `date`.
  date="$(cd "${build_root}/kubernetes" && go list -m -json k8s.io/kubernetes \
    | sed -n 's/.*"Time": "\(.*\)".*/\1/p')"
  local flags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X ${pkg}.gitVersion=${KUBERNETES_VERSION}"
    flags+=" -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
    flags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=${date}"
  done
  printf '%s' "${flags}"
}

# module folder, package path and ldflags of each binary
spec() {
  case "$1" in
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl)
      echo "kubernetes|k8s.io/kubernetes/cmd/$1|$(k8s_ldflags)|selinux,notest" ;;
    etcd) echo "etcd|.|-s -w|" ;;
    kwok) echo "kwok|sigs.k8s.io/kwok/cmd/kwok|-s -w|" ;;
    helm) echo "helm|helm.sh/helm/v3/cmd/helm|-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v3/internal/version.gitTreeState=clean|" ;;
  esac
}

build_one() {
  local name="$1" index="$2" total="$3"
  local module pkg ldflags tags
  IFS='|' read -r module pkg ldflags tags <<<"$(spec "${name}")"
  local out="${bin_dir}/${name}"
  local tmp="${bin_dir}/.${name}.tmp.$$"
  local build_log="${bin_dir}/.${name}.build.log"
  log "(${index}/${total}) building ${name} from hack/k8s-build/${module} (this takes minutes on a cold cache)"
  local start=${SECONDS}
  local status=0
  (
    cd "${build_root}/${module}"
    go build -trimpath -p "${jobs}" -v -tags "${tags}" -ldflags "${ldflags}" -o "${tmp}" "${pkg}"
  ) >"${build_log}" 2>&1 &
  local pid=$!
  # A stopped script must not leave its go build running.
  trap 'kill "${pid}" 2>/dev/null; rm -f "${tmp}"; exit 130' INT TERM
  # Progress: the number of packages compiled so far, every 30 seconds.
  while kill -0 "${pid}" 2>/dev/null; do
    local waited=0
    while (( waited < 30 )) && kill -0 "${pid}" 2>/dev/null; do
      sleep 1
      waited=$((waited + 1))
    done
    if kill -0 "${pid}" 2>/dev/null; then
      log "    ${name}: $(wc -l <"${build_log}") packages compiled, $((SECONDS - start))s"
    fi
  done
  wait "${pid}" || status=$?
  trap - INT TERM
  if (( status != 0 )); then
    rm -f "${tmp}"
    log "FAILED to build ${name} (exit ${status}); last lines of ${build_log}:"
    tail -n 40 "${build_log}" >&2
    return "${status}"
  fi
  mv -f "${tmp}" "${out}"
  local took=$((SECONDS - start))
  printf '%s %ss %s\n' "${name}" "${took}" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"${times_file}"
  log "(${index}/${total}) built ${name} in ${took}s"
}

todo=()
for name in "${BINARIES[@]}"; do
  if found="$(locate "${name}")"; then
    log "have ${name}: ${found}"
  else
    todo+=("${name}")
  fi
done

index=0
for name in "${todo[@]}"; do
  index=$((index + 1))
  build_one "${name}" "${index}" "${#todo[@]}"
done

if [[ "${#todo[@]}" -gt 0 ]]; then
  log "all binaries present in ${bin_dir} (build times in ${times_file})"
fi
printf '%s\n' "${bin_dir}"
