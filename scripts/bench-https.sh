#!/usr/bin/env bash
# The key check over HTTPS beside plain HTTP (issue 15): one server, pinned to one core with
# one worker, serving both (two `serve` processes over copies of one data directory: one
# plain, one with a test certificate, TLS 1.3, ECDSA P-256); wrk (keep-alive, pinned to the
# other core) runs checkKey against each in alternating runs, PAIRS times. Prints the
# medians (requests/s, p50/p99, server CPU-µs per request) and the median of the pairwise
# HTTPS/HTTP ratios, which is what to compare on a noisy machine.
#
# Usage (from the repo root):   scripts/bench-https.sh
#   quick: DURATION=2 PAIRS=3 scripts/bench-https.sh
# Environment: PAIRS=5, DURATION=10, CONNECTIONS="1 16 64", KEYLEDGER_BIN (default: build
# target/release/keyledger), SERVER_CPU=0 CLIENT_CPU=1. Needs wrk, curl, jq and openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh

PAIRS=${PAIRS:-5}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-"1 16 64"}
FUNCTION=api.attendees.read
EVENT=summit-nyc

print_header "keyledger checkKey: HTTPS (keep-alive) beside plain HTTP"
echo "settings: PAIRS=$PAIRS DURATION=${DURATION}s CONNECTIONS=\"$CONNECTIONS\""
need curl curl
need jq jq
need wrk wrk
build_keyledger

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-https.XXXXXX")
on_exit "rm -rf '$tmp'"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$tmp/tls.key" -out "$tmp/tls.crt" 2>/dev/null

# start NAME [serve flags…]: sets URL_<NAME>, PID_<NAME>, and ADMIN on the first start.
start() {
  local name=$1 out=$tmp/$1.out
  shift
  taskset -c "$SERVER_CPU" "$KEYLEDGER_BIN" serve --workers 1 --data-dir "$tmp/$name" --listen 127.0.0.1:0 \
    --failed-check-burst 0 "$@" >"$out" 2>"$tmp/$name.log" &
  local pid=$!
  on_exit "stop_pid $pid"
  for _ in $(seq 1 300); do grep -q '^listening on ' "$out" && break; sleep 0.1; done
  printf -v "URL_$name" '%s' "$(sed -n 's/^listening on //p' "$out")"
  printf -v "PID_$name" '%s' "$pid"
  [ -n "$(sed -n 's/^admin key: //p' "$out")" ] && ADMIN=$(sed -n 's/^admin key: //p' "$out")
  return 0
}

# Set the data up once, over plain HTTP, then copy it for the HTTPS server.
start setup
api() {
  curl -sS --fail-with-body --max-time 10 -X "$1" -H "Authorization: Bearer $ADMIN" \
    -H 'Content-Type: application/json' ${3:+--data "$3"} "$URL_setup$2"
}
role=$(api POST /v1/roles '{"description": "API Access"}' | jq -r .id)
api POST "/v1/roles/$role/functions/activate" "{\"functions\": [\"$FUNCTION\"]}" >/dev/null
user=$(api POST /v1/users '{"name": "Bench app"}' | jq -r .id)
api PUT "/v1/users/$user/roles/$role" >/dev/null
group=$(api POST /v1/event-groups '{"name": "Bench events"}' | jq -r .id)
api PUT "/v1/event-groups/$group/events/$EVENT" >/dev/null
api PUT "/v1/users/$user/event-access" "{\"all_events\": false, \"groups\": [\"$group\"]}" >/dev/null
KEY=$(api POST "/v1/users/$user/key" '{}' | jq -r .key)
stop_pid "$PID_setup"
cp -a "$tmp/setup" "$tmp/plain"
cp -a "$tmp/setup" "$tmp/tls"
start plain
start tls --tls-cert "$tmp/tls.crt" --tls-key "$tmp/tls.key"
echo "plain: $URL_plain   tls: $URL_tls"

check_body=$(jq -nc --arg k "$KEY" --arg f "$FUNCTION" --arg e "$EVENT" '{key: $k, function: $f, event_id: $e}')
for url in "$URL_plain" "$URL_tls"; do
  curl -sS --cacert "$tmp/tls.crt" -H 'Content-Type: application/json' --data "$check_body" "$url/v1/check" |
    jq -e '.allowed == true' >/dev/null || die "the check at $url is not granted"
done
cat >"$tmp/check.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[$check_body]==]
LUA

# run NAME CONNS: one wrk run; prints "rps p50 p99 cpu_us_per_request".
run() {
  local name=$1 conns=$2 url pid t0 t1 rps p50 p99 requests _
  url=URL_$1 pid=PID_$1
  t0=$(cpu_ticks "${!pid}")
  run_wrk "$tmp/wrk.out" "$conns" "$DURATION" -s "$tmp/check.lua" "${!url}/v1/check"
  t1=$(cpu_ticks "${!pid}")
  read -r rps p50 p99 requests _ _ _ < <(parse_wrk "$tmp/wrk.out")
  echo "$rps $p50 $p99 $(cpu_us_per_request "$t0" "$t1" "$requests")"
}

printf '\n%-5s %-6s %12s %10s %10s %12s\n' conns proto req/s p50_us p99_us cpu_us/req
for conns in $CONNECTIONS; do
  : >"$tmp/plain.runs"; : >"$tmp/tls.runs"; : >"$tmp/ratios"
  for _ in $(seq 1 "$PAIRS"); do
    read -r a_rps a_p50 a_p99 a_cpu < <(run plain "$conns")
    read -r b_rps b_p50 b_p99 b_cpu < <(run tls "$conns")
    echo "$a_rps $a_p50 $a_p99 $a_cpu" >>"$tmp/plain.runs"
    echo "$b_rps $b_p50 $b_p99 $b_cpu" >>"$tmp/tls.runs"
    echo "$(ratio "$b_rps" "$a_rps") $(ratio "$b_cpu" "$a_cpu") $(ratio "$b_p99" "$a_p99")" >>"$tmp/ratios"
  done
  for name in plain tls; do
    printf '%-5s %-6s %12s %10s %10s %12s\n' "$conns" "$name" \
      "$(cut -d' ' -f1 "$tmp/$name.runs" | median)" "$(cut -d' ' -f2 "$tmp/$name.runs" | median)" \
      "$(cut -d' ' -f3 "$tmp/$name.runs" | median)" "$(cut -d' ' -f4 "$tmp/$name.runs" | median)"
  done
  printf '%-5s https/http, median of %s pairs: req/s x%s, CPU-µs/req x%s, p99 x%s\n' "$conns" "$PAIRS" \
    "$(cut -d' ' -f1 "$tmp/ratios" | median)" "$(cut -d' ' -f2 "$tmp/ratios" | median)" "$(cut -d' ' -f3 "$tmp/ratios" | median)"
done
