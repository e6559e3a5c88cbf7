#!/usr/bin/env bash
# The cluster test (issue #12): three keyledger nodes on one PostgreSQL log, a primary with
# a synchronous standby, 32 writers, a node killed with SIGKILL and restarted, the primary
# killed and the standby promoted; then every acknowledged write must be in the log, every
# node must agree on the head, the chain head hash and the Merkle root, every signed
# checkpoint must verify, and an exported bundle must verify offline.
#
# Usage (from anywhere): scripts/cluster-test.sh
#   NODES=3          keyledger nodes (ports 18301...)
#   WRITERS=32       concurrent writers, spread over the nodes
#   DURATION=40      seconds of writing; the node is killed at 30 % of it, the primary at 60 %
#   PG_PORT=15301    the primary's port; the standby takes PG_PORT+1
#   NODE_PORT=18301  the first node's port; node i takes NODE_PORT+i
#   KEYLEDGER_BIN    the binary (default: target/debug/keyledger, built)
#   NODE_ARGS        extra arguments for every `keyledger serve`
#   KEEP=1           keep the temporary directory (logs, bundle) for a post-mortem
#
# Installs PostgreSQL from Debian when initdb is missing (as root). PostgreSQL runs as the
# `postgres` user when this runs as root (initdb refuses root). Everything listens on
# 127.0.0.1 and everything started here is stopped on exit, whatever the reason.
# Prints a summary; exits 1 on any violation.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "PostgreSQL is missing: apt-get install postgresql" >&2; exit 1; }
  echo "installing PostgreSQL from Debian ..." >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
fi
if [ -z "${KEYLEDGER_BIN:-}" ]; then
  cargo build --quiet
  export KEYLEDGER_BIN=target/debug/keyledger
fi
[ -x "$KEYLEDGER_BIN" ] || { echo "KEYLEDGER_BIN=$KEYLEDGER_BIN is not an executable" >&2; exit 1; }

exec python3 - "$@" <<'PY'
"""The cluster test's orchestra: PostgreSQL, the nodes, the writers, the faults, the checks."""

import glob
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.path.abspath(os.environ["KEYLEDGER_BIN"])
NODES = int(os.environ.get("NODES", "3"))
WRITERS = int(os.environ.get("WRITERS", "32"))
DURATION = float(os.environ.get("DURATION", "40"))
PG_PORT = int(os.environ.get("PG_PORT", "15301"))
NODE_PORT = int(os.environ.get("NODE_PORT", "18301"))
NODE_ARGS = os.environ.get("NODE_ARGS", "").split()
KEEP = os.environ.get("KEEP") == "1"
AS_ROOT = os.getuid() == 0
START = time.monotonic()

violations = []
lock = threading.Lock()


def log(message):
    print(f"[{time.monotonic() - START:6.1f}s] {message}", flush=True)


def violation(message):
    with lock:
        violations.append(message)
    log(f"VIOLATION: {message}")


def pg_tool(name):
    for candidate in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        return candidate
    found = shutil.which(name)
    if not found:
        sys.exit(f"error: PostgreSQL's {name} is not installed")
    return found


def as_postgres(argv):
    return ["runuser", "-u", "postgres", "--", *argv] if AS_ROOT else argv


def run(argv, **kwargs):
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120, **kwargs)


# ----------------------------------------------------------------------------------------
# PostgreSQL: a primary and a synchronous standby, each a postmaster we can kill.


class Postgres:
    def __init__(self, name, directory, port):
        self.name, self.data, self.port = name, os.path.join(directory, name), port
        self.sockets = os.path.join(directory, f"{name}-sockets")
        self.logfile = os.path.join(directory, f"{name}.log")

    def start(self):
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.sockets}"
        run(as_postgres([pg_tool("pg_ctl"), "-D", self.data, "-l", self.logfile, "-w", "-t", "60", "-o", options, "start"]))

    def sql(self, statement, database="postgres"):
        out = run(as_postgres([pg_tool("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                               "-d", database, "-Atqc", statement]))
        return out.stdout.strip()

    def postmaster(self):
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as file:
                return int(file.readline())
        except (OSError, ValueError):
            return None

    def kill(self):
        """SIGKILL to the postmaster and every process it started, as a machine's death."""
        pid = self.postmaster()
        if pid is None:
            return
        children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split()
        for victim in [pid, *map(int, children)]:
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self):
        subprocess.run(as_postgres([pg_tool("pg_ctl"), "-D", self.data, "stop", "-m", "immediate"]),
                       capture_output=True, timeout=60)
        self.kill()


def start_postgres(directory):
    pg_dir = os.path.join(directory, "pg")
    os.mkdir(pg_dir)
    primary, standby = Postgres("primary", pg_dir, PG_PORT), Postgres("standby", pg_dir, PG_PORT + 1)
    os.mkdir(primary.sockets)
    os.mkdir(standby.sockets)
    if AS_ROOT:
        run(["chown", "-R", "postgres", pg_dir])
    run(as_postgres([pg_tool("initdb"), "-D", primary.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions"]))
    with open(os.path.join(primary.data, "postgresql.conf"), "a") as conf:
        conf.write("wal_level = replica\nmax_wal_senders = 10\nhot_standby = on\nmax_connections = 200\n")
    primary.start()
    postgres_servers.append(primary)
    run(as_postgres([pg_tool("pg_basebackup"), "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres",
                     "-D", standby.data, "-R", "-X", "stream"]))
    # pg_basebackup -R names no application_name, which synchronous_standby_names matches.
    with open(os.path.join(standby.data, "postgresql.auto.conf"), "a") as conf:
        conf.write(f"primary_conninfo = 'host=127.0.0.1 port={PG_PORT} user=postgres application_name=standby'\n")
    standby.start()
    postgres_servers.append(standby)
    wait_for(lambda: primary.sql("SELECT count(*) FROM pg_stat_replication WHERE application_name = 'standby' AND state = 'streaming'") == "1",
             30, "the standby to stream")
    # Only now (after the base backup, so the standby does not wait for a standby of its
    # own once promoted, and once it streams, so nothing waits forever).
    primary.sql("ALTER SYSTEM SET synchronous_standby_names = 'standby'")
    primary.sql("SELECT pg_reload_conf()")
    wait_for(lambda: primary.sql("SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'") == "sync",
             30, "the standby to be synchronous")
    primary.sql("CREATE DATABASE keyledger")
    return primary, standby


def wait_for(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 (anything short of the predicate holding is "not yet")
            pass
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


# ----------------------------------------------------------------------------------------
# keyledger nodes.


def request(port, method, path, body=None, headers=None, timeout=15):
    """(status, headers in lower case, parsed JSON or raw bytes); raises OSError and
    http.client exceptions when the node cannot be reached or drops the connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        all_headers = dict(headers or {})
        payload = None
        if body is not None:
            payload = json.dumps(body)
            all_headers["Content-Type"] = "application/json"
        connection.request(method, path, body=payload, headers=all_headers)
        response = connection.getresponse()
        data = response.read()
        answer_headers = {name.lower(): value for name, value in response.getheaders()}
        if answer_headers.get("content-type", "").endswith("json"):
            try:
                data = json.loads(data)
            except ValueError:
                pass
        return response.status, answer_headers, data
    finally:
        connection.close()


class Node:
    def __init__(self, index, directory, url, signing_key):
        self.index, self.port = index, NODE_PORT + index
        self.name = "ABCDEFGHIJ"[index] if index < 10 else str(index)
        self.data = os.path.join(directory, f"node-{self.name}")
        self.url, self.signing_key = url, signing_key
        self.process = None
        self.starts = 0
        self.killed_on_purpose = False
        self.unexpected_exits = []

    def start(self, wait=True):
        self.starts += 1
        out = open(os.path.join(self.data + ".out"), "a")
        err = open(os.path.join(self.data + ".log"), "a")
        argv = [BIN, "serve", "--data-dir", self.data, "--database-url", self.url, "--signing-key", self.signing_key,
                "--listen", f"127.0.0.1:{self.port}", "--node-id", self.name, "--workers", "2", "--failed-check-burst", "0",
                "--checkpoint-every", "500", "--checkpoint-interval-secs", "2", *NODE_ARGS]
        self.process = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        self.killed_on_purpose = False
        if wait:
            self.wait_until_listening()

    def wait_until_listening(self):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"node {self.name} exited with status {self.process.returncode} before listening")
            try:
                if request(self.port, "GET", "/health/live", timeout=1)[0] == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"node {self.name} did not listen within 60 s")

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def kill(self):
        if self.alive():
            self.killed_on_purpose = True
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self):
        if self.alive():
            self.killed_on_purpose = True
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# ----------------------------------------------------------------------------------------
# Writers: create a user, assign it the role, generate its key, revoke the key; each
# acknowledged write is recorded with its position and what the record there must hold.


class Stats:
    def __init__(self):
        self.acknowledged = 0
        self.unavailable = 0  # 503s
        self.connection_errors = 0
        self.ambiguous_gaveup = 0
        self.revocations_checked = 0
        self.revocations_pending = 0


stats = Stats()
acks = []  # (position, type, subject, {field: value}, node, what)
stopping = threading.Event()


class Writer(threading.Thread):
    def __init__(self, number, nodes, admin_key, role):
        super().__init__(daemon=True)
        self.number, self.nodes, self.role = number, nodes, role
        self.auth = {"Authorization": f"Bearer {admin_key}"}
        self.node = number % len(nodes)
        self.rng = random.Random(number)

    def write(self, method, path, body_for_attempt, accepted, tolerated_after_ambiguity=()):
        """Sends the write until a node answers it; (status, headers, body, node,
        ambiguous) or None when the run ends first, or when a retry after an ambiguous
        failure (a lost connection, a 503: the first attempt may have been committed) is
        refused for that reason."""
        attempt, ambiguous = 0, False
        while True:
            node = self.nodes[self.node]
            try:
                status, headers, body = request(node.port, method, path, body_for_attempt(attempt), self.auth)
            except (OSError, http.client.HTTPException):
                with lock:
                    stats.connection_errors += 1
                ambiguous, attempt = True, attempt + 1
                self.node = (self.node + 1) % len(self.nodes)  # try another node
                if stopping.is_set() and attempt > 3:
                    return None
                time.sleep(0.05)
                continue
            if status in accepted:
                return status, headers, body, node, ambiguous
            if status == 503:
                with lock:
                    stats.unavailable += 1
                ambiguous, attempt = True, attempt + 1
                if stopping.is_set() and attempt > 3:
                    return None
                time.sleep(min(float(headers.get("retry-after", "0.1") or 0.1), 0.5))
                continue
            if ambiguous and status in tolerated_after_ambiguity:
                with lock:
                    stats.ambiguous_gaveup += 1
                return None
            violation(f"writer {self.number}: {method} {path} on node {node.name} answered {status}: {body!r}")
            return None

    def ack(self, reply, event_type, subject, fields, what):
        status, headers, body, node, ambiguous = reply
        position = headers.get("keyledger-position")
        if position is None or not position.isdigit():
            violation(f"writer {self.number}: {what} on node {node.name} acknowledged without Keyledger-Position")
            return
        with lock:
            acks.append((int(position), event_type, subject, fields, node.name, what, ambiguous))
            stats.acknowledged += 1

    def run(self):
        n = 0
        while not stopping.is_set():
            n += 1
            name = f"writer {self.number} user {n}"
            reply = self.write("POST", "/v1/users", lambda attempt: {"name": f"{name} try {attempt}"}, {201})
            if reply is None:
                continue
            user = reply[2]["id"]
            self.ack(reply, "UserCreated", user, {"name": reply[2]["name"]}, f"createUser {user}")
            reply = self.write("PUT", f"/v1/users/{user}/roles/{self.role}", lambda attempt: None, {200})
            if reply is None:
                continue
            self.ack(reply, "RoleAssigned", user, {"role_id": self.role}, f"assignRole {user}")
            reply = self.write("POST", f"/v1/users/{user}/key", lambda attempt: {}, {201})
            if reply is None:
                continue
            key, key_id = reply[2]["key"], reply[2]["key_id"]
            self.ack(reply, "KeyGenerated", user, {"key_id": key_id}, f"generateKey {user}")
            if self.rng.random() < 0.5:
                continue  # half the keys stay
            reply = self.write("DELETE", f"/v1/users/{user}/key", lambda attempt: None, {200}, tolerated_after_ambiguity={404})
            if reply is None:
                continue
            self.ack(reply, "KeyRevoked", user, {"key_id": key_id}, f"revokeKey {user}")
            self.check_revoked_everywhere(key, reply)

    def check_revoked_everywhere(self, key, reply):
        """A revocation acknowledged without `Keyledger-Nodes-Pending` is refused by every
        live node at once."""
        headers, writer_node = reply[1], reply[3]
        if headers.get("keyledger-nodes-pending"):
            with lock:
                stats.revocations_pending += 1
            return
        for node in self.nodes:
            try:
                status, _, body = request(node.port, "POST", "/v1/check", {"key": key, "function": "api.events.read"})
            except (OSError, http.client.HTTPException):
                continue  # a node that is down answers nothing
            if status == 200 and body.get("allowed"):
                violation(f"a key revoked on node {writer_node.name} (acknowledged) was allowed on node {node.name}")
            elif status == 200:
                with lock:
                    stats.revocations_checked += 1


# ----------------------------------------------------------------------------------------
# The run.

postgres_servers = []
nodes = []


def cleanup():
    for node in nodes:
        try:
            node.kill()
        except Exception:  # noqa: BLE001
            pass
    for server in postgres_servers:
        try:
            server.stop()
        except Exception:  # noqa: BLE001
            pass


def supervise(stop_supervising):
    """Restarts a node that exits by itself (as systemd's Restart=always would): a node
    stops when the outcome of a commit is unknown, and the restart replays what was
    committed."""
    while not stop_supervising.is_set():
        for node in nodes:
            if node.process is not None and not node.alive() and not node.killed_on_purpose:
                code = node.process.returncode
                node.unexpected_exits.append(code)
                log(f"node {node.name} exited with status {code}; restarting it in 0.5 s")
                stop_supervising.wait(0.5)
                node.start(wait=False)
        stop_supervising.wait(0.2)


def all_records(node, auth):
    records, after = [], 0
    while True:
        status, _, page = request(node.port, "GET", f"/v1/audit/events?limit=1000&after={after}", headers=auth, timeout=60)
        if status != 200:
            raise RuntimeError(f"listAuditEvents on node {node.name} answered {status}: {page!r}")
        records.extend(page["items"])
        if page.get("next") is None:
            return records
        after = page["next"]


def main(directory):
    primary, standby = start_postgres(directory)
    url = (f"postgresql://postgres@127.0.0.1:{PG_PORT},127.0.0.1:{PG_PORT + 1}/keyledger"
           "?target_session_attrs=read-write&connect_timeout=2")
    log(f"PostgreSQL primary on {PG_PORT}, synchronous standby on {PG_PORT + 1}; nodes use {url}")

    # Every node signs with the one key the initialisation made (one signer at a time).
    init_dir = os.path.join(directory, "init")
    init = run([BIN, "init", "--data-dir", init_dir, "--database-url", url, "--migrate"])
    signing_key = os.path.join(init_dir, "signing-key")
    admin_key = init.stdout.strip().splitlines()[-1]
    auth = {"Authorization": f"Bearer {admin_key}"}
    for index in range(NODES):
        nodes.append(Node(index, directory, url, signing_key))
    for node in nodes:
        node.start()
    log(f"{NODES} nodes: " + ", ".join(f"{n.name} on {n.port}" for n in nodes))

    status, _, role = request(nodes[0].port, "POST", "/v1/roles", {"description": "Cluster test apps"}, auth)
    assert status == 201, role
    status, _, body = request(nodes[0].port, "POST", f"/v1/roles/{role['id']}/functions/activate",
                              {"functions": ["api.events.read"]}, auth)
    assert status == 200, body
    # The role must be known wherever the writers assign it.
    for node in nodes:
        wait_for(lambda node=node: request(node.port, "GET", f"/v1/roles/{role['id']}", headers=auth)[0] == 200, 10,
                 f"node {node.name} to know the role")

    stop_supervising = threading.Event()
    supervisor = threading.Thread(target=supervise, args=(stop_supervising,), daemon=True)
    supervisor.start()
    writers = [Writer(number, nodes, admin_key, role["id"]) for number in range(WRITERS)]
    for writer in writers:
        writer.start()
    log(f"{WRITERS} writers started, for {DURATION:.0f} s")

    victim = nodes[1 % NODES]
    time.sleep(DURATION * 0.3)
    log(f"kill -9 node {victim.name} ({stats.acknowledged} writes acknowledged so far)")
    victim.kill()
    time.sleep(1)
    victim.start()
    log(f"node {victim.name} restarted")

    time.sleep(DURATION * 0.3)
    log(f"kill -9 the PostgreSQL primary ({stats.acknowledged} writes acknowledged so far)")
    primary.kill()
    time.sleep(0.5)
    run(as_postgres([pg_tool("pg_ctl"), "-D", standby.data, "-w", "promote"]))
    log("standby promoted")

    time.sleep(DURATION * 0.4)
    # A failover ends every session, and the signer's lock with it: while the writers still
    # write, one node must have taken the lock again (a node busy catching up once never
    # asked for it until the writes stopped).
    def signing_now():
        names = []
        for node in nodes:
            try:
                status, _, health = request(node.port, "GET", "/health/live")
            except Exception:
                continue
            if status == 200 and (health.get("node") or {}).get("signer"):
                names.append(node.name)
        return names
    during = signing_now()
    if len(during) != 1:
        violation(f"{DURATION * 0.4:.0f} s after the promotion, with writers writing, {len(during)} nodes sign checkpoints: {during}")
    stopping.set()
    for writer in writers:
        writer.join(60)
    stop_supervising.set()
    supervisor.join()
    log(f"writers stopped: {stats.acknowledged} writes acknowledged")

    # Every node reaches the same head, chain and Merkle root.
    for node in nodes:
        node.wait_until_listening()

    def heads():
        return [request(node.port, "GET", "/health")[2]["log_size"] for node in nodes]

    try:
        wait_for(lambda: len(set(heads())) == 1, 30, "every node to reach the same head")
    except RuntimeError:
        violation(f"the nodes' heads differ after 30 s: {heads()}")
    # Each node's health: caught up, not stale, every node live, exactly one signer.
    healths = {node.name: request(node.port, "GET", "/health/ready")[2].get("node") or {} for node in nodes}
    for name, health in healths.items():
        live = sorted(n.get("node_id") for n in health.get("live_nodes", []))
        if health.get("lag") != 0 or health.get("stale") is not False or live != sorted(n.name for n in nodes):
            violation(f"node {name}'s health after the run: {health}")
    signers = [name for name, health in healths.items() if health.get("signer")]
    if len(signers) != 1:
        violation(f"{len(signers)} nodes say they sign checkpoints: {signers}")
    verdicts = {}
    for node in nodes:
        status, _, verdict = request(node.port, "GET", "/v1/audit/verify", headers=auth, timeout=120)
        size = verdict.get("size", 0) if status == 200 else 0
        proof_status, _, proof = request(node.port, "GET", f"/v1/audit/proofs/inclusion?seq=1&size={size}", headers=auth)
        root = proof.get("root") if proof_status == 200 else None
        verdicts[node.name] = (verdict.get("valid"), size, verdict.get("head_hash"), root)
        if status != 200 or verdict.get("valid") is not True:
            violation(f"node {node.name}: the log does not verify: {verdict!r}")
    if len(set(verdicts.values())) != 1:
        violation(f"the nodes disagree on (valid, size, head hash, Merkle root): {verdicts}")

    # No acknowledged write is missing, by position and content; every node lists the same records.
    records = {record["seq"]: record for record in all_records(nodes[0], auth)}
    digests = {}
    for node in nodes:
        digests[node.name] = hashlib.sha256("".join(r["hash"] for r in all_records(node, auth)).encode()).hexdigest()
    if len(set(digests.values())) != 1:
        violation(f"the nodes list different records: {digests}")
    # A write is acknowledged with the position of its record. A retried assignRole whose
    # first attempt was committed makes no record: its acknowledgement carries the
    # position the node had reached, and the record must be at or before it.
    by_subject = {}
    for record in records.values():
        by_subject.setdefault((record["type"], record["subject"]), []).append(record)

    def matches(record, event_type, subject, fields):
        data = record.get("data", {})
        return (record["type"] == event_type and record["subject"] == subject
                and all(data.get(k) == v for k, v in fields.items()))

    missing = 0
    for position, event_type, subject, fields, node_name, what, ambiguous in acks:
        record = records.get(position)
        if record is not None and matches(record, event_type, subject, fields):
            continue
        if ambiguous and event_type == "RoleAssigned" and any(
                r["seq"] <= position and matches(r, event_type, subject, fields)
                for r in by_subject.get((event_type, subject), [])):
            continue
        missing += 1
        found = "nothing" if record is None else f"{record['type']} {record['subject']} {record.get('data')}"
        violation(f"{what}, acknowledged by node {node_name} at position {position}, finds {found} there")
    checkpoints = {}
    for node in nodes:
        status, _, page = request(node.port, "GET", "/v1/audit/checkpoints?limit=1000", headers=auth)
        checkpoints[node.name] = json.dumps(page.get("items"), sort_keys=True) if status == 200 else f"status {status}"
    if len(set(checkpoints.values())) != 1:
        violation("the nodes list different checkpoints")
    checkpoint_count = len(json.loads(next(iter(checkpoints.values()))) or []) if status == 200 else 0

    # Offline: the database's log verifies (chain, tree, every checkpoint), and so does an
    # exported bundle against the signing key.
    for node in nodes:
        node.stop()
    verified = subprocess.run([BIN, "verify-log", "--data-dir", init_dir, "--database-url", url], capture_output=True, text=True)
    if verified.returncode != 0:
        violation(f"keyledger verify-log: {verified.stdout}{verified.stderr}")
    bundle = os.path.join(directory, "bundle.jsonl")
    exported = subprocess.run([BIN, "export", "--data-dir", init_dir, "--database-url", url, "--out", bundle],
                              capture_output=True, text=True)
    if exported.returncode != 0:
        violation(f"keyledger export: {exported.stderr}")
    public_key = run([BIN, "signing-key", "--data-dir", init_dir]).stdout.strip()
    bundle_verdict = subprocess.run([BIN, "verify", bundle, "--public-key", public_key], capture_output=True, text=True)
    if bundle_verdict.returncode != 0:
        violation(f"keyledger verify of the exported bundle: {bundle_verdict.stdout}{bundle_verdict.stderr}")

    restarts = {node.name: node.unexpected_exits for node in nodes if node.unexpected_exits}
    print()
    print("== cluster test summary")
    print(f"nodes: {NODES}, writers: {WRITERS}, writing for {DURATION:.0f} s; faults: kill -9 of node {victim.name} "
          f"and of the PostgreSQL primary, standby promoted")
    print(f"writes acknowledged: {stats.acknowledged}; 503s retried: {stats.unavailable}; "
          f"connection errors retried: {stats.connection_errors}; ambiguous retries dropped: {stats.ambiguous_gaveup}")
    print(f"nodes that stopped by themselves and were restarted (exit statuses): {restarts or 'none'}")
    print(f"revocations checked on every live node right after acknowledgement: {stats.revocations_checked} checks; "
          f"acknowledged with nodes pending: {stats.revocations_pending}")
    print(f"checkpoint signer at the end: node {', '.join(signers) or 'none'}")
    print(f"log: {verdicts[nodes[0].name][1]} records, head hash {verdicts[nodes[0].name][2]}, "
          f"Merkle root {verdicts[nodes[0].name][3]}; {checkpoint_count} checkpoints")
    print(f"acknowledged writes missing or different in the log: {missing}")
    print(f"verify-log: {verified.stdout.strip().splitlines()[0] if verified.stdout.strip() else verified.stderr.strip()}")
    print(f"exported bundle: {bundle_verdict.stdout.strip().splitlines()[0] if bundle_verdict.stdout.strip() else bundle_verdict.stderr.strip()}")
    print(f"violations: {len(violations)}")
    for message in violations[:20]:
        print(f"  - {message}")
    return 1 if violations else 0


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, on_signal)
directory = tempfile.mkdtemp(prefix="keyledger-cluster.")
os.chmod(directory, 0o755)
status = 1
try:
    status = main(directory)
except Exception as error:  # noqa: BLE001
    import traceback

    traceback.print_exc()
    print(f"cluster test: stopped by an error: {error}")
    status = 1
finally:
    cleanup()
    if KEEP:
        print(f"kept {directory}")
    else:
        shutil.rmtree(directory, ignore_errors=True)
sys.exit(status)
PY
