#!/usr/bin/env bash
# Starts a throwaway PostgreSQL (15, or whichever Debian installed) on 127.0.0.1, exports
# KEYLEDGER_TEST_DATABASE_URL naming it, runs COMMAND, then stops the server
# (pg_ctl stop -m immediate) and removes its files. Exits with COMMAND's status.
#
# Usage: scripts/with-postgres.sh COMMAND [ARGS...]
#   e.g. scripts/with-postgres.sh cargo test --lib log::
#   PG_PORT picks the port (default: a free one between 20000 and 29999, below the
#   ephemeral range, so that no client can take a dead server's port).
# As root, the server runs as the `postgres` user (initdb and postgres refuse root).
# Unix sockets go to the server's own temporary directory; clients use TCP.
set -euo pipefail
cd "$(dirname "$0")/.."

find_tool() {
  local dir
  for dir in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin /usr/local/bin; do
    [ -x "$dir/$1" ] && { echo "$dir/$1"; return 0; }
  done
  command -v "$1" || true
}
initdb=$(find_tool initdb)
pg_ctl=$(find_tool pg_ctl)
if [ -z "$initdb" ] || [ -z "$pg_ctl" ]; then
  echo "PostgreSQL is not installed (initdb, pg_ctl): apt-get install postgresql" >&2
  exit 1
fi

if [ "$(id -u)" = 0 ]; then
  as_server() { runuser -u postgres -- "$@"; }
else
  as_server() { "$@"; }
fi

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=${PG_PORT:-}
if [ -z "$port" ]; then
  for _ in $(seq 1 50); do
    candidate=$((20000 + RANDOM % 10000))
    port_in_use "$candidate" || { port=$candidate; break; }
  done
fi
[ -n "$port" ] || { echo "no free port found for PostgreSQL" >&2; exit 1; }

dir=$(mktemp -d /tmp/keyledger-pg.XXXXXX)
mkdir "$dir/sockets"
[ "$(id -u)" = 0 ] && chown -R postgres "$dir"
started=no
cleanup() {
  if [ "$started" = yes ]; then
    as_server "$pg_ctl" -D "$dir/data" stop -m immediate >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

as_server "$initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-instructions >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }
started=yes
as_server "$pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir/sockets -c max_connections=200" \
  start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }

export KEYLEDGER_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
echo "PostgreSQL on 127.0.0.1:$port (KEYLEDGER_TEST_DATABASE_URL=$KEYLEDGER_TEST_DATABASE_URL)" >&2
status=0
"$@" || status=$?
exit "$status"
