#!/usr/bin/env bash
# Fuzzes keyledger's parsers with cargo-fuzz (libFuzzer), each target for a fixed time,
# and fails if any target crashes. A crash's input is saved under fuzz/artifacts/TARGET/.
#
# Usage: scripts/fuzz.sh [TARGET...]          (default: every target below)
#   FUZZ_SECONDS   how long each target runs (default 30; CI runs 20)
#
#   scripts/fuzz.sh                           # the short run
#   FUZZ_SECONDS=3600 scripts/fuzz.sh         # the long run: an hour per target
#   FUZZ_SECONDS=3600 scripts/fuzz.sh record_decoder
#
# Targets (fuzz/fuzz_targets/):
#   key_parser      presented keys, ids, timestamps, function ids, names and emails
#   record_decoder  record::decode and both ChainVerifier methods, on arbitrary bytes
#   bundle_verify   the offline bundle verifier, alone and against a trusted checkpoint
#
# Each run starts from the checked-in seeds (fuzz/seeds/TARGET/), which libFuzzer runs
# first, so a seed that once crashed a target is a regression test. What the fuzzer
# learns goes to fuzz/corpus/TARGET/ (not checked in) and makes the next run on this
# machine start further on. To replay one input:
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --target-dir fuzz/target TARGET FILE
#
# cargo-fuzz passes nightly flags (-Zsanitizer=address and others) to rustc;
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. The build uses its own
# target directory, fuzz/target, so it leaves the main build alone. From a cold cache
# the first build (every dependency, instrumented) takes about 4 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-30}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(key_parser record_decoder bundle_verify)

cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2

export RUSTC_BOOTSTRAP=1
fuzz=(cargo fuzz run --target-dir fuzz/target)

echo "building the fuzz targets"
cargo fuzz build --target-dir fuzz/target

failed=()
for target in "${targets[@]}"; do
  # The log stays out of fuzz/artifacts/, where cargo-fuzz looks for the crashing input.
  mkdir -p "fuzz/corpus/$target" fuzz/target/logs
  log="fuzz/target/logs/$target.log"
  echo "fuzzing $target for ${seconds}s (log: $log)"
  if "${fuzz[@]}" "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    echo "ok: $target ran $runs inputs ($rate per second) without a crash"
  else
    failed+=("$target")
    echo "FAIL: $target crashed (full log: $log)" >&2
    grep -E -m 3 -A 4 'panicked at|ERROR: |SUMMARY: |ALARM: ' "$log" >&2 || true
    # The crashing input, and cargo-fuzz's commands to replay and minimise it.
    sed -n '/^Failing input:/,/^Minimize/p' "$log" | sed '$d' >&2
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]}" >&2
  exit 1
fi
