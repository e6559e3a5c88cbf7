#!/usr/bin/env bash
# The README's admin walkthrough, run against a live keyledger server.
# Fails (exit 1) on the first answer that is not the expected one.
#
# Usage: scripts/demo.sh [URL] [ADMIN_KEY]
#   URL defaults to $KEYLEDGER_URL or http://127.0.0.1:8080;
#   ADMIN_KEY defaults to $KEYLEDGER_ADMIN_KEY (printed as `admin key: ...` on first start).
# Run it against a freshly initialised server: it creates the role "API Access".
# Needs curl and jq.
set -euo pipefail

URL=${1:-${KEYLEDGER_URL:-http://127.0.0.1:8080}}
ADMIN=${2:-${KEYLEDGER_ADMIN_KEY:?give the admin key as the second argument or KEYLEDGER_ADMIN_KEY}}
BODY=$(mktemp)
trap 'rm -f "$BODY"' EXIT

step() { printf '\n== %s\n' "$*"; }

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

step "The service is up"
expect "$(curl -sS "$URL/health")" '.status == "ok"' "health answers ok"

step "The function catalogue lists the API functions, each read, write or admin"
functions=$(call GET '/v1/functions?limit=100' 200)
expect "$functions" '[.items[] | select(.kind == "read") | .id] == ["api.attendees.read","api.events.read","api.invoices.read","api.people.read","api.sessions.read"]' "five read functions"

step "Create the role \"API Access\" and activate the five read functions in one change"
role=$(call POST /v1/roles 201 '{"description": "API Access"}' | jq -r .id)
echo "role: $role"
activated=$(call POST "/v1/roles/$role/functions/activate" 200 \
  '{"functions": ["api.attendees.read","api.events.read","api.invoices.read","api.people.read","api.sessions.read"]}')
expect "$activated" '.api_role == true and (.functions | length) == 5' "the role is an API role with five functions"

step "Create a standalone API user and assign it the role"
user=$(call POST /v1/users 201 '{"name": "Attendance app", "email": "attendance@example.com"}' | jq -r .id)
echo "user: $user"
expect "$(call PUT "/v1/users/$user/roles/$role" 200)" ".roles == [\"$role\"]" "the user holds the API role"

step "Group the events: USA inside Americas holds summit-nyc; Europe holds gala-paris"
americas=$(call POST /v1/event-groups 201 '{"name": "Americas"}' | jq -r .id)
usa=$(call POST /v1/event-groups 201 "{\"name\": \"USA\", \"parent_id\": \"$americas\"}" | jq -r .id)
europe=$(call POST /v1/event-groups 201 '{"name": "Europe"}' | jq -r .id)
call PUT "/v1/event-groups/$usa/events/summit-nyc" 200 >/dev/null
call PUT "/v1/event-groups/$europe/events/gala-paris" 200 >/dev/null
echo "groups: Americas $americas, USA $usa, Europe $europe"

step "Let the user access the events of USA only"
expect "$(call PUT "/v1/users/$user/event-access" 200 "{\"all_events\": false, \"groups\": [\"$usa\"]}")" \
  ".event_access.groups == [\"$usa\"]" "event access is the USA group"

step "Generate the user's API key (the secret is shown once)"
generated=$(call POST "/v1/users/$user/key" 201 '{}')
key1=$(jq -r .key <<<"$generated")
expect "$generated" '.key | startswith("kl_")' "a kl_ key with a key id $(jq -r .key_id <<<"$generated")"

step "Check the key"
expect "\"$(check "$key1" api.attendees.read summit-nyc)\"" '. == "granted"' "attendees.read on summit-nyc is granted"
expect "\"$(check "$key1" api.attendees.write summit-nyc)\"" '. == "function_not_granted"' "attendees.write is refused"
expect "\"$(check "$key1" api.attendees.read gala-paris)\"" '. == "event_not_accessible"' "an event outside its groups is refused"
expect "\"$(check "$key1" api.attendees.read)\"" '. == "event_required"' "attendees.read without an event is refused: the user may access only some events"
expect "\"$(check "$key1" api.events.read)\"" '. == "granted"' "events.read is account-wide: no event needed"
expect "\"$(check "kl_not-a-real-key" api.attendees.read)\"" '. == "malformed_key"' "junk is refused before any lookup"

step "A gateway asks the same question with the key in the Authorization header"
status=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key1" "$URL/v1/authorize?function=api.attendees.read&event_id=summit-nyc")
expect "$status" '. == 200' "authorizeRequest allows (200)"
status=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key1" "$URL/v1/authorize?function=api.invoices.write")
expect "$status" '. == 403' "authorizeRequest refuses a function not granted (403)"
status=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key1" "$URL/v1/authorize?function=api.attendees.read")
expect "$status" '. == 403' "authorizeRequest refuses an event-scoped function without an event (403)"
status=$(curl -sS -o /dev/null -w '%{http_code}' "$URL/v1/authorize?function=api.attendees.read")
expect "$status" '. == 401' "authorizeRequest wants a key (401)"

step "Rotate with a grace period: the old key keeps working for grace_seconds"
key2=$(call POST "/v1/users/$user/key" 201 '{"grace_seconds": 300}' | jq -r .key)
expect "\"$(check "$key1" api.attendees.read summit-nyc)\"" '. == "granted"' "the old key still works during the grace period"
expect "\"$(check "$key2" api.attendees.read summit-nyc)\"" '. == "granted"' "the new key works"

step "Rotate without a grace period: the previous key stops at once"
key3=$(call POST "/v1/users/$user/key" 201 '{}' | jq -r .key)
expect "\"$(check "$key2" api.attendees.read summit-nyc)\"" '. == "unknown_key"' "the replaced key is unknown"
expect "\"$(check "$key3" api.attendees.read summit-nyc)\"" '. == "granted"' "the newest key works"

step "Revoke the key"
call DELETE "/v1/users/$user/key" 200 >/dev/null
expect "\"$(check "$key3" api.attendees.read summit-nyc)\"" '. == "revoked_key"' "the revoked key is refused"

step "The API role is standalone: a second role is refused"
reporting=$(call POST /v1/roles 201 '{"description": "Reporting"}' | jq -r .id)
refused=$(call PUT "/v1/users/$user/roles/$reporting" 409)
expect "$refused" '.code == "standalone_api_role"' "assigning a second role is refused (409)"

step "The audit trail records every change, hash-chained"
events=$(call GET '/v1/audit/events?limit=1000' 200)
expect "$events" "[.items[] | select(.type == \"KeyGenerated\" and .subject == \"$user\")] | length == 3" "three KeyGenerated records for the user"
expect "$(call GET /v1/audit/verify 200)" '.valid == true' "the hash chain verifies"

printf '\ndemo: every step answered as expected\n'
