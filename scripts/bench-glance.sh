#!/usr/bin/env bash
# Every figure of BENCHMARKS.md's "Targets (issue #11) at a glance" table, in one run.
#
# Runs, one after the other on an otherwise idle machine (nothing else may run: the
# figures are only as good as the quiet):
#   1. scripts/bench-writes.sh at 8 and 64 clients, WRITE_RUNS times (default 3);
#   2. scripts/bench-startup.sh: start-up with and without a snapshot at 25k, 250k and 1M
#      users (RUNS=3), bytes per user at 100k and 1M, point in time on a 1M-record log;
#   3. cargo bench: the check at 1M keys, replay, chain and Merkle verification, the
#      bundle's verification, the view fingerprint;
#   4. the usage-record bound test.
# Each step's whole output goes to target/bench-glance/<commit>/<step>.txt and the lines
# the table quotes are gathered in target/bench-glance/<commit>/summary.txt.
#
# Usage: scripts/bench-glance.sh            (about 40 minutes, plus builds)
#   STEPS="writes startup bench usage"      the steps to run (default: all)
#   WRITE_RUNS=3                            bench-writes.sh runs at 8 and 64 clients
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=${STEPS:-"writes startup bench usage"}
WRITE_RUNS=${WRITE_RUNS:-3}
commit=$(git rev-parse --short HEAD)
out=target/bench-glance/$commit
mkdir -p "$out"
summary=$out/summary.txt

echo "# at a glance: commit $commit$(git diff --quiet HEAD -- src benches Cargo.toml Cargo.lock || echo ' (with uncommitted changes)'), $(date -u +%FT%TZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$summary"

cargo build --release --quiet --bin keyledger --example populate --example history
bin=target/release/keyledger

for step in $STEPS; do
  case $step in
    writes)
      for run in $(seq "$WRITE_RUNS"); do
        CLIENTS="8 64" DURATION=10 FSYNC_SECONDS=2 KEYLEDGER_BIN=$bin OUT="$out/writes-$run.tsv" \
          scripts/bench-writes.sh >"$out/writes-$run.txt" 2>&1
        { echo "## writes, run $run (scripts/bench-writes.sh, CLIENTS=\"8 64\" DURATION=10)"; cat "$out/writes-$run.tsv"; } >>"$summary"
      done
      ;;
    startup)
      STARTUP_USERS="25000 250000 1000000" MEMORY_USERS="100000 1000000" HISTORY_USERS=250000 RUNS=3 \
        KEYLEDGER_BIN=$bin scripts/bench-startup.sh >"$out/startup.txt" 2>&1
      { echo "## start-up, memory, point in time (scripts/bench-startup.sh)"; grep -v '^\s*$' "$out/startup.txt" | grep -v '^populat'; } >>"$summary"
      ;;
    bench)
      cargo bench --bench check -- '1M|malformed|unknown_key' >"$out/bench-check.txt" 2>&1
      cargo bench --bench log -- 'replay|verify|fingerprint' >"$out/bench-log.txt" 2>&1
      { echo "## cargo bench --bench check -- '1M|malformed|unknown_key'; cargo bench --bench log -- 'replay|verify|fingerprint'"
        grep -h -E '^[a-z_0-9]+/[A-Za-z0-9_/]+|^\s+time:|^\s+thrpt:|^built' "$out/bench-check.txt" "$out/bench-log.txt" | grep -v '%'; } >>"$summary"
      ;;
    usage)
      cargo test --quiet --lib any_number_of_keys_used -- --nocapture >"$out/usage.txt" 2>&1
      { echo "## cargo test --lib any_number_of_keys_used"; tail -3 "$out/usage.txt"; } >>"$summary"
      ;;
    *) echo "unknown step: $step" >&2; exit 2 ;;
  esac
  echo "done: $step ($(date -u +%T))"
done
echo "summary: $summary"
