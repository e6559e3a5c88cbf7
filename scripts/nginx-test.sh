#!/usr/bin/env bash
# Proves deploy/nginx/keyledger.conf with a real nginx: runs it on loopback, in a
# temporary directory as the current user, in front of a tiny upstream that echoes the
# headers it received, and of a keyledger server started for the test; sets up a user,
# a role and a key through the API, and checks what a client gets through nginx.
# Exits non-zero on the first wrong answer; stops everything it started on exit.
#
# Usage: scripts/nginx-test.sh            (starts keyledger through scripts/with-server.sh)
#        MTLS=1 scripts/nginx-test.sh     (the same over mutual TLS: keyledger serves HTTPS,
#                                          requires a client certificate for checks, and
#                                          nginx presents one; needs openssl)
#        scripts/nginx-test.sh URL ADMIN_KEY   (against a running keyledger, on loopback)
# Installs Debian's nginx with apt-get when /usr/sbin/nginx (or NGINX) is missing.
# Needs curl, jq and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 2 ]; then
  # As the recipe says: nginx (on loopback) is a trusted proxy. A small failed-check
  # burst, so that the throttle shows.
  SERVE_ARGS="${SERVE_ARGS:-} --trusted-proxy 127.0.0.1 --failed-check-burst 4 --failed-checks-per-minute 1"
  if [ "${MTLS:-0}" = 1 ]; then
    # A test CA, keyledger's certificate for localhost and the gateway's client certificate.
    MTLS_DIR=$(mktemp -d)
    export MTLS_DIR
    trap 'rm -rf "$MTLS_DIR"' EXIT
    (
      cd "$MTLS_DIR"
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=nginx-test-ca \
        -keyout ca.key -out ca.crt 2>/dev/null
      for name in server gateway; do
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
          -keyout "$name.key" -out "$name.csr" 2>/dev/null
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$name.ext"
        openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
          -extfile "$name.ext" -out "$name.crt" 2>/dev/null
      done
    )
    SERVE_ARGS="$SERVE_ARGS --tls-cert $MTLS_DIR/server.crt --tls-key $MTLS_DIR/server.key"
    SERVE_ARGS="$SERVE_ARGS --tls-client-ca $MTLS_DIR/ca.crt --require-client-cert-for checks"
    export SERVE_ARGS
    scripts/with-server.sh "$0"
    exit
  fi
  export SERVE_ARGS
  exec scripts/with-server.sh "$0"
fi
URL=$1
ADMIN=$2
if [ -n "${MTLS_DIR:-}" ]; then
  # The admin calls below go straight to keyledger over HTTPS (admin needs no client
  # certificate under `checks`); the checks go through nginx, which presents one.
  export CURL_CA_BUNDLE=$MTLS_DIR/ca.crt
fi

NGINX=${NGINX:-/usr/sbin/nginx}
if [ ! -x "$NGINX" ]; then
  echo "installing nginx (apt-get)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
fi

dir=$(mktemp -d)
nginx_pid='' upstream_pid=''
cleanup() {
  # `|| true`: under `set -e` a `wait` for a process stopped by SIGTERM (status 143) would
  # otherwise end this trap, and the script, with 143 after every check passed.
  if [ -n "$nginx_pid" ]; then kill -TERM "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null || true; fi
  if [ -n "$upstream_pid" ]; then kill -TERM "$upstream_pid" 2>/dev/null && wait "$upstream_pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  echo "-- nginx error log" >&2
  cat "$dir/error.log" >&2 2>/dev/null || true
  exit 1
}
ok() { echo "ok: $*"; }

# Free loopback ports for nginx and the upstream.
read -r nginx_port upstream_port < <(python3 -c '
import socket
sockets = [socket.socket() for _ in range(2)]
for s in sockets: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in sockets])')
keyledger_address=${URL#http://}
keyledger_address=${keyledger_address#https://}

# The upstream: answers every request 200 with a JSON of its method, path and headers
# (names lower-cased), and appends the path to requests.log.
cat >"$dir/upstream.py" <<'PY'
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Echo(BaseHTTPRequestHandler):
    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        with open(sys.argv[2], "a") as log:
            log.write(self.path + "\n")
        body = json.dumps({
            "method": self.command,
            "path": self.path,
            "headers": {name.lower(): value for name, value in self.headers.items()},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = do_PUT = do_DELETE = answer
    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
PY
: >"$dir/requests.log"
python3 "$dir/upstream.py" "$upstream_port" "$dir/requests.log" &
upstream_pid=$!

# The recipe as shipped, with this run's addresses; fail if any placeholder is gone.
recipe=deploy/nginx/keyledger.conf
for placeholder in 'server 127.0.0.1:8080;' 'server 127.0.0.1:9000;' 'listen 8000;'; do
  grep -qF "$placeholder" "$recipe" || fail "$recipe no longer has '$placeholder' for this test to substitute"
done
sed -e "s/server 127\.0\.0\.1:8080;/server $keyledger_address;/" \
    -e "s/server 127\.0\.0\.1:9000;/server 127.0.0.1:$upstream_port;/" \
    -e "s/listen 8000;/listen 127.0.0.1:$nginx_port;/" "$recipe" >"$dir/keyledger.conf"
if [ -n "${MTLS_DIR:-}" ]; then
  grep -qF '#mtls ' "$recipe" || fail "$recipe no longer has the '#mtls ' lines for this test to enable"
  sed -i -e 's#proxy_pass http://keyledger/#proxy_pass https://keyledger/#' -e 's/#mtls //' \
    -e "s#/etc/nginx/keyledger/#$MTLS_DIR/#" "$dir/keyledger.conf"
  # Straight to keyledger without a client certificate, a check is refused.
  # HTTP/1.1: over HTTP/2, keyledger answers this 401 before reading the body and resets
  # the stream, which curl reports as an error (92) rather than the answer.
  status=$(curl -s --http1.1 -o /dev/null -w '%{http_code}' -X POST "$URL/v1/check" -H 'Content-Type: application/json' \
    -d '{"key": "kl_x", "function": "api.events.read"}')
  [ "$status" = 401 ] || fail "a check without a client certificate got $status, not 401"
  ok "mTLS: a check straight to keyledger without a client certificate is refused (401)"
fi
user_line=''
[ "$(id -u)" = 0 ] && user_line='user root;'
cat >"$dir/nginx.conf" <<CONF
$user_line
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 64; }
http {
    access_log $dir/access.log;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    include $dir/keyledger.conf;
}
CONF
"$NGINX" -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" || fail "nginx refuses the configuration"
"$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" &
nginx_pid=$!

GATEWAY=http://127.0.0.1:$nginx_port
for _ in $(seq 1 100); do
  curl -s -o /dev/null "$GATEWAY/" && curl -s -o /dev/null "http://127.0.0.1:$upstream_port/ready" && break
  kill -0 "$nginx_pid" 2>/dev/null || fail "nginx exited early"
  sleep 0.1
done

# Through the API: a role with the read functions, an API user holding it, access to
# the events of one group, and a key.
admin=(-H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json')
api() { curl -sS --fail-with-body "$@" "${admin[@]}"; }
role=$(api -X POST "$URL/v1/roles" -d '{"description": "Gateway test"}' | jq -r .id)
api -X POST "$URL/v1/roles/$role/functions/activate" \
  -d '{"functions": ["api.attendees.read", "api.events.read", "api.people.read"]}' >/dev/null
user=$(api -X POST "$URL/v1/users" -d '{"name": "Gateway test app"}' | jq -r .id)
api -X PUT "$URL/v1/users/$user/roles/$role" >/dev/null
group=$(api -X POST "$URL/v1/event-groups" -d '{"name": "Gateway test events"}' | jq -r .id)
api -X PUT "$URL/v1/event-groups/$group/events/summit-nyc" >/dev/null
api -X PUT "$URL/v1/users/$user/event-access" -d "{\"all_events\": false, \"groups\": [\"$group\"]}" >/dev/null
generated=$(api -X POST "$URL/v1/users/$user/key" -d '{}')
key=$(jq -r .key <<<"$generated")
key_id=$(jq -r .key_id <<<"$generated")
[ -n "$key" ] && [ "$key" != null ] || fail "no key generated: $generated"

# through EXPECTED_STATUS WHAT CURL_ARGS...: a request through nginx; prints the body,
# leaves the headers in $dir/headers. Fails on another status.
through() {
  local expected=$1 what=$2 status
  shift 2
  status=$(curl -sS -o "$dir/body" -D "$dir/headers" -w '%{http_code}' "$@")
  [ "$status" = "$expected" ] || fail "$what: nginx answered $status, expected $expected; body: $(cat "$dir/body")"
  cat "$dir/body"
}
header() { tr -d '\r' <"$dir/headers" | sed -n "s/^$1: //Ip" | head -1; }
upstream_requests() { wc -l <"$dir/requests.log"; }

echo "== allowed: Bearer key, attendees of an event of its group"
echoed=$(through 200 "allowed" "$GATEWAY/api/events/summit-nyc/attendees?page=2" \
  -H "Authorization: Bearer $key" -H 'Keyledger-User-Id: usr_forged')
[ "$(jq -r .path <<<"$echoed")" = /api/events/summit-nyc/attendees?page=2 ] || fail "upstream got another path: $echoed"
[ "$(jq -r '.headers["keyledger-user-id"]' <<<"$echoed")" = "$user" ] || fail "upstream did not get Keyledger-User-Id $user: $echoed"
[ "$(jq -r '.headers["keyledger-key-id"]' <<<"$echoed")" = "$key_id" ] || fail "upstream did not get Keyledger-Key-Id $key_id: $echoed"
jq -e '.headers | has("authorization") | not' >/dev/null <<<"$echoed" || fail "the key reached the upstream: $echoed"
ok "the upstream got Keyledger-User-Id $user (not the client's forged one) and Keyledger-Key-Id, not the key"

echo "== allowed: Basic with an empty user name and the key as the password"
echoed=$(through 200 "Basic" "$GATEWAY/api/events/summit-nyc/attendees" -u ":$key")
[ "$(jq -r '.headers["keyledger-user-id"]' <<<"$echoed")" = "$user" ] || fail "Basic: no Keyledger-User-Id: $echoed"
ok "Basic reaches the upstream as $user"

echo "== allowed: account-wide functions, with no event"
through 200 "events list" "$GATEWAY/api/events" -H "Authorization: Bearer $key" >/dev/null
through 200 "people" "$GATEWAY/api/people/per_1" -H "Authorization: Bearer $key" >/dev/null
ok "GET /api/events and /api/people/… reach the upstream"

before=$(upstream_requests)
echo "== refused: wrong key"
through 401 "wrong key" "$GATEWAY/api/events/summit-nyc/attendees" -H 'Authorization: Bearer kl_not-a-key' >/dev/null
[ "$(header Keyledger-Reason)" = malformed_key ] || fail "wrong key: Keyledger-Reason is '$(header Keyledger-Reason)'"
[ -n "$(header WWW-Authenticate)" ] || fail "wrong key: no WWW-Authenticate"
wrong=${key:0:10}$(printf '%s' "${key:10}" | tr 'a-zA-Z0-9' 'b-zA-Z0-9a')
through 401 "unknown key" "$GATEWAY/api/events/summit-nyc/attendees" -H "Authorization: Bearer $wrong" >/dev/null
ok "a malformed or altered key gets 401 with WWW-Authenticate and the reason"

echo "== refused: no key"
through 401 "no key" "$GATEWAY/api/events/summit-nyc/attendees" >/dev/null
[ -n "$(header WWW-Authenticate)" ] || fail "no key: no WWW-Authenticate"
ok "no key gets 401"

echo "== refused: another event, a write, an unrouted path"
through 403 "other event" "$GATEWAY/api/events/summit-paris/attendees" -H "Authorization: Bearer $key" >/dev/null
[ "$(header Keyledger-Reason)" = event_not_accessible ] || fail "other event: Keyledger-Reason is '$(header Keyledger-Reason)'"
through 403 "write" "$GATEWAY/api/events/summit-nyc/attendees" -X POST -d '{}' -H "Authorization: Bearer $key" >/dev/null
[ "$(header Keyledger-Reason)" = function_not_granted ] || fail "write: Keyledger-Reason is '$(header Keyledger-Reason)'"
through 403 "sessions" "$GATEWAY/api/events/summit-nyc/sessions" -H "Authorization: Bearer $key" >/dev/null
through 405 "sessions write" "$GATEWAY/api/events/summit-nyc/sessions" -X POST -d '{}' -H "Authorization: Bearer $key" >/dev/null
through 404 "unrouted" "$GATEWAY/internal/admin" -H "Authorization: Bearer $key" >/dev/null
ok "another event, a write and an ungranted function get 403; a write where the catalogue has none 405; an unrouted path 404"
[ "$(upstream_requests)" = "$before" ] || fail "a refused request reached the upstream: $(tail -n +"$((before + 1))" "$dir/requests.log")"
ok "no refused request reached the upstream"

echo "== throttled: too many wrong keys from one client, whatever X-Forwarded-For it writes"
# Two wrong keys so far; the burst is 4. A client cannot dodge the limit by writing its own
# X-Forwarded-For: nginx sends keyledger the address it connected from.
for n in 1 2 3 4; do
  status=$(curl -s -o /dev/null -w '%{http_code}' "$GATEWAY/api/events/summit-nyc/attendees" \
    -H "Authorization: Bearer kl_wrong$n" -H "X-Forwarded-For: 203.0.113.$n")
  [ "$status" = 429 ] && break
done
[ "$status" = 429 ] || fail "after 6 wrong keys nginx answered $status, expected 429"
through 429 "throttled" "$GATEWAY/api/events/summit-nyc/attendees" -H "Authorization: Bearer $key" >/dev/null
[ -n "$(header Retry-After)" ] || fail "throttled: no Retry-After"
[ "$(upstream_requests)" = "$before" ] || fail "a throttled request reached the upstream"
ok "429 with Retry-After once the client's burst is spent, even for its good key; forged X-Forwarded-For changes nothing"

echo "== keyledger unreachable"
# Point the keyledger upstream at a closed port (1), reload nginx and wait until its new
# workers answer (the old ones may still pass a request or two meanwhile).
sed -i "s/server $keyledger_address;/server 127.0.0.1:1;/" "$dir/keyledger.conf"
"$NGINX" -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" -s reload || fail "nginx did not reload"
# A worker of the old generation may still take a connection after a new one answered:
# wait for ten 503s in a row.
in_a_row=0
for _ in $(seq 1 100); do
  status=$(curl -s -o /dev/null -w '%{http_code}' "$GATEWAY/api/events/summit-nyc/attendees" -H "Authorization: Bearer $key")
  if [ "$status" = 503 ]; then in_a_row=$((in_a_row + 1)); else in_a_row=0; fi
  [ "$in_a_row" -ge 10 ] && break
  sleep 0.1
done
[ "$in_a_row" -ge 10 ] || fail "with keyledger unreachable nginx answered $status, expected 503"
before=$(upstream_requests)
through 503 "keyledger unreachable" "$GATEWAY/api/events/summit-nyc/attendees" -H "Authorization: Bearer $key" >/dev/null
[ "$(upstream_requests)" = "$before" ] || fail "a request reached the upstream while keyledger was unreachable"
ok "keyledger unreachable: 503, and nothing reaches the upstream"

echo "nginx gateway test: every check passed"
