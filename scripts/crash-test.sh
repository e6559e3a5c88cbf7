#!/usr/bin/env bash
# The crash test (issue #5, item 1): 32 concurrent admin writers, SIGKILL at a random
# moment, restart, check that no acknowledged write was lost, that the chain verifies,
# that the view after the crash equals a fresh replay, and that writes work again.
#
# Usage: scripts/crash-test.sh [CYCLES]   (default 100; CI runs 20)
# The server saves a snapshot every 2 records, so most kills land during a snapshot write.
# Prints "crash test: N cycles, A acknowledged writes, L lost, K kills during a snapshot
# write"; fails if L > 0.
set -euo pipefail
cd "$(dirname "$0")/.."
KEYLEDGER_CRASH_CYCLES=${1:-100} cargo test --test it no_acknowledged_write_is_lost_across_repeated_crashes -- --nocapture
