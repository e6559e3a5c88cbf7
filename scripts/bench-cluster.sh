#!/usr/bin/env bash
# Several nodes on one PostgreSQL log (issue #12): the tail lag and the check path.
#
# 1. Tail lag: nodes A and B on one PostgreSQL database. LAG_WRITES sequential writes
#    (createRole) on A; B's change feed (GET /v1/audit/watch, which a node feeds as it
#    applies records, its own or tailed) says when B applied each. Prints p50/p99/max of
#    "A acknowledged -> B applied" and of "write sent to A -> B applied", the writes'
#    own latency, and that of LAG_WRITES/4 revocations on A (which wait for B).
# 2. The check path: checkKey under wrk on node B (PostgreSQL) and on a node over a fjall
#    data directory with the same users, alternating, PAIRS times each, the server pinned
#    to SERVER_CPU and wrk to CLIENT_CPU (as scripts/bench-http.sh). Prints the medians
#    and the median of the pairwise ratios PostgreSQL / fjall. While wrk runs, A keeps
#    writing (WRITES_DURING_CHECKS=1) so B also tails.
#
# Usage (from the repo root):   scripts/bench-cluster.sh
#   quick run: LAG_WRITES=200 PAIRS=2 DURATION=3 scripts/bench-cluster.sh
#
# Environment:
#   LAG_WRITES=1000   writes timed for the lag
#   PAIRS=5           alternating wrk rounds per node kind
#   DURATION=10       seconds per wrk run
#   CONNECTIONS=16    wrk connections
#   WRITES_DURING_CHECKS=1   0: node A idle during the check runs
#   KEYLEDGER_BIN     the binary (default: builds target/release/keyledger)
#   NODE_ARGS         extra arguments for the PostgreSQL nodes' `serve`
#   PG_PORT=15310     the database's port; SERVER_CPU=0 CLIENT_CPU=1 the cores
#   OUT=target/bench-cluster/latest.tsv
# Runs a throwaway PostgreSQL through scripts/with-postgres.sh (installing it from Debian
# when missing, as root), and wrk (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${KEYLEDGER_BENCH_CLUSTER_DB:-}" ]; then
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || { echo "PostgreSQL is missing: apt-get install postgresql" >&2; exit 1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null 2>&1 \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
  fi
  # Again, inside a throwaway PostgreSQL (its URL in KEYLEDGER_TEST_DATABASE_URL).
  export KEYLEDGER_BENCH_CLUSTER_DB=1
  PG_PORT=${PG_PORT:-15310} exec scripts/with-postgres.sh "$0" "$@"
fi
. scripts/bench-lib.sh

LAG_WRITES=${LAG_WRITES:-1000}
PAIRS=${PAIRS:-5}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
WRITES_DURING_CHECKS=${WRITES_DURING_CHECKS:-1}
OUT=${OUT:-target/bench-cluster/latest.tsv}
DB=$KEYLEDGER_TEST_DATABASE_URL

print_header "keyledger cluster benchmark: tail lag, and checkKey on a PostgreSQL node vs a fjall node"
echo "settings: LAG_WRITES=$LAG_WRITES PAIRS=$PAIRS DURATION=${DURATION}s CONNECTIONS=$CONNECTIONS WRITES_DURING_CHECKS=$WRITES_DURING_CHECKS"
[ "$PAIRS" -ge 5 ] || echo "note: PAIRS=$PAIRS < 5: a quick run, not a result"
need curl curl
need jq jq
need wrk wrk
build_keyledger
echo "keyledger: $("$KEYLEDGER_BIN" --version); PostgreSQL: $DB"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-cluster.XXXXXX")
on_exit "rm -rf '$tmp'"
mkdir -p "$(dirname "$OUT")"

# start_node NAME CPUS ARGS...: `keyledger serve` on a free port, pinned to CPUS; sets
# NODE_PID and NODE_URL, and NODE_ADMIN when it bootstrapped.
start_node() {
  local name=$1 cpus=$2 out=$tmp/$1.out _
  shift 2
  taskset -c "$cpus" "$KEYLEDGER_BIN" serve --workers 1 --data-dir "$tmp/$name" --listen 127.0.0.1:0 \
    --failed-check-burst 0 "$@" >"$out" 2>"$tmp/$name.log" &
  NODE_PID=$!
  on_exit "stop_pid $NODE_PID"
  for _ in $(seq 1 300); do
    grep -qs '^listening on ' "$out" && break
    kill -0 "$NODE_PID" 2>/dev/null || { cat "$tmp/$name.log" >&2; die "node $name exited early"; }
    sleep 0.1
  done
  NODE_URL=$(sed -n 's/^listening on //p' "$out")
  NODE_ADMIN=$(sed -n 's/^admin key: //p' "$out")
  [ -n "$NODE_URL" ] || die "node $name did not start within 30 s"
  echo "node $name: pid $NODE_PID, $NODE_URL, cores $cpus"
}

# shellcheck disable=SC2086 # NODE_ARGS: extra flags, split on spaces.
start_node a "$SERVER_CPU,$CLIENT_CPU" --database-url "$DB" --migrate --node-id a ${NODE_ARGS:-}
A_URL=$NODE_URL A_PID=$NODE_PID ADMIN=$NODE_ADMIN
[ -n "$ADMIN" ] || die "node a did not bootstrap the database"
# shellcheck disable=SC2086
start_node b "$SERVER_CPU" --database-url "$DB" --signing-key "$tmp/a/signing-key" --node-id b ${NODE_ARGS:-}
B_URL=$NODE_URL B_PID=$NODE_PID
start_node fjall "$SERVER_CPU"
F_URL=$NODE_URL F_PID=$NODE_PID F_ADMIN=$NODE_ADMIN

# ---------------------------------------------------------------------------------------
# 1. Tail lag.

echo
echo "== Tail lag: $LAG_WRITES writes on A, applied on B (B's change feed)"
python3 - "$A_URL" "$B_URL" "$ADMIN" "$LAG_WRITES" >"$tmp/lag.txt" <<'PY'
import http.client, json, sys, threading, time, urllib.parse

a_url, b_url, admin, writes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
auth = {"Authorization": f"Bearer {admin}"}
a, b = urllib.parse.urlsplit(a_url), urllib.parse.urlsplit(b_url)

def call(url, method, path, body=None):
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    headers = dict(auth)
    if body is not None:
        headers["Content-Type"] = "application/json"
    connection.request(method, path, json.dumps(body) if body is not None else None, headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data

head = json.loads(call(b, "GET", "/health")[2])["log_size"]
applied, seen = {}, threading.Condition()

def follow():
    connection = http.client.HTTPConnection(b.hostname, b.port, timeout=60)
    connection.request("GET", f"/v1/audit/watch?after={head}", headers={**auth, "Accept": "text/event-stream"})
    response = connection.getresponse()
    assert response.status == 200, response.status
    while True:
        line = response.fp.readline()
        if not line:
            return
        if line.startswith(b"id:"):
            now = time.perf_counter()
            with seen:
                applied[int(line[3:])] = now
                seen.notify_all()

threading.Thread(target=follow, daemon=True).start()
time.sleep(0.5)
after_ack, after_send, write_latency = [], [], []
for i in range(writes):
    sent = time.perf_counter()
    status, headers, body = call(a, "POST", "/v1/roles", {"description": f"Lag probe {i}"})
    acknowledged = time.perf_counter()
    write_latency.append((acknowledged - sent) * 1e3)
    assert status == 201, body
    position = int(headers["keyledger-position"])
    with seen:
        if not seen.wait_for(lambda: position in applied, timeout=10):
            sys.exit(f"node B did not apply position {position} within 10 s")
        at = applied[position]
    after_ack.append((at - acknowledged) * 1e3)
    after_send.append((at - sent) * 1e3)
    time.sleep(0.005)

def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]

# A revocation returns once every live node (here A and B) has applied it.
status, _, user = call(a, "POST", "/v1/users", {"name": "Revocation probe"})
assert status == 201, user
user = json.loads(user)["id"]
revoke_latency = []
for i in range(max(writes // 4, 1)):
    status, _, body = call(a, "POST", f"/v1/users/{user}/key", {})
    assert status == 201, body
    sent = time.perf_counter()
    status, headers, body = call(a, "DELETE", f"/v1/users/{user}/key")
    revoke_latency.append((time.perf_counter() - sent) * 1e3)
    assert status == 200 and "keyledger-nodes-pending" not in headers, (status, headers, body)

for name, values in (("ack", after_ack), ("send", after_send), ("write", write_latency), ("revoke", revoke_latency)):
    print(name, f"{pct(values, 50):.3f}", f"{pct(values, 99):.3f}", f"{max(values):.3f}",
          sum(1 for v in values if v <= 0))
PY
read -r _ LAG_ACK_P50 LAG_ACK_P99 LAG_ACK_MAX LAG_BEFORE_ACK < <(grep '^ack ' "$tmp/lag.txt")
read -r _ LAG_SEND_P50 LAG_SEND_P99 LAG_SEND_MAX _ < <(grep '^send ' "$tmp/lag.txt")
echo "A acknowledged -> B applied:  p50 ${LAG_ACK_P50} ms, p99 ${LAG_ACK_P99} ms, max ${LAG_ACK_MAX} ms ($LAG_BEFORE_ACK of $LAG_WRITES applied on B before A's answer arrived)"
echo "write sent to A -> B applied: p50 ${LAG_SEND_P50} ms, p99 ${LAG_SEND_P99} ms, max ${LAG_SEND_MAX} ms"
read -r _ WRITE_P50 WRITE_P99 _ _ < <(grep '^write ' "$tmp/lag.txt")
read -r _ REVOKE_P50 REVOKE_P99 REVOKE_MAX _ < <(grep '^revoke ' "$tmp/lag.txt")
echo "createRole on A, sent -> acknowledged: p50 ${WRITE_P50} ms, p99 ${WRITE_P99} ms"
echo "revokeKey on A, sent -> acknowledged (waits for B): p50 ${REVOKE_P50} ms, p99 ${REVOKE_P99} ms, max ${REVOKE_MAX} ms ($((LAG_WRITES / 4)) revocations)"

# ---------------------------------------------------------------------------------------
# 2. The check path: the same users on B (through A) and on the fjall node.

# setup URL ADMIN: a role with api.attendees.read, a user holding it, access to summit-nyc
# through a group, and a key; prints the key.
setup() {
  local url=$1 admin=$2 role user group
  api() {
    curl -sS --fail-with-body --max-time 10 -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
      -X "$1" ${3:+--data "$3"} "$url$2"
  }
  role=$(api POST /v1/roles '{"description": "API Access"}' | jq -r .id)
  api POST "/v1/roles/$role/functions/activate" '{"functions": ["api.attendees.read"]}' >/dev/null
  user=$(api POST /v1/users '{"name": "Bench app"}' | jq -r .id)
  api PUT "/v1/users/$user/roles/$role" >/dev/null
  group=$(api POST /v1/event-groups '{"name": "Bench events"}' | jq -r .id)
  api PUT "/v1/event-groups/$group/events/summit-nyc" >/dev/null
  api PUT "/v1/users/$user/event-access" "{\"all_events\": false, \"groups\": [\"$group\"]}" >/dev/null
  api POST "/v1/users/$user/key" '{}' | jq -r .key
}
PG_KEY=$(setup "$A_URL" "$ADMIN")
F_KEY=$(setup "$F_URL" "$F_ADMIN")
body() { jq -nc --arg k "$1" '{key: $k, function: "api.attendees.read", event_id: "summit-nyc"}'; }
for which in pg fjall; do
  if [ $which = pg ]; then url=$B_URL key=$PG_KEY; else url=$F_URL key=$F_KEY; fi
  for _ in $(seq 1 50); do
    answer=$(curl -sS --max-time 5 -H 'Content-Type: application/json' --data "$(body "$key")" "$url/v1/check")
    jq -e '.allowed == true' >/dev/null <<<"$answer" && break
    sleep 0.1
  done
  jq -e '.allowed == true' >/dev/null <<<"$answer" || die "checkKey on the $which node answered $answer"
  printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [==[%s]==]\n' "$(body "$key")" >"$tmp/$which.lua"
done

# Background writes on A while wrk runs on B: B tails them.
writer_pid=
if [ "$WRITES_DURING_CHECKS" = 1 ]; then
  (
    i=0
    while :; do
      i=$((i + 1))
      curl -sS -o /dev/null --max-time 5 -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
        --data "{\"description\": \"Background $i\"}" "$A_URL/v1/roles" || true
      sleep 0.01
    done
  ) &
  writer_pid=$!
  on_exit "kill $writer_pid"
fi
b_head_before=$(curl -sS "$B_URL/health" | jq .log_size)

printf 'node\tpair\trps\tp50_us\tp99_us\tcpu_us_per_req\tnon2xx\tsocket_errors\tother_load_on_server_core_pct\n' >"$OUT"
run_check() { # NODE PAIR
  local which=$1 pair=$2 url pid c0 c1 t0 t1
  if [ "$which" = pg ]; then url=$B_URL pid=$B_PID; else url=$F_URL pid=$F_PID; fi
  c0=$(core_ticks "$SERVER_CPU")
  t0=$(cpu_ticks "$pid")
  run_wrk "$tmp/wrk.out" "$CONNECTIONS" "$DURATION" -s "$tmp/$which.lua" "$url/v1/check"
  t1=$(cpu_ticks "$pid")
  c1=$(core_ticks "$SERVER_CPU")
  read -r rps p50 p99 requests _ non2xx errors < <(parse_wrk "$tmp/wrk.out")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$which" "$pair" "$rps" "$p50" "$p99" \
    "$(cpu_us_per_request "$t0" "$t1" "$requests")" "$non2xx" "$errors" "$(other_load "$c0" "$c1" "$t0" "$t1")" >>"$OUT"
  echo "$rps"
}
echo
echo "== checkKey, $CONNECTIONS connections, ${DURATION}s runs, alternating (PostgreSQL node B, fjall node)"
: >"$tmp/ratios"
for pair in $(seq 1 "$PAIRS"); do
  pg_rps=$(run_check pg "$pair")
  fjall_rps=$(run_check fjall "$pair")
  echo "pair $pair: PostgreSQL node $(fmt "$pg_rps") checks/s, fjall node $(fmt "$fjall_rps") checks/s"
  echo "$(ratio "$pg_rps" "$fjall_rps")" >>"$tmp/ratios"
done
b_head_after=$(curl -sS "$B_URL/health" | jq .log_size)
[ -z "$writer_pid" ] || { kill "$writer_pid" 2>/dev/null || true; wait "$writer_pid" 2>/dev/null || true; }

column_median() { awk -F'\t' -v n="$1" -v c="$2" '$1 == n { print $c }' "$OUT" | median; }
echo
echo "== Summary"
echo "tail lag, A acknowledged -> B applied: p50 $LAG_ACK_P50 ms, p99 $LAG_ACK_P99 ms ($LAG_WRITES writes)"
echo "tail lag, write sent -> B applied:     p50 $LAG_SEND_P50 ms, p99 $LAG_SEND_P99 ms"
echo "createRole acknowledged on A:          p50 $WRITE_P50 ms, p99 $WRITE_P99 ms"
echo "revokeKey acknowledged on A (waits for B): p50 $REVOKE_P50 ms, p99 $REVOKE_P99 ms"
for which in pg fjall; do
  echo "checkKey on the $which node: median $(fmt "$(column_median $which 3)") checks/s, p50 $(fmt "$(column_median $which 4)") us, p99 $(fmt "$(column_median $which 5)") us, $(column_median $which 6) CPU-us/check, other load on its core $(column_median $which 9) %"
done
echo "median ratio of checks/s, PostgreSQL node / fjall node: $(median <"$tmp/ratios") (one run's pairs; B tailed $((b_head_after - b_head_before)) records meanwhile)"
echo "ratio of median CPU-us/check, PostgreSQL node / fjall node: $(ratio "$(column_median pg 6)" "$(column_median fjall 6)")"
echo "runs: $OUT"
