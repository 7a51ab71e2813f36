# shellcheck shell=bash
# Helpers shared by the hack/ scripts. Source it (`. hack/lib.sh`); it runs nothing.
#
# A script sets `log_prefix` before sourcing, then uses:
#   log MESSAGE...           one line on stderr, prefixed with [log_prefix]
#   hold_lock FILE           take an exclusive lock on FILE (fd 9) for the rest of the
#                            script; a second caller waits, then finds the work done
#   usage_error USAGE        print "usage: USAGE" on stderr and exit 2

log() { printf '[%s] %s\n' "${log_prefix:-hack}" "$*" >&2; }

hold_lock() {
  local file="$1"
  # NB: `exec` with only a redirection changes the calling shell's fds, so the
  # lock outlives this function and is released when the script exits.
  exec 9>"${file}"
  if ! flock -n 9; then
    log "another run holds ${file}; waiting for it"
    flock 9
  fi
}

usage_error() {
  printf 'usage: %s\n' "$*" >&2
  exit 2
}
