#!/usr/bin/env bash
# The README's walkthrough, run as written against a live keyledger server, then every
# answer checked. Fails (exit 1) on the first answer that is not the expected one.
#
# The shell blocks of README.md's section "Walkthrough: give an app API access" (up to the
# next `## ` heading, the point-in-time questions included) are extracted and run in
# order, in this shell, each exactly as written, with one exception: the first two lines
# of the first block are the reader's own values, so `URL=http://127.0.0.1:8080` and
# `ADMIN=kl_…` are replaced by this script's URL and admin key (the script fails if
# either line is not there). curl runs with --fail-with-body, so a pasted command whose
# answer is an HTTP error (a position past the head, a time in the future, a wrong id)
# stops the demo and names its block. Then the state the walkthrough made is checked
# against what the README says of it.
#
# Usage: scripts/demo.sh [URL] [ADMIN_KEY]
#   URL defaults to $KEYLEDGER_URL or http://127.0.0.1:8080;
#   ADMIN_KEY defaults to $KEYLEDGER_ADMIN_KEY (printed as `admin key: ...` on first start).
# Run it against a freshly initialised server: it creates the role "API Access".
# Needs bash, curl and jq, as the walkthrough does.
set -euo pipefail

demo_url=${1:-${KEYLEDGER_URL:-http://127.0.0.1:8080}}
demo_admin=${2:-${KEYLEDGER_ADMIN_KEY:?give the admin key as the second argument or KEYLEDGER_ADMIN_KEY}}
for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "demo: the walkthrough needs $tool" >&2; exit 1; }
done
readme="$(cd "$(dirname "$0")/.." && pwd)/README.md"
work=$(mktemp -d)
BODY="$work/body"
trap 'rm -rf "$work"' EXIT

step() { printf '\n== %s\n' "$*"; }

# --- Part 1: the README's blocks, as written ------------------------------------------

section="## Walkthrough: give an app API access"
awk -v dir="$work" -v section="$section" '
  /^## / { inside = ($0 == section); next }
  inside && /^```sh$/ { n++; file = sprintf("%s/block-%02d.sh", dir, n); open = 1; next }
  open && /^```$/ { open = 0; close(file); next }
  open { print > file }
' "$readme"
blocks=("$work"/block-*.sh)
[ -f "${blocks[0]}" ] || { echo "FAIL: no shell blocks under \"$section\" in README.md" >&2; exit 1; }

# The reader's own values: exactly these two lines of the first block are replaced.
first=${blocks[0]}
grep -qx 'URL=http://127.0.0.1:8080' "$first" || { echo "FAIL: README's first block has no URL= line" >&2; exit 1; }
grep -q '^ADMIN=kl_…' "$first" || { echo "FAIL: README's first block has no ADMIN=kl_… line" >&2; exit 1; }
awk -v url="$demo_url" -v admin="$demo_admin" '
  $0 == "URL=http://127.0.0.1:8080" { print "URL=" url; next }
  /^ADMIN=kl_…/ { print "ADMIN=" admin; next }
  { print }
' "$first" >"$work/first" && mv "$work/first" "$first"

# An answer that is an HTTP error stops the walkthrough, as it would stop a reader.
curl() { command curl --fail-with-body "$@"; }
current=""
set -E   # the trap also fires inside the curl function
trap 'echo >&2; echo "FAIL: README $current (above) answered an error or failed" >&2; exit 1' ERR
for block in "${blocks[@]}"; do
  current=$(basename "$block" .sh)
  step "README $current"
  sed 's/^/  $ /' "$block"
  echo
  # shellcheck source=/dev/null
  source "$block"
  echo
done
trap - ERR
set +E
unset -f curl
echo "ok: every block of the README's walkthrough ran and no answer was an error"

# --- Part 2: what the walkthrough made is what the README says ------------------------

# call METHOD PATH EXPECTED_STATUS [JSON_BODY] [KEY]: prints the response body.
call() {
  local method=$1 path=$2 expected=$3 data=${4:-} key=${5:-$ADMIN} status
  local args=(-sS -o "$BODY" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $key")
  if [ -n "$data" ]; then args+=(-H 'Content-Type: application/json' --data "$data"); fi
  status=$(curl "${args[@]}" "$URL$path")
  if [ "$status" != "$expected" ]; then
    echo "FAIL: $method $path answered $status, expected $expected" >&2
    cat "$BODY" >&2; echo >&2
    exit 1
  fi
  cat "$BODY"
}

# expect JSON JQ_FILTER WHAT: fails unless the filter is true for the JSON.
expect() {
  if ! jq -e "$2" >/dev/null <<<"$1"; then
    echo "FAIL: expected $3; got: $1" >&2
    exit 1
  fi
  echo "ok: $3"
}

# check KEY FUNCTION [EVENT]: the reason checkKey gives.
check() {
  local data
  data=$(jq -nc --arg k "$1" --arg f "$2" --arg e "${3:-}" '{key: $k, function: $f} + (if $e == "" then {} else {event_id: $e} end)')
  call POST /v1/check 200 "$data" | jq -r .reason
}

step "The service is up, and the catalogue lists five read functions"
expect "$(curl -sS "$URL/health")" '.status == "ok"' "health answers ok"
expect "$(call GET '/v1/functions?limit=100' 200)" \
  '[.items[] | select(.kind == "read") | .id] == ["api.attendees.read","api.events.read","api.invoices.read","api.people.read","api.sessions.read"]' \
  "five read functions"

step "Steps 1-3: the role, the user and its event access"
expect "$(call GET "/v1/roles/$ROLE" 200)" '.api_role == true and (.functions | length) == 5' "\$ROLE is an API role with the five read functions"
user=$(call GET "/v1/users/$API_USER" 200)
expect "$user" ".roles == [\"$ROLE\"]" "\$API_USER holds the API role alone"
expect "$user" ".event_access == {\"all_events\": false, \"groups\": [\"$USA\"]}" "\$API_USER may access the events of USA"
expect "$(call GET "/v1/event-groups/$USA" 200)" ".parent_id == \"$AMERICAS\"" "USA is inside Americas"

step "Steps 4-6: the walkthrough's keys, rotated with a grace period, then revoked"
expect "\"$(check "$NEW" api.attendees.read summit-nyc)\"" '. == "revoked_key"' "\$NEW, revoked in step 6, is refused"
expect "\"$(check "$KEY" api.attendees.read summit-nyc)\"" '. == "revoked_key" or . == "unknown_key"' "\$KEY, replaced and then revoked, is refused"

step "Step 5 again, with a fresh key: what checkKey and authorizeRequest answer"
key=$(call POST "/v1/users/$API_USER/key" 201 '{}' | jq -r .key)
expect "\"$(check "$key" api.attendees.read summit-nyc)\"" '. == "granted"' "attendees.read on summit-nyc is granted"
expect "\"$(check "$key" api.attendees.write summit-nyc)\"" '. == "function_not_granted"' "attendees.write is refused"
expect "\"$(check "$key" api.attendees.read gala-paris)\"" '. == "event_not_accessible"' "an event outside its groups is refused"
expect "\"$(check "$key" api.attendees.read)\"" '. == "event_required"' "attendees.read without an event is refused: the user may access only some events"
expect "\"$(check "$key" api.events.read)\"" '. == "granted"' "events.read is account-wide: no event needed"
expect "\"$(check "kl_not-a-real-key" api.attendees.read)\"" '. == "malformed_key"' "junk is refused before any lookup"
status=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "$URL/v1/authorize?function=api.attendees.read&event_id=summit-nyc")
expect "$status" '. == 200' "authorizeRequest allows (200)"
status=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "$URL/v1/authorize?function=api.invoices.write")
expect "$status" '. == 403' "authorizeRequest refuses a function not granted (403)"
status=$(curl -sS -o /dev/null -w '%{http_code}' "$URL/v1/authorize?function=api.attendees.read")
expect "$status" '. == 401' "authorizeRequest wants a key (401)"

step "Step 6 again: a grace period keeps the old key working; without one it stops at once"
graced=$(call POST "/v1/users/$API_USER/key" 201 '{"grace_seconds": 300}' | jq -r .key)
expect "\"$(check "$key" api.attendees.read summit-nyc)\"" '. == "granted"' "the old key still works during the grace period"
expect "\"$(check "$graced" api.attendees.read summit-nyc)\"" '. == "granted"' "the new key works"
newest=$(call POST "/v1/users/$API_USER/key" 201 '{}' | jq -r .key)
expect "\"$(check "$graced" api.attendees.read summit-nyc)\"" '. == "unknown_key"' "the replaced key is unknown at once"
expect "\"$(check "$newest" api.attendees.read summit-nyc)\"" '. == "granted"' "the newest key works"

step "Step 2's rule: the API role is standalone, and the refusal says how to fix it"
reporting=$(call POST /v1/roles 201 '{"description": "Reporting"}' | jq -r .id)
refused=$(call PUT "/v1/users/$API_USER/roles/$reporting" 409)
expect "$refused" '.code == "standalone_api_role" and (.detail | contains("createUser"))' "assigning a second role is refused (409), naming the fix"

step "Step 7 and the point-in-time questions, at the points the walkthrough captured"
expect "$GENERATED" "type == \"number\" and . < $REVOKED" "\$GENERATED ($GENERATED) is before \$REVOKED ($REVOKED)"
then=$(call GET "/v1/audit/permissions?position=$GENERATED" 200)
expect "$then" ".position == $GENERATED and ([.users[] | select(.id == \"$API_USER\") | .keys[].state] == [\"active\"])" \
  "at \$GENERATED the user's first key is active"
who=$(call GET "/v1/audit/who-can?function=api.attendees.read&event_id=summit-nyc&at=$GENERATED_AT" 200)
expect "$who" "[.users[] | select(.user_id == \"$API_USER\")] | length == 1" "at \$GENERATED_AT the user could read attendees of summit-nyc"
diff=$(call GET "/v1/audit/diff?from_position=$GENERATED&to_position=$REVOKED" 200)
expect "$diff" "[.changes[] | select(.change == \"revoke\" and .user_id == \"$API_USER\")] | length >= 1" \
  "between \$GENERATED and \$REVOKED the user's key was revoked"
events=$(call GET "/v1/audit/events?type=KeyGenerated&subject=$API_USER&limit=1000" 200)
expect "$events" '.items | length == 5' "five KeyGenerated records for the user (two in the README, three here)"
expect "$(call GET /v1/audit/verify 200)" '.valid == true' "the hash chain verifies"

printf '\ndemo: the README walkthrough ran as written, and every answer was as expected\n'
