#!/usr/bin/env bash
# Regenerates tests/data/walkthrough-bundle.jsonl: the audit bundle of a server that ran
# the README's admin walkthrough (scripts/demo.sh), exported over the API. The bundle
# tests (src/bundle_tests.rs) mutate it thousands of ways and expect `verify` to catch
# every mutation; they also keep it verifying, so a change that would make bundles
# exported by earlier builds fail to verify shows as a failing test.
#
# Usage: SERVE_ARGS="--checkpoint-every 8" scripts/with-server.sh scripts/walkthrough-bundle.sh
#   (a checkpoint every 8 records, so that the bundle holds several)
set -euo pipefail
URL=${1:?URL}
ADMIN=${2:?ADMIN_KEY}
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/demo.sh" "$URL" "$ADMIN" >/dev/null
mkdir -p "$repo/tests/data"
curl -sf "$URL/v1/audit/export" -H "Authorization: Bearer $ADMIN" -o "$repo/tests/data/walkthrough-bundle.jsonl"
echo "wrote tests/data/walkthrough-bundle.jsonl: $(grep -vc '^{"kind"' "$repo/tests/data/walkthrough-bundle.jsonl") records"
