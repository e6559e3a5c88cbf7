#!/usr/bin/env bash
# HTTP load benchmark of the key check (issue 4, items 2 and 3).
#
# Starts the release server pinned to one core with one worker, sets up an API user with
# a key through the admin API, and runs wrk pinned to the other core in alternating runs
# (health, authorizeRequest, health, checkKey; PAIRS times) at each connection count. For
# each run: requests/s, p50/p99 latency and the server's CPU-µs per request (from
# /proc/PID/stat). Then the same pinning for a Redis GET of a key record (redis-benchmark)
# and a PostgreSQL indexed lookup by key hash (pgbench, prepared SELECT), each started here
# on loopback and stopped after. Prints medians and the medians of the pairwise ratios
# check/health next to the issue's targets, and writes them as TSV.
#
# Usage (from the repo root):   scripts/bench-http.sh
#   quick run (about a minute): DURATION=2 PAIRS=2 scripts/bench-http.sh
#
# Environment:
#   PAIRS=5              alternating rounds per connection count (at least 5 for results)
#   DURATION=10          seconds per wrk run (and per Redis/PostgreSQL run)
#   WARMUP=1             seconds of warm-up (health) before each connection count
#   CONNECTIONS="1 16 64"
#   COMPARE=1            0 skips Redis and PostgreSQL
#   PG_ROWS=100000       rows in the PostgreSQL keys table
#   OUT=target/bench-http/latest.tsv   summary (medians, ratios, targets), TSV
#   RUNS_OUT=${OUT%.tsv}.runs.tsv      every run, TSV
#   KEYLEDGER_BIN        use this binary instead of building target/release/keyledger
#   SERVER_CPU=0 CLIENT_CPU=1          the cores
# Installs wrk, redis-server and postgresql from Debian's packages if missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh

PAIRS=${PAIRS:-5}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
CONNECTIONS=${CONNECTIONS:-"1 16 64"}
COMPARE=${COMPARE:-1}
PG_ROWS=${PG_ROWS:-100000}
OUT=${OUT:-target/bench-http/latest.tsv}
RUNS_OUT=${RUNS_OUT:-${OUT%.tsv}.runs.tsv}

FUNCTION=api.attendees.read
EVENT=summit-nyc

print_header "keyledger HTTP benchmark: authorizeRequest and checkKey vs health"
echo "settings: PAIRS=$PAIRS DURATION=${DURATION}s WARMUP=${WARMUP}s CONNECTIONS=\"$CONNECTIONS\" COMPARE=$COMPARE"
[ "$PAIRS" -ge 5 ] || echo "note: PAIRS=$PAIRS < 5: a quick run, not a result"
[ "$(nproc)" -ge 2 ] || echo "warning: fewer than 2 cores: server and client share a core"

need curl curl
need jq jq
need wrk wrk
build_keyledger

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-http.XXXXXX")
on_exit "rm -rf '$tmp'"
mkdir -p "$(dirname "$OUT")" "$(dirname "$RUNS_OUT")"

start_keyledger "$tmp/data" "$tmp/server.log"

# ---------------------------------------------------------------------------------------
# Set up, through the admin API: a role with the read functions, a standalone API user
# holding it, event access to a group holding the event, and a key.

# api METHOD PATH EXPECTED_STATUS [JSON]: the response body; fails on another status.
api() {
  local method=$1 path=$2 expected=$3 data=${4:-} status
  local args=(-sS --max-time 10 -o "$tmp/body" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $KL_ADMIN")
  [ -z "$data" ] || args+=(-H 'Content-Type: application/json' --data "$data")
  status=$(curl "${args[@]}" "$KL_URL$path")
  [ "$status" = "$expected" ] || { cat "$tmp/body" >&2; die "$method $path answered $status, expected $expected"; }
  cat "$tmp/body"
}
role=$(api POST /v1/roles 201 '{"description": "API Access"}' | jq -r .id)
api POST "/v1/roles/$role/functions/activate" 200 \
  '{"functions": ["api.attendees.read","api.events.read","api.invoices.read","api.people.read","api.sessions.read"]}' >/dev/null
user=$(api POST /v1/users 201 '{"name": "Bench app"}' | jq -r .id)
api PUT "/v1/users/$user/roles/$role" 200 >/dev/null
group=$(api POST /v1/event-groups 201 '{"name": "Bench events"}' | jq -r .id)
api PUT "/v1/event-groups/$group/events/$EVENT" 200 >/dev/null
api PUT "/v1/users/$user/event-access" 200 "{\"all_events\": false, \"groups\": [\"$group\"]}" >/dev/null
KEY=$(api POST "/v1/users/$user/key" 201 '{}' | jq -r .key)
check_body=$(jq -nc --arg k "$KEY" --arg f "$FUNCTION" --arg e "$EVENT" '{key: $k, function: $f, event_id: $e}')

# The answers under load must be the granted ones, not refusals.
status=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $KEY" "$KL_URL/v1/authorize?function=$FUNCTION&event_id=$EVENT")
[ "$status" = 200 ] || die "authorizeRequest answered $status, expected 200"
answer=$(curl -sS --max-time 10 -H 'Content-Type: application/json' --data "$check_body" "$KL_URL/v1/check")
jq -e '.allowed == true and .reason == "granted"' >/dev/null <<<"$answer" || die "checkKey answered $answer"
echo "setup: user $user with role $role, event $EVENT in group $group, key checked: authorize 200, check granted"

cat >"$tmp/check.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[$check_body]==]
EOF

# ---------------------------------------------------------------------------------------
# keyledger runs.

printf 'system\tendpoint\tconns\tpair\trps\tp50_us\tp99_us\tcpu_us_per_req\trequests\tseconds\tnon2xx\tsocket_errors\tother_load_on_server_core_pct\n' >"$RUNS_OUT"
ratios=$tmp/ratios.tsv # conns endpoint pair rps_ratio cpu_ratio p99_ratio
: >"$ratios"
problems=$tmp/problems
: >"$problems"

# kl_run ENDPOINT CONNS SECONDS: one wrk run; sets R_RPS R_P50 R_P99 R_CPU R_REQ R_SECS
# R_NON2XX R_ERR R_OTHER.
kl_run() {
  local endpoint=$1 conns=$2 secs=$3 t0 t1 c0 c1 args
  case $endpoint in
    health) args=("$KL_URL/health") ;;
    authorize) args=(-H "Authorization: Bearer $KEY" "$KL_URL/v1/authorize?function=$FUNCTION&event_id=$EVENT") ;;
    check) args=(-s "$tmp/check.lua" "$KL_URL/v1/check") ;;
  esac
  c0=$(core_ticks "$SERVER_CPU")
  t0=$(cpu_ticks "$KL_PID")
  run_wrk "$tmp/wrk.out" "$conns" "$secs" "${args[@]}"
  kill -0 "$KL_PID" 2>/dev/null || { cat "$tmp/wrk.out" >&2; tail -20 "$tmp/server.log" >&2; die "keyledger died during $endpoint at $conns connections"; }
  t1=$(cpu_ticks "$KL_PID")
  c1=$(core_ticks "$SERVER_CPU")
  R_OTHER=$(other_load "$c0" "$c1" "$t0" "$t1")
  read -r R_RPS R_P50 R_P99 R_REQ R_SECS R_NON2XX R_ERR < <(parse_wrk "$tmp/wrk.out")
  [ "$R_REQ" -gt 0 ] || { cat "$tmp/wrk.out" >&2; die "wrk made no requests ($endpoint, $conns connections)"; }
  R_CPU=$(cpu_us_per_request "$t0" "$t1" "$R_REQ")
  if [ "$R_NON2XX" != 0 ] || [ "$R_ERR" != 0 ]; then
    echo "$endpoint at $conns connections: $R_NON2XX non-2xx responses, $R_ERR socket errors of $R_REQ requests: $(grep -E 'Socket errors|Non-2xx' "$tmp/wrk.out" | tr -s ' ' | tr '\n' ';')" >>"$problems"
  fi
}

record() { # ENDPOINT CONNS PAIR
  printf 'keyledger\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" \
    "$R_RPS" "$R_P50" "$R_P99" "$R_CPU" "$R_REQ" "$R_SECS" "$R_NON2XX" "$R_ERR" "$R_OTHER" >>"$RUNS_OUT"
  printf '  c=%-3s pair %s/%s  %-9s %9s req/s  p50 %7s µs  p99 %8s µs  %7s CPU-µs/req  other load %3s%%%s\n' "$2" "$3" "$PAIRS" "$1" \
    "$(fmt "$R_RPS")" "$(fmt "$R_P50" 1)" "$(fmt "$R_P99" 1)" "$(fmt "$R_CPU" 2)" "$R_OTHER" \
    "$([ "$R_NON2XX$R_ERR" = 00 ] || echo "  [non-2xx $R_NON2XX, socket errors $R_ERR]")"
}

echo
echo "== keyledger: alternating runs (health, authorize, health, check) x $PAIRS, ${DURATION}s each"
for conns in $CONNECTIONS; do
  kl_run health "$conns" "$WARMUP" # warm-up, discarded
  for pair in $(seq 1 "$PAIRS"); do
    for endpoint in authorize check; do
      kl_run health "$conns" "$DURATION"
      record health "$conns" "$pair"
      h_rps=$R_RPS h_cpu=$R_CPU h_p99=$R_P99
      kl_run "$endpoint" "$conns" "$DURATION"
      record "$endpoint" "$conns" "$pair"
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$conns" "$endpoint" "$pair" \
        "$(ratio "$R_RPS" "$h_rps")" "$(ratio "$R_CPU" "$h_cpu")" "$(ratio "$R_P99" "$h_p99")" >>"$ratios"
    done
  done
done

# col_median SYSTEM ENDPOINT CONNS COLUMN_NAME: the median of a column of the runs file.
col_median() {
  awk -F'\t' -v s="$1" -v e="$2" -v c="$3" -v name="$4" '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) col = i; next }
    $1 == s && $2 == e && $3 == c { print $col }' "$RUNS_OUT" | median
}
# ratio_median CONNS ENDPOINT FIELD(4=rps 5=cpu 6=p99)
ratio_median() { awk -F'\t' -v c="$1" -v e="$2" -v f="$3" '$1 == c && $2 == e { print $f }' "$ratios" | median; }

# ---------------------------------------------------------------------------------------
# Redis and PostgreSQL, same pinning.

redis_run() { # CONNS: sets C_RPS C_P50 C_P99 C_CPU C_REQ C_OTHER
  local conns=$1 n t0 t1 c0 c1 line
  # Size the run to about DURATION seconds from a short calibration run.
  line=$(timeout -k 5 60 taskset -c "$CLIENT_CPU" redis-benchmark -h 127.0.0.1 -p "$rport" -c "$conns" -n 5000 --csv GET "$rkey" | tail -1)
  n=$(awk -F'"' -v d="$DURATION" '{ n = int($4 * d); print (n < 5000 ? 5000 : n) }' <<<"$line")
  c0=$(core_ticks "$SERVER_CPU")
  t0=$(cpu_ticks "$RPID")
  line=$(timeout -k 5 $((DURATION * 5 + 60)) taskset -c "$CLIENT_CPU" redis-benchmark -h 127.0.0.1 -p "$rport" -c "$conns" -n "$n" --csv GET "$rkey" | tail -1)
  t1=$(cpu_ticks "$RPID")
  c1=$(core_ticks "$SERVER_CPU")
  C_OTHER=$(other_load "$c0" "$c1" "$t0" "$t1")
  C_REQ=$n
  read -r C_RPS C_P50 C_P99 < <(awk -F'"' '{ printf "%s %.1f %.1f\n", $4, $10 * 1000, $14 * 1000 }' <<<"$line")
  C_CPU=$(cpu_us_per_request "$t0" "$t1" "$n")
}

pg_run() { # CONNS: sets C_RPS C_P50 C_P99 C_CPU C_REQ C_OTHER
  local conns=$1 t0 t1 c0 c1 out=$pgroot/pgbench.out
  rm -f "$pgroot"/txlog.*
  c0=$(core_ticks "$SERVER_CPU")
  t0=$(cpu_ticks "$PGPID")
  timeout -k 5 $((DURATION + 60)) taskset -c "$CLIENT_CPU" pgbench -h 127.0.0.1 -p "$pgport" -U postgres -n -M prepared \
    -f "$pgroot/select.sql" -c "$conns" -j 1 -T "$DURATION" -l --sampling-rate=0.2 --log-prefix="$pgroot/txlog" postgres >"$out" 2>&1 \
    || { cat "$out" >&2; die "pgbench failed at $conns connections"; }
  sleep 0.5 # let the postmaster reap the backends, so their CPU is counted
  t1=$(cpu_ticks "$PGPID")
  c1=$(core_ticks "$SERVER_CPU")
  C_OTHER=$(other_load "$c0" "$c1" "$t0" "$t1")
  C_RPS=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out")
  C_REQ=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
  read -r C_P50 C_P99 < <(cat "$pgroot"/txlog.* | awk '{ print $3 }' | sort -n | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "nan nan"; exit }
    i50 = int(NR * 0.50); i99 = int(NR * 0.99); if (i50 < 1) i50 = 1; if (i99 < 1) i99 = 1
    printf "%.1f %.1f\n", v[i50], v[i99] }')
  C_CPU=$(cpu_us_per_request "$t0" "$t1" "$C_REQ")
}

record_cmp() { # SYSTEM CONNS
  printf '%s\tget\t%s\t1\t%s\t%s\t%s\t%s\t%s\t%s\t0\t0\t%s\n' "$1" "$2" "$C_RPS" "$C_P50" "$C_P99" "$C_CPU" "$C_REQ" "$DURATION" "$C_OTHER" >>"$RUNS_OUT"
  printf '  c=%-3s %-10s %9s req/s  p50 %7s µs  p99 %8s µs  %7s CPU-µs/req  other load %3s%%\n' "$2" "$1" \
    "$(fmt "$C_RPS")" "$(fmt "$C_P50" 1)" "$(fmt "$C_P99" 1)" "$(fmt "$C_CPU" 2)" "$C_OTHER"
}

if [ "$COMPARE" = 1 ]; then
  need redis-server redis-server
  need redis-benchmark redis-tools
  need redis-cli redis-tools
  echo
  echo "== Redis: GET of one key record (redis-benchmark, single-threaded client), ${DURATION}s per connection count"
  mkdir -p "$tmp/redis"
  rport=$(free_port)
  taskset -c "$SERVER_CPU" redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no \
    --protected-mode yes --dir "$tmp/redis" --logfile "$tmp/redis/redis.log" &
  RPID=$!
  on_exit "stop_pid $RPID"
  for _ in $(seq 1 100); do
    [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$rport" PING 2>/dev/null)" = PONG ] && break
    kill -0 "$RPID" 2>/dev/null || die "redis-server exited early: $(cat "$tmp/redis/redis.log")"
    sleep 0.1
  done
  rkey="key:$(printf '%s' "$KEY" | sha256sum | cut -d' ' -f1)"
  record_json=$(jq -nc --arg u "$user" --arg r "$role" --arg g "$group" \
    '{user_id: $u, key_id: "key_0f1e2d3c4b5a6978", expires_at: null, revoked: false, disabled: false, roles: [$r],
      functions: ["api.attendees.read","api.events.read","api.invoices.read","api.people.read","api.sessions.read"],
      all_events: false, event_groups: [$g]}')
  [ "$(redis-cli -h 127.0.0.1 -p "$rport" SET "$rkey" "$record_json")" = OK ] || die "redis SET failed"
  echo "redis: pid $RPID, 127.0.0.1:$rport, $(taskset -cp "$RPID" | sed 's/.*: /cores /'), $(redis-server --version | cut -d' ' -f1-3), value ${#record_json} bytes"
  for conns in $CONNECTIONS; do
    redis_run "$conns"
    record_cmp redis "$conns"
  done
  stop_pid "$RPID"

  need pgbench postgresql-client
  # Debian keeps the server binaries (initdb, pg_ctl, postgres) off PATH.
  pg_bindir() { find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1; }
  pgbin=$(pg_bindir)
  if [ ! -x "$pgbin/initdb" ]; then install_pkg postgresql; pgbin=$(pg_bindir); fi
  [ -x "$pgbin/initdb" ] || die "no initdb under /usr/lib/postgresql/*/bin"
  echo
  echo "== PostgreSQL: prepared SELECT by key hash over $PG_ROWS rows (pgbench -M prepared -j 1), ${DURATION}s per connection count"
  pgroot=$tmp/pg
  mkdir -p "$pgroot"
  # PostgreSQL refuses to run as root: as root, run it as the postgres user.
  if [ "$(id -u)" = 0 ]; then
    pg_as() { runuser -u postgres -- "$@"; }
    chmod 711 "$tmp"
    chown postgres: "$pgroot"
  else
    pg_as() { "$@"; }
  fi
  pgport=$(free_port)
  pg_as "$pgbin/initdb" -D "$pgroot/data" -U postgres --auth=trust --no-sync --no-instructions >"$pgroot/initdb.log" 2>&1 \
    || { cat "$pgroot/initdb.log" >&2; die "initdb failed"; }
  on_exit "pg_as '$pgbin/pg_ctl' -D '$pgroot/data' -m immediate -t 20 stop"
  pg_as taskset -c "$SERVER_CPU" "$pgbin/pg_ctl" -D "$pgroot/data" -l "$pgroot/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$pgport -c unix_socket_directories=$pgroot -c max_connections=200 -c shared_buffers=128MB" \
    start >/dev/null || { cat "$pgroot/server.log" >&2; die "PostgreSQL did not start"; }
  PGPID=$(head -1 "$pgroot/data/postmaster.pid")
  psql_() { timeout 300 psql -h 127.0.0.1 -p "$pgport" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
  # The key record by the hash of the key (sha256 of the row number here); the SELECT
  # hashes on the server, as keyledger hashes the presented key.
  psql_ <<SQL
CREATE TABLE keys (
  hash bytea PRIMARY KEY, user_id text NOT NULL, key_id text NOT NULL, expires_at timestamptz,
  revoked boolean NOT NULL DEFAULT false, disabled boolean NOT NULL DEFAULT false,
  functions text[] NOT NULL, all_events boolean NOT NULL DEFAULT false, event_groups text[] NOT NULL);
INSERT INTO keys (hash, user_id, key_id, functions, event_groups)
  SELECT sha256(int8send(i)), 'usr_' || lpad(to_hex(i), 16, '0'), 'key_' || lpad(to_hex(i), 16, '0'),
         '{api.attendees.read,api.events.read,api.invoices.read,api.people.read,api.sessions.read}',
         '{grp_0000000000000001}'
  FROM generate_series(1, $PG_ROWS) AS i;
VACUUM ANALYZE keys;
SQL
  cat >"$pgroot/select.sql" <<SQL
\\set id random(1, $PG_ROWS)
SELECT user_id, key_id, expires_at, revoked, disabled, functions, all_events, event_groups FROM keys WHERE hash = sha256(int8send(:id));
SQL
  plan=$(psql_ -c "EXPLAIN SELECT user_id FROM keys WHERE hash = sha256(int8send(42::bigint))" | head -1)
  echo "postgresql: postmaster $PGPID, 127.0.0.1:$pgport, $(taskset -cp "$PGPID" | sed 's/.*: /cores /'), $("$pgbin/postgres" --version), plan: $plan"
  for conns in $CONNECTIONS; do
    pg_run "$conns"
    record_cmp postgres "$conns"
  done
  pg_as "$pgbin/pg_ctl" -D "$pgroot/data" -m fast -t 30 -w stop >/dev/null || true
fi

# ---------------------------------------------------------------------------------------
# Summary.

printf 'conns\tsystem\tendpoint\truns\trps_median\tp50_us_median\tp99_us_median\tcpu_us_per_req_median\trps_ratio_median\tcpu_ratio_median\tp99_ratio_median\ttarget\tstatus\n' >"$OUT"
summary_row() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$OUT"; }

echo
echo "== Summary: medians over $PAIRS pairs; ratios are the medians of the pairwise ratios endpoint/health"
printf '%-5s %-10s %10s %9s %9s %10s %8s %8s %8s  %s\n' conns endpoint 'req/s' 'p50 µs' 'p99 µs' 'CPU-µs/req' 'rps ×' 'CPU ×' 'p99 ×' 'targets (issue 4)'
for conns in $CONNECTIONS; do
  for endpoint in health authorize check; do
    rps=$(col_median keyledger "$endpoint" "$conns" rps)
    p50=$(col_median keyledger "$endpoint" "$conns" p50_us)
    p99=$(col_median keyledger "$endpoint" "$conns" p99_us)
    cpu=$(col_median keyledger "$endpoint" "$conns" cpu_us_per_req)
    runs=$(awk -F'\t' -v e="$endpoint" -v c="$conns" '$1 == "keyledger" && $2 == e && $3 == c' "$RUNS_OUT" | wc -l)
    if [ "$endpoint" = health ]; then
      rr=nan cr=nan pr=nan targets=() shown=""
    else
      rr=$(ratio_median "$conns" "$endpoint" 4)
      cr=$(ratio_median "$conns" "$endpoint" 5)
      pr=$(ratio_median "$conns" "$endpoint" 6)
      targets=()
      if [ "$endpoint" = authorize ]; then
        [ "$conns" != 64 ] || targets+=("rps×>=0.9:$(meets "$rr" '>=' 0.9)")
        targets+=("CPU×<=1.10:$(meets "$cr" '<=' 1.10)")
        [ "$conns" != 1 ] || targets+=("p99×<=2:$(meets "$pr" '<=' 2)")
      else
        [ "$conns" != 64 ] || targets+=("rps×>=0.8:$(meets "$rr" '>=' 0.8)")
        targets+=("CPU×<=1.25:$(meets "$cr" '<=' 1.25)")
      fi
      shown=$(printf '%s; ' "${targets[@]}" | sed 's/; $//')
    fi
    printf '%-5s %-10s %10s %9s %9s %10s %8s %8s %8s  %s\n' "$conns" "$endpoint" "$(fmt "$rps")" "$(fmt "$p50" 1)" "$(fmt "$p99" 1)" \
      "$(fmt "$cpu" 2)" "$(fmt "$rr" 3)" "$(fmt "$cr" 3)" "$(fmt "$pr" 3)" "$shown"
    if [ ${#targets[@]} -eq 0 ]; then
      summary_row "$conns" keyledger "$endpoint" "$runs" "$rps" "$p50" "$p99" "$cpu" "$rr" "$cr" "$pr" "" ""
    else
      for t in "${targets[@]}"; do
        summary_row "$conns" keyledger "$endpoint" "$runs" "$rps" "$p50" "$p99" "$cpu" "$rr" "$cr" "$pr" "${t%%:*}" "${t#*:}"
      done
    fi
  done
done

if [ "$COMPARE" = 1 ]; then
  echo
  echo "== Side by side (same pinning): keyledger medians vs one Redis / PostgreSQL run; × = req/s relative to keyledger health"
  printf '%-5s %-22s %10s %9s %9s %10s %8s\n' conns 'system' 'req/s' 'p50 µs' 'p99 µs' 'CPU-µs/req' 'rps ×'
  for conns in $CONNECTIONS; do
    h=$(col_median keyledger health "$conns" rps)
    for row in "keyledger health" "keyledger authorize" "keyledger check" "redis get" "postgres get"; do
      read -r sys ep <<<"$row"
      rps=$(col_median "$sys" "$ep" "$conns" rps)
      p50=$(col_median "$sys" "$ep" "$conns" p50_us)
      p99=$(col_median "$sys" "$ep" "$conns" p99_us)
      cpu=$(col_median "$sys" "$ep" "$conns" cpu_us_per_req)
      label="$sys $ep"
      case $sys in redis) label="redis GET" ;; postgres) label="postgres SELECT by hash" ;; esac
      printf '%-5s %-22s %10s %9s %9s %10s %8s\n' "$conns" "$label" "$(fmt "$rps")" "$(fmt "$p50" 1)" "$(fmt "$p99" 1)" "$(fmt "$cpu" 2)" "$(fmt "$(ratio "$rps" "$h")" 3)"
      if [ "$sys" != keyledger ]; then
        summary_row "$conns" "$sys" get 1 "$rps" "$p50" "$p99" "$cpu" "$(ratio "$rps" "$h")" "" "" "" ""
      fi
    done
  done
  echo "(Redis and PostgreSQL only look a record up; keyledger also checks the key's checksum, expiry,"
  echo " user, function and event access. PostgreSQL CPU counts the postmaster and all its backends.)"
fi

noisy=$(awk -F'\t' 'NR > 1 && $13 != "nan" && $13 + 0 >= 10 { n++ } END { print n + 0 }' "$RUNS_OUT")
total_runs=$(($(wc -l <"$RUNS_OUT") - 1))
echo
echo "noise: $noisy of $total_runs runs had ≥ 10% of the server's core $SERVER_CPU used by other processes (column other_load_on_server_core_pct of $RUNS_OUT)"
echo
report_problems "$tmp/server.log" "$problems" "No problems: every response 2xx, no socket errors, no WARN/ERROR in the server log"
echo
echo "summary: $OUT"
echo "runs:    $RUNS_OUT"
