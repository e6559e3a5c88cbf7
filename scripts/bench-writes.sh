#!/usr/bin/env bash
# Durable admin writes (issue 4, item 4).
#
# Starts the release server pinned to one core with one worker and drives createUser
# (POST /v1/users with the admin key) with wrk pinned to the other core at 1, 8, 64 and
# 256 concurrent clients. Every 2xx answer is an acknowledged, fsynced write. Reports
# acknowledged writes/s, p50/p99 latency and server CPU-µs per write, and measures in the
# same run the disk's serial fsync rate (write + fdatasync of small appends, on the
# filesystem of the data directory), so the group-commit gain is a ratio: writes/s at 64
# clients ÷ serial fsyncs/s (target ≥ 10). Afterwards it checks that the audit chain still
# verifies (online, and offline after a graceful stop) and that the number of users equals
# the 2xx answers + 1 (the bootstrap Administrator), explaining any difference.
#
# Usage (from the repo root):   scripts/bench-writes.sh
#   quick run (under a minute): DURATION=2 FSYNC_SECONDS=2 scripts/bench-writes.sh
#
# Environment:
#   DURATION=10          seconds per client count
#   CLIENTS="1 8 64 256" concurrent clients (wrk connections)
#   FSYNC_SECONDS=3      seconds of the serial fsync loop (run before and after the writes)
#   TMPDIR               where the data directory (and the fsync probe) go: the disk measured
#   OUT=target/bench-writes/latest.tsv   results, TSV
#   KEYLEDGER_BIN        use this binary instead of building target/release/keyledger
#   SERVER_CPU=0 CLIENT_CPU=1
#   SERVE_ARGS           extra flags for keyledger serve, e.g. to push snapshots and
#                        checkpoints out of the run:
#                        SERVE_ARGS="--snapshot-every 100000000 --checkpoint-every 100000000"
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh

DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-"1 8 64 256"}
FSYNC_SECONDS=${FSYNC_SECONDS:-3}
OUT=${OUT:-target/bench-writes/latest.tsv}
TARGET_CLIENTS=64

print_header "keyledger durable writes: createUser under concurrency vs the serial fsync rate"
echo "settings: DURATION=${DURATION}s CLIENTS=\"$CLIENTS\" FSYNC_SECONDS=${FSYNC_SECONDS}s"

need curl curl
need jq jq
need wrk wrk
need python3 python3
build_keyledger

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-writes.XXXXXX")
on_exit "rm -rf '$tmp'"
mkdir -p "$(dirname "$OUT")"
echo "disk:     $(df -P -T "$tmp" | awk 'NR == 2 { print $1 " (" $2 ") mounted on " $7 }'), data directory $tmp/data"

start_keyledger "$tmp/data" "$tmp/server.log"
admin=(-H "Authorization: Bearer $KL_ADMIN")

# ---------------------------------------------------------------------------------------
# The serial fsync rate of the data directory's filesystem.

cat >"$tmp/fsync.py" <<'EOF'
import os, sys, time
path, seconds = sys.argv[1], float(sys.argv[2])
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
record = b"x" * 255 + b"\n"
latencies = []
start = time.perf_counter()
end = start + seconds
while True:
    t = time.perf_counter()
    if t >= end:
        break
    os.write(fd, record)
    os.fdatasync(fd)
    latencies.append(time.perf_counter() - t)
elapsed = time.perf_counter() - start
os.close(fd)
os.unlink(path)
latencies.sort()
n = len(latencies)
print(f"{n / elapsed:.1f} {latencies[n // 2] * 1e6:.1f} {latencies[min(n - 1, int(n * 0.99))] * 1e6:.1f} {n}")
EOF
# fsync_rate: prints "fsyncs_per_s p50_us p99_us count".
fsync_rate() { timeout -k 5 $((FSYNC_SECONDS + 60)) taskset -c "$SERVER_CPU" python3 "$tmp/fsync.py" "$tmp/fsync-probe" "$FSYNC_SECONDS"; }

echo
echo "== Serial fsync rate (append 256 bytes + fdatasync, one at a time, ${FSYNC_SECONDS}s), before the writes"
read -r fs1 fs1_p50 fs1_p99 fs1_n < <(fsync_rate)
printf '  %s fsyncs/s  (p50 %s µs, p99 %s µs, %s fsyncs)\n' "$(fmt "$fs1")" "$fs1_p50" "$fs1_p99" "$fs1_n"

# ---------------------------------------------------------------------------------------
# createUser under load.

cat >"$tmp/create_user.lua" <<EOF
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $KL_ADMIN"
wrk.headers["Content-Type"] = "application/json"
-- User names must not look alike, so each request names its own user: the run's start
-- time, the wrk thread and a counter.
local run = os.time()
local sent = 0
function request()
  sent = sent + 1
  local name = "Bench user " .. run .. "-" .. (tid or 0) .. "-" .. sent
  return wrk.format(nil, nil, nil, '{"name": "' .. name .. '", "email": "bench@example.com"}')
end

local threads = {}
function setup(thread) table.insert(threads, thread); thread:set("tid", #threads) end
function init(args) ok = 0; c4 = 0; c5 = 0; other = 0; first = "" end
function response(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1
  else
    if status >= 500 then c5 = c5 + 1 elseif status >= 400 then c4 = c4 + 1 else other = other + 1 end
    if first == "" then first = status .. " " .. string.sub(body, 1, 300) end
  end
end
function done(summary, latency, requests)
  local a, b, c, d, f = 0, 0, 0, 0, ""
  for _, t in ipairs(threads) do
    a = a + t:get("ok"); b = b + t:get("c4"); c = c + t:get("c5"); d = d + t:get("other")
    if f == "" then f = t:get("first") end
  end
  io.write(string.format("STATUS %d %d %d %d\n", a, b, c, d))
  if f ~= "" then io.write("FIRST_ERROR " .. string.gsub(f, "\n", " ") .. "\n") end
end
EOF

log_size() { curl -sS --max-time 10 "$KL_URL/health" | jq -r .log_size; }
# settle: waits (up to 15 s) until the log stops growing, so that requests in flight when
# wrk stopped are committed before the next count; prints the log size.
settle() {
  local previous current _
  previous=$(log_size)
  for _ in $(seq 1 75); do
    sleep 0.2
    current=$(log_size)
    [ "$current" != "$previous" ] || break
    previous=$current
  done
  echo "$previous"
}

printf 'clients\twrites_per_s\tp50_us\tp99_us\tcpu_us_per_write\tacknowledged\tnon2xx_4xx\tnon2xx_5xx\tsocket_errors\tseconds\tlog_records_added\tratio_to_serial_fsync\tratio_to_1_client\tother_load_on_server_core_pct\n' >"$OUT"
problems=$tmp/problems
: >"$problems"
total_2xx=0
sum_clients=0
declare -A W_RPS W_P50 W_P99 W_CPU W_OK W_4 W_5 W_ERR W_ADDED W_OTHER

echo
echo "== createUser (POST /v1/users), wrk -t1, ${DURATION}s per client count"
before=$(settle)
for clients in $CLIENTS; do
  c0=$(core_ticks "$SERVER_CPU")
  t0=$(cpu_ticks "$KL_PID")
  run_wrk "$tmp/wrk.out" "$clients" "$DURATION" --timeout 30s -s "$tmp/create_user.lua" "$KL_URL/v1/users"
  kill -0 "$KL_PID" 2>/dev/null || { cat "$tmp/wrk.out" >&2; tail -20 "$tmp/server.log" >&2; die "keyledger died at $clients clients"; }
  t1=$(cpu_ticks "$KL_PID")
  c1=$(core_ticks "$SERVER_CPU")
  W_OTHER[$clients]=$(other_load "$c0" "$c1" "$t0" "$t1")
  read -r _ p50 p99 requests seconds _ errors < <(parse_wrk "$tmp/wrk.out")
  read -r ok c4 c5 other < <(awk '/^STATUS / { print $2, $3, $4, $5 }' "$tmp/wrk.out")
  [ -n "${ok:-}" ] || { cat "$tmp/wrk.out" >&2; die "wrk gave no status counts at $clients clients"; }
  after=$(settle)
  added=$((after - before))
  before=$after
  total_2xx=$((total_2xx + ok))
  sum_clients=$((sum_clients + clients))
  W_RPS[$clients]=$(awk -v n="$ok" -v s="$seconds" 'BEGIN { printf "%.1f", (s > 0 ? n / s : 0) }')
  W_P50[$clients]=$p50 W_P99[$clients]=$p99 W_OK[$clients]=$ok W_4[$clients]=$c4 W_5[$clients]=$((c5 + other)) W_ERR[$clients]=$errors
  W_CPU[$clients]=$(cpu_us_per_request "$t0" "$t1" "$ok")
  W_ADDED[$clients]=$added
  printf '  %4s clients  %9s writes/s  p50 %9s µs  p99 %9s µs  %8s CPU-µs/write  %7s acknowledged, log +%s, other load %s%%%s\n' "$clients" \
    "$(fmt "${W_RPS[$clients]}")" "$(fmt "$p50" 1)" "$(fmt "$p99" 1)" "$(fmt "${W_CPU[$clients]}" 1)" "$ok" "$added" "${W_OTHER[$clients]}" \
    "$([ "$c4$c5$other$errors" = 0000 ] || echo "  [4xx $c4, 5xx $c5, other $other, socket errors $errors]")"
  if [ "$c4$c5$other$errors" != 0000 ]; then
    echo "$clients clients: $c4 4xx, $c5 5xx, $other other non-2xx, $errors socket errors ($(grep 'Socket errors' "$tmp/wrk.out" | tr -s ' ')) of $requests answers; first error: $(sed -n 's/^FIRST_ERROR //p' "$tmp/wrk.out")" >>"$problems"
  fi
done

echo
echo "== Serial fsync rate, after the writes"
read -r fs2 fs2_p50 fs2_p99 fs2_n < <(fsync_rate)
printf '  %s fsyncs/s  (p50 %s µs, p99 %s µs, %s fsyncs)\n' "$(fmt "$fs2")" "$fs2_p50" "$fs2_p99" "$fs2_n"
fsync=$(awk -v a="$fs1" -v b="$fs2" 'BEGIN { printf "%.1f", (a + b) / 2 }')

first_clients=${CLIENTS%% *}
for clients in $CLIENTS; do
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$clients" "${W_RPS[$clients]}" "${W_P50[$clients]}" "${W_P99[$clients]}" \
    "${W_CPU[$clients]}" "${W_OK[$clients]}" "${W_4[$clients]}" "${W_5[$clients]}" "${W_ERR[$clients]}" "$DURATION" \
    "${W_ADDED[$clients]}" "$(ratio "${W_RPS[$clients]}" "$fsync")" "$(ratio "${W_RPS[$clients]}" "${W_RPS[$first_clients]}")" "${W_OTHER[$clients]}" >>"$OUT"
done
printf 'serial_fsync\t%s\t%s\t%s\t\t%s\t\t\t\t%s\t\t1\t\t\n' "$fsync" "$fs1_p50" "$fs1_p99" "$((fs1_n + fs2_n))" "$((2 * FSYNC_SECONDS))" >>"$OUT"

# ---------------------------------------------------------------------------------------
# The log still verifies; every acknowledged write is there.

echo
echo "== Verification"
verify=$(curl -sS --max-time 300 "${admin[@]}" "$KL_URL/v1/audit/verify")
valid=$(jq -r .valid <<<"$verify")
echo "  GET /v1/audit/verify: $verify"
[ "$valid" = true ] || echo "audit verify answered: $verify" >>"$problems"

# Count the users, a page of 1000 at a time (bounded: pages and time).
users=0 after="" deadline=$((SECONDS + 300))
for _ in $(seq 1 100000); do
  page=$(curl -sS --max-time 30 "${admin[@]}" "$KL_URL/v1/users?limit=1000${after:+&after=$after}")
  users=$((users + $(jq '.items | length' <<<"$page")))
  after=$(jq -r '.next // empty' <<<"$page")
  if [ -z "$after" ] || [ "$SECONDS" -ge "$deadline" ]; then break; fi
done
[ -z "$after" ] || echo "user count stopped after 300 s at $users users" >>"$problems"
expected=$((total_2xx + 1))
difference=$((users - expected))
echo "  users: $users; acknowledged createUser answers + 1 (Administrator): $expected; difference: $difference"
if [ "$difference" -lt 0 ]; then
  echo "  LOST: $((-difference)) acknowledged writes are missing" | tee -a "$problems"
elif [ "$difference" -gt 0 ]; then
  if [ "$difference" -le "$sum_clients" ]; then
    echo "  the $difference extra users are requests in flight when wrk stopped at the end of each run (at most one"
    echo "  per connection, $sum_clients in all): the server committed them after wrk had closed its connections"
  else
    echo "  $difference extra users: more than the $sum_clients requests that can be in flight at wrk's stops" | tee -a "$problems"
  fi
fi

# Stop gracefully, then verify the chain offline.
stop_pid "$KL_PID"
offline=$(timeout -k 5 300 "$KEYLEDGER_BIN" verify-log --data-dir "$tmp/data" 2>&1) || echo "offline verify-log failed: $offline" >>"$problems"
echo "  after a graceful stop, keyledger verify-log: $offline"

# ---------------------------------------------------------------------------------------
# Summary.

echo
echo "== Summary: acknowledged (fsynced) createUser writes vs the serial fsync rate"
echo "serial fsync rate: $(fmt "$fsync") /s (mean of $(fmt "$fs1") /s before, p50 ${fs1_p50} µs, and $(fmt "$fs2") /s after, p50 ${fs2_p50} µs)"
printf '%-8s %10s %10s %10s %12s %14s %9s %12s\n' clients 'writes/s' 'p50 µs' 'p99 µs' 'CPU-µs/write' 'acknowledged' '÷ fsync' "÷ $first_clients client"
for clients in $CLIENTS; do
  printf '%-8s %10s %10s %10s %12s %14s %9s %12s\n' "$clients" "$(fmt "${W_RPS[$clients]}")" "$(fmt "${W_P50[$clients]}" 1)" \
    "$(fmt "${W_P99[$clients]}" 1)" "$(fmt "${W_CPU[$clients]}" 1)" "${W_OK[$clients]}" "$(fmt "$(ratio "${W_RPS[$clients]}" "$fsync")" 2)" \
    "$(fmt "$(ratio "${W_RPS[$clients]}" "${W_RPS[$first_clients]}")" 2)"
done
if [ -n "${W_RPS[$TARGET_CLIENTS]:-}" ]; then
  r=$(ratio "${W_RPS[$TARGET_CLIENTS]}" "$fsync")
  echo "target (issue 4): writes/s at $TARGET_CLIENTS clients ≥ 10 × serial fsyncs/s: $(fmt "$r" 2)× — $(meets "$r" '>=' 10)"
  echo "(also: writes/s at $TARGET_CLIENTS clients ÷ writes/s at $first_clients client, keyledger's own serial durable rate:"
  echo " $(fmt "$(ratio "${W_RPS[$TARGET_CLIENTS]}" "${W_RPS[$first_clients]}")" 2)×. If the two ratios differ much, the fsync probe and the server's"
  echo " fsyncs do not cost the same on this disk: compare the probe's p50 with the 1-client p50 above.)"
fi

echo
report_problems "$tmp/server.log" "$problems" "No problems: every answer 2xx, no socket errors, no WARN/ERROR in the server log, the chain verifies"
echo
echo "results: $OUT"
