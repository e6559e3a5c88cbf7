#!/usr/bin/env bash
# Instructions per granted authorizeRequest, counted by callgrind: a figure that other
# load on the machine does not move, for comparing builds of the check path (issue #13:
# the metrics' counters must not slow it).
#
# Usage (from the repo root):  scripts/bench-check-instructions.sh BINARY [BINARY ...]
#   e.g. a release build of main and of a branch, copied aside first.
# Environment: FEW=200 MANY=1200 (requests of the two runs), ROUNDS=2.
#
# For each binary and round it starts `serve` under valgrind's callgrind (one worker),
# makes an API user with a key through the admin API, sends FEW (then, in a second run,
# MANY) authorizeRequest calls on one keep-alive connection, and stops the server with
# SIGTERM. (total(MANY) - total(FEW)) / (MANY - FEW) is the cost of one request, start-up,
# set-up and shutdown cancelling out. Every thread is counted (callgrind serialises them).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n '2,14p' "$0"; exit 2; }
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
FEW=${FEW:-200}
MANY=${MANY:-1200}
ROUNDS=${ROUNDS:-2}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-check-instructions.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/run.py" <<'PY'
import http.client, json, signal, subprocess, sys, tempfile
binary, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = tempfile.mkdtemp(dir=sys.argv[4])
server = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary, "serve",
    "--data-dir", data, "--listen", "127.0.0.1:0", "--workers", "1", "--failed-check-burst", "0"],
    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
admin = host = port = None
for line in server.stdout:
    if line.startswith("admin key: "):
        admin = line.split(": ", 1)[1].strip()
    if line.startswith("listening on "):
        host, port = line.strip().split("//")[1].rsplit(":", 1)
        break
connection = http.client.HTTPConnection(host, int(port), timeout=300)
def call(method, path, body=None, key=None):
    headers = {"Authorization": "Bearer " + (key or admin)}
    if body is not None:
        headers["Content-Type"] = "application/json"
    connection.request(method, path, json.dumps(body) if body is not None else None, headers)
    response = connection.getresponse()
    text = response.read()
    return response.status, json.loads(text) if text and "json" in response.getheader("content-type", "") else None
_, role = call("POST", "/v1/roles", {"description": "API"})
call("POST", f"/v1/roles/{role['id']}/functions/activate", {"functions": ["api.events.read"]})
_, user = call("POST", "/v1/users", {"name": "App"})
call("PUT", f"/v1/users/{user['id']}/roles/{role['id']}")
_, key = call("POST", f"/v1/users/{user['id']}/key", {})
for _ in range(n):
    status, _ = call("GET", "/v1/authorize?function=api.events.read", key=key["key"])
    assert status == 200, status
connection.close()
server.send_signal(signal.SIGTERM)
server.wait()
PY

total() { grep -E '^summary:' "$1" | awk '{ print $2 }'; }
printf '%-40s %5s %14s %14s %12s\n' binary round "Ir($FEW)" "Ir($MANY)" 'Ir/request'
for round in $(seq 1 "$ROUNDS"); do
  for binary in "$@"; do
    python3 "$tmp/run.py" "$binary" "$FEW" "$tmp/few.out" "$tmp"
    python3 "$tmp/run.py" "$binary" "$MANY" "$tmp/many.out" "$tmp"
    few=$(total "$tmp/few.out") many=$(total "$tmp/many.out")
    printf '%-40s %5s %14s %14s %12.1f\n' "$binary" "$round" "$few" "$many" "$(echo "($many - $few) / ($MANY - $FEW)" | bc -l)"
  done
done
