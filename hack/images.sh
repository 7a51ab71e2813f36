#!/usr/bin/env bash
# Build every container image the project needs, on this machine, from package
# registries only (no image registry is reached): a Debian base made by
# debootstrap, both targets of the Dockerfile, the test images of the database,
# Redis and the pod sandbox (hack/images/), then save each repository as an
# archive that `ctr -n k8s.io images import` loads. Details: docs/images.md.
#
# It runs its own Docker engine (Debian's dockerd 20.10) with its own data,
# socket and state, no bridge, no iptables, no IP forwarding, and stops it, its
# containerd included, before it exits. The engine's data stays in the cache so
# the next build is warm.
#
#   hack/images.sh [GROUP...]        build (default: every group), smoke-test the
#                                    images whose ID changed, save their archives,
#                                    print the list (below) on stdout
#   hack/images.sh --print-dir       print the archive folder only, build nothing
#   hack/images.sh --list [GROUP...]  print what would be built (name, ref, archive), build nothing
#   hack/images.sh --check [GROUP...]  exit 1 unless every archive is saved
#   hack/images.sh --smoke [GROUP...]  also smoke-test images whose ID did not change
#   hack/images.sh --refresh-base    debootstrap a new base (dated today) first
#
# GROUP: operator, trader-api (the workload, its next tag and the never-ready
# tag), postgres, redis, pause.
#
# The list (stdout, and images.txt in the archive folder): one line per image,
#   name=NAME ref=REF id=IMAGE_ID archive=PATH
# Several refs of one repository share one archive.
#
# Environment:
#   TRADERBOT_IMAGES_DIR     cache root (default ~/.cache/traderbot/images)
#   TRADERBOT_IMAGES_RUN_DIR the engine's socket, pid and state (default
#                            /run/traderbot-images.<hash of the cache root>)
#   TRADERBOT_IMAGE_PREFIX   registry part of every ref (default traderbot.local)
#   TRADERBOT_DEBIAN_MIRROR  Debian mirror of the base (default http://deb.debian.org/debian)
#   TRADERBOT_CA_BUNDLE      CA bundle handed to pip inside builds (default $PIP_CERT,
#                            else /etc/ssl/certs/ca-certificates.crt when present)
set -euo pipefail

SUITE=trixie
# Bump when make_base_tarball changes what goes into the base: the cached
# tarball and the base's ref carry it, so the next run makes a new base.
BASE_RECIPE=2
# The image tags of the test images: the major versions of trixie's packages
# (the builds fail when Debian's differ).
POSTGRES_MAJOR=17
REDIS_MAJOR=8
PAUSE_TAG=3.10
GROUPS_ALL=(operator trader-api postgres redis pause)

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "${here}")"
cache_root="${TRADERBOT_IMAGES_DIR:-${XDG_CACHE_HOME:-${HOME}/.cache}/traderbot/images}"
archive_dir="${cache_root}/archives"
base_dir="${cache_root}/base"
log_dir="${cache_root}/logs"
data_root="${cache_root}/docker"
# NB: one per cache: the cache's lock guards it (see start_engine's stale check).
run_dir="${TRADERBOT_IMAGES_RUN_DIR:-/run/traderbot-images.$(printf '%s' "${cache_root}" | sha1sum | cut -c1-8)}"
prefix="${TRADERBOT_IMAGE_PREFIX:-traderbot.local}"
mirror="${TRADERBOT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ca_bundle="${TRADERBOT_CA_BUNDLE:-${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}}"
list_file="${archive_dir}/images.txt"

log_prefix=images
# shellcheck source=hack/lib.sh
. "${here}/lib.sh"

usage="$0 [--print-dir | --list | --check | --smoke | --refresh-base] [GROUP...]  (GROUP: ${GROUPS_ALL[*]})"
mode=build
smoke_all=0
refresh_base=0
selected=()
for arg in "$@"; do
  case "${arg}" in
    --print-dir) mode=print-dir ;;
    --list) mode=list ;;
    --check) mode=check ;;
    --smoke) smoke_all=1 ;;
    --refresh-base) refresh_base=1 ;;
    -h | --help) usage_error "${usage}" ;;
    -*) usage_error "${usage}" ;;
    *)
      [[ " ${GROUPS_ALL[*]} " == *" ${arg} "* ]] || usage_error "${usage}"
      selected+=("${arg}")
      ;;
  esac
done
((${#selected[@]})) || selected=("${GROUPS_ALL[@]}")

if [[ "${mode}" == print-dir ]]; then
  printf '%s\n' "${archive_dir}"
  exit 0
fi
# NB: the list is words split on spaces.
[[ "${archive_dir}" != *[[:space:]]* ]] || { log "the cache path may not hold spaces: ${archive_dir}"; exit 2; }

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "${repo}/pyproject.toml" | head -n 1)"
[[ "${version}" =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || { log "cannot read the project version: '${version}'"; exit 1; }
next_version="${BASH_REMATCH[1]}.${BASH_REMATCH[2]}.$((BASH_REMATCH[3] + 1))"

# The catalogue: name|group|ref|archive (one archive per repository).
catalogue=(
  "operator|operator|${prefix}/traderbot-operator:${version}|traderbot-operator"
  "workload|trader-api|${prefix}/trader-api:${version}|trader-api"
  "workload-next|trader-api|${prefix}/trader-api:${next_version}|trader-api"
  "workload-never-ready|trader-api|${prefix}/trader-api:${version}-never-ready|trader-api"
  "postgres|postgres|${prefix}/postgres:${POSTGRES_MAJOR}|postgres"
  "redis|redis|${prefix}/redis:${REDIS_MAJOR}|redis"
  "pause|pause|${prefix}/pause:${PAUSE_TAG}|pause"
)

is_selected() { [[ " ${selected[*]} " == *" $1 "* ]]; }

# The saved refs of an archive and their image IDs, one "ref id" a line.
stamp_of() { printf '%s/%s.tar.ids' "${archive_dir}" "$1"; }

saved_id() {
  local archive="$1" ref="$2" stamp
  stamp="$(stamp_of "${archive}")"
  [[ -f "${archive_dir}/${archive}.tar" && -f "${stamp}" ]] || return 1
  awk -v ref="${ref}" '$1 == ref { print $2; found = 1 } END { exit !found }' "${stamp}"
}

write_list() {
  local entry name group ref archive id tmp
  tmp="${list_file}.tmp"
  : >"${tmp}"
  for entry in "${catalogue[@]}"; do
    IFS='|' read -r name group ref archive <<<"${entry}"
    if id="$(saved_id "${archive}" "${ref}")"; then
      printf 'name=%s ref=%s id=%s archive=%s\n' "${name}" "${ref}" "${id}" \
        "${archive_dir}/${archive}.tar" >>"${tmp}"
    fi
  done
  mv "${tmp}" "${list_file}"
}

if [[ "${mode}" == list ]]; then
  for entry in "${catalogue[@]}"; do
    IFS='|' read -r name group ref archive <<<"${entry}"
    is_selected "${group}" || continue
    printf 'name=%s ref=%s archive=%s\n' "${name}" "${ref}" "${archive_dir}/${archive}.tar"
  done
  exit 0
fi

if [[ "${mode}" == check ]]; then
  missing=0
  for entry in "${catalogue[@]}"; do
    IFS='|' read -r name group ref archive <<<"${entry}"
    is_selected "${group}" || continue
    if ! saved_id "${archive}" "${ref}" >/dev/null; then
      log "missing: ${name} (${ref}); run hack/images.sh ${group}"
      missing=1
    fi
  done
  exit "${missing}"
fi

[[ $(id -u) -eq 0 ]] || { log "needs root: it runs its own dockerd"; exit 1; }
for tool in /usr/sbin/dockerd /usr/bin/docker debootstrap; do
  command -v "${tool}" >/dev/null || { log "missing ${tool}; run hack/install-system-deps.sh"; exit 1; }
done

mkdir -p "${archive_dir}" "${base_dir}" "${log_dir}" "${data_root}"
hold_lock "${cache_root}/.lock"

# ---------------------------------------------------------------------------
# The engine: Debian's dockerd with everything of its own, changing nothing of
# the host's network.
# ---------------------------------------------------------------------------
exec_root="${run_dir}/exec"
pidfile="${run_dir}/dockerd.pid"
socket="${run_dir}/docker.sock"
export DOCKER_HOST="unix://${socket}"
export DOCKER_BUILDKIT=1
# NB: Debian's 20.10 client, by path: a newer `docker` on PATH wants buildx.
# Its own config folder, so no user setting (aliases, credential helpers) applies.
export DOCKER_CONFIG="${run_dir}/client"
docker_cli() { /usr/bin/docker "$@"; }

ip_forward_before="$(cat /proc/sys/net/ipv4/ip_forward)"
# What dockerd 20.10 makes outside its folders whatever its flags: removed at
# the end when a run of ours made it (a marker in the cache remembers that
# across a run that was killed).
made_marker="${cache_root}/.made-host-folders"
made_run_docker=0
made_etc_docker=0
if [[ -f "${made_marker}" ]]; then
  grep -qx run-docker "${made_marker}" && made_run_docker=1
  grep -qx etc-docker "${made_marker}" && made_etc_docker=1
fi
[[ -e /run/docker ]] || made_run_docker=1
[[ -e /etc/docker ]] || made_etc_docker=1
dockerd_pid=""
containerd_pid=""

# The pids of processes whose command line names our exec root (containerd and
# its shims), so that a stop never touches anyone else's.
our_pids() {
  local proc cmdline
  for proc in /proc/[0-9]*; do
    case "$(cat "${proc}/comm" 2>/dev/null)" in
      containerd | containerd-shim*) ;;
      *) continue ;;
    esac
    cmdline="$(tr '\0' ' ' <"${proc}/cmdline" 2>/dev/null || true)"
    [[ "${cmdline}" != *"${exec_root}/"* ]] || printf '%s\n' "${proc#/proc/}"
  done
}

stop_pid() {
  local pid="$1" what="$2" _
  kill -0 "${pid}" 2>/dev/null || return 0
  kill -TERM "${pid}" 2>/dev/null || true
  for _ in $(seq 60); do
    kill -0 "${pid}" 2>/dev/null || return 0
    sleep 0.5
  done
  log "${what} (pid ${pid}) ignored SIGTERM for 30 s; killing it"
  kill -KILL "${pid}" 2>/dev/null || true
}

unmount_under() {
  local folder="$1" target
  # Deepest first.
  while read -r target; do
    umount "${target}" 2>/dev/null || umount -l "${target}" || true
  done < <(findmnt -rn -o TARGET | grep -F -- "${folder}/" | sort -r || true)
}

stop_engine() {
  local pid
  if [[ -n "${dockerd_pid}" ]] && kill -0 "${dockerd_pid}" 2>/dev/null; then
    docker_cli ps -aq 2>/dev/null | xargs -r /usr/bin/docker rm -f >/dev/null 2>&1 || true
    stop_pid "${dockerd_pid}" dockerd
    wait "${dockerd_pid}" 2>/dev/null || true
  fi
  [[ -z "${containerd_pid}" ]] || stop_pid "${containerd_pid}" containerd
  for pid in $(our_pids); do
    stop_pid "${pid}" "leftover process"
  done
  unmount_under "${run_dir}"
  unmount_under "${data_root}"
  if findmnt -rn -o TARGET | grep -qF -- "${run_dir}/"; then
    log "still mounted under ${run_dir}; left in place"
  else
    rm -rf "${run_dir}"
  fi
  # dockerd 20.10 makes /run/docker/plugins whatever its exec root, and its
  # identity /etc/docker/key.json whatever its data root: remove what we made.
  if ((made_run_docker)); then
    rmdir /run/docker/plugins /run/docker 2>/dev/null || true
  fi
  if ((made_etc_docker)); then
    rm -f /etc/docker/key.json
    rmdir /etc/docker 2>/dev/null || true
  fi
  rm -f "${made_marker}"
  # NB: reported, never written back: this engine runs with --ip-forward=false,
  # so a change came from someone else (a real node's harness restores its own).
  if [[ "$(cat /proc/sys/net/ipv4/ip_forward)" != "${ip_forward_before}" ]]; then
    log "note: net.ipv4.ip_forward changed during the run (${ip_forward_before} ->" \
      "$(cat /proc/sys/net/ipv4/ip_forward)), not by this engine; left as it is"
  fi
}

start_engine() {
  local stale _
  # A run that was killed may have left its engine: stop it first (it holds the data root).
  if [[ -f "${pidfile}" ]]; then
    stale="$(cat "${pidfile}")"
    if [[ -n "${stale}" ]] && tr '\0' ' ' <"/proc/${stale}/cmdline" 2>/dev/null | grep -qF -- "--exec-root ${exec_root}"; then
      log "stopping the engine a previous run left (pid ${stale})"
      stop_pid "${stale}" dockerd
    fi
  fi
  for stale in $(our_pids); do
    stop_pid "${stale}" "leftover process"
  done
  unmount_under "${run_dir}"
  rm -rf "${run_dir}"
  mkdir -p "${run_dir}" "${DOCKER_CONFIG}"
  chmod 0700 "${run_dir}"
  printf '{}\n' >"${run_dir}/daemon.json"
  {
    ((made_run_docker == 0)) || echo run-docker
    ((made_etc_docker == 0)) || echo etc-docker
  } >"${made_marker}"
  trap stop_engine EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  # NB: in a mount namespace of its own, so the mounts of its containers and
  # network namespaces are never seen by the host and vanish with it.
  unshare --mount --propagation private /usr/sbin/dockerd \
    --config-file "${run_dir}/daemon.json" \
    --data-root "${data_root}" \
    --exec-root "${exec_root}" \
    --pidfile "${pidfile}" \
    -H "unix://${socket}" \
    --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    --userland-proxy=false \
    >"${log_dir}/dockerd.log" 2>&1 9>&- &
  # NB: 9>&- above: the engine must not inherit the cache's lock (hold_lock),
  # or an engine left by a killed run would make the next run wait for ever.
  dockerd_pid=$!
  for _ in $(seq 120); do
    if docker_cli version >/dev/null 2>&1; then
      containerd_pid="$(cat "${exec_root}/containerd/containerd.pid" 2>/dev/null || true)"
      log "engine up (dockerd pid ${dockerd_pid}, containerd pid ${containerd_pid:-?}, ${socket})"
      return 0
    fi
    kill -0 "${dockerd_pid}" 2>/dev/null || break
    sleep 0.5
  done
  log "dockerd did not start; the end of ${log_dir}/dockerd.log:"
  tail -n 20 "${log_dir}/dockerd.log" >&2
  exit 1
}

image_id() { docker_cli image inspect --format '{{.Id}}' "$1" 2>/dev/null; }

# Run a build, its output in a log file, and say how long it took.
build() {
  local name="$1" started log
  shift
  log="${log_dir}/build-${name}.log"
  started=${SECONDS}
  if ! docker_cli build --network host "${secret_args[@]}" "$@" >"${log}" 2>&1; then
    log "${name}: build failed; the end of ${log}:"
    tail -n 30 "${log}" >&2
    exit 1
  fi
  log "${name}: built in $((SECONDS - started)) s"
}

# ---------------------------------------------------------------------------
# The base: debootstrap --variant=minbase of the suite, what Debian's own
# images are made from, with the same apt sources and slimming.
# ---------------------------------------------------------------------------
make_base_tarball() {
  local tarball="$1" rootfs started
  rootfs="$(mktemp -d "${base_dir}/rootfs.XXXXXX")"
  started=${SECONDS}
  log "debootstrap --variant=minbase ${SUITE} from ${mirror} (about a minute)"
  if ! debootstrap --variant=minbase "${SUITE}" "${rootfs}" "${mirror}" >"${log_dir}/debootstrap.log" 2>&1; then
    log "debootstrap failed; the end of ${log_dir}/debootstrap.log:"
    tail -n 20 "${log_dir}/debootstrap.log" >&2
    # NB: a failed debootstrap may leave /proc or /sys mounted in the target.
    unmount_under "${rootfs}"
    rm -rf "${rootfs}"
    exit 1
  fi
  # Debian's images: deb822 sources with updates and security; no docs, man
  # pages or translations from later installs; no package lists or .debs kept.
  rm -f "${rootfs}/etc/apt/sources.list"
  cat >"${rootfs}/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: ${mirror}
Suites: ${SUITE} ${SUITE}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: ${SUITE}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  cat >"${rootfs}/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
DPKG
  printf 'Acquire::Languages "none";\n' >"${rootfs}/etc/apt/apt.conf.d/docker-no-languages"
  # apt keeps neither the downloaded .debs nor its binary caches: what makes
  # `apt-get install ... && rm -rf /var/lib/apt/lists/*` leave a small layer.
  cat >"${rootfs}/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
  find "${rootfs}/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "${rootfs}/usr/share/man/"* "${rootfs}/usr/share/info/"* "${rootfs}/usr/share/locale/"*
  rm -rf "${rootfs}/var/lib/apt/lists/"* "${rootfs}/var/cache/apt/"*.bin
  find "${rootfs}/var/cache/apt/archives" -name '*.deb' -delete
  find "${rootfs}/var/log" -type f -delete
  # The engine provides these per container.
  : >"${rootfs}/etc/resolv.conf"
  : >"${rootfs}/etc/hostname"
  tar --numeric-owner --xattrs -C "${rootfs}" \
    --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
    -cf "${tarball}.tmp" .
  mv "${tarball}.tmp" "${tarball}"
  unmount_under "${rootfs}"
  rm -rf "${rootfs}"
  log "base tarball ${tarball} in $((SECONDS - started)) s"
}

# Print the base's ref, making the tarball and importing it when missing.
# NB: keyed by suite and the day it was made: the newest tarball of the suite
# is reused until --refresh-base; an import happens only when the engine lacks
# the ref, because an import gets a new image ID (and so would every build).
ensure_base() {
  local tarball day ref
  tarball="$(find "${base_dir}" -maxdepth 1 -name "debian-${SUITE}-*-minbase-r${BASE_RECIPE}.tar" | sort | tail -n 1)"
  if [[ -z "${tarball}" ]] || ((refresh_base)); then
    tarball="${base_dir}/debian-${SUITE}-$(date -u +%Y%m%d)-minbase-r${BASE_RECIPE}.tar"
    [[ -f "${tarball}" ]] || make_base_tarball "${tarball}"
  fi
  day="${tarball##*/debian-"${SUITE}"-}"
  day="${day%%-*}"
  ref="${prefix}/debian:${SUITE}-${day}-minbase-r${BASE_RECIPE}"
  if ! image_id "${ref}" >/dev/null; then
    # The configuration Debian's images have.
    docker_cli import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' \
      "${tarball}" "${ref}" >/dev/null
    log "imported ${tarball##*/} as ${ref}"
  fi
  # Older bases: their tarballs and refs (the builds that used them go with prune_engine).
  find "${base_dir}" -maxdepth 1 -name 'debian-*.tar' ! -path "${tarball}" -delete
  docker_cli image ls --format '{{.Repository}}:{{.Tag}}' "${prefix}/debian" \
    | grep -vxF "${ref}" | xargs -r /usr/bin/docker rmi >/dev/null || true
  printf '%s\n' "${ref}"
}

# Keep the engine's data from growing without end: images no tag points at
# any more, and build cache unused for 30 days.
prune_engine() {
  docker_cli image prune -f >/dev/null
  docker_cli builder prune -f --filter until=720h >/dev/null
}

# ---------------------------------------------------------------------------
# Smoke tests: each image does what the manifests that run it expect, in a
# container with no network at all.
# ---------------------------------------------------------------------------
smoke_container=""
run_detached() {
  smoke_container="traderbot-smoke-$1"
  shift
  docker_cli rm -f "${smoke_container}" >/dev/null 2>&1 || true
  docker_cli run -d --name "${smoke_container}" --network none "$@" >/dev/null
}

# Retry a command in the smoke container until it succeeds (60 s at most).
exec_until() {
  local _
  for _ in $(seq 120); do
    if docker_cli exec "${smoke_container}" "$@" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.5
  done
  log "smoke: '$*' never succeeded in ${smoke_container}; its log:"
  docker_cli logs --tail 30 "${smoke_container}" >&2 || true
  return 1
}

end_smoke() {
  docker_cli rm -f "${smoke_container}" >/dev/null 2>&1 || true
  smoke_container=""
}

expect() {
  local what="$1"
  shift
  if ! "$@"; then
    log "smoke: ${what}: failed"
    return 1
  fi
}

http_get() {
  # Print the status of GET http://127.0.0.1:PORT/PATH inside the smoke container.
  docker_cli exec "${smoke_container}" python -c \
    "import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).status)
except urllib.error.HTTPError as error:
    print(error.code)" "http://127.0.0.1:$1$2"
}

smoke_operator() {
  local ref="$1" out
  out="$(docker_cli run --rm --network none --read-only "${ref}" --help)"
  expect "traderbot-operator --help" grep -q -- --liveness-port <<<"${out}"
  # Every module of the operator (its handlers register with kopf on import),
  # under the image's Python and user.
  out="$(docker_cli run --rm --network none --read-only --entrypoint python "${ref}" -c '
import importlib, importlib.util, os, pkgutil, sys
import traderbot_operator
for module in pkgutil.walk_packages(traderbot_operator.__path__, "traderbot_operator."):
    importlib.import_module(module.name)
print(sys.version_info[:2] >= (3, 11), os.getuid(), importlib.util.find_spec("traderbot_devtools") is None)')"
  # ... and the development tooling (local control plane, demo) is not in the image.
  expect "operator modules import under Python 3.11+ as 10001, no devtools (got ${out})" \
    test "${out}" = "True 10001 True"
}

smoke_workload() {
  local ref="$1" out
  out="$(docker_cli run --rm --network none --entrypoint sh "${ref}" -c \
    'trader-backup --help >/dev/null && pg_dump --version && pg_restore --version && redis-cli --version && id -u')"
  expect "pg_dump 17" grep -q "pg_dump (PostgreSQL) 17" <<<"${out}"
  expect "pg_restore 17" grep -q "pg_restore (PostgreSQL) 17" <<<"${out}"
  expect "redis-cli" grep -q "redis-cli" <<<"${out}"
  expect "uid 10001" test "$(tail -n 1 <<<"${out}")" = 10001
  run_detached workload --read-only --tmpfs /tmp "${ref}"
  exec_until python -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:3000/health", timeout=2)'
  expect "trader-api /health/ready" test "$(http_get 3000 /health/ready)" = 200
  end_smoke
}

smoke_never_ready() {
  local ref="$1"
  run_detached never-ready --read-only --tmpfs /tmp -e PORT=3000 "${ref}"
  exec_until python -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:3000/health", timeout=2)'
  expect "never-ready /health/ready is 503" test "$(http_get 3000 /health/ready)" = 503
  expect "never-ready keeps the real trader-backup" \
    docker_cli exec "${smoke_container}" sh -c 'trader-backup --help >/dev/null'
  end_smoke
}

smoke_postgres() {
  local ref="$1" initdb_dir out
  # The operator's StatefulSet: UID 70, env from the Secret, PGDATA below a
  # mount point that is root-owned 0777 here; one init script as a user would.
  initdb_dir="$(mktemp -d "${run_dir}/initdb.XXXXXX")"
  printf 'CREATE TABLE smoke_init (id int);\n' >"${initdb_dir}/10-table.sql"
  chmod -R a+rX "${initdb_dir}"
  run_detached postgres --user 70:70 \
    --mount "type=tmpfs,destination=/var/lib/postgresql/data,tmpfs-mode=0777" \
    --mount "type=bind,source=${initdb_dir},destination=/docker-entrypoint-initdb.d,readonly" \
    -e POSTGRES_USER=trader -e POSTGRES_PASSWORD=smoke-password -e POSTGRES_DB=traderbot \
    -e PGDATA=/var/lib/postgresql/data/pgdata -e TIMESCALEDB_TELEMETRY=off \
    "${ref}"
  # The operator's readiness probe (the kubelet expands its $(POSTGRES_USER)).
  # shellcheck disable=SC2016 # expanded by the container's sh
  exec_until sh -c 'pg_isready --host=127.0.0.1 --port=5432 --dbname=traderbot --username="${POSTGRES_USER}"'
  out="$(docker_cli exec "${smoke_container}" psql -At -U trader -d traderbot -c \
    "SELECT current_setting('listen_addresses'), to_regclass('smoke_init') IS NOT NULL,
            (SELECT rolpassword LIKE 'SCRAM-SHA-256\$%' FROM pg_authid WHERE rolname = 'trader'),
            (SELECT count(*) FROM pg_hba_file_rules
              WHERE type = 'host' AND address = 'all' AND auth_method = 'scram-sha-256'),
            current_setting('server_version_num')::int / 10000")"
  expect "postgres: listen *, init script, scram password and host rule, major ${POSTGRES_MAJOR} (got ${out})" \
    test "${out}" = "*|t|t|1|${POSTGRES_MAJOR}"
  end_smoke
  rm -rf "${initdb_dir}"
}

smoke_redis() {
  local ref="$1"
  # The operator's StatefulSet: UID 999, its arguments, its probe.
  run_detached redis --user 999:999 --read-only --tmpfs /data:uid=999,gid=999 \
    -e REDIS_PASSWORD=smoke-password -e REDISCLI_AUTH=smoke-password \
    "${ref}" redis-server --port 6379 --requirepass smoke-password --dir /data \
    --appendonly yes --save "900 1 300 10 60 10000"
  exec_until sh -c 'redis-cli -p 6379 ping | grep -q PONG'
  expect "redis writes its append-only file in /data" \
    docker_cli exec "${smoke_container}" sh -c 'redis-cli -p 6379 set smoke 1 >/dev/null && ls /data | grep -q appendonly'
  end_smoke
}

smoke_pause() {
  local ref="$1" started status zombies
  run_detached pause "${ref}"
  sleep 1
  expect "pause keeps running" test "$(docker_cli inspect --format '{{.State.Running}}' "${smoke_container}")" = true
  # An orphan in the pod's PID namespace becomes the child of pause (PID 1),
  # which must reap it when it exits: no zombie may be left.
  zombies="$(docker_cli run --rm --network none --pid "container:${smoke_container}" "${base}" \
    sh -c 'sh -c "sleep 1 &"; sleep 2; grep -l "^State:[[:space:]]*Z" /proc/[0-9]*/status || true')"
  expect "pause reaps orphans (zombies: ${zombies:-none})" test -z "${zombies}"
  started=${SECONDS}
  docker_cli stop --time 20 "${smoke_container}" >/dev/null
  status="$(docker_cli inspect --format '{{.State.ExitCode}}' "${smoke_container}")"
  expect "pause exits 0 on SIGTERM (exit ${status})" test "${status}" = 0
  expect "pause stops at once, not after the 20 s grace" test $((SECONDS - started)) -lt 10
  end_smoke
}

smoke() {
  local name="$1" ref="$2" started=${SECONDS}
  case "${name}" in
    operator) smoke_operator "${ref}" ;;
    workload) smoke_workload "${ref}" ;;
    workload-never-ready) smoke_never_ready "${ref}" ;;
    postgres) smoke_postgres "${ref}" ;;
    redis) smoke_redis "${ref}" ;;
    pause) smoke_pause "${ref}" ;;
    *) return 0 ;;
  esac
  log "${name}: smoke test passed in $((SECONDS - started)) s"
}

# ---------------------------------------------------------------------------
# Build, smoke-test, save.
# ---------------------------------------------------------------------------
secret_args=()
if [[ -r "${ca_bundle}" ]]; then
  secret_args=(--secret "id=ca,src=${ca_bundle}")
else
  log "no CA bundle at ${ca_bundle}: builds use the images' own"
fi

start_engine
base="$(ensure_base)"
version_args=(--build-arg "VERSION=${version}")

build_group() {
  case "$1" in
    operator)
      build operator -f "${repo}/Dockerfile" --target operator --build-arg "BASE_IMAGE=${base}" \
        "${version_args[@]}" -t "${prefix}/traderbot-operator:${version}" "${repo}"
      ;;
    trader-api)
      build workload -f "${repo}/Dockerfile" --target workload --build-arg "BASE_IMAGE=${base}" \
        "${version_args[@]}" -t "${prefix}/trader-api:${version}" "${repo}"
      # Same image, another tag: an upgrade to it changes nothing but spec.version.
      docker_cli tag "${prefix}/trader-api:${version}" "${prefix}/trader-api:${next_version}"
      build workload-never-ready --build-arg "WORKLOAD_IMAGE=${prefix}/trader-api:${version}" \
        -t "${prefix}/trader-api:${version}-never-ready" "${here}/images/trader-api-never-ready"
      ;;
    postgres)
      build postgres --build-arg "BASE_IMAGE=${base}" --build-arg "PG_MAJOR=${POSTGRES_MAJOR}" \
        -t "${prefix}/postgres:${POSTGRES_MAJOR}" "${here}/images/postgres"
      ;;
    redis)
      build redis --build-arg "BASE_IMAGE=${base}" --build-arg "REDIS_MAJOR=${REDIS_MAJOR}" \
        -t "${prefix}/redis:${REDIS_MAJOR}" "${here}/images/redis"
      ;;
    pause)
      build pause --build-arg "BASE_IMAGE=${base}" -t "${prefix}/pause:${PAUSE_TAG}" "${here}/images/pause"
      ;;
  esac
}

# Save one repository's archive unless it already holds exactly these refs and IDs.
save_archive() {
  local archive="$1" entry name group ref _ id refs=() wanted="" started
  for entry in "${catalogue[@]}"; do
    IFS='|' read -r name group ref _ <<<"${entry}"
    [[ "${entry##*|}" == "${archive}" ]] || continue
    id="$(image_id "${ref}")"
    refs+=("${ref}")
    wanted+="${ref} ${id}"$'\n'
    if ((smoke_all)) || [[ "$(saved_id "${archive}" "${ref}" || true)" != "${id}" ]]; then
      smoke "${name}" "${ref}" >&2
    fi
  done
  if [[ -f "${archive_dir}/${archive}.tar" && -f "$(stamp_of "${archive}")" ]] \
    && [[ "$(cat "$(stamp_of "${archive}")")"$'\n' == "${wanted}" ]]; then
    log "${archive}.tar: unchanged"
    return 0
  fi
  started=${SECONDS}
  rm -f "$(stamp_of "${archive}")"
  docker_cli save -o "${archive_dir}/${archive}.tar.tmp" "${refs[@]}"
  mv "${archive_dir}/${archive}.tar.tmp" "${archive_dir}/${archive}.tar"
  printf '%s' "${wanted}" >"$(stamp_of "${archive}")"
  log "${archive}.tar: saved in $((SECONDS - started)) s ($(du -m "${archive_dir}/${archive}.tar" | cut -f1) MB)"
}

for group in "${GROUPS_ALL[@]}"; do
  is_selected "${group}" || continue
  build_group "${group}"
  archives=()
  for entry in "${catalogue[@]}"; do
    [[ "${entry}" == *"|${group}|"* ]] || continue
    archive="${entry##*|}"
    [[ " ${archives[*]} " == *" ${archive} "* ]] || archives+=("${archive}")
  done
  for archive in "${archives[@]}"; do
    save_archive "${archive}"
  done
done

prune_engine
docker_cli image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -F "${prefix}/" | sort >&2 || true
write_list
cat "${list_file}"
