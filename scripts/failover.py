#!/usr/bin/env python3
"""The faults of scripts/failover (run that script, not this file).

scripts/failover brings up etcd, two Patroni nodes (n1 primary, n2 standby) and HAProxy, and
passes everything in FAILOVER_* variables. This file starts two tokengate replicas (A, B) whose
DATABASE_URL, and so whose cache-invalidation listener, goes through HAProxy; then, under a
bounded load, runs the three faults and prints what each cost. Standard library only.

Per fault:
  1. three fresh service tokens are checked on both replicas (200, so cached on both);
  2. they are deactivated, through A, B and A, while probes keep checking them on both replicas;
  3. the fault; the load (per replica: /auth/check with a working token, and the token list)
     runs until both replicas answered only 200 for STABLE seconds (at most FAULT_LIMIT);
  4. each acknowledged deactivation (answered 200) must still hold: 403 on both replicas, or it
     is a lost revocation; a probe answered 200 after a token's deactivation was acknowledged is
     a stale success; a deactivation that got no 200 may or may not have happened: it is retried
     (the retry must answer 200 and then the token 403 on both replicas: retrying is safe).
The recovery time is from the first response other than 200 to the first 200 after which there
were only 200s. "listener back" is how long after its replica's first 200 on the new primary the
cache-invalidation listener was connected again (from the replica's log).
"""

import collections
import datetime
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

BIN = os.environ["FAILOVER_BIN"]
HOME = os.environ["FAILOVER_HOME"]
LOG_DIR = os.environ["FAILOVER_LOG_DIR"]
PIDFILE = os.environ["FAILOVER_PIDFILE"]
PG_BIN = os.environ["FAILOVER_PG_BIN"]
BASE = int(os.environ["FAILOVER_PORT_BASE"])
MODE = os.environ["FAILOVER_MODE"]
FAULTS = os.environ.get("FAILOVER_FAULTS", "switchover crash freeze long-freeze").split()

PG_PORTS = {"n1": BASE + 11, "n2": BASE + 12}
REST_PORTS = {"n1": BASE + 21, "n2": BASE + 22}
ROUTER_PORT = BASE + 30

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


REPLICA_PORTS = {"A": free_port(), "B": free_port()}
DATABASE_URL = f"postgres://postgres@127.0.0.1:{ROUTER_PORT}/tokengate"

FAULT_LIMIT = 60.0          # seconds a fault may take to recover, from the fault
STABLE = 3.0                # seconds of only 200s that count as recovered
FREEZE_SECONDS = 10.0       # shorter than Patroni's ttl: no failover
LONG_FREEZE_LIMIT = 45.0    # the long freeze lasts until the standby took over, at most this
HTTP_TIMEOUT = 20.0
LOAD_RATE = 20              # requests per second per load thread
MAX_REQUESTS_PER_THREAD = 5000
REVOKED_PER_FAULT = 3
# The listener may connect again at most this long after its replica reached the new primary
# (SPEC §6: within about a second; plus one connection attempt already under way).
LISTENER_LIMIT = 3.0
NOTIFY_ALLOWANCE = 0.25     # seconds the other replica may take to hear of a write (see below)
ACQUIRE_TIMEOUT = "2"       # tokengate's pool wait before answering 503

CHECK_BODY = json.dumps({"checks": [{"action": "ManageFeatureFlag",
                                     "resource": "project/a:env/b:flag/c"}]}).encode()
T0 = time.monotonic()


def now():
    return time.monotonic()


def say(msg):
    print(f"[failover {MODE} +{now() - T0:6.1f}s] {msg}", flush=True)


class Interrupted(BaseException):
    pass


def _on_term(_signum, _frame):
    raise Interrupted()


signal.signal(signal.SIGTERM, _on_term)


# --------------------------------------------------------------------------------------------
# The cluster

def rest(node, path, timeout=2.0):
    with urllib.request.urlopen(f"http://127.0.0.1:{REST_PORTS[node]}{path}",
                                timeout=timeout) as r:
        return json.loads(r.read())


def cluster():
    """Patroni's /cluster from whichever node answers, or None."""
    for node in REST_PORTS:
        try:
            return rest(node, "/cluster")
        except (OSError, ValueError):
            continue
    return None


def leader():
    c = cluster()
    for m in (c or {}).get("members", []):
        if m.get("role") == "leader":
            return m["name"]
    return None


def other(node):
    return "n2" if node == "n1" else "n1"


def psql(node_or_port, sql, db="postgres", timeout=10):
    port = PG_PORTS.get(node_or_port, node_or_port)
    r = subprocess.run([f"{PG_BIN}/psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1",
                        "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", db,
                        "-c", sql],
                       capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "PGCONNECT_TIMEOUT": "3"})
    if r.returncode != 0:
        raise RuntimeError(f"psql on {node_or_port}: {r.stderr.strip()}")
    return r.stdout.strip()


def healthy():
    """A leader, the other node streaming from it with no lag, and in synchronous mode that
    node named the synchronous standby. Returns a reason when not."""
    c = cluster()
    if not c:
        return "no Patroni REST API answers"
    roles = {m["name"]: m for m in c.get("members", [])}
    lead = [n for n, m in roles.items() if m.get("role") == "leader"]
    if len(lead) != 1 or len(roles) != 2:
        return f"members {sorted(roles)} with leader {lead}"
    standby = other(lead[0])
    m = roles.get(standby, {})
    if m.get("state") != "running" or m.get("lag") not in (0, "0"):
        return f"{standby} is {m.get('state')} with lag {m.get('lag')}"
    if MODE == "sync" and m.get("role") != "sync_standby":
        return f"{standby} is not the synchronous standby yet"
    try:
        if psql(standby, "select status from pg_stat_wal_receiver") != "streaming":
            return f"{standby} is not streaming"
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        return str(e)
    return None


def wait_healthy(limit=60.0):
    deadline = now() + limit
    why = None
    while now() < deadline:
        why = healthy()
        if why is None:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the cluster did not become healthy within {limit:.0f} s: {why}")


def postgres_pids(node):
    """The postmaster of a node and every process under it."""
    path = os.path.join(HOME, node, "data", "postmaster.pid")
    with open(path, encoding="ascii") as f:
        root = int(f.readline())
    children = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children[ppid].append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def walsenders(node):
    pids = [pid for pid in postgres_pids(node) if "walsender" in cmdline(pid)]
    if not pids:
        raise RuntimeError(f"{node} has no WAL sender")
    return pids


def signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


# --------------------------------------------------------------------------------------------
# tokengate

HASH_KEY = None


def tg_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TOKENGATE_", "FAILOVER_")) and k != "DATABASE_URL"}
    env.update({"DATABASE_URL": DATABASE_URL, "TOKENGATE_HASH_KEY": HASH_KEY,
                "TOKENGATE_DB_ACQUIRE_TIMEOUT": ACQUIRE_TIMEOUT, "RUST_LOG": "info",
                "TOKENGATE_LOG_FORMAT": "json", "NO_COLOR": "1"})
    env.update(extra or {})
    return env


class Replica:
    def __init__(self, name):
        self.name = name
        self.port = REPLICA_PORTS[name]
        self.log_path = os.path.join(LOG_DIR, f"{MODE}-tokengate-{name}.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [BIN, "serve"], env=tg_env({"TOKENGATE_LISTEN": f"127.0.0.1:{self.port}"}),
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        with open(PIDFILE, "a", encoding="ascii") as f:
            f.write(f"{self.proc.pid} tokengate-{name}\n")
        deadline = now() + 30
        while now() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"replica {name} exited; see {self.log_path}")
            if call(self.port, "GET", "/health/ready").status == 200:
                return
            time.sleep(0.1)
        raise RuntimeError(f"replica {name} not ready within 30 s; see {self.log_path}")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def listener_events(self):
        """[(wall-clock seconds, "connected" | "lost" | "refused", the retry delay in ms of a
        refused attempt)] from the JSON log."""
        out = []
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue
                msg = str(doc.get("fields", {}).get("message", ""))
                if "listener" not in msg:
                    continue
                kind = ("connected" if "listener connected" in msg else
                        "lost" if "listener lost" in msg else "refused")
                ts = datetime.datetime.fromisoformat(doc["timestamp"].replace("Z", "+00:00"))
                out.append((ts.timestamp(), kind, doc.get("fields", {}).get("retry_in_ms")))
        return out


# --------------------------------------------------------------------------------------------
# HTTP

class Rec:
    __slots__ = ("what", "replica", "t_start", "t_end", "wall_end", "status", "body", "err")

    def __init__(self, what, replica):
        self.what = what
        self.replica = replica
        self.t_start = now()
        self.t_end = None
        self.wall_end = None
        self.status = None
        self.body = b""
        self.err = None

    @property
    def cat(self):
        if self.err:
            return f"error:{self.err}"
        return str(self.status)


def call(port, method, path, token=None, body=None, conn=None, what="", replica=""):
    """One request; `conn` (a one-element list) keeps a connection alive between calls."""
    rec = Rec(what, replica)
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        headers["Content-Type"] = "application/json"
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
    holder = conn if conn is not None else [None]
    try:
        if holder[0] is None:
            holder[0] = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)
        holder[0].request(method, path, body=body, headers=headers)
        resp = holder[0].getresponse()
        rec.body = resp.read()
        rec.status = resp.status
        if resp.will_close or conn is None:
            holder[0].close()
            holder[0] = None
    except (OSError, http.client.HTTPException) as e:
        rec.err = type(e).__name__
        if holder[0] is not None:
            holder[0].close()
        holder[0] = None
    rec.t_end = now()
    rec.wall_end = time.time()
    return rec


def data_of(rec):
    try:
        return json.loads(rec.body)["data"]
    except (ValueError, KeyError, TypeError):
        return None


SESSION = None
LOAD_TOKEN = None


def check(port, token, conn=None, what="check", replica=""):
    return call(port, "POST", "/api/v1/auth/check", token, CHECK_BODY, conn, what, replica)


def create_token(port, name):
    r = call(port, "POST", "/api/v1/access-tokens", SESSION, {
        "name": name, "type": "Service",
        "permissions": [{"resourceType": "flag", "effect": "allow", "actions": ["*"],
                         "resources": ["project/*:env/*:flag/*"]}]})
    d = data_of(r)
    if r.status not in (200, 201) or not d:
        raise RuntimeError(f"creating token {name}: {r.status} {r.body[:300]!r}")
    return d["id"], d["token"]


def deactivate(port, token_id, replica=""):
    return call(port, "POST", f"/api/v1/access-tokens/{token_id}/deactivate", SESSION,
                what="deactivate", replica=replica)


class Load:
    """Per replica one thread checking LOAD_TOKEN and one listing tokens, each at LOAD_RATE
    requests/s at most, until stop() (or FAULT_LIMIT + 60 s)."""

    def __init__(self):
        self.stop_ev = threading.Event()
        self.recs = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._work, args=(r, w), daemon=True)
                        for r in REPLICA_PORTS for w in ("check", "list")]

    def _work(self, replica, what):
        port = REPLICA_PORTS[replica]
        conn = [None]
        deadline = now() + FAULT_LIMIT + 60
        interval = 1.0 / LOAD_RATE
        n = 0
        while not self.stop_ev.is_set() and now() < deadline and n < MAX_REQUESTS_PER_THREAD:
            t = now()
            if what == "check":
                rec = check(port, LOAD_TOKEN, conn, "check", replica)
            else:
                rec = call(port, "GET", "/api/v1/access-tokens?pageSize=5", SESSION, None, conn,
                           "list", replica)
            with self.lock:
                self.recs.append(rec)
            n += 1
            delay = interval - (now() - t)
            if delay > 0:
                time.sleep(delay)
        if conn[0] is not None:
            conn[0].close()

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout=HTTP_TIMEOUT + 5)

    def records(self):
        with self.lock:
            return sorted(self.recs, key=lambda r: r.t_start)


class Probes:
    """Per replica one thread checking the tokens being revoked, round robin, until stop()."""

    def __init__(self, tokens):
        self.tokens = tokens
        self.stop_ev = threading.Event()
        self.recs = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._work, args=(r,), daemon=True)
                        for r in REPLICA_PORTS]

    def _work(self, replica):
        port = REPLICA_PORTS[replica]
        conn = [None]
        deadline = now() + FAULT_LIMIT + 90
        i = 0
        while not self.stop_ev.is_set() and now() < deadline and i < MAX_REQUESTS_PER_THREAD:
            idx = i % len(self.tokens)
            rec = check(port, self.tokens[idx][1], conn, f"probe{idx}", replica)
            with self.lock:
                self.recs.append(rec)
            i += 1
            time.sleep(1.0 / LOAD_RATE)
        if conn[0] is not None:
            conn[0].close()

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout=HTTP_TIMEOUT + 5)

    def records(self):
        with self.lock:
            return sorted(self.recs, key=lambda r: r.t_start)


def until_403(port, secret, limit=2.0):
    """Checks `secret` until it is refused: (last answer, number of 200s seen, time of the first
    403 or None)."""
    seen200 = 0
    deadline = now() + limit
    conn = [None]
    r = None
    while now() < deadline:
        r = check(port, secret, conn)
        if r.cat == "403":
            break
        if r.cat == "200":
            seen200 += 1
        time.sleep(0.005)
    if conn[0] is not None:
        conn[0].close()
    return r.cat, seen200, (r.t_end if r.cat == "403" else None)


def wait_listeners(replicas, since, limit=8.0):
    """Until each replica's listener, if it was lost after `since`, is connected again (at most
    `limit` seconds)."""
    wall_since = time.time() - (now() - since)
    deadline = now() + limit
    while now() < deadline:
        back = True
        for rep in replicas.values():
            events = [e for e in rep.listener_events() if e[0] >= wall_since and e[1] != "refused"]
            if events and events[-1][1] != "connected":
                back = False
        if back:
            return
        time.sleep(0.2)


def recovered_at(recs, since):
    """(time of the first non-200 after `since`, the end of the first 200 after which there
    were only 200s) over `recs`; (None, None) when nothing failed."""
    mine = [r for r in recs if r.t_start >= since]
    bad = [i for i, r in enumerate(mine) if r.cat != "200"]
    if not bad:
        return None, None
    rest = mine[bad[-1] + 1:]
    return mine[bad[0]].t_start, (rest[0].t_end if rest else None)


def wait_recovered(load, since):
    """Until every load thread answered only 200 for STABLE seconds, or FAULT_LIMIT passed."""
    while now() < since + FAULT_LIMIT:
        time.sleep(0.25)
        recs = [r for r in load.records() if r.t_start >= since]
        ok = True
        for replica in REPLICA_PORTS:
            for what in ("check", "list"):
                mine = [r for r in recs if r.replica == replica and r.what == what]
                last_bad = max((r.t_end for r in mine if r.cat != "200"), default=since)
                good_after = [r for r in mine if r.t_start > last_bad]
                if not good_after or now() - good_after[0].t_end < STABLE:
                    ok = False
        if ok:
            return True
    return False


# --------------------------------------------------------------------------------------------
# Faults

def fault_switchover(state):
    old = leader()
    new = other(old)
    cfg = os.path.join(HOME, old, "patroni.yml")
    state["t_fault"] = now()
    r = subprocess.run(["patronictl", "-c", cfg, "switchover", "--leader", old, "--candidate",
                        new, "--force"], capture_output=True, text=True, timeout=45)
    if r.returncode != 0:
        raise RuntimeError(f"patronictl switchover failed: {r.stdout}{r.stderr}")
    return f"patronictl switchover {old} -> {new}"


def fault_crash(state):
    """The standby falls behind, as over a slow network: the primary's WAL senders are
    frozen, so what the primary writes from now on never leaves it. (Freezing the standby's
    receiver instead would not do: the kernel still takes the WAL into the socket's buffer,
    and the receiver reads it once thawed.)"""
    senders = walsenders(leader())
    signal_all(senders, signal.SIGSTOP)
    state["frozen"] = senders


def fault_crash_now(state, old):
    pids = postgres_pids(old)
    state["t_fault"] = now()
    signal_all(pids, signal.SIGKILL)
    state.pop("frozen", None)
    return f"kill -9 of {old}'s PostgreSQL ({len(pids)} processes), its WAL senders frozen"


def fault_freeze(state):
    old = leader()
    pids = postgres_pids(old)
    state["t_fault"] = now()
    signal_all(pids, signal.SIGSTOP)
    state["frozen"] = pids
    try:
        time.sleep(FREEZE_SECONDS)
    finally:
        signal_all(pids, signal.SIGCONT)
        state.pop("frozen", None)
    return f"SIGSTOP of {old}'s PostgreSQL ({len(pids)} processes) for {FREEZE_SECONDS:.0f} s"


def fault_long_freeze(state, tokens, acks, first):
    """The primary frozen until the standby has taken over and the tokens from `first` on are
    deactivated on it (each retried until answered 200); then thawed: for a moment it is a
    primary that missed those writes, until Patroni demotes it."""
    old = leader()
    new = other(old)
    pids = postgres_pids(old)
    state["t_fault"] = now()
    signal_all(pids, signal.SIGSTOP)
    state["frozen"] = pids
    deadline = now() + LONG_FREEZE_LIMIT
    took_over = None
    while now() < deadline:
        try:
            members = rest(new, "/cluster").get("members", [])
        except (OSError, ValueError):
            members = []
        if any(m["name"] == new and m.get("role") == "leader" and m.get("state") == "running"
               for m in members):
            took_over = now() - state["t_fault"]
            break
        time.sleep(0.25)
    attempts = 0
    for i in range(first, len(tokens)):
        via = "A" if i % 2 == 0 else "B"
        while now() < deadline:
            r = deactivate(REPLICA_PORTS[via], tokens[i][0], via)
            attempts += 1
            if r.status == 200:
                acks[i] = r
                break
            time.sleep(0.25)
    frozen_for = now() - state["t_fault"]
    signal_all(pids, signal.SIGCONT)
    state.pop("frozen", None)
    return (f"SIGSTOP of {old}'s PostgreSQL for {frozen_for:.1f} s: {new} took over after "
            f"{fmt(took_over)}; {attempts} deactivation attempts until {len(tokens) - first} "
            "were answered 200 by it")


def caught_up(node, limit=5.0):
    """Waits until the standby has flushed all the WAL `node` (the primary) has written."""
    lsn = psql(node, "select pg_current_wal_lsn()")
    deadline = now() + limit
    while now() < deadline:
        if psql(node, "select count(*) > 0 and bool_and(flush_lsn >= "
                      f"'{lsn}'::pg_lsn) from pg_stat_replication") == "t":
            return
        time.sleep(0.05)
    raise RuntimeError("the standby did not catch up before the fault")


def run_fault(name, replicas, seq):
    say(f"--- {name}: waiting for a healthy cluster")
    wait_healthy()
    say(f"--- {name}: leader {leader()}")
    # Tokens to revoke, checked (and so cached) on both replicas. The crash has two groups:
    # deactivated while the standby keeps up, then while it lags.
    count = REVOKED_PER_FAULT * (2 if name in ("crash", "long-freeze") else 1)
    tokens = [create_token(REPLICA_PORTS["A"], f"revoke-{name}-{seq}-{i}")
              for i in range(count)]
    for _, secret in tokens:
        for replica, port in REPLICA_PORTS.items():
            r = check(port, secret)
            if r.status != 200:
                raise RuntimeError(f"a new token is {r.status} on {replica} before the fault")
    state = {}
    load = Load().start()
    probes = Probes(tokens).start()
    time.sleep(1.0)
    acks = [None] * len(tokens)
    threads = []

    def revoke(i):
        via = "A" if i % 2 == 0 else "B"
        acks[i] = deactivate(REPLICA_PORTS[via], tokens[i][0], via)

    def revoke_all(indices, wait):
        """Deactivates concurrently, through A and B in turn; waits at most `wait` seconds."""
        mine = [threading.Thread(target=revoke, args=(i,), daemon=True) for i in indices]
        for t in mine:
            t.start()
        deadline = now() + wait
        for t in mine:
            t.join(timeout=max(0.0, deadline - now()))
        threads.extend(mine)

    try:
        if name == "crash":
            revoke_all(range(REVOKED_PER_FAULT), 10.0)
            pre = leader()
            caught_up(pre)
            fault_crash(state)
            # Synchronous commits now wait for the standby: a moment for them, no more.
            revoke_all(range(REVOKED_PER_FAULT, count), 1.0)
        elif name == "long-freeze":
            revoke_all(range(REVOKED_PER_FAULT), 10.0)
        else:
            revoke_all(range(count), 10.0)
        answered_before = sum(1 for a in acks if a is not None)
        if name == "switchover":
            what = fault_switchover(state)
        elif name == "crash":
            what = fault_crash_now(state, pre)
        elif name == "long-freeze":
            what = fault_long_freeze(state, tokens, acks, REVOKED_PER_FAULT)
        elif name == "freeze":
            what = fault_freeze(state)
        else:
            raise RuntimeError(f"unknown fault {name!r}")
        say(f"--- {name}: {what}")
        for t in threads:
            t.join(timeout=HTTP_TIMEOUT + 5)
        t_fault = state["t_fault"]
        ok = wait_recovered(load, t_fault)
        t_settled = now()
        wait_listeners(replicas, t_fault)
    finally:
        if state.get("frozen"):
            signal_all(state["frozen"], signal.SIGCONT)
        load.stop()
    # Final verdicts, once recovered. An acknowledged deactivation must hold on both replicas;
    # one without a 200 is looked at (did it happen?), then retried, which must be safe.
    ack_end = {i: (a.t_end, a.replica) for i, a in enumerate(acks)
               if a is not None and a.status == 200}
    acked = len(ack_end)
    lost, retried, late = [], [], []
    primary = leader()
    for i, (token_id, secret) in enumerate(tokens):
        if i in ack_end:
            finals = {rep: until_403(port, secret) for rep, port in REPLICA_PORTS.items()}
            # Lost: the primary has the token Active again (a replica still answering 200 from
            # its cache is a stale success, counted below).
            status = psql(primary, f"select status from access_tokens where id = '{token_id}'",
                          db="tokengate")
            if status != "Inactive":
                lost.append((i, status, {rep: f[0] for rep, f in finals.items()}))
        else:
            before = {rep: check(port, secret).cat for rep, port in REPLICA_PORTS.items()}
            again = deactivate(REPLICA_PORTS["B"], token_id, "B")
            if again.status == 200:
                ack_end[i] = (again.t_end, "B")
            finals = {rep: until_403(port, secret) for rep, port in REPLICA_PORTS.items()}
            retried.append((i, acks[i].cat if acks[i] else "no answer", before, again.cat,
                            {rep: f[0] for rep, f in finals.items()}))
        for rep, (_, stale200, first403) in finals.items():
            if stale200 and i in ack_end:
                late.append((rep, f"token{i}", stale200,
                             None if first403 is None else first403 - ack_end[i][0],
                             ack_end[i][1]))
    probes.stop()
    # A 200 after a deactivation's 200: from the replica that answered the deactivation it is
    # stale whenever it comes; from the other replica it is stale past NOTIFY_ALLOWANCE, before
    # that it is the NOTIFY still on its way (replicas learn of each other's writes by NOTIFY).
    stale, in_flight = [], []
    for p in probes.records():
        i = int(p.what[5:])
        if p.cat == "200" and i in ack_end and p.t_start > ack_end[i][0]:
            late.append((p.replica, f"token{i}", 1, p.t_start - ack_end[i][0], ack_end[i][1]))
    for rep, token, count, delay, acked_by in late:
        if delay is not None and rep != acked_by and delay <= NOTIFY_ALLOWANCE:
            in_flight.append((rep, token, count, f"{delay * 1000:.0f} ms", acked_by))
        else:
            stale.append((rep, token, count,
                          "still 200 after 2 s" if delay is None else f"{delay * 1000:.0f} ms",
                          acked_by))
    recs = load.records()
    first_bad, back = recovered_at(recs, t_fault)
    cats = collections.Counter(r.cat for r in recs if r.t_start >= t_fault)
    other5xx = sum(v for k, v in cats.items() if k.startswith("5") and k != "503")
    errors = sum(v for k, v in cats.items() if k.startswith("error:"))
    others = {k: v for k, v in cats.items()
              if k not in ("200", "503") and not k.startswith(("5", "error:"))}
    # The listener: connected again how long after its replica could reach the new primary
    # (the first list answered 200 after the replica's last failure; a list always reads)?
    listener, timeline, late_listeners = {}, {}, []
    wall_fault = time.time() - (now() - t_fault)
    for rep in REPLICA_PORTS:
        mine = [r for r in recs if r.replica == rep and r.t_start >= t_fault]
        last_bad = max((r.t_end for r in mine if r.cat != "200"), default=None)
        if last_bad is None:
            listener[rep] = "no outage"
            continue
        reach = [r for r in mine if r.what == "list" and r.t_start > last_bad and r.cat == "200"]
        events = [e for e in replicas[rep].listener_events() if e[0] >= wall_fault]
        conn = [e for e in events if e[1] == "connected"]
        if not reach:
            listener[rep] = "replica never reached the database"
        elif not any(e[1] == "lost" for e in events):
            listener[rep] = "never lost"
        elif not conn:
            listener[rep] = "not connected again"
        else:
            waits = [e[2] for e in events if e[1] == "refused" and e[0] < conn[-1][0]]
            longest = max((w for w in waits if isinstance(w, int)), default=0)
            gap = conn[-1][0] - reach[0].wall_end
            listener[rep] = f"{gap:+.1f} s (longest retry wait {longest / 1000:.1f} s)"
            if gap > LISTENER_LIMIT:
                late_listeners.append(rep)
        if reach:
            timeline[rep] = (f"database reached +{reach[0].wall_end - wall_fault:.1f} s; "
                             "listener " + ", ".join(f"{e[1]} +{e[0] - wall_fault:.1f}"
                                                     for e in events if e[1] != "refused"))
    result = {
        "fault": name, "what": what, "recovered": ok and back is not None,
        "recovery": (back - first_bad) if first_bad is not None and back is not None else 0.0,
        "first_bad_after": (first_bad - t_fault) if first_bad is not None else None,
        "settle": t_settled - t_fault, "cats": dict(cats), "other5xx": other5xx,
        "errors": errors, "others": others,
        "acked": acked, "answered_before_fault": answered_before, "deactivations": len(acks),
        "retried_ok": sum(1 for x in retried if x[3] == "200"),
        "ack_cats": [a.cat if a else "none" for a in acks],
        "lost": lost, "stale": sum(x[2] for x in stale), "stale_examples": stale[:6],
        "in_flight": sum(x[2] for x in in_flight), "in_flight_examples": in_flight[:6],
        "retried": retried, "listener": listener, "timeline": timeline,
        "listener_ok": not late_listeners and all(
            v == "no outage" or v == "never lost" or v.startswith(("+", "-"))
            for v in listener.values()),
        "alive": all(r.alive() for r in replicas.values()),
    }
    report(result)
    return result


def report(r):
    say(f"=== {r['fault']}: {r['what']}")
    lines = [
        f"recovered: {'yes' if r['recovered'] else 'NO'}; recovery {r['recovery']:.2f} s "
        f"(first failure {fmt(r['first_bad_after'])} after the fault)",
        f"load responses after the fault: {fmtc(r['cats'])}",
        f"5xx other than 503: {r['other5xx']}; no response (connection error or timeout): "
        f"{r['errors']}; other statuses: {r['others'] or 0}",
        f"deactivations: {r['ack_cats']} ({r['answered_before_fault']} answered before the fault)",
        f"lost acknowledged revocations (token, its status on the primary, answers): "
        f"{len(r['lost'])} of {r['acked']} {r['lost'] or ''}",
        f"stale successes: {r['stale']} (replica, token, count, how long after the "
        f"deactivation's 200, replica that gave it): {r['stale_examples'] or ''}",
        f"200s while the NOTIFY was on its way to the other replica: {r['in_flight']} "
        f"{r['in_flight_examples'] or ''}",
        f"listener connected again (vs the replica's first 200): {r['listener']}",
        f"after the fault (s): {r['timeline']}",
        f"replicas still the same processes: {'yes' if r['alive'] else 'NO'}; listeners back "
        f"within {LISTENER_LIMIT:.0f} s of the database: {'yes' if r['listener_ok'] else 'NO'}",
    ]
    for i, first, before, again, after in r["retried"]:
        lines.append(f"unacknowledged deactivation {i} (answer {first}): before retry "
                     f"{before}; retry -> {again}; after {after}")
    for line in lines:
        print(f"    {line}", flush=True)


def fmt(t):
    return "-" if t is None else f"{t:.2f} s"


def fmtc(c):
    return " ".join(f"{k}×{v}" for k, v in sorted(c.items())) or "none"


# --------------------------------------------------------------------------------------------

def setup():
    global HASH_KEY, SESSION, LOAD_TOKEN
    psql(ROUTER_PORT, "create database tokengate")
    HASH_KEY = subprocess.run([BIN, "gen-key"], capture_output=True, text=True,
                              check=True).stdout.strip()
    r = subprocess.run([BIN, "migrate"], env=tg_env(), capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"tokengate migrate failed: {r.stderr[-2000:]}")
    password = secrets.token_urlsafe(18)
    r = subprocess.run([BIN, "bootstrap", "--org", "Failover", "--email", "owner@failover.test",
                        "--name", "Owner", "--password-stdin"], env=tg_env(),
                       input=password + "\n", capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"tokengate bootstrap failed: {r.stderr[-2000:]}")
    replicas = {name: Replica(name) for name in REPLICA_PORTS}
    r = call(REPLICA_PORTS["A"], "POST", "/api/v1/identity/login",
             body={"email": "owner@failover.test", "password": password})
    SESSION = (data_of(r) or {}).get("token")
    if r.status != 200 or not SESSION:
        raise RuntimeError(f"login failed: {r.status}")
    _, LOAD_TOKEN = create_token(REPLICA_PORTS["A"], "load")
    # Both listeners must be up, or the caches are bypassed and nothing is being tested.
    deadline = now() + 15
    while now() < deadline:
        if all(any(e[1] == "connected" for e in rep.listener_events())
               for rep in replicas.values()):
            break
        time.sleep(0.2)
    else:
        raise RuntimeError("a replica's cache-invalidation listener did not connect")
    return replicas


def main():
    replicas = {}
    results = []
    try:
        replicas = setup()
        for seq, name in enumerate(FAULTS):
            results.append(run_fault(name, replicas, seq))
        wait_healthy()
    except Interrupted:
        say("interrupted")
        summary(results)
        return 2
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        say(f"error: {e}")
        summary(results)
        return 2
    finally:
        for rep in replicas.values():
            rep.stop()
    summary(results)
    # Asynchronous replication is the comparison: its lost revocations are reported, not judged.
    failed = [r for r in results if r["other5xx"] or r["errors"] or not r["recovered"]
              or not r["alive"]
              or not r["listener_ok"] or (MODE == "sync" and (r["lost"] or r["stale"]))]
    return 1 if failed else 0


def summary(results):
    print(f"\nSUMMARY {MODE} (synchronous_mode: {'true' if MODE == 'sync' else 'false'})",
          flush=True)
    print(f"  {'fault':<11} {'recovery':>9} {'503s':>5} {'other 5xx':>9} {'no answer':>9} "
          f"{'acked':>7} {'lost':>4} {'stale':>5} {'retried':>7} {'in flight':>9}  "
          "listener connected again after the primary was reachable", flush=True)
    for r in results:
        print(f"  {r['fault']:<11} {r['recovery']:>7.2f} s {r['cats'].get('503', 0):>5} "
              f"{r['other5xx']:>9} {r['errors']:>9} {r['acked']:>5}/{r['deactivations']} "
              f"{len(r['lost']):>4} {r['stale']:>5} {r['retried_ok']:>5}/{len(r['retried'])} "
              f"{r['in_flight']:>9}  "
              + ", ".join(f"{k} {v}" for k, v in r["listener"].items()), flush=True)
    print("  (recovery: first failure to steady 200s; acked: deactivations answered 200, before "
          "the fault or, in the long freeze, by the new primary during it; lost: of those, Active "
          "again on the primary afterwards; stale: 200s for a token after its deactivation's "
          "200; retried: deactivations without a 200, retried and answered 200; in flight: 200s "
          f"from the other replica within {NOTIFY_ALLOWANCE * 1000:.0f} ms, before its NOTIFY "
          "arrived)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
