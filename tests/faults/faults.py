#!/usr/bin/env python3
"""The fault-injection cases of scripts/faults (run that script, not this file).

tests/faults/run (which scripts/faults calls) builds tokengate, brings up a private PostgreSQL
cluster and passes everything in FAULTS_* environment variables; this file seeds an
organization, starts tokengate processes on free 127.0.0.1 ports, injects the faults and judges
every response. Standard library only.

Each response is put in one category:
  "200"            a 200 whose body is right for its endpoint (check: data.allowed is true;
                   list: data.items is a non-empty list)
  "503"            exactly {"success":false,"errors":["ServiceUnavailable"],"data":null}
  "leak"           any body mentioning database internals (LEAK_WORDS), whatever its status
  "200-bad-body", "503-bad-body", "<status>"       anything else
  "error:<Name>"   no response at all (connection refused/reset, timeout, ...)
Only "200" and "503" are acceptable while PostgreSQL is up or recovering, only "503" while it is
down. 429 (failed-authentication rate limit) is reported on its own and counts as a failure:
these are valid credentials.
"""

import collections
import http.client
import json
import re
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time

BIN = os.environ["FAULTS_BIN"]
SCRIPT = os.environ["FAULTS_SCRIPT"]
PG_BIN = os.environ["FAULTS_PG_BIN"]
PG_PORT = os.environ["FAULTS_PG_PORT_ACTUAL"]
DB_NAME = os.environ["FAULTS_DB_NAME"]
DATABASE_URL = os.environ["FAULTS_DATABASE_URL"]
LOG_DIR = os.environ["FAULTS_LOG_DIR"]
PIDFILE = os.environ["FAULTS_PIDFILE"]
CASES = os.environ.get("FAULTS_CASES", "1 2 3 4 5").split()

ENVELOPE_503 = {"success": False, "errors": ["ServiceUnavailable"], "data": None}
LEAK_WORDS = ("sqlx", "connection", "postgres", "error returned from database", "database",
              "pool timed out", "io error", "broken pipe")
CHECK_BODY = json.dumps({"checks": [{"action": "ManageFeatureFlag",
                                     "resource": "project/a:env/b:flag/c"}]}).encode()
ENDPOINTS = ("check", "list")
# Case 1: how long PostgreSQL stays down, and tokengate's pool acquire timeout there. The outage
# must outlast the acquire timeout: with the default 5 s and a 3 s outage, requests simply wait
# for the database and are answered 200 once it is back, so nothing is answered while it is down.
OUTAGE = float(os.environ.get("FAULTS_OUTAGE_SECONDS", "6"))
ACQUIRE = os.environ.get("FAULTS_ACQUIRE_TIMEOUT", "2")
HTTP_TIMEOUT = 10.0          # a request that takes longer is an error ("hang")
MAX_REQUESTS_PER_WORKER = 20000

ANSI = re.compile(r"\x1b\[[0-9;]*m")
T0 = time.monotonic()


def now():
    return time.monotonic()


def say(msg):
    print(f"[faults +{now() - T0:6.2f}s] {msg}", flush=True)


class Interrupted(BaseException):
    pass


def _on_term(_signum, _frame):
    raise Interrupted()


signal.signal(signal.SIGTERM, _on_term)


# --------------------------------------------------------------------------------------------
# PostgreSQL


def pg(action):
    """Stop or start the faults cluster through tests/faults/run --pg (scripts/lib/db.sh)."""
    r = subprocess.run([SCRIPT, "--pg", action], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"tests/faults/run --pg {action} failed: {r.stderr.strip()}")


def psql_cmd(*sql):
    cmd = [f"{PG_BIN}/psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
           "-p", PG_PORT, "-U", "postgres", "-d", DB_NAME]
    for s in sql:
        cmd += ["-c", s]
    return cmd


PSQL_ENV = {**os.environ, "PGCONNECT_TIMEOUT": "5"}


def psql(sql, timeout=20):
    r = subprocess.run(psql_cmd(sql), capture_output=True, text=True, timeout=timeout,
                       env=PSQL_ENV)
    if r.returncode != 0:
        raise RuntimeError(f"psql failed: {r.stderr.strip()}")
    return r.stdout.strip()


def hold_lock(seconds):
    """A psql session holding ACCESS EXCLUSIVE on access_tokens for `seconds` (self-releasing)."""
    return subprocess.Popen(
        psql_cmd("begin", "lock table access_tokens in access exclusive mode",
                 f"select pg_sleep({seconds})", "commit"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=PSQL_ENV)


def wait_lock_granted(limit=5.0):
    deadline = now() + limit
    while now() < deadline:
        n = psql("select count(*) from pg_locks l join pg_class c on c.oid = l.relation "
                 "where c.relname = 'access_tokens' and l.mode = 'AccessExclusiveLock' "
                 "and l.granted")
        if n != "0":
            return True
        time.sleep(0.05)
    return False


def lock_waiters():
    return int(psql(f"select count(*) from pg_stat_activity where datname = '{DB_NAME}' "
                    "and wait_event_type = 'Lock'"))


def wait_lock_waiters(n, limit=3.0):
    deadline = now() + limit
    w = 0
    while now() < deadline:
        w = lock_waiters()
        if w >= n:
            break
        time.sleep(0.05)
    return w


# --------------------------------------------------------------------------------------------
# tokengate processes

HASH_KEY = None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tg_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TOKENGATE_", "FAULTS_")) and k != "DATABASE_URL"}
    env.update({"DATABASE_URL": DATABASE_URL, "TOKENGATE_HASH_KEY": HASH_KEY,
                "RUST_LOG": "info", "TOKENGATE_LOG_FORMAT": "text", "NO_COLOR": "1"})
    env.update(extra or {})
    return env


class Tokengate:
    def __init__(self, name, extra_env=None, wait_live=True):
        self.name = name
        self.port = free_port()
        self.log_path = os.path.join(LOG_DIR, f"{name}.log")
        env = tg_env({"TOKENGATE_LISTEN": f"127.0.0.1:{self.port}", **(extra_env or {})})
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([BIN, "serve"], env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pid = self.proc.pid
        with open(PIDFILE, "a", encoding="ascii") as f:
            f.write(f"{self.pid}\n")
        if wait_live:
            deadline = now() + 20
            while now() < deadline:
                if not self.alive():
                    raise RuntimeError(f"{name} exited with {self.proc.returncode}; "
                                       f"see {self.log_path}")
                r = Client(self.port).call("live")
                if r.status == 200:
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError(f"{name}: /health/live did not answer within 20 s")

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

    def log_lines(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return ANSI.sub("", f.read()).splitlines()


# --------------------------------------------------------------------------------------------
# HTTP

class Rec:
    __slots__ = ("ep", "t_start", "t_conn", "t_end", "status", "body", "err", "cat")

    def __init__(self, ep):
        self.ep = ep
        self.t_start = now()
        self.t_conn = None
        self.t_end = None
        self.status = None
        self.body = b""
        self.err = None
        self.cat = None


TOKENS = {}   # "service": tgs_…, "session": tgw_…


def request_for(ep):
    if ep == "check":
        return "POST", "/api/v1/auth/check", CHECK_BODY, TOKENS.get("service")
    if ep == "list":
        return "GET", "/api/v1/access-tokens", None, TOKENS.get("session")
    if ep == "live":
        return "GET", "/health/live", None, None
    if ep == "ready":
        return "GET", "/health/ready", None, None
    raise ValueError(ep)


class Client:
    """One HTTP/1.1 connection, kept alive unless keepalive=False (then one per request)."""

    def __init__(self, port, keepalive=True, timeout=HTTP_TIMEOUT):
        self.port = port
        self.keepalive = keepalive
        self.timeout = timeout
        self.conn = None

    def call(self, ep):
        method, path, body, token = request_for(ep)
        headers = {"Connection": "keep-alive" if self.keepalive else "close"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            headers["Content-Type"] = "application/json"
        rec = Rec(ep)
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                       timeout=self.timeout)
                self.conn.connect()
            rec.t_conn = now()
            self.conn.request(method, path, body=body, headers=headers)
            resp = self.conn.getresponse()
            rec.body = resp.read()
            rec.status = resp.status
            if not self.keepalive or resp.will_close:
                self.close()
        except (OSError, http.client.HTTPException) as e:
            rec.err = type(e).__name__
            self.close()
        rec.t_end = now()
        return rec

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def category(r):
    if r.cat is None:
        r.cat = _category(r)
    return r.cat


def _category(r):
    if r.err:
        return f"error:{r.err}"
    text = r.body.decode("utf-8", "replace")
    if any(w in text.lower() for w in LEAK_WORDS):
        return "leak"
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if r.status == 200:
        ok = isinstance(doc, dict) and doc.get("success") is True
        data = doc.get("data") if ok else None
        if r.ep == "check":
            ok = ok and isinstance(data, dict) and data.get("allowed") is True
        elif r.ep == "list":
            ok = ok and isinstance(data, dict) and isinstance(data.get("items"), list) \
                and len(data["items"]) > 0
        return "200" if ok else "200-bad-body"
    if r.status == 503:
        return "503" if doc == ENVELOPE_503 else "503-bad-body"
    return str(r.status)


GOOD = {"200", "503"}


def counts(recs):
    """{"check": "200×12 503×3", ...} for the records given."""
    out = {}
    for ep in ENDPOINTS:
        c = collections.Counter(category(r) for r in recs if r.ep == ep)
        out[ep] = " ".join(f"{k}×{v}" for k, v in sorted(c.items())) or "none"
    return out


def show_counts(result, label, recs):
    c = counts(recs)
    result.info(f"{label:<28} check: {c['check']:<30} list: {c['list']}")


def example(recs, cats):
    for r in recs:
        if category(r) in cats:
            return (f"{r.ep} status={r.status} err={r.err} "
                    f"body={r.body[:200].decode('utf-8', 'replace')!r}")
    return None


class Load:
    """`workers` threads, each at most `rate` requests/s, alternating the two endpoints, until
    stop() or `max_seconds`; at most MAX_REQUESTS_PER_WORKER requests per thread."""

    def __init__(self, port, workers=8, rate=150, keepalive=True, max_seconds=45):
        self.port = port
        self.workers = workers
        self.rate = rate
        self.keepalive = keepalive
        self.max_seconds = max_seconds
        self.stop_ev = threading.Event()
        self.lists = [[] for _ in range(workers)]
        self.threads = [threading.Thread(target=self._work, args=(i,), daemon=True)
                        for i in range(workers)]

    def _work(self, i):
        client = Client(self.port, keepalive=self.keepalive)
        out = self.lists[i]
        deadline = now() + self.max_seconds
        interval = 1.0 / self.rate
        next_t = now()
        n = i
        while not self.stop_ev.is_set() and now() < deadline and len(out) < MAX_REQUESTS_PER_WORKER:
            out.append(client.call(ENDPOINTS[n % 2]))
            n += 1
            next_t += interval
            delay = next_t - now()
            if delay > 0:
                time.sleep(delay)
            else:
                next_t = now()
        client.close()

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout=HTTP_TIMEOUT + 5)

    def records(self):
        recs = [r for lst in self.lists for r in list(lst)]
        recs.sort(key=lambda r: r.t_start)
        return recs


def recovery(recs, since):
    """Per endpoint: (seconds from `since` to the first 200 after which that endpoint only
    answered 200, or None; number of requests after `since`)."""
    out = {}
    for ep in ENDPOINTS:
        mine = [r for r in recs if r.ep == ep and r.t_start >= since]
        last_bad = max((i for i, r in enumerate(mine) if category(r) != "200"), default=-1)
        rest = mine[last_bad + 1:]
        out[ep] = (rest[0].t_end - since if rest else None, len(mine))
    return out


def wait_stable(load, since, limit, stable=3.0):
    """Waits until both endpoints have answered only 200 for `stable` seconds (or `limit` +
    `stable` seconds have passed since `since`)."""
    while now() < since + limit + stable:
        time.sleep(0.25)
        rec = recovery(load.records(), since)
        if all(t is not None and now() - (since + t) >= stable for t, _ in rec.values()):
            return


# --------------------------------------------------------------------------------------------
# Results

class Result:
    def __init__(self, number, title):
        self.number = number
        self.title = title
        self.failures = []
        self.lines = []

    def info(self, line):
        self.lines.append(line)

    def check(self, ok, what):
        self.lines.append(f"{'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            self.failures.append(what)
        return ok

    def print(self):
        verdict = "PASS" if not self.failures else "FAIL"
        print(f"\n{verdict} case {self.number}: {self.title}", flush=True)
        for line in self.lines:
            print(f"    {line}", flush=True)


def fmt(t):
    return "never" if t is None else f"{t:.2f} s"


def grep_log(tg, needle, limit=3):
    return [line for line in tg.log_lines() if needle in line.lower()][:limit]


def assert_working(port, result, what):
    c = Client(port)
    got = {ep: category(c.call(ep)) for ep in ENDPOINTS}
    c.close()
    result.check(all(v == "200" for v in got.values()), f"{what}: check {got['check']}, "
                                                        f"list {got['list']}")


# --------------------------------------------------------------------------------------------
# Set-up

def setup():
    global HASH_KEY
    HASH_KEY = subprocess.run([BIN, "gen-key"], capture_output=True, text=True,
                              check=True).stdout.strip()
    r = subprocess.run([BIN, "migrate"], env=tg_env(), capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"tokengate migrate failed: {r.stderr[-2000:]}")
    password = secrets.token_urlsafe(18)
    r = subprocess.run([BIN, "bootstrap", "--org", "Faults", "--email", "owner@faults.test",
                        "--name", "Owner", "--password-stdin"], env=tg_env(),
                       input=password + "\n", capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"tokengate bootstrap failed: {r.stderr[-2000:]}")
    tg = Tokengate("setup")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", tg.port, timeout=30)

        def post(path, body, token=None):
            headers = {"Content-Type": "application/json"}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            conn.request("POST", path, body=json.dumps(body), headers=headers)
            resp = conn.getresponse()
            doc = json.loads(resp.read())
            if resp.status not in (200, 201) or not doc.get("success"):
                raise RuntimeError(f"POST {path}: {resp.status} {doc}")
            return doc["data"]

        TOKENS["session"] = post("/api/v1/identity/login",
                                 {"email": "owner@faults.test", "password": password})["token"]
        TOKENS["service"] = post("/api/v1/access-tokens", {
            "name": "faults-service", "type": "Service",
            "permissions": [{"resourceType": "flag", "effect": "allow", "actions": ["*"],
                             "resources": ["project/*:env/*:flag/*"]}]},
            TOKENS["session"])["token"]
        conn.close()
        c = Client(tg.port)
        for ep in ENDPOINTS:
            r = c.call(ep)
            if category(r) != "200":
                raise RuntimeError(f"{ep} does not work before any fault: {r.status} {r.body!r}")
        c.close()
    finally:
        tg.stop()


# --------------------------------------------------------------------------------------------
# Cases

def common_checks(result, recs, tg, pid):
    bad = [r for r in recs if category(r) not in GOOD]
    cats = collections.Counter(category(r) for r in bad)
    five = sum(v for k, v in cats.items() if k.startswith("5") and k != "503")
    result.check(not any(k.startswith("5") and k not in GOOD for k in cats),
                 f"no 5xx other than 503 (got {five})")
    result.check(cats["leak"] == 0, f"no body with database error text (got {cats['leak']})")
    result.check(cats["200-bad-body"] == 0 and cats["503-bad-body"] == 0,
                 f"no 200/503 with a wrong body (got {cats['200-bad-body']} / "
                 f"{cats['503-bad-body']})")
    result.check(cats["429"] == 0, f"no 429 for valid credentials (got {cats['429']})")
    errs = {k: v for k, v in cats.items() if k.startswith("error:")}
    result.check(not errs, f"no request without a response (connection error/timeout): {errs or 0}")
    others = {k: v for k, v in cats.items()
              if k not in ("leak", "200-bad-body", "503-bad-body", "429")
              and not k.startswith(("error:", "5"))}
    result.check(not others, f"no other status: {others or 'none'}")
    if bad:
        result.info(f"first bad response: {example(bad, set(cats))}")
    result.check(tg.alive() and tg.proc.pid == pid,
                 f"the same tokengate process still running, never restarted (pid {pid})")


def case_restart(tg):
    result = Result(1, f"PostgreSQL stopped {OUTAGE:g} s and started again under load")
    load = Load(tg.port, workers=16, rate=75).start()
    try:
        time.sleep(3)
        t_stop_begin = now()
        pg("stop")
        t_stop_done = now()
        time.sleep(OUTAGE)
        t_start_begin = now()
        pg("start")
        t_start_done = now()
        wait_stable(load, t_start_done, limit=15)
    finally:
        load.stop()
    recs = load.records()
    result.info(f"tokengate with TOKENGATE_DB_ACQUIRE_TIMEOUT={ACQUIRE}; pg_ctl stop -m fast "
                f"took {t_stop_done - t_stop_begin:.2f} s; down {t_start_begin - t_stop_done:.2f}"
                f" s; pg_ctl start took {t_start_done - t_start_begin:.2f} s; {len(recs)} "
                f"requests in {recs[-1].t_end - recs[0].t_start:.1f} s")
    before = [r for r in recs if r.t_end < t_stop_begin]
    # Answered while PostgreSQL was fully stopped (100 ms after pg_ctl stop returned, until
    # pg_ctl start was run): nothing can legitimately be a 200 there.
    down = [r for r in recs if t_stop_done + 0.1 < r.t_end <= t_start_begin]
    after = [r for r in recs if r.t_start >= t_start_done]
    seen = {id(r) for r in before + down + after}
    other = [r for r in recs if id(r) not in seen]
    show_counts(result, "answered before the stop", before)
    show_counts(result, "answered while down", down)
    show_counts(result, "around stop/start", other)
    show_counts(result, "sent after start returned", after)
    if down:
        lat = sorted(r.t_end - r.t_start for r in down)
        first_503 = min((r.t_end for r in down if category(r) == "503"), default=None)
        result.info(f"while down: latency min {lat[0]:.2f} s, max {lat[-1]:.2f} s; first 503 "
                    + ("never" if first_503 is None else
                       f"{first_503 - t_stop_begin:+.2f} s after the stop began"))
    stop_200 = [r for r in recs if category(r) == "200" and r.t_end >= t_stop_begin
                and r.t_start < t_stop_done]
    if stop_200:
        result.info(f"{len(stop_200)} requests sent before pg_ctl stop returned got 200, the "
                    f"last answered {max(r.t_end for r in stop_200) - t_stop_begin:+.3f} s after "
                    f"the stop began (PostgreSQL back at {t_start_done - t_stop_begin:+.3f} s)")
    down_200 = [r for r in down if r.status == 200]
    for r in down_200[:5]:
        result.info(f"200 WHILE DOWN: {r.ep} sent {r.t_start - t_stop_done:+.3f} s, answered "
                    f"{r.t_end - t_stop_done:+.3f} s after PostgreSQL stopped")
    if OUTAGE <= float(ACQUIRE) + 1:
        result.info("the outage is not longer than the acquire timeout + 1 s: requests may wait "
                    "it out and get 200 afterwards, so none has to be answered while down")
    result.check((down or OUTAGE <= float(ACQUIRE) + 1)
                 and all(category(r) == "503" for r in down),
                 f"every response while PostgreSQL was down is the 503 ServiceUnavailable "
                 f"envelope ({sum(category(r) == '503' for r in down)}/{len(down)}; "
                 f"200s: {len(down_200)})")
    common_checks(result, recs, tg, tg.proc.pid)
    for ep, (t, n) in recovery(recs, t_start_done).items():
        result.check(t is not None and t <= 15,
                     f"{ep}: only 200s from {fmt(t)} after PostgreSQL was back ({n} requests)")
    assert_working(tg.port, result, "after the case")
    return result


def case_kill(tg):
    result = Result(2, "all database connections killed 3 times under load")
    kill_sql = ("select count(*) filter (where pg_terminate_backend(pid)) from pg_stat_activity "
                f"where datname = '{DB_NAME}' and pid <> pg_backend_pid()")
    load = Load(tg.port).start()
    kills = []
    try:
        time.sleep(2)
        for i in range(3):
            if i:
                time.sleep(1)
            t = now()
            n = psql(kill_sql)
            kills.append((t, now(), n))
        t_last = kills[-1][1]
        wait_stable(load, t_last, limit=15)
    finally:
        load.stop()
    recs = load.records()
    t_first = kills[0][0]
    result.info("backends terminated per kill: " + ", ".join(n for _, _, n in kills) +
                f"; {len(recs)} requests in {recs[-1].t_end - recs[0].t_start:.1f} s")
    show_counts(result, "before the first kill", [r for r in recs if r.t_end < t_first])
    show_counts(result, "during the kills", [r for r in recs
                                             if r.t_end >= t_first and r.t_start < t_last])
    show_counts(result, "after the last kill", [r for r in recs if r.t_start >= t_last])
    common_checks(result, recs, tg, tg.proc.pid)
    for ep, (t, n) in recovery(recs, t_last).items():
        result.check(t is not None and t <= 15,
                     f"{ep}: only 200s from {fmt(t)} after the last kill ({n} requests)")
    return result


def case_down_at_start():
    result = Result(3, "database down when tokengate starts")
    pg("stop")
    tg = None
    try:
        t_launch = now()
        tg = Tokengate("case3-down-at-start", wait_live=False)
        live_at = None
        while now() < t_launch + 10:
            if live_at is None and Client(tg.port).call("live").status == 200:
                live_at = now() - t_launch
            time.sleep(0.25)
        result.info(f"/health/live first answered {fmt(live_at)} after launch")
        result.check(tg.alive(), f"process alive 10 s after launch "
                                 f"(exit code {tg.proc.returncode})")
        c = Client(tg.port)
        live = c.call("live")
        result.check(live.status == 200, f"/health/live {live.status or live.err}")
        ready = c.call("ready")
        result.check(category(ready) == "503",
                     f"/health/ready {ready.status or ready.err} ({category(ready)})")
        for ep in ENDPOINTS:
            r = c.call(ep)
            result.check(category(r) == "503", f"{ep} while the database is down: "
                                               f"{r.status or r.err} ({category(r)})")
        c.close()
        lines = grep_log(tg, "retrying")
        result.check(bool(lines), f"log has a 'retrying' line ({len(grep_log(tg, 'retrying', 99))}"
                                  " so far)")
        if lines:
            result.info(f"log: {lines[0].strip()[:220]}")
    finally:
        t_pg = now()
        pg("start")
        t_pg_done = now()
    try:
        if tg is None:
            return result
        result.info(f"pg_ctl start took {t_pg_done - t_pg:.2f} s")
        ready_at = None
        while now() < t_pg_done + 20:
            if Client(tg.port).call("ready").status == 200:
                ready_at = now() - t_pg_done
                break
            time.sleep(0.1)
        result.check(ready_at is not None and ready_at <= 20,
                     f"/health/ready 200 {fmt(ready_at)} after PostgreSQL was back (limit 20 s)")
        assert_working(tg.port, result, "authenticated calls afterwards")
        result.check(tg.alive(), f"never restarted (pid {tg.pid} still running)")
        for line in grep_log(tg, "database ready", 1):
            result.info(f"log: {line.strip()[:220]}")
    finally:
        tg.stop()
    return result


def case_pool_exhausted():
    result = Result(4, "connections exhausted (2 pooled + 2 verification connections, acquire "
                       "timeout 1 s, caches off)")
    tg = Tokengate("case4-pool", {"TOKENGATE_DB_MAX_CONNECTIONS": "2",
                                  "TOKENGATE_DB_VERIFY_CONNECTIONS": "2",
                                  "TOKENGATE_DB_ACQUIRE_TIMEOUT": "1",
                                  "TOKENGATE_CACHE_MAX_ENTRIES": "0"})
    locker = None
    try:
        deadline = now() + 15
        while Client(tg.port).call("ready").status != 200 and now() < deadline:
            time.sleep(0.1)
        assert_working(tg.port, result, "before the lock")
        locker = hold_lock(8)
        t_lock = now()
        result.check(wait_lock_granted(), "ACCESS EXCLUSIVE lock on access_tokens taken")
        plugs = []

        def plug():
            plugs.append(Client(tg.port, timeout=30).call("check"))
        plug_threads = [threading.Thread(target=plug, daemon=True) for _ in range(2)]
        for t in plug_threads:
            t.start()
        waiting = wait_lock_waiters(2)
        result.info(f"{waiting} tokengate connections waiting on the lock before probing")
        probes = []

        def probe(ep):
            probes.append(Client(tg.port).call(ep))
        for _ in range(2):
            threads = [threading.Thread(target=probe, args=(ep,), daemon=True)
                       for ep in ENDPOINTS for _ in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        t_probed = now()
        result.info(f"probes done {t_probed - t_lock:.2f} s after the lock was taken "
                    "(lock held 8 s)")
        lat = [r.t_end - r.t_start for r in probes]
        show_counts(result, "probes while exhausted", probes)
        result.info(f"probe latency min {min(lat):.2f} s, max {max(lat):.2f} s")
        result.check(all(category(r) == "503" for r in probes),
                     f"every probe answered the 503 ServiceUnavailable envelope "
                     f"({sum(category(r) == '503' for r in probes)}/{len(probes)})")
        result.check(max(lat) < 3, f"every probe answered in < 3 s (max {max(lat):.2f} s)")
        if any(category(r) != "503" for r in probes):
            result.info(f"first other: {example(probes, {category(r) for r in probes} - {'503'})}")
        locker.wait(timeout=20)
        t_release = now()
        for t in plug_threads:
            t.join(timeout=30)
        for r in plugs:
            result.info(f"request holding a connection during the lock: {category(r)} after "
                        f"{r.t_end - r.t_start:.2f} s (answered {r.t_end - t_release:+.2f} s "
                        "from the release)")
        result.check(all(category(r) in GOOD for r in plugs),
                     "the requests stuck behind the lock end in 200 or 503")
        back = None
        while now() < t_release + 10:
            c = Client(tg.port)
            if all(category(c.call(ep)) == "200" for ep in ENDPOINTS):
                back = now() - t_release
                break
            time.sleep(0.1)
        result.check(back is not None, f"200 again {fmt(back)} after the lock was released")
        result.check(tg.alive(), "process still running")
    finally:
        if locker is not None and locker.poll() is None:
            locker.kill()
        tg.stop()
    return result


def case_sigterm():
    grace = 5
    result = Result(5, f"SIGTERM with requests in flight (TOKENGATE_SHUTDOWN_GRACE={grace})")
    tg = Tokengate("case5-sigterm", {"TOKENGATE_SHUTDOWN_GRACE": str(grace)})
    locker = None
    try:
        deadline = now() + 15
        while Client(tg.port).call("ready").status != 200 and now() < deadline:
            time.sleep(0.1)
        # One connection per request: a request is "in flight" once its connection is open.
        load = Load(tg.port, workers=6, rate=100, keepalive=False, max_seconds=30).start()
        slow = []
        slow_threads = []
        try:
            time.sleep(1.5)
            locker = hold_lock(3)
            result.check(wait_lock_granted(), "ACCESS EXCLUSIVE lock on access_tokens taken "
                                              "(held 3 s, so requests are in flight)")

            def slow_call():
                slow.append(Client(tg.port, keepalive=False, timeout=30).call("list"))
            slow_threads = [threading.Thread(target=slow_call, daemon=True) for _ in range(4)]
            for t in slow_threads:
                t.start()
            waiting = wait_lock_waiters(4)
            result.info(f"{waiting} requests blocked behind the lock when SIGTERM is sent")
            t_sig = now()
            tg.proc.send_signal(signal.SIGTERM)
            try:
                code = tg.proc.wait(timeout=grace + 6)
            except subprocess.TimeoutExpired:
                code = None
            t_exit = now() - t_sig
            time.sleep(0.5)
        finally:
            load.stop()
            for t in slow_threads:
                t.join(timeout=30)
        recs = load.records() + slow
        result.check(code == 0, f"exit status {code}")
        result.check(code is not None and t_exit <= grace + 2,
                     f"exited {t_exit:.2f} s after SIGTERM (limit {grace + 2} s)")
        sent_before = [r for r in recs if r.t_conn is not None and r.t_conn < t_sig]
        answered = [r for r in sent_before if r.err is None]
        lost = [r for r in sent_before if r.err is not None]
        in_flight = [r for r in sent_before if r.t_end > t_sig]
        result.info(f"{len(recs)} requests; {len(sent_before)} had their connection before the "
                    f"signal, {len(in_flight)} of them still in flight at the signal")
        show_counts(result, "connected before SIGTERM", sent_before)
        show_counts(result, "in flight at SIGTERM", in_flight)
        late = [r.t_end - t_sig for r in in_flight if r.err is None]
        if late:
            result.info(f"in-flight requests answered up to {max(late):.2f} s after SIGTERM")
        result.check(not lost, f"no request connected before SIGTERM lost its response "
                               f"(lost {len(lost)}: "
                               f"{dict(collections.Counter(r.err for r in lost)) or 0})")
        result.check(all(category(r) in GOOD for r in answered),
                     "the answered ones are 200 or the 503 envelope (no 500)")
        result.check(len(slow) == 4 and all(category(r) == "200" for r in slow),
                     "the 4 requests held behind the lock got 200: "
                     + ", ".join(f"{category(r)} at {r.t_end - t_sig:+.2f} s" for r in slow))
        after = [r for r in recs if r.t_conn is None or r.t_conn >= t_sig]
        after_c = collections.Counter(category(r) for r in after)
        result.info(f"requests connecting after SIGTERM: {dict(after_c)} (refused is expected)")
        after_bad = {k: v for k, v in after_c.items()
                     if k not in GOOD and not k.startswith("error:")}
        result.check(not after_bad, f"after SIGTERM: answered (200/503) or not connected, no "
                                    f"other status ({after_bad or 'none'})")
        for needle in ("shutdown signal received", "shut down"):
            lines = grep_log(tg, needle, 1)
            result.check(bool(lines), f"log line '{needle}'"
                         + (f": {lines[0].strip()[:160]}" if lines else ""))
    finally:
        if locker is not None:
            try:
                locker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                locker.kill()
        tg.stop()
    return result


def ensure_pg_up():
    try:
        psql("select 1", timeout=10)
    except (RuntimeError, subprocess.TimeoutExpired):
        pg("start")


def main():
    results = []
    tgs = []
    try:
        say("seeding: migrate, bootstrap, login, service token")
        try:
            setup()
        except Exception as e:
            print(f"[faults] set-up failed: {type(e).__name__}: {e}", flush=True)
            return 2
        if "1" in CASES or "2" in CASES:
            tg = Tokengate("case1-2-restart-kill", {"TOKENGATE_DB_ACQUIRE_TIMEOUT": ACQUIRE})
            tgs.append(tg)
        plan = [("1", lambda: case_restart(tgs[0])), ("2", lambda: case_kill(tgs[0])),
                ("3", case_down_at_start), ("4", case_pool_exhausted), ("5", case_sigterm)]
        for number, run in plan:
            if number not in CASES:
                continue
            say(f"case {number}")
            try:
                result = run()
            except Exception as e:   # a broken case must not stop the others
                result = Result(number, "did not complete")
                result.check(False, f"{type(e).__name__}: {e}")
                ensure_pg_up()
            result.print()
            results.append(result)
            if number == "2" or (number == "1" and "2" not in CASES):
                tgs[0].stop()
    except Interrupted:
        print("[faults] interrupted", flush=True)
        return 130
    finally:
        for tg in tgs:
            tg.stop()
    failed = [r for r in results if r.failures]
    print(f"\nsummary: {len(results) - len(failed)} passed, {len(failed)} failed "
          f"({now() - T0:.0f} s); logs in {LOG_DIR}", flush=True)
    for r in results:
        print(f"  {'PASS' if not r.failures else 'FAIL'} case {r.number}: {r.title}", flush=True)
    return 1 if failed or len(results) < len(CASES) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Interrupted:
        sys.exit(143)
