#!/usr/bin/env bash
# Starts keyledger on a free loopback port over a temporary data directory, runs
# COMMAND URL ADMIN_KEY against it, then stops the server (SIGTERM) and removes the
# directory. Exits with COMMAND's status.
#
# Usage: scripts/with-server.sh COMMAND [ARGS...]
#   KEYLEDGER_BIN overrides the binary (default: target/debug/keyledger, built if missing).
#   SERVE_ARGS adds arguments to `keyledger serve` (for example "--checkpoint-every 8").
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${KEYLEDGER_BIN:-target/debug/keyledger}
[ -x "$bin" ] || cargo build --quiet
data=$(mktemp -d)
out=$(mktemp)
# shellcheck disable=SC2086
"$bin" serve --data-dir "$data/data" --listen 127.0.0.1:0 ${SERVE_ARGS:-} >"$out" 2>"$data/server.log" &
pid=$!
cleanup() {
  kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$data" "$out"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  grep -q '^listening on ' "$out" && break
  kill -0 "$pid" 2>/dev/null || { cat "$data/server.log" >&2; echo "keyledger exited early" >&2; exit 1; }
  sleep 0.1
done
url=$(sed -n 's/^listening on //p' "$out")
key=$(sed -n 's/^admin key: //p' "$out")
[ -n "$url" ] && [ -n "$key" ] || { echo "keyledger did not start" >&2; cat "$data/server.log" >&2; exit 1; }

"$@" "$url" "$key"
