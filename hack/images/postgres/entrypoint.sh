#!/usr/bin/env bash
# Entrypoint of the test PostgreSQL image (hack/images/postgres): what the
# official postgres image's entrypoint does that TraderBot's database
# StatefulSet relies on, written for this project (docs/images.md).
#
# `postgres [ARG...]` (the default command; a first argument starting with "-"
# means the same): on the first start (no $PGDATA/PG_VERSION) run initdb with
# POSTGRES_USER as the superuser and POSTGRES_PASSWORD as its password (host
# connections then need it, scram-sha-256), create POSTGRES_DB, run
# /docker-entrypoint-initdb.d/* in order (*.sh sourced, or run when executable;
# *.sql and *.sql.gz through psql), then exec postgres with the arguments.
# Any other command is exec'd as it is.
set -Eeuo pipefail
shopt -s nullglob

if [[ "${1:-}" == -* ]]; then
  set -- postgres "$@"
fi
if [[ "${1:-}" != postgres ]]; then
  exec "$@"
fi

export POSTGRES_USER="${POSTGRES_USER:-postgres}"
export POSTGRES_DB="${POSTGRES_DB:-${POSTGRES_USER}}"
export PGDATA="${PGDATA:-/var/lib/postgresql/data}"

# Started as root (`docker run --user 0`): hand the data to postgres, then run as it.
if [[ "$(id -u)" == 0 ]]; then
  mkdir -p "${PGDATA}"
  chown -R postgres:postgres "${PGDATA}" /var/run/postgresql
  chmod 0700 "${PGDATA}"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

psql_script() {
  psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --username "${POSTGRES_USER}" "$@"
}

init_database() {
  if [[ -z "${POSTGRES_PASSWORD:-}" && "${POSTGRES_HOST_AUTH_METHOD:-}" != trust ]]; then
    echo "error: POSTGRES_PASSWORD is empty; set it (or POSTGRES_HOST_AUTH_METHOD=trust)" >&2
    exit 1
  fi
  # The volume's mount point may be root-owned 0777 or fsGroup-owned: both let
  # this user make PGDATA below it; initdb wants it 0700 (or 0750).
  mkdir -p "${PGDATA}"
  chmod 0700 "${PGDATA}"
  local password_file
  password_file="$(mktemp)"
  printf '%s\n' "${POSTGRES_PASSWORD:-}" >"${password_file}"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of options, split on purpose
  initdb --username="${POSTGRES_USER}" --pwfile="${password_file}" ${POSTGRES_INITDB_ARGS:-}
  rm -f "${password_file}"
  # initdb trusts the socket and loopback; every other host must give the password.
  printf '\nhost all all all %s\n' "${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" >>"${PGDATA}/pg_hba.conf"

  # A server on the Unix socket only while the database is set up.
  pg_ctl --pgdata="${PGDATA}" --wait --silent --options="-c listen_addresses='' -p 5432" start
  if [[ "${POSTGRES_DB}" != postgres ]]; then
    psql_script --dbname postgres --set db="${POSTGRES_DB}" <<<'CREATE DATABASE :"db";'
  fi
  local script
  for script in /docker-entrypoint-initdb.d/*; do
    case "${script}" in
      *.sh)
        echo "entrypoint: running ${script}" >&2
        if [[ -x "${script}" ]]; then
          "${script}"
        else
          # shellcheck disable=SC1090 # the scripts are the user's
          . "${script}"
        fi
        ;;
      *.sql)
        echo "entrypoint: running ${script}" >&2
        psql_script --dbname "${POSTGRES_DB}" --file "${script}"
        ;;
      *.sql.gz)
        echo "entrypoint: running ${script}" >&2
        gzip -dc "${script}" | psql_script --dbname "${POSTGRES_DB}"
        ;;
      *) echo "entrypoint: ignoring ${script}" >&2 ;;
    esac
  done
  pg_ctl --pgdata="${PGDATA}" --wait --silent --mode=fast stop
  echo "entrypoint: database ${POSTGRES_DB} initialised; starting postgres" >&2
}

if [[ ! -s "${PGDATA}/PG_VERSION" ]]; then
  init_database
fi
exec "$@"
