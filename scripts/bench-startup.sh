#!/usr/bin/env bash
# Start-up time with and without a projection snapshot, and resident memory, at several
# log sizes (issue #4, items 5 and 6), then point-in-time questions from retained
# snapshots (issue #11).
#
# Usage: scripts/bench-startup.sh
#   STARTUP_USERS   users per start-up case (default "2500 25000 250000 1000000": about
#                   10k, 100k, 1M and 4M records, four records per user)
#   MEMORY_USERS    users per memory case (default "1000 100000 1000000")
#   RUNS            start-ups per case, median reported (default 3)
#   HISTORY_USERS   users per point-in-time case (default 250000: about 1M records)
#   HISTORY_EVERY   the snapshot interval for those (default 100000, the server's default)
#   FRESH=1         rebuild the cached data directories under target/bench-data/
#   KEYLEDGER_BIN   the server binary to measure (default: target/release/keyledger, built
#                   here); set it to compare two builds over the same data directories
#                   (nothing is built then: the examples must be built already if needed)
#
# Each data directory is filled once by `cargo run --release --example populate` and kept
# under target/bench-data/ for later runs. The server is pinned to core 0.
set -euo pipefail
cd "$(dirname "$0")/.."

STARTUP_USERS=${STARTUP_USERS:-"2500 25000 250000 1000000"}
HISTORY_USERS=${HISTORY_USERS:-250000}
HISTORY_EVERY=${HISTORY_EVERY:-100000}
MEMORY_USERS=${MEMORY_USERS:-"1000 100000 1000000"}
RUNS=${RUNS:-3}
root=target/bench-data

echo "# keyledger start-up and memory benchmark"
echo "# $(date -u +%FT%TZ)  commit $(git rev-parse --short HEAD 2>/dev/null || echo none)  $(nproc) cores  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')  kernel $(uname -r)"

if [ -z "${KEYLEDGER_BIN:-}" ]; then
  cargo build --release --quiet --bin keyledger --example populate --example history
fi
bin=${KEYLEDGER_BIN:-target/release/keyledger}

populated() {
  local users=$1 dir=$root/users-$1
  if [ "${FRESH:-0}" = 1 ] || [ ! -f "$dir/.complete" ]; then
    rm -rf "$dir"; mkdir -p "$dir"
    target/release/examples/populate --data-dir "$dir" --users "$users" >&2
    touch "$dir/.complete"
  fi
  echo "$dir"
}

# start_once DIR: starts the server, prints "seconds_to_listening rss_kib", stops it.
start_once() {
  python3 - "$bin" "$1" <<'PY'
import os, signal, subprocess, sys, time
binary, data_dir = sys.argv[1], sys.argv[2]
started = time.perf_counter()
server = subprocess.Popen(
    ["taskset", "-c", "0", binary, "serve", "--data-dir", data_dir, "--listen", "127.0.0.1:0",
     "--workers", "1", "--snapshot-every", "1000000000000"],
    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
try:
    for line in server.stdout:
        if line.startswith("listening on "):
            break
    else:
        sys.exit("the server exited before listening")
    elapsed = time.perf_counter() - started
    def rss_kib():
        with open(f"/proc/{server.pid}/status") as status:
            for field in status:
                if field.startswith("VmRSS:"):
                    return int(field.split()[1])
        return 0
    # The writer copies the view on its own thread after 'listening on' (checks are
    # served meanwhile), so resident memory is read once it has settled: unchanged for a
    # second (at most 60 s).
    rss, deadline = rss_kib(), time.perf_counter() + 60
    while time.perf_counter() < deadline:
        time.sleep(1.0)
        now = rss_kib()
        if now == rss:
            break
        rss = now
    print(f"{elapsed:.4f} {rss}")
finally:
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=600)
PY
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo
echo "## Start-up (seconds from exec to 'listening on', median of $RUNS)"
printf '%-10s %-10s %-14s %-14s %-8s %-16s\n' users records no_snapshot with_snapshot ratio snapshot_B/user
for users in $STARTUP_USERS; do
  dir=$(populated "$users")
  records=$((users * 4 + 20))
  without=$(for _ in $(seq "$RUNS"); do rm -rf "$dir/snapshots"; start_once "$dir" | cut -d' ' -f1; done | median)
  # The last graceful stop above saved a snapshot at the head; start from it.
  with=$(for _ in $(seq "$RUNS"); do start_once "$dir" | cut -d' ' -f1; done | median)
  ratio=$(awk -v a="$with" -v b="$without" 'BEGIN {printf "%.3f", a / b}')
  bytes=$(stat -c %s "$(ls "$dir"/snapshots/snapshot-*.bin | tail -1)")
  per_user=$(awk -v b="$bytes" -v u="$users" 'BEGIN {printf "%.0f", b / u}')
  printf '%-10s %-10s %-14s %-14s %-8s %-16s\n' "$users" "$records" "$without" "$with" "$ratio" "$per_user"
done
echo "target: start-up with a snapshot at 1M records <= 0.10 x without"

echo
echo "## Resident memory after start-up (from a snapshot); each user has a role, event access and a key"
printf '%-10s %-12s %-14s\n' users rss_kib bytes_per_user
for users in $MEMORY_USERS; do
  dir=$(populated "$users")
  start_once "$dir" >/dev/null   # makes sure a snapshot exists
  rss=$(start_once "$dir" | cut -d' ' -f2)
  per_user=$(awk -v r="$rss" -v u="$users" 'BEGIN {printf "%.0f", r * 1024 / u}')
  printf '%-10s %-12s %-14s\n' "$users" "$rss" "$per_user"
done
echo "target: <= 1024 bytes per user with a key at 1M users"

echo
echo "## Point in time (getPermissionsAt without HTTP) from retained snapshots, one every $HISTORY_EVERY records"
for users in $HISTORY_USERS; do
  dir=$(populated "$users")
  # A populated log has no snapshots of its past: the first run saves them (once).
  taskset -c 0 target/release/examples/history --data-dir "$dir" --every "$HISTORY_EVERY" --questions 20
done
echo "target: <= 100 ms at any position of a 1M-record log"
