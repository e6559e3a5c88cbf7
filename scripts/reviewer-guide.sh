#!/usr/bin/env bash
# Runs every `sh` block of REVIEWING.md, in order, in one shell, as a reviewer would,
# against a fresh server that first went through the README's walkthrough
# (scripts/demo.sh). A block whose first line is "# With the service stopped:" runs after
# the server has been stopped. Fails on the first command that fails.
#
# Usage: scripts/reviewer-guide.sh
#   KEYLEDGER_BIN overrides the binary (default: target/debug/keyledger, built if missing).
# Needs curl, jq, b3sum and xxd (Debian: apt-get install curl jq b3sum xxd).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

bin=${KEYLEDGER_BIN:-target/debug/keyledger}
[ -x "$bin" ] || cargo build --quiet
for tool in curl jq b3sum xxd; do
  command -v "$tool" >/dev/null || { echo "reviewer-guide: needs $tool" >&2; exit 1; }
done

work=$(mktemp -d)
mkdir -p "$work/bin"
ln -s "$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")" "$work/bin/keyledger"
export PATH="$work/bin:$PATH"
cd "$work"

keyledger serve --data-dir ./data --listen 127.0.0.1:0 >server.out 2>server.log &
pid=$!
stop_server() {
  if kill -TERM "$pid" 2>/dev/null; then wait "$pid" 2>/dev/null || true; fi
}
cleanup() {
  status=$?
  stop_server
  if [ "$status" -ne 0 ]; then echo "reviewer-guide: failed; the server's log:" >&2; tail -n 20 server.log >&2; fi
  rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  grep -q '^listening on ' server.out && break
  kill -0 "$pid" 2>/dev/null || { echo "keyledger exited early" >&2; exit 1; }
  sleep 0.1
done
URL=$(sed -n 's/^listening on //p' server.out)
ADMIN=$(sed -n 's/^admin key: //p' server.out)
[ -n "$URL" ] && [ -n "$ADMIN" ] || { echo "keyledger did not start" >&2; exit 1; }
"$repo/scripts/demo.sh" "$URL" "$ADMIN" >demo.log

# The guide's blocks, one file each, in order.
awk '/^```sh$/ { n++; inside = 1; next } /^```$/ { inside = 0; next } inside { print > sprintf("block-%02d.sh", n) }' \
  "$repo/REVIEWING.md"
blocks=(block-*.sh)
[ -e "${blocks[0]}" ] || { echo "reviewer-guide: REVIEWING.md has no sh blocks" >&2; exit 1; }
for block in "${blocks[@]}"; do
  if head -n 1 "$block" | grep -q '^# With the service stopped:'; then
    stop_server
  fi
  echo "== REVIEWING.md, $block"
  # shellcheck disable=SC1090
  source "$block"
done
echo "reviewer-guide: every command of REVIEWING.md ran as written (${#blocks[@]} blocks)"
