#!/usr/bin/env bash
# Build (or reuse) the pinned binaries of the local Kubernetes control plane.
#
# Everything is built from the Go module proxy through the wrapper modules in
# hack/k8s-build/, so nothing but the proxy is needed: when no Go 1.21+ is on
# PATH, the pinned Go toolchain is itself fetched from the proxy (the module
# golang.org/toolchain), checked against a pinned SHA-256 and unpacked under
# ~/.cache/traderbot/go/. Binaries land in a cache outside the repository and
# are never rebuilt once present; a binary whose build inputs did not change is
# reused from an older cache folder instead of rebuilt.
#
#   hack/k8s-binaries.sh              build what is missing, print the folder last
#   hack/k8s-binaries.sh --print-dir  print the folder only, build nothing
#   hack/k8s-binaries.sh --check      exit 1 unless every binary is present
#   hack/k8s-binaries.sh --print-go   say which Go the build would use (key=value
#                                     lines), fetch nothing
#   hack/k8s-binaries.sh --fetch-go   fetch that Go if needed, print its go binary
#
# Environment:
#   TRADERBOT_K8S_BIN_DIR  output folder (default: the versioned cache below)
#   KUBEBUILDER_ASSETS     a folder of ready binaries (e.g. from setup-envtest);
#                          any binary found there is used and not built
#   TRADERBOT_GO_BUILD_JOBS  go build -p (default 2: the machines have 2 cores)
#   GOPROXY                the first proxy of the list (http, https or file URL)
#                          serves the Go toolchain too (default https://proxy.golang.org)
#   TRADERBOT_GO_MACHINE   `uname -m` to plan the toolchain for (default: this one)
set -euo pipefail

KUBERNETES_VERSION=v1.34.4
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.7.0
HELM_VERSION=v3.21.4
# CoreDNS for the real node's cluster.local names; v1.14.1 is the newest built
# on client-go v0.34 (the control plane's minor).
COREDNS_VERSION=v1.14.1

# The Go toolchain fetched when PATH has no Go 1.21+ (which would fetch the
# toolchain a wrapper's `go` line names by itself). NB: at least the highest
# `go` line of hack/k8s-build/*/go.mod (a test checks it).
GO_VERSION=1.26.8
GO_MINIMUM_MINOR=21

# The Go architecture of a `uname -m` and the SHA-256 of its pinned toolchain
# zip (golang.org/toolchain@v0.0.1-go${GO_VERSION}.linux-<arch>.zip), or
# nothing when none is pinned. NB: both zips were checked against the Go
# checksum database (sum.golang.org h1: amd64 ZOmGe1OnfREDMIdb1Qi4G9JSuDPBLGExZMQ4nis1RXM=,
# arm64 sYL/O6MqS68ML0kjsQ36WoYIpJqkw60TxizWUYUKQMc=); change them with GO_VERSION.
go_toolchain() {
  case "$1" in
    x86_64|amd64) echo "amd64 30c2b1bf7dcc88d3eb0a1364e47ddd9128edb3110a30e8a0ef61cd5856b31de7" ;;
    aarch64|arm64) echo "arm64 02b36b6787b3ac767668f630e2998df45a3b1f9ffee08d1bf3ef6487cd658d99" ;;
    *) return 1 ;;
  esac
}

# helm assumes this Kubernetes version when no cluster is asked (`helm template`,
# `helm lint`): the control plane's own, instead of the 1.20 compiled into a
# build without release ldflags.
kube_major="$(echo "${KUBERNETES_VERSION#v}" | cut -d. -f1)"
kube_minor="$(echo "${KUBERNETES_VERSION}" | cut -d. -f2)"

# The cache folder is named after every binary's build inputs (build_id below).
# NB: keep in step with VERSION_TAG in
# devtools/traderbot_devtools/binaries.py (a test compares them).
VERSION_TAG="k8s-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}-kube${kube_major}.${kube_minor}_coredns-${COREDNS_VERSION}"

# kubelet, kube-proxy and coredns run a real node (traderbot-cluster up --real-node), beside kwok.
BINARIES=(kube-apiserver etcd kwok kube-controller-manager kube-scheduler kubectl helm kubelet kube-proxy coredns)

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build_root="${here}/k8s-build"
cache_base="${XDG_CACHE_HOME:-${HOME}/.cache}/traderbot"
cache_root="${cache_base}/k8s/${VERSION_TAG}"
bin_dir="${TRADERBOT_K8S_BIN_DIR:-${cache_root}/bin}"
assets="${KUBEBUILDER_ASSETS:-}"

log_prefix=k8s-binaries
# shellcheck source=hack/lib.sh
. "${here}/lib.sh"

# The part of VERSION_TAG a binary's build depends on: an older cache folder
# whose name holds it has the same binary.
build_id() {
  case "$1" in
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl|kubelet|kube-proxy) echo "k8s-${KUBERNETES_VERSION}" ;;
    etcd) echo "etcd-${ETCD_VERSION}" ;;
    kwok) echo "kwok-${KWOK_VERSION}" ;;
    helm) echo "helm-${HELM_VERSION}-kube${kube_major}.${kube_minor}" ;;
    coredns) echo "coredns-${COREDNS_VERSION}" ;;
  esac
}

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

# An older cache folder's copy of a binary built from the same inputs, if any.
reusable() {
  local name="$1" id folder tag
  id="$(build_id "${name}")"
  for folder in "${cache_base}"/k8s/*/bin; do
    tag="$(basename "$(dirname "${folder}")")"
    if [[ "${folder}" != "${bin_dir}" && "_${tag}_" == *"_${id}_"* && -x "${folder}/${name}" ]]; then
      printf '%s\n' "${folder}/${name}"
      return 0
    fi
  done
  return 1
}

# True when the go binary $1 is 1.21 or newer (it then fetches what go.mod needs).
go_is_usable() {
  local version major minor
  # NB: GOTOOLCHAIN=local: asking the version must not download a toolchain.
  version="$(GOTOOLCHAIN=local "$1" version 2>/dev/null)" || return 1
  [[ "${version}" =~ go([0-9]+)\.([0-9]+) ]] || return 1
  major="${BASH_REMATCH[1]}"
  minor="${BASH_REMATCH[2]}"
  (( major > 1 || (major == 1 && minor >= GO_MINIMUM_MINOR) ))
}

# Decide which Go builds: sets go_source (path|cache|proxy), go_bin, and for a
# fetched toolchain go_root, go_url, go_sha256.
plan_go() {
  go_source="" go_bin="" go_root="" go_url="" go_sha256=""
  local found
  if found="$(command -v go)" && go_is_usable "${found}"; then
    go_source=path
    go_bin="${found}"
    return 0
  fi
  local machine toolchain arch module proxy
  machine="${TRADERBOT_GO_MACHINE:-$(uname -m)}"
  if ! toolchain="$(go_toolchain "${machine}")"; then
    log "no Go 1.${GO_MINIMUM_MINOR}+ on PATH and no pinned Go toolchain for ${machine}: install Go 1.${GO_MINIMUM_MINOR} or newer"
    return 1
  fi
  read -r arch go_sha256 <<<"${toolchain}"
  module="golang.org/toolchain@v0.0.1-go${GO_VERSION}.linux-${arch}"
  go_root="${cache_base}/go/go${GO_VERSION}.linux-${arch}"
  go_bin="${go_root}/bin/go"
  # GOPROXY is a list ("https://proxy.golang.org,direct"): its first proxy serves the zip.
  proxy="${GOPROXY:-https://proxy.golang.org}"
  proxy="${proxy%%[,|]*}"
  # "direct" and "off" name no proxy; file:// serves a local mirror, as for go itself.
  if [[ "${proxy}" != http*://* && "${proxy}" != file://* ]]; then
    proxy=https://proxy.golang.org
  fi
  go_url="${proxy%/}/${module%@*}/@v/${module#*@}.zip"
  if [[ -x "${go_bin}" && -f "${go_root}/.verified" ]]; then
    go_source=cache
  else
    go_source=proxy
  fi
}

print_go_plan() {
  printf 'go_source=%s\ngo_bin=%s\n' "${go_source}" "${go_bin}"
  if [[ "${go_source}" != path ]]; then
    printf 'go_version=%s\ngo_url=%s\ngo_sha256=%s\ngo_root=%s\n' \
      "${GO_VERSION}" "${go_url}" "${go_sha256}" "${go_root}"
  fi
}

# Download the planned toolchain zip, check its SHA-256, unpack it into go_root.
fetch_go() {
  local work zip top
  mkdir -p "$(dirname "${go_root}")"
  # NB: fd 8, not lib.sh's 9: a build holds its folder's lock while it fetches.
  exec 8>"$(dirname "${go_root}")/.fetch.lock"
  flock 8
  if [[ -x "${go_bin}" && -f "${go_root}/.verified" ]]; then
    log "Go ${GO_VERSION} was fetched by another run meanwhile (${go_root})"
    return 0
  fi
  work="$(mktemp -d "$(dirname "${go_root}")/.fetch.XXXXXX")"
  # shellcheck disable=SC2064  # expand now: work is local to this function
  trap "rm -rf '${work}'" EXIT
  zip="${work}/go.zip"
  log "no Go 1.${GO_MINIMUM_MINOR}+ on PATH: fetching Go ${GO_VERSION} from ${go_url}"
  if command -v curl >/dev/null; then
    curl -fsSL --retry 3 -o "${zip}" "${go_url}"
  elif command -v wget >/dev/null; then
    wget -q -O "${zip}" "${go_url}"
  else
    log "neither curl nor wget is installed (bash hack/install-system-deps.sh installs curl)"
    return 1
  fi
  if ! echo "${go_sha256}  ${zip}" | sha256sum --check --status; then
    log "SHA-256 mismatch for ${go_url}: expected ${go_sha256}, got $(sha256sum "${zip}" | cut -d' ' -f1)"
    return 1
  fi
  if command -v unzip >/dev/null; then
    unzip -q "${zip}" -d "${work}/x"
  elif command -v python3 >/dev/null; then
    python3 -m zipfile -e "${zip}" "${work}/x"
  else
    log "neither unzip nor python3 is installed (bash hack/install-system-deps.sh installs unzip)"
    return 1
  fi
  top="$(echo "${work}"/x/golang.org/toolchain@*)"
  # NB: module zips keep no executable bits (the go command sets them the same way).
  chmod +x "${top}"/bin/* "${top}"/pkg/tool/*/*
  rm -rf "${go_root}"
  mv "${top}" "${go_root}"
  touch "${go_root}/.verified"
  rm -rf "${work}"
  trap - EXIT
  log "Go ${GO_VERSION} verified and unpacked in ${go_root}"
}

case "${1:-}" in
  --print-dir)
    printf '%s\n' "${bin_dir}"
    exit 0
    ;;
  --print-go)
    plan_go
    print_go_plan
    exit 0
    ;;
  --fetch-go)
    plan_go
    if [[ "${go_source}" == proxy ]]; then
      fetch_go
    fi
    printf '%s\n' "${go_bin}"
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
  *) usage_error "$0 [--print-dir|--check|--print-go|--fetch-go]" ;;
esac

mkdir -p "${bin_dir}"
# One build at a time per folder: a second caller waits, then finds the work done.
hold_lock "${bin_dir}/.build.lock"

todo=()
for name in "${BINARIES[@]}"; do
  if found="$(locate "${name}")"; then
    log "have ${name}: ${found}"
  elif found="$(reusable "${name}")"; then
    # Same build inputs: link (or copy) the older folder's binary, build nothing.
    ln -f "${found}" "${bin_dir}/${name}" 2>/dev/null || cp -p "${found}" "${bin_dir}/${name}"
    log "reused ${name} from ${found}"
  else
    todo+=("${name}")
  fi
done

if [[ "${#todo[@]}" -eq 0 ]]; then
  printf '%s\n' "${bin_dir}"
  exit 0
fi

plan_go
case "${go_source}" in
  path) log "building with $("${go_bin}" version) (${go_bin})" ;;
  cache) log "building with Go ${GO_VERSION} fetched earlier (${go_root})" ;;
  proxy) fetch_go ;;
esac
if [[ "${go_source}" != path ]]; then
  export GOROOT="${go_root}"
  export PATH="${go_root}/bin:${PATH}"
fi

# NB: `auto` lets a Go older than a wrapper module's `go` line (1.21+) fetch the
# matching toolchain from the Go module proxy (golang.org/toolchain); a new
# enough local Go is used as it is. Set GOTOOLCHAIN=local to forbid the fetch.
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
export GOFLAGS="-buildvcs=false -mod=readonly"
jobs="${TRADERBOT_GO_BUILD_JOBS:-2}"
times_file="${bin_dir}/build-times.txt"

k8s_ldflags() {
  local date
  # The release date of the module on the proxy: reproducible, unlike `date`.
  date="$(cd "${build_root}/kubernetes" && go list -m -json k8s.io/kubernetes \
    | sed -n 's/.*"Time": "\(.*\)".*/\1/p')"
  local flags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X ${pkg}.gitVersion=${KUBERNETES_VERSION}"
    flags+=" -X ${pkg}.gitMajor=${kube_major} -X ${pkg}.gitMinor=${kube_minor}"
    flags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=${date}"
  done
  printf '%s' "${flags}"
}

# helm's release ldflags (its Makefile): version, and the Kubernetes version
# `helm template`/`helm lint` assume without a cluster (chartutil's
# .Capabilities.KubeVersion, lint's deprecation rules).
helm_ldflags() {
  local flags="-s -w"
  flags+=" -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
  flags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    flags+=" -X ${pkg}.k8sVersionMajor=${kube_major} -X ${pkg}.k8sVersionMinor=${kube_minor}"
  done
  printf '%s' "${flags}"
}

# module folder, package path, ldflags and build tags of each binary
spec() {
  case "$1" in
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl|kubelet|kube-proxy)
      echo "kubernetes|k8s.io/kubernetes/cmd/$1|$(k8s_ldflags)|selinux,notest" ;;
    etcd) echo "etcd|.|-s -w|" ;;
    kwok) echo "kwok|sigs.k8s.io/kwok/cmd/kwok|-s -w|" ;;
    helm) echo "helm|helm.sh/helm/v3/cmd/helm|$(helm_ldflags)|" ;;
    # Our own main with only the plugins the real node needs (no forward).
    coredns) echo "coredns|.|-s -w|" ;;
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

index=0
for name in "${todo[@]}"; do
  index=$((index + 1))
  build_one "${name}" "${index}" "${#todo[@]}"
done

log "all binaries present in ${bin_dir} (build times in ${times_file})"
printf '%s\n' "${bin_dir}"
