# shellcheck shell=bash
# Shared helpers for scripts/bench-http.sh and scripts/bench-writes.sh. Sourced, not run.
#
# Provides: a cleanup stack run on exit, the machine header, building/locating the release
# binary, installing Debian packages on demand, starting keyledger pinned to a core,
# per-process CPU accounting from /proc, wrk output parsing and small statistics.
# Every wait here is bounded in time; all traffic goes to 127.0.0.1.

# The core the servers run on and the core the load generators run on.
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------------------------------
# Cleanup: commands pushed with `on_exit` run in reverse order when the script exits,
# whatever the reason (error, Ctrl-C, SIGTERM).
_cleanup_cmds=()
on_exit() { _cleanup_cmds+=("$*"); }
_run_cleanup() {
  local status=$? i
  trap - EXIT INT TERM
  for ((i = ${#_cleanup_cmds[@]} - 1; i >= 0; i--)); do
    eval "${_cleanup_cmds[i]}" >/dev/null 2>&1 || true
  done
  exit "$status"
}
trap _run_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# stop_pid PID [SIGNAL]: signal a process we started, wait for it up to 10 s, then SIGKILL.
stop_pid() {
  local pid=$1 sig=${2:-TERM} _
  [ -n "$pid" ] || return 0
  kill -"$sig" "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

die() { echo "error: $*" >&2; exit 1; }
note() { printf '%s\n' "$*" >&2; }

# ---------------------------------------------------------------------------------------
# The header: what ran, where and when.
print_header() {
  local title=$1 commit dirty=""
  commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
  if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then dirty=" (+ uncommitted changes)"; fi
  echo "== $title"
  echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine:  $(nproc) cores, $(grep -m1 '^model name' /proc/cpuinfo | sed 's/^[^:]*: *//'), $(awk '/MemTotal/ {printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo)"
  echo "kernel:   $(uname -sr)"
  echo "commit:   $commit$dirty"
  echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min; the machine is shared, read ratios not absolutes)"
  echo "pinning:  servers on core $SERVER_CPU, load generators on core $CLIENT_CPU"
}

# ---------------------------------------------------------------------------------------
# Tools.

_apt_updated=0
# install_pkg PACKAGE: apt-get install, running apt-get update once if that fails.
install_pkg() {
  local pkg=$1
  [ "$(id -u)" = 0 ] || die "install the Debian package $pkg (apt-get install $pkg): not root, cannot install it here"
  note "installing $pkg ..."
  if ! DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "$pkg" >/dev/null 2>&1; then
    if [ "$_apt_updated" = 0 ]; then
      timeout 300 apt-get update -qq >/dev/null 2>&1 || true
      _apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "$pkg" >/dev/null || die "could not install $pkg"
  fi
}

# need CMD PACKAGE: install the Debian package PACKAGE if CMD is missing.
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  install_pkg "$2"
  command -v "$1" >/dev/null 2>&1 || die "$2 installed but $1 is still missing"
}

# build_keyledger: sets KEYLEDGER_BIN. Builds the release binary unless KEYLEDGER_BIN is set.
build_keyledger() {
  if [ -n "${KEYLEDGER_BIN:-}" ]; then
    [ -x "$KEYLEDGER_BIN" ] || die "KEYLEDGER_BIN=$KEYLEDGER_BIN is not an executable"
    note "using KEYLEDGER_BIN=$KEYLEDGER_BIN (not building)"
  else
    note "cargo build --release ..."
    cargo build --release --quiet || die "cargo build --release failed"
    KEYLEDGER_BIN=target/release/keyledger
  fi
}

# free_port: a free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_keyledger DATA_DIR LOG: starts `keyledger serve` pinned to SERVER_CPU with one
# worker on a free loopback port; sets KL_PID, KL_URL and KL_ADMIN.
start_keyledger() {
  local data=$1 log=$2 out=$1.stdout _
  # shellcheck disable=SC2086 # SERVE_ARGS: extra flags for serve, split on spaces.
  taskset -c "$SERVER_CPU" "$KEYLEDGER_BIN" serve --workers 1 --data-dir "$data" --listen 127.0.0.1:0 ${SERVE_ARGS:-} >"$out" 2>"$log" &
  KL_PID=$!
  on_exit "stop_pid $KL_PID"
  for _ in $(seq 1 300); do
    grep -q '^listening on ' "$out" && break
    kill -0 "$KL_PID" 2>/dev/null || { cat "$log" >&2; die "keyledger exited early"; }
    sleep 0.1
  done
  KL_URL=$(sed -n 's/^listening on //p' "$out")
  KL_ADMIN=$(sed -n 's/^admin key: //p' "$out")
  if [ -z "$KL_URL" ] || [ -z "$KL_ADMIN" ]; then cat "$log" >&2; die "keyledger did not start within 30 s"; fi
  case $KL_URL in http://127.0.0.1:*) ;; *) die "keyledger listens on $KL_URL, not loopback" ;; esac
  echo "keyledger: pid $KL_PID, $KL_URL, $(taskset -cp "$KL_PID" | sed 's/.*: /cores /'), 1 worker, $("$KEYLEDGER_BIN" --version)"
}

# ---------------------------------------------------------------------------------------
# CPU accounting.

# cpu_ticks PID: clock ticks of CPU (user + system) used so far by PID (all its threads),
# by its reaped children, and by its live children. Multi-process servers (PostgreSQL)
# are thus counted whole.
cpu_ticks() {
  local pid=$1 child total
  total=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$pid/stat")
  for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
    total=$((total + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$child/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# core_ticks CPU: "busy total" clock ticks of one core so far, from /proc/stat (busy =
# user + nice + system + irq + softirq + steal).
core_ticks() {
  awk -v cpu="cpu$1" '$1 == cpu { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat
}

# other_load CORE_BEFORE CORE_AFTER SERVER_TICKS_BEFORE SERVER_TICKS_AFTER: the share (%) of
# the server's core used by anything but the server during a run (other processes, or
# the hypervisor's steal): the noise indicator of a run.
other_load() {
  local b0 t0 b1 t1
  read -r b0 t0 <<<"$1"
  read -r b1 t1 <<<"$2"
  awk -v b="$((b1 - b0))" -v t="$((t1 - t0))" -v s="$(($4 - $3))" 'BEGIN {
    if (t <= 0) { print "nan"; exit }
    o = (b - s) * 100 / t; if (o < 0) o = 0; printf "%.0f", o }'
}

# cpu_us_per_request TICKS_BEFORE TICKS_AFTER REQUESTS
cpu_us_per_request() {
  awk -v a="$1" -v b="$2" -v n="$3" -v hz="$CLK_TCK" 'BEGIN { if (n > 0) printf "%.2f", (b - a) * 1e6 / hz / n; else print "nan" }'
}

# ---------------------------------------------------------------------------------------
# wrk.

# parse_wrk FILE: prints "rps p50_us p99_us requests seconds non2xx socket_errors" from the
# output of `wrk --latency`.
parse_wrk() {
  awk '
    function us(v,   n, u) {
      n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
      if (u == "us") return n; if (u == "ms") return n * 1e3; if (u == "s") return n * 1e6
      if (u == "m") return n * 6e7; if (u == "h") return n * 3.6e9; return n
    }
    function secs(v,   n, u) {
      n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
      if (u == "ms") return n / 1e3; if (u == "us") return n / 1e6; if (u == "m") return n * 60; return n
    }
    /^ +50% / { p50 = us($2) }
    /^ +99% / { p99 = us($2) }
    / requests in / { requests = $1; d = $4; sub(/,$/, "", d); seconds = secs(d) }
    /^Requests\/sec:/ { rps = $2 }
    /Non-2xx or 3xx responses:/ { non2xx = $NF }
    /Socket errors:/ { gsub(/,/, ""); errors = $4 + $6 + $8 + $10 }
    END {
      if (rps == "") { print "nan nan nan 0 0 0 0"; exit }
      printf "%s %.1f %.1f %d %.3f %d %d\n", rps, p50, p99, requests, seconds, non2xx + 0, errors + 0
    }' "$1"
}

# run_wrk OUTFILE CONNECTIONS SECONDS ARGS...: wrk pinned to CLIENT_CPU, one thread,
# with a hard time limit.
run_wrk() {
  local out=$1 conns=$2 secs=$3
  shift 3
  timeout -k 5 $((secs + 30)) taskset -c "$CLIENT_CPU" wrk -t1 -c "$conns" -d "${secs}s" --latency "$@" >"$out" 2>&1 || true
}

# ---------------------------------------------------------------------------------------
# Statistics on whitespace-separated numbers from stdin ("nan" entries are ignored).

median() {
  { grep -Ev '^(nan|)$' || true; } | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "nan"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    s = sprintf("%.3f", m); sub(/0+$/, "", s); sub(/\.$/, "", s); print s }'
}

# ratio A B: A / B with 3 decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b == 0) print "nan"; else printf "%.3f", a / b }'; }

# fmt NUMBER [DECIMALS]: rounded for display.
fmt() { awk -v a="$1" -v d="${2:-0}" 'BEGIN { if (a == "nan" || a == "") print "-"; else printf "%.*f", d, a }'; }

# meets VALUE OP BOUND: prints "met" or "NOT met" (OP is >= or <=).
meets() {
  awk -v v="$1" -v op="$2" -v b="$3" 'BEGIN {
    if (v == "nan") { print "no data"; exit }
    ok = (op == ">=") ? (v >= b) : (v <= b); print ok ? "met" : "NOT met" }'
}

# report_problems SERVER_LOG PROBLEMS_FILE CLEAN_MESSAGE: prints the problems a run
# recorded and the server's WARN/ERROR lines, or CLEAN_MESSAGE when there are none.
report_problems() {
  local log=$1 problems=$2 clean=$3 errors
  errors=$(grep -ciE ' (ERROR|WARN) ' "$log" || true)
  if [ -s "$problems" ] || [ "$errors" != 0 ]; then
    echo "== Problems"
    [ ! -s "$problems" ] || cat "$problems"
    [ "$errors" = 0 ] || { echo "server log: $errors WARN/ERROR lines, first ones:"; grep -iE ' (ERROR|WARN) ' "$log" | head -5; }
  else
    echo "== $clean"
  fi
}
