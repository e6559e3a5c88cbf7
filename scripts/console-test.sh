#!/usr/bin/env bash
# The console's browser tests (issue #16): headless Debian chromium driven by
# playwright-core against the real server on a fresh data directory.
#
# Installs Debian's chromium if missing, `npm ci` in tests/console (no browser download),
# starts target/debug/keyledger on a free loopback port, runs tests/console/admin.mjs,
# then review.mjs and readonly.mjs if present, and stops everything. Screenshots go to
# target/console-screenshots/, the state the later tests read to
# target/console-test/state.json.
#
# Usage: scripts/console-test.sh   (KEYLEDGER_BIN overrides the binary)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core
fi
command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }
(cd tests/console && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)

bin=${KEYLEDGER_BIN:-target/debug/keyledger}
[ -x "$bin" ] || cargo build --quiet
bin=$(realpath "$bin")
work=$(mktemp -d)
out="$work/stdout"
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Usage is recorded every second, so that the rotate screen shows the key's last use.
"$bin" serve --data-dir "$work/data" --listen 127.0.0.1:0 --key-usage-interval-secs 1 >"$out" 2>"$work/server.log" &
pid=$!
for _ in $(seq 1 100); do
  grep -q '^listening on ' "$out" && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/server.log" >&2; echo "keyledger exited early" >&2; exit 1; }
  sleep 0.1
done
url=$(sed -n 's/^listening on //p' "$out")
key=$(sed -n 's/^admin key: //p' "$out")
[ -n "$url" ] && [ -n "$key" ] || { echo "keyledger did not start" >&2; cat "$work/server.log" >&2; exit 1; }

rm -rf target/console-screenshots target/console-test
mkdir -p target/console-screenshots target/console-test
export KEYLEDGER_BIN="$bin" KEYLEDGER_DATA="$work/data"
status=0
for test in admin review readonly; do
  [ -f "tests/console/$test.mjs" ] || continue
  echo "== console: $test.mjs"
  node "tests/console/$test.mjs" "$url" "$key" || { status=1; break; }
done
if [ "$status" -ne 0 ]; then
  echo "-- server log (last 40 lines)" >&2
  tail -n 40 "$work/server.log" >&2
elif grep -q "$key" "$work/server.log"; then
  echo "the admin key appears in the server's log" >&2
  status=1
fi
exit "$status"
