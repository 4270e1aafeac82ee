#!/usr/bin/env bash
# Runs a real PostgreSQL server from Debian's `postgresql` package in a directory of its own, on
# a free port, without a system service: for development and the tests, as scripts/kafka.sh
# does for Kafka.
#
#   scripts/postgres.sh install             apt-get install postgresql when initdb is missing
#   scripts/postgres.sh start [--dir D] [--port P]
#                                           initdb (first time) and start; print the URL
#   scripts/postgres.sh stop  [--dir D]     stop it (fast shutdown) and wait
#   scripts/postgres.sh url   [--dir D]     print the URL of a started server
#   scripts/postgres.sh psql  [--dir D] ... psql connected to it
#
# The URL is postgres://pipeline:pipeline@127.0.0.1:PORT/pipeline. PostgreSQL refuses to run as
# root: as root the server runs as the `postgres` user the package creates, with the directory
# handed to it. State: D/data, D/server.log, D/port.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${POSTGRES_STATE_DIR:-$ROOT/.postgres/default}"
PORT=""

log() { echo "postgres.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

pg_bin() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
  [[ -n "$dir" && -x "$dir/initdb" ]] || return 1
  echo "$dir"
}

install() {
  pg_bin >/dev/null && return 0
  log "installing Debian's postgresql"
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  pg_bin >/dev/null || die "postgresql installed but no initdb under /usr/lib/postgresql/*/bin"
}

parse_opts() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --dir) DIR="$2"; shift 2 ;;
      --port) PORT="$2"; shift 2 ;;
      *) die "unknown option: $1" ;;
    esac
  done
  mkdir -p "$DIR"
  DIR="$(cd "$DIR" && pwd)"
}

# Runs a command as the server's user: `postgres` when we are root, ourselves otherwise.
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 "$ROOT/scripts/free-port.py"
}

url() { echo "postgres://pipeline:pipeline@127.0.0.1:$(cat "$DIR/port")/pipeline"; }

start() {
  parse_opts "$@"
  local bin
  bin="$(pg_bin)" || die "PostgreSQL is not installed: run scripts/postgres.sh install"
  [[ $(id -u) -ne 0 ]] || chown postgres: "$DIR"
  if [[ ! -f "$DIR/data/PG_VERSION" ]]; then
    local pwfile="$DIR/.pw"
    echo pipeline >"$pwfile"
    [[ $(id -u) -ne 0 ]] || chown postgres: "$pwfile"
    as_owner "$bin/initdb" -D "$DIR/data" -U pipeline --pwfile="$pwfile" -A scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
    rm -f "$pwfile"
  fi
  if as_owner "$bin/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
    url
    return 0
  fi
  [[ -n "$PORT" && "$PORT" != 0 ]] || PORT="$(free_port)"
  echo "$PORT" >"$DIR/port"
  # Sockets in the state directory only; fsync stays on: the sink's guarantee is about
  # committed transactions, and a test must see what a real server does.
  as_owner "$bin/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
    -o "-p $PORT -c listen_addresses=127.0.0.1 -k $DIR -c max_connections=200" start >/dev/null \
    || { tail -20 "$DIR/server.log" >&2; die "PostgreSQL did not start"; }
  as_owner env PGPASSWORD=pipeline "$bin/psql" -h 127.0.0.1 -p "$PORT" -U pipeline -d postgres -qAt \
    -c "SELECT 1 FROM pg_database WHERE datname = 'pipeline'" | grep -q 1 \
    || as_owner env PGPASSWORD=pipeline "$bin/createdb" -h 127.0.0.1 -p "$PORT" -U pipeline pipeline
  url
}

stop() {
  parse_opts "$@"
  local bin
  bin="$(pg_bin)" || return 0
  [[ -d "$DIR/data" ]] || return 0
  as_owner "$bin/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  install) install ;;
  start) start "$@" ;;
  stop) stop "$@" ;;
  url) parse_opts "$@"; url ;;
  psql)
    args=()
    while [[ $# -gt 0 ]]; do
      case "$1" in
        --dir) DIR="$2"; shift 2 ;;
        *) args+=("$1"); shift ;;
      esac
    done
    PGPASSWORD=pipeline exec psql "$(url)" "${args[@]}"
    ;;
  *) sed -n '2,16p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
esac
