#!/usr/bin/env python3
"""tokengate at scale (SPEC §8's scale rows, issue 14). Run through `bench/scale`, which builds
the release binary with `--features bench`, brings up PostgreSQL and exports DATABASE_URL.

For each N of BENCH_SCALE_N (default "10000 100000 1000000"):
  - a fresh database, seeded straight through SQL (bench/scale_seed.py): one organization with
    N service tokens, N/10 members (Developer policy), a custom policy on 10,000 of them (all
    when fewer) who each hold a personal token, and 10 × N audit rows;
  - three tokengate processes on 127.0.0.1 against it: A (cache ≥ N), B (a second replica,
    cache ≥ N) and Z (cache N/10);
  - the measures, through the API, with wrk (bounded durations) and small Python clients
    (bounded counts); throughput as ratios against `/health/live` measured in the same round on
    the same process with the same client, rounds interleaved, median of rounds (as bench.py).
Writes .data/bench-scale/result-N.json per N; bench/scale_report.py makes the table and plot.
"""

import base64
import datetime
import json
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

import bench
import scale_report
import scale_seed
from bench import Client, must, median_run, wrk

ROOT = bench.ROOT
BIN = bench.BIN
DATA = os.path.join(ROOT, ".data", "bench-scale")
LUA_CREDENTIALS = os.path.join(ROOT, "bench", "wrk", "credentials.lua")
LUA_CREATE = os.path.join(ROOT, "bench", "wrk", "create.lua")


def env_int(name, default, smoke_default):
    return int(os.environ.get(name, smoke_default if SMOKE else default))


SMOKE = os.environ.get("BENCH_SCALE_SMOKE") == "1"
NS = [int(x) for x in os.environ.get("BENCH_SCALE_N", "10000 100000 1000000").split()]
DURATION = env_int("BENCH_SCALE_DURATION", 5, 1)  # seconds per throughput wrk run
ROUNDS = env_int("BENCH_SCALE_ROUNDS", 5, 1)  # interleaved rounds of each throughput pair (as bench/run)
WARMUP = env_int("BENCH_SCALE_WARMUP", 2, 0)  # discarded seconds of each measure first
LIST_DURATION = env_int("BENCH_SCALE_LIST_DURATION", 3, 1)  # seconds of one client per list page
CREATE_DURATION = env_int("BENCH_SCALE_CREATE_DURATION", 3, 1)
EDIT_ROUNDS = env_int("BENCH_SCALE_EDIT_ROUNDS", 3, 1)  # policy edits under load
EDIT_WINDOW = env_int("BENCH_SCALE_EDIT_WINDOW", 6, 2)  # seconds of load around each edit
REPLICA_EDITS = env_int("BENCH_SCALE_REPLICA_EDITS", 50, 5)  # edits timed on the other replica
SWEEP_LIMIT = env_int("BENCH_SCALE_SWEEP_LIMIT", 900, 60)  # seconds to bring N into the cache
# The product's default TTL (30 s) would expire entries before a uniform load over a million
# tokens comes back to them; the cache's size, not its safety-net TTL, is what is measured.
CACHE_TTL = env_int("BENCH_SCALE_CACHE_TTL", 3600, 3600)
CONNECTIONS = bench.CONNECTIONS
PORT = int(os.environ.get("BENCH_SCALE_PORT", "18090"))
PORTS = {"A": PORT, "B": PORT + 1, "Z": PORT + 2}
PASSWORD = "bench-password-1"
OWNER_EMAIL = "owner@scale.test"
FLAG = bench.FLAG
CHECK = ("ManageFeatureFlag", FLAG)  # what the service tokens are asked for
PROJECT_CHECK = ("UpdateProjectSettings", "project/web")  # what the custom policy grants
GRANTED = [{"resourceType": "project", "effect": "allow", "actions": ["UpdateProjectSettings"],
            "resources": ["project/*"]}]
REVOKED = [{"resourceType": "project", "effect": "allow", "actions": ["CreateEnv"],
            "resources": ["project/*"]}]


def log(*args):
    print("[scale]", *args, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes and database

class Server:
    def __init__(self, name, key, cache_entries):
        self.name, self.port = name, PORTS[name]
        env = dict(os.environ)
        env.update({
            "TOKENGATE_HASH_KEY": key,
            "TOKENGATE_LISTEN": f"127.0.0.1:{self.port}",
            "RUST_LOG": "warn",
            "TOKENGATE_DB_MAX_CONNECTIONS": "32",
            "TOKENGATE_CACHE_MAX_ENTRIES": str(cache_entries),
            "TOKENGATE_CACHE_TTL": str(CACHE_TTL),
            "TOKENGATE_LOGIN_FAILURES": "1000",
            "TOKENGATE_LOGIN_FAILURES_PER_ADDRESS": "1000",
            "TOKENGATE_AUTH_FAILURES_PER_MINUTE": "1000000",
            "TOKENGATE_AUTH_FAILURE_BURST": "1000000",
        })
        self.log_path = os.path.join(DATA, f"tokengate-{name}.log")
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen([BIN, "serve"], env=env, stdout=self.log_file,
                                     stderr=self.log_file)
        self.client = Client(self.port)
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def wait_ready(self):
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"replica {self.name} exited; see {self.log_path}")
            try:
                # Ready, and the invalidation listener up so the caches are in use (when this
                # build exports the gauge).
                if self.client.call("GET", "/health/ready")[0] == 200 and \
                        metric(self.port, "tokengate_cache_enabled") in (None, 1):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"replica {self.name} did not become ready; see {self.log_path}")

    def rss(self):
        """Resident memory of the process, in bytes."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1)) * 1024

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()


def admin_url():
    return os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres"


def recreate_database():
    name = os.environ["DATABASE_URL"].rsplit("/", 1)[1]
    for sql in (f'drop database if exists "{name}" with (force)', f'create database "{name}"'):
        subprocess.run(["psql", admin_url(), "-X", "-qc", sql], check=True)
    subprocess.run([BIN, "migrate"], check=True, capture_output=True)


def drop_database():
    name = os.environ["DATABASE_URL"].rsplit("/", 1)[1]
    subprocess.run(["psql", admin_url(), "-X", "-qc", f'drop database if exists "{name}" with (force)'],
                   check=False)


def sql(query):
    return scale_seed.psql(os.environ["DATABASE_URL"], query)


class Api:
    """The owner's view of the API on one server, for seeding and for the list measures."""

    def __init__(self, server):
        self.client = server.client
        self.owner = must(self.client.call("POST", "/api/v1/identity/login",
                                           body={"email": OWNER_EMAIL, "password": PASSWORD}))["token"]
        self.org = sql("select organization_id from memberships limit 1")

    def must(self, method, path, token=None, body=None):
        return must(self.client.call(method, path, token, body))

    def get(self, path):
        return self.client.call("GET", path, self.owner)


def metric(port, name):
    """A counter from /metrics, or None when this build does not export it."""
    m = re.search(rf"^{name} (\d+)", bench.http_text(port, "/metrics"), re.M)
    return int(m.group(1)) if m else None


def cache_counters(port):
    return (metric(port, "tokengate_token_cache_hits_total"),
            metric(port, "tokengate_token_cache_misses_total"))


def hit_ratio(before, after):
    if None in before or None in after:
        return None
    hits, misses = after[0] - before[0], after[1] - before[1]
    return hits / (hits + misses) if hits + misses else None


# ---------------------------------------------------------------- throughput measures

def credential_load(server, creds, count, mode, path, check=CHECK, duration=None, start=0,
                    buckets=False, threads=2, connections=None):
    args = [creds, str(count), mode, path, check[0], check[1], str(threads), str(start)]
    if buckets:
        args.append("buckets")
    before = cache_counters(server.port)
    result = wrk(server.port, path, lua=LUA_CREDENTIALS, duration=duration or DURATION,
                 threads=threads, connections=connections, lua_args=args)
    result["hit_ratio"] = hit_ratio(before, cache_counters(server.port))
    return result


def paired_rounds(pairs):
    """Runs each (name, measure) in turn, ROUNDS times, after a discarded warm-up of each.
    Returns {name: [result per round]}."""
    runs = {name: [] for name, _ in pairs}
    if WARMUP:
        for name, measure in pairs:
            log(f"warm-up: {name}")
            measure(WARMUP)
    for round_no in range(1, ROUNDS + 1):
        for name, measure in pairs:
            log(f"round {round_no}/{ROUNDS}: {name}")
            runs[name].append(measure(DURATION))
    return runs


def ratio_row(runs, name, base):
    """The median over rounds of subject / baseline (same round), with every round's ratio."""
    per_round = [x["rps"] / b["rps"] if b["rps"] else 0 for x, b in zip(runs[name], runs[base])]
    row = median_run(runs[name])
    hits = [r["hit_ratio"] for r in runs[name] if r.get("hit_ratio") is not None]
    return {"ratio": statistics.median(per_round), "rounds": per_round, "rps": row["rps"],
            "base_rps": median_run(runs[base])["rps"], "p50": row["p50"], "p99": row["p99"],
            "non2xx": row["non2xx"], "hit_ratio": statistics.median(hits) if hits else None}


def sweep(server, creds, count):
    """Presents every credential of the file once (the threads walk it in turn), in bounded wrk
    runs, each starting where the slowest thread of the last one stopped."""
    start, deadline = 0, time.time() + SWEEP_LIMIT
    while start < count:
        if time.time() > deadline:
            raise SystemExit(f"could not present {count} credentials within {SWEEP_LIMIT} s")
        chunk = 5 if not SMOKE else 1
        result = credential_load(server, creds, count, "sweep", "/api/v1/auth/check",
                                 duration=chunk, start=start)
        walked = [int(w) for w in re.findall(r"^walked \d+ (\d+)$", result["out"], re.M)]
        if not walked or not min(walked):
            raise SystemExit(f"the sweep made no progress:\n{result['out']}")
        start += len(walked) * min(walked)
        log(f"sweep: {min(start, count)}/{count}")


# ---------------------------------------------------------------- list latencies

def list_params(api, path):
    """Query parameters the running build documents for GET `path` (its OpenAPI)."""
    spec = json.loads(bench.http_text(api.client.port, "/openapi.json"))
    op = spec.get("paths", {}).get(path, {}).get("get", {})
    return {p.get("name") for p in op.get("parameters", [])}


def page(api, path, **query):
    status, body = api.get(f"{path}?{urllib.parse.urlencode(query)}")
    if status != 200:
        raise SystemExit(f"GET {path} {query} answered {status}: {body}")
    return body["data"]


def cursors(data):
    """What a page may hand out for the next one, most likely first: a string field named like a
    cursor beside `items`, then the id of the page's last item."""
    named = [v for k, v in data.items() if isinstance(v, str) and v
             and any(word in k.lower() for word in ("cursor", "next", "after"))]
    return named + ([data["items"][-1]["id"]] if data["items"] else [])


def latency(api, path, query):
    """p50/p99 of one client asking for this page back to back for LIST_DURATION seconds."""
    t0 = time.perf_counter()
    data = page(api, path, **query)
    probe = time.perf_counter() - t0
    if not data["items"]:
        raise SystemExit(f"GET {path} {query} returned no items")
    if probe * 4 > LIST_DURATION:
        # So slow a page that wrk, which counts only what finishes within its duration, would
        # see a handful: time a few requests here instead (at least 3, at most 20).
        samples, deadline = [probe], time.perf_counter() + 3 * LIST_DURATION
        while len(samples) < 3 or (len(samples) < 20 and time.perf_counter() < deadline):
            t0 = time.perf_counter()
            page(api, path, **query)
            samples.append(time.perf_counter() - t0)
        samples.sort()
        return {"p50": statistics.median(samples) * 1000, "p99": samples[-1] * 1000,
                "requests": len(samples)}
    r = wrk(api.client.port, f"{path}?{urllib.parse.urlencode(query)}", api.owner,
            duration=LIST_DURATION, threads=1, connections=1)
    if r["non2xx"]:
        raise SystemExit(f"GET {path} {query}: {r['non2xx']} failed requests")
    return {"p50": r["p50"], "p99": r["p99"], "requests": r["requests"]}


def cursor_latency(api, path, params, deep):
    """The page after `deep` through the cursor, when the build takes `after`."""
    if "after" not in params:
        return {"unsupported": "not supported yet (no `after` parameter)"}
    before = page(api, path, pageIndex=deep, pageSize=10)
    expected = page(api, path, pageIndex=deep + 1, pageSize=10)["items"]
    for cursor in cursors(before):
        got = page(api, path, after=cursor, pageSize=10)["items"]
        if got and expected and got[0]["id"] == expected[0]["id"]:
            return latency(api, path, {"after": cursor, "pageSize": 10})
    # The build documents `after` but the bench could not continue a page with it: no number,
    # so that the smoke run fails and the bench gets taught the cursor's shape.
    log(f"{path}: `after` is documented but no cursor from {sorted(before)} continued the page")
    return None


def list_measures(api, seeded):
    out = {}
    tokens_path, audit_path, members_path = "/api/v1/access-tokens", "/api/v1/audit-logs", "/api/v1/members"
    token_params = list_params(api, tokens_path)
    audit_params = list_params(api, audit_path)
    member_params = list_params(api, members_path)
    org = api.org
    # True counts from the database: the API's totalCount may be an estimate or capped.
    tokens = int(sql(f"select count(*) from access_tokens where organization_id = '{org}'"))
    events = int(sql(f"select count(*) from audit_events where organization_id = '{org}'"))
    deep_tokens, deep_events = max(tokens // 10 - 2, 1), max(events // 10 - 2, 1)
    members = int(sql(f"select count(*) from memberships where organization_id = '{org}'"))
    cases = [
        ("tokens_first", tokens_path, {}),
        ("tokens_deep", tokens_path, {"pageIndex": deep_tokens}),
        ("tokens_cursor", tokens_path, None),
        ("tokens_name", tokens_path, {"name": f"svc-{seeded.n // 2:07d}"}),
        ("tokens_type", tokens_path, {"type": "Personal"}),
        ("tokens_creator", tokens_path, {"creatorId": seeded.actor_id}),
        ("audit_first", audit_path, {}),
        ("audit_action", audit_path, {"action": seeded.rare_action}),
        ("audit_target", audit_path, {"targetId": seeded.target_id}),
        ("audit_actor", audit_path, {"actorId": seeded.actor_id}),
        ("audit_range", audit_path, None),
        ("audit_deep", audit_path, {"pageIndex": deep_events}),
        ("audit_cursor", audit_path, None),
        ("members_first", members_path, {}),
        ("members_deep", members_path, {"pageIndex": max(members // 10 - 2, 1)}),
        ("members_cursor", members_path, None),
    ]
    for name, path, query in cases:
        log(f"list: {name}")
        params = {tokens_path: token_params, audit_path: audit_params}.get(path, member_params)
        if name == "tokens_cursor":
            out[name] = cursor_latency(api, path, params, deep_tokens)
        elif name == "audit_cursor":
            out[name] = cursor_latency(api, path, params, deep_events)
        elif name == "members_cursor":
            out[name] = cursor_latency(api, path, params, max(members // 10 - 2, 1))
        elif name == "audit_actor" and "actorId" not in params:
            out[name] = {"unsupported": "not supported yet (no `actorId` parameter)"}
        elif name == "audit_range":
            if not {"from", "to"} <= params:
                out[name] = {"unsupported": "not supported yet (no `from`/`to` parameters)"}
                continue
            # One day, half a year back: about 1/365 of the log.
            now = datetime.datetime.now(datetime.timezone.utc)
            out[name] = latency(api, path, {
                "from": (now - datetime.timedelta(days=183)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "to": (now - datetime.timedelta(days=182)).strftime("%Y-%m-%dT%H:%M:%SZ")})
        else:
            out[name] = latency(api, path, query)
    return out


# ---------------------------------------------------------------- policy edits

def set_statements(api, policy_id, statements):
    t0 = time.perf_counter()
    api.must("PUT", f"/api/v1/policies/{policy_id}/statements", api.owner, statements)
    return (time.perf_counter() - t0) * 1000


def forward_status(client, token):
    return client.call("GET", "/api/v1/auth/forward", token,
                       headers={"X-Auth-Action": PROJECT_CHECK[0],
                                "X-Auth-Resource": PROJECT_CHECK[1]})[0]


def wait_for(client, token, status, limit=5.0):
    t0 = time.perf_counter()
    while forward_status(client, token) != status:
        if time.perf_counter() - t0 > limit:
            raise SystemExit(f"replica never answered {status}")
    return (time.perf_counter() - t0) * 1000


def edit_under_load(a, api, seeded):
    """wrk on A's /auth/check with the personal tokens of the policy's members, counting
    responses per 100 ms; half-way the policy loses the checked permission."""
    result = {}
    loader = threading.Thread(target=lambda: result.update(credential_load(
        a, seeded.personal_file, seeded.personal_count, "uniform", "/api/v1/auth/check",
        check=PROJECT_CHECK, duration=EDIT_WINDOW, buckets=True)))
    loader.start()
    time.sleep(EDIT_WINDOW / 2)
    edit_at = time.monotonic()
    edit_ms = set_statements(api, seeded.custom_policy_id, REVOKED)
    loader.join()
    set_statements(api, seeded.custom_policy_id, GRANTED)
    counts = {}
    for bucket, n in re.findall(r"^bucket (\d+) (\d+)$", result["out"], re.M):
        counts[int(bucket)] = counts.get(int(bucket), 0) + int(n)
    if not counts:
        raise SystemExit(f"wrk counted no responses around the edit:\n{result['out']}")
    first, last = min(counts), max(counts)
    edit_bucket = int(edit_at * 10)
    # Whole buckets only: skip the first half second (connections opening) and the last one.
    before = [counts.get(b, 0) for b in range(max(first + 5, edit_bucket - 20), edit_bucket)]
    after = [counts.get(b, 0) for b in range(edit_bucket, last)]
    base = statistics.median(before)
    # The dip: how long throughput stays below 0.80 × before, counted over the 2 s after the
    # edit (the dip need not start at once: what was cached goes on being answered). The 2 s
    # before it show how often this machine's noise alone does the same.
    after = after[:20]
    return {"base_per_s": base * 10, "min_ratio": min(after) / base if base else 0,
            "first_second_ratio": sum(after[:10]) / (10 * base) if base else 0,
            "dip_ms": 100 * sum(n < 0.8 * base for n in after), "window_ms": 100 * len(after),
            "edit_ms": edit_ms, "noise_ms": 100 * sum(n < 0.8 * base for n in before),
            "before_ms": 100 * len(before),
            "series": [n * 10 for n in before + after], "edit_index": len(before)}


def replica_latency(a_api, b, seeded):
    """Revoke through the policy on A; poll B with a member's personal token until it refuses.
    Milliseconds after A's response, over REPLICA_EDITS edits."""
    with open(seeded.personal_file, "rb") as f:
        creds = f.read().decode()
    latencies = []
    for i in range(REPLICA_EDITS):
        j = (i * 7919) % seeded.personal_count * scale_seed.CREDENTIAL_LEN
        token = creds[j:j + scale_seed.CREDENTIAL_LEN]
        wait_for(b.client, token, 200)  # B holds the member's permission (cached)
        set_statements(a_api, seeded.custom_policy_id, REVOKED)
        latencies.append(wait_for(b.client, token, 403))
        set_statements(a_api, seeded.custom_policy_id, GRANTED)
    latencies.sort()
    return {"p50": statistics.median(latencies),
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "edits": len(latencies)}


# ---------------------------------------------------------------- one N

def run_one(n, run):
    log(f"N = {n}: recreating the database")
    started = time.perf_counter()
    load_before = os.getloadavg()
    recreate_database()
    raw_key = secrets.token_bytes(32)
    key = base64.b64encode(raw_key).decode()
    subprocess.run([BIN, "bootstrap", "--org", "Scale", "--email", OWNER_EMAIL, "--name", "Owner",
                    "--password-stdin"], input=PASSWORD, text=True, check=True, capture_output=True)
    servers = []
    result = {"n": n, "run": run}
    try:
        seeder = Server("A", key, n)
        servers.append(seeder)
        api = Api(seeder)
        log(f"N = {n}: seeding")
        seeded = scale_seed.seed(os.environ["DATABASE_URL"], raw_key, api, n, DATA, log, PASSWORD)
        seeder.stop()
        servers.remove(seeder)
        result["seed"] = {"seconds": seeded.timings, "db_bytes": seeded.db_bytes,
                          "audit_bytes": seeded.audit_bytes, "tokens_bytes": seeded.tokens_bytes,
                          "members": seeded.members, "custom_members": seeded.custom_members,
                          "audit_rows": seeded.audit_rows}

        # Fresh processes: nothing the seeding wrote behind their backs is cached.
        big = n + seeded.personal_count + 1000
        a = Server("A", key, big)
        servers.append(a)
        b = Server("B", key, big)
        servers.append(b)
        z = Server("Z", key, max(n // 10, 1))
        servers.append(z)
        api = Api(a)
        svc = seeded.service_file
        check_lua = bench.check_lua(DATA)
        with open(svc, "rb") as f:
            hot = f.read(scale_seed.CREDENTIAL_LEN).decode()

        def plain_live(d):
            return wrk(a.port, "/health/live", duration=d)

        def hot_check(d):
            return wrk(a.port, "/api/v1/auth/check", hot, check_lua, duration=d)

        def session_check(d):
            # The owner's web session: the session and the live permissions from the caches.
            return wrk(a.port, "/api/v1/auth/check", api.owner, check_lua, duration=d)

        def lua_load(server, mode, path):
            return lambda d: credential_load(server, svc, n, mode, path, duration=d)

        # (5) lists first, on the tables as seeded and vacuumed: the loads below make every
        # token used, and the `lastUsedAt` flushes then rewrite their rows (counted below).
        result["lists"] = list_measures(api, seeded)

        # RSS before: after the same load has run through /health/live (connections, buffers),
        # so that the difference after the sweep is the cache's.
        hot_check(1)
        lua_load(a, "uniform", "/health/live")(1)
        rss_before = a.rss()
        # (1) one hot token and (2) a random one of N, cache ≥ N, as the cache fills
        runs = paired_rounds([
            ("live", plain_live), ("hot", hot_check), ("session", session_check),
            ("live_lua", lua_load(a, "uniform", "/health/live")),
            ("uniform", lua_load(a, "uniform", "/api/v1/auth/check")),
        ])
        result["hot"] = ratio_row(runs, "hot", "live")
        result["session"] = ratio_row(runs, "session", "live")
        result["uniform"] = ratio_row(runs, "uniform", "live_lua")
        # (4) every token presented once more, then all cached; memory per cached token
        log(f"N = {n}: presenting all {n} tokens to A")
        sweep(a, svc, n)
        rss_after = a.rss()
        result["memory"] = {"rss_before": rss_before, "rss_after": rss_after,
                            "per_token": (rss_after - rss_before) / n}
        runs = paired_rounds([
            ("live_lua", lua_load(a, "uniform", "/health/live")),
            ("all_cached", lua_load(a, "uniform", "/api/v1/auth/check")),
        ])
        result["all_cached"] = ratio_row(runs, "all_cached", "live_lua")
        # (3) working set 10× the cache, Zipf-like
        runs = paired_rounds([
            ("live_lua", lua_load(z, "loguniform", "/health/live")),
            ("zipf", lua_load(z, "loguniform", "/api/v1/auth/check")),
        ])
        result["zipf"] = ratio_row(runs, "zipf", "live_lua")
        z.stop()
        servers.remove(z)

        # (7) a policy on many members edited: throughput on A, refusal on B
        log(f"N = {n}: policy edits ({seeded.custom_members} members)")
        for server in (a, b):
            sweep(server, seeded.personal_file, seeded.personal_count)
        edits = []
        for round_no in range(1, EDIT_ROUNDS + 1):
            log(f"edit under load {round_no}/{EDIT_ROUNDS}")
            edits.append(edit_under_load(a, api, seeded))
        result["edit"] = dict(sorted(edits, key=lambda e: e["dip_ms"])[(len(edits) - 1) // 2])
        result["edit"]["all_dip_ms"] = [e["dip_ms"] for e in edits]
        result["edit"]["all_min_ratio"] = [e["min_ratio"] for e in edits]
        log("edits timed on the other replica")
        result["replica"] = replica_latency(api, b, seeded)

        result["tokens_after_loads"] = dict(zip(("live", "dead", "bytes"), map(int, sql(
            "select n_live_tup, n_dead_tup, pg_total_relation_size('access_tokens') "
            "from pg_stat_user_tables where relname = 'access_tokens'").split("|"))))

        # (6) token creation through the API (last: it adds tokens)
        log(f"N = {n}: token creation")
        r = wrk(a.port, "/api/v1/access-tokens", api.owner, LUA_CREATE, duration=CREATE_DURATION,
                threads=2, connections=4, lua_args=[f"{n}"])
        result["create"] = {"rps": r["rps"], "p50": r["p50"], "p99": r["p99"],
                            "requests": r["requests"], "non2xx": r["non2xx"]}
    finally:
        for server in servers:
            server.stop()
        if os.environ.get("BENCH_SCALE_KEEP_DB") != "1":
            drop_database()
    result["seconds"] = time.perf_counter() - started
    result["load_before"] = load_before
    result["load_after"] = os.getloadavg()
    with open(os.path.join(DATA, f"result-{n}.json"), "w") as f:
        json.dump(result, f, indent=1, default=str)
    return result


def main():
    os.makedirs(DATA, exist_ok=True)

    def stop(signum, frame):
        raise SystemExit(f"stopped by signal {signum}")
    signal.signal(signal.SIGTERM, stop)
    run = scale_report.run_info(duration=DURATION, rounds=ROUNDS, warmup=WARMUP,
                                connections=CONNECTIONS, cache_ttl=CACHE_TTL,
                                list_duration=LIST_DURATION)
    results = [run_one(n, run) for n in NS]
    report = scale_report.Report(results)
    print(report.markdown())
    missing = report.missing()
    if missing:
        raise SystemExit("measures without a number: " + ", ".join(missing))
    if not SMOKE and os.environ.get("BENCH_SCALE_WRITE_DOCS", "1") == "1":
        report.write_docs(os.path.join(ROOT, "docs", "benchmarks.md"))
        report.plot(os.path.join(ROOT, "docs", "benchmarks-scale.png"))


if __name__ == "__main__":
    main()
