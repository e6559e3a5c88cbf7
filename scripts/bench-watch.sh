#!/usr/bin/env bash
# The change feed's cost to writers (issue #13, item 1).
#
# Starts the server pinned to one core and, in rounds, drives WRITES createRole requests
# from 8 client threads three ways: with no follower, with FOLLOWERS streams of
# watchAuditEvents that read everything, and with FOLLOWERS streams that read nothing
# (stalled). The followers start at the head, so they stream live records only. Reports,
# per way, the median acknowledged writes/s and the server's CPU per 1000 writes, and
# each as a ratio to "none" measured in the same round, so that a noisy machine moves
# all three alike. Writers never wait for followers (the feed is a ring they do not
# wait on); what followers cost is the server's CPU to frame and send each record to
# each of them, which a stalled follower stops paying once its socket is full.
#
# Usage (from the repo root):   scripts/bench-watch.sh
#   ROUNDS=3 WRITES=800 FOLLOWERS=20; KEYLEDGER_BIN to skip the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh

ROUNDS=${ROUNDS:-3}
WRITES=${WRITES:-800}
FOLLOWERS=${FOLLOWERS:-20}

print_header "keyledger change feed: writes with no, reading and stalled followers"
echo "settings: ROUNDS=$ROUNDS WRITES=$WRITES FOLLOWERS=$FOLLOWERS"
need curl curl
need python3 python3
build_keyledger
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-watch.XXXXXX")
on_exit "rm -rf '$tmp'"
start_keyledger "$tmp/data" "$tmp/server.log"

cat >"$tmp/writes.py" <<'EOF'
import json, sys, threading, time, urllib.request, uuid
url, key, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
def write(count):
    for _ in range(count):
        body = json.dumps({"description": f"bench {uuid.uuid4().hex}"}).encode()
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        urllib.request.urlopen(urllib.request.Request(f"{url}/v1/roles", data=body, headers=headers)).read()
threads = [threading.Thread(target=write, args=(total // 8,)) for _ in range(8)]
started = time.monotonic()
[thread.start() for thread in threads]
[thread.join() for thread in threads]
print(f"{8 * (total // 8) / (time.monotonic() - started):.1f}")
EOF
cat >"$tmp/followers.py" <<'EOF'
# Holds N streams from the head: "read" drains them, "stall" never reads. Runs until killed.
import json, selectors, socket, sys, time, urllib.request
url, key, mode, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
verify = urllib.request.Request(f"{url}/v1/audit/verify", headers={"Authorization": f"Bearer {key}"})
head = json.load(urllib.request.urlopen(verify))["size"]
host, port = url.removeprefix("http://").rsplit(":", 1)
selector, streams = selectors.DefaultSelector(), []
for _ in range(count):
    stream = socket.create_connection((host, int(port)))
    streams.append(stream)  # held open, read or not
    stream.sendall(f"GET /v1/audit/watch?after={head} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n\r\n".encode())
    if mode == "read":
        stream.setblocking(False)
        selector.register(stream, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    if mode == "stall":
        time.sleep(1)
        continue
    for ready, _ in selector.select(1):
        try:
            if not ready.fileobj.recv(1 << 16):
                selector.unregister(ready.fileobj)
        except BlockingIOError:
            pass
EOF

declare -A rate cpu
for round in $(seq 1 "$ROUNDS"); do
  for mode in none read stall; do
    holder=
    if [ "$mode" != none ]; then
      python3 "$tmp/followers.py" "$KL_URL" "$KL_ADMIN" "$mode" "$FOLLOWERS" >"$tmp/followers.out" &
      holder=$!
      on_exit "stop_pid $holder"
      for _ in $(seq 1 100); do grep -q ready "$tmp/followers.out" && break; sleep 0.1; done
      sleep 1
    fi
    before=$(cpu_ticks "$KL_PID")
    per_second=$(python3 "$tmp/writes.py" "$KL_URL" "$KL_ADMIN" "$WRITES")
    after=$(cpu_ticks "$KL_PID")
    [ -n "$holder" ] && stop_pid "$holder"
    rate[$mode]+="$per_second "
    cpu[$mode]+="$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$WRITES" 'BEGIN { printf "%.1f", t * 1000 / hz * 1000 / n }') "
    echo "round $round, $mode: $per_second writes/s, server CPU $((after - before)) ticks"
  done
done
printf '\n%-8s %12s %8s %22s %8s\n' followers "writes/s" ratio "server CPU ms/1000 wr" ratio
for mode in none read stall; do
  # shellcheck disable=SC2086 # the per-round figures, split on spaces
  r=$(printf '%s\n' ${rate[$mode]} | median) c=$(printf '%s\n' ${cpu[$mode]} | median)
  # shellcheck disable=SC2086
  r0=$(printf '%s\n' ${rate[none]} | median) c0=$(printf '%s\n' ${cpu[none]} | median)
  printf '%-8s %12s %8s %22s %8s\n' "$mode" "$(fmt "$r")" "$(ratio "$r" "$r0")" "$(fmt "$c" 1)" "$(ratio "$c" "$c0")"
done
"$KEYLEDGER_BIN" --version >/dev/null
curl -sf -H "Authorization: Bearer $KL_ADMIN" "$KL_URL/v1/audit/verify" | grep -q '"valid":true' || die "the chain does not verify"
echo "the chain verifies"
