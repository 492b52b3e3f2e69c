"""The table and the plot of `bench/scale`: every measure against N, judged against SPEC §8."""

import datetime
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END, NOTES = "<!-- scale -->", "<!-- /scale -->", "<!-- notes -->"

THROUGHPUT = [
    # key, label, target ratio (None: shown, not judged)
    ("hot", "one hot token, `POST /auth/check` (the `bench/run` row)", 0.80),
    ("session", "a web session, `POST /auth/check` (session and live permissions cached)", None),
    ("uniform", "a random one of N (uniform), cache ≥ N, filling as the load goes", None),
    ("zipf", "working set 10× the cache (cache N/10), token rank log-uniform (Zipf-like)", 0.60),
    ("all_cached", "N all cached: a random one of N after every token was presented once", 0.80),
]
LISTS = [
    # key, label, judged against the 20 ms p99 target
    ("tokens_first", "`GET /access-tokens` first page", True),
    ("tokens_cursor", "`GET /access-tokens` cursor page near the end (`after`)", True),
    ("tokens_deep", "`GET /access-tokens` page near the end (`pageIndex`)", False),
    ("tokens_name", "`GET /access-tokens?name=` (part of a name)", True),
    ("tokens_type", "`GET /access-tokens?type=Personal`", True),
    ("tokens_creator", "`GET /access-tokens?creatorId=`", True),
    ("audit_first", "`GET /audit-logs` first page", True),
    ("audit_cursor", "`GET /audit-logs` cursor page near the end (`after`)", True),
    ("audit_deep", "`GET /audit-logs` page near the end (`pageIndex`)", False),
    ("audit_action", "`GET /audit-logs?action=` (an action of 1 event in 1,000)", True),
    ("audit_target", "`GET /audit-logs?targetId=` (a token's events)", True),
    ("audit_actor", "`GET /audit-logs?actorId=`", True),
    ("audit_range", "`GET /audit-logs?from=&to=` (one day)", True),
    ("members_first", "`GET /members` first page", True),
    ("members_deep", "`GET /members` page near the end (`pageIndex`)", False),
    ("members_cursor", "`GET /members` cursor page near the end (`after`)", True),
]
LIST_TARGET_MS = 20
MEMORY_TARGET = 512
DIP_TIME_TARGET_MS = 1000  # SPEC: a dip of at most 20 % for at most 1 s
REPLICA_TARGET_MS = 50


# How the rows are measured: part of the section, so that it changes with the bench.
METHOD = """\
### How `bench/scale` measures

For each N it recreates the database `tokengate_scale` (dropped after it) and seeds one
organization straight through SQL (`bench/scale_seed.py`): N service tokens made by the members
in turn over the past year, N/10 members with the Developer policy, a custom policy
(`UpdateProjectSettings`) on 10,000 of them (all when fewer), each of whom holds a personal
token, and 10 × N audit rows in time order over eleven actions (one of them one event in a
thousand), targets and actors. Credentials have the product's exact format and are stored as
HMAC-SHA256 under the key the servers start with; the frozen layers, scopes and password hash
are copied from template rows made through the API; `name_key` and `email_canonical` are the
lower-cased ASCII names, which is what `names::unique_key` and `canonical_email` give for them.
Then, on fresh processes:

- **Throughput rows**: wrk with `bench/wrk/credentials.lua`, which draws a credential per request
  from the seeded file. Its baseline is `/health/live` driven by the same script (it draws and
  sends a credential too): drawing costs wrk CPU on the shared cores, which plain wrk against
  `/health/live` would charge to tokengate. *A random one of N* runs while A's cache (N +
  personal tokens + 1,000 entries) fills; *all N cached* runs after every token was presented
  once (a sweep); *Zipf-like* runs on Z, whose cache holds N/10, with token ranks drawn
  log-uniformly. `TOKENGATE_CACHE_TTL` is raised (see the header): with the default a uniform
  load over a million tokens comes back to a token after its entry expired, and the rows would
  measure the TTL rather than the cache. Hit ratios come from `/metrics` when the build exports
  them. *A web session* is the request of *one hot token* made with the owner's session
  credential instead: the session, its organizations and the owner's live permissions come
  from the caches.
- **Memory per cached token**: A's `VmRSS` after a second of the same load through
  `/health/live`, and after the sweep; the difference divided by N. At small N the fixed costs
  of the allocator and of the `lastUsedAt` bookkeeping are a large part of the few MiB that
  differ: read this row at 100,000 and up.
- **Lists**: one client, before any load, on the tables as seeded and vacuumed (the loads make
  every token used, and each `lastUsedAt` flush rewrites their rows: the last table shows the
  tokens table's size after the loads). A page slower than a quarter of the list duration is
  timed from Python instead, 3 to 20 requests. The cursor rows and the audit filters `actorId`
  and `from`/`to` say "not supported yet" until the build's `/openapi.json` documents the
  parameter; from then on the bench checks that the cursor continues the page before it (the
  page after `pageIndex` k through `after` must start where `pageIndex` k + 1 does; the cursor
  is a string field of the page named like one, else the last item's id), and a documented
  cursor it cannot use is a missing number, which fails the smoke run.
- **Policy edit under load**: wrk on A's `/auth/check` with the personal tokens of the policy's
  members (all presented once to A and B first), counting responses per 100 ms; half-way the
  policy loses the checked action. SPEC §8's "dips ≤ 20 % for ≤ 1 s" is read as: throughput
  stays at ≥ 0.80 × its median over the 2 s before the edit except for at most 1 s of the 2 s
  after it. On this VM a steady load alone falls below that line now and then: the cell says
  for how long it did in the 2 s before the edit. The row is the median of the edits.
- **Other replica**: the same edit made on A, repeatedly; B (which holds the member's
  permission) is polled until it refuses, timed from A's response.
- **Token creation**: `bench/wrk/create.lua`, 2 threads and 4 connections, distinct names;
  last, because it adds tokens.

A smoke run, `BENCH_SCALE_N=2000 BENCH_SCALE_SMOKE=1 bench/scale`, takes seconds after the
release build, writes nothing under `docs/`, and fails when a measure has no number.
`python3 bench/scale_report.py .data/bench-scale/result-*.json` renders this section and the plot
again from a run's saved results.
"""


def verdict(ok, short=None):
    if ok:
        return "met"
    return "**not met**" + (f" ({short})" if short else "")


def git(*args):
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def run_info(**settings):
    """When, on what and how a run measured: stored with each N's results."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            cpu = m.group(1) if m else cpu
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    pg = subprocess.run(["psql", os.environ.get("DATABASE_URL", ""), "-XtAc", "show server_version"],
                        capture_output=True, text=True).stdout.split()
    return {
        "at": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        "commit": git("rev-parse", "--short", "HEAD") or "unknown",
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "machine": f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB"
                   + (f", PostgreSQL {pg[0]}" if pg else ""),
        "settings": settings,
    }


class Report:
    def __init__(self, results):
        self.results = results

    # ------------------------------------------------------------ cells

    def throughput_cell(self, r, target):
        if not r:
            return None
        hits = f", hits {r['hit_ratio'] * 100:.0f} %" if r.get("hit_ratio") is not None else ""
        rounds = " / ".join(f"{x:.2f}" for x in r["rounds"])
        text = (f"{r['ratio']:.2f} × live ({r['rps']:.0f} against {r['base_rps']:.0f} req/s; "
                f"rounds {rounds}{hits})")
        if r["non2xx"]:
            text += f", {r['non2xx']} failed"
        if target is not None:
            ok = r["ratio"] >= target and not r["non2xx"]
            text += " " + verdict(ok, f"{target - r['ratio']:.2f} short" if r["ratio"] < target else None)
        return text

    def list_cell(self, r, judged):
        if r is None:
            return None
        if "unsupported" in r:
            return r["unsupported"]
        text = f"p50 {r['p50']:.1f} / p99 {r['p99']:.1f} ms ({r['requests']} requests)"
        if judged:
            ok = r["p99"] <= LIST_TARGET_MS
            text += " " + verdict(ok, f"{r['p99'] - LIST_TARGET_MS:.1f} ms over" if not ok else None)
        return text

    def rows(self):
        """[(label, target, [cell per N])], cells None when the measure produced nothing."""
        out = []
        for key, label, target in THROUGHPUT:
            out.append((label, f"≥ {target:.2f} × live" if target else "—",
                        [self.throughput_cell(r.get(key), target) for r in self.results]))
        cells = []
        for r in self.results:
            m = r.get("memory")
            if not m:
                cells.append(None)
                continue
            ok = m["per_token"] <= MEMORY_TARGET
            cells.append(f"{m['per_token']:.0f} B (RSS {m['rss_before'] / 2**20:.0f} → "
                         f"{m['rss_after'] / 2**20:.0f} MiB) " +
                         verdict(ok, f"{m['per_token'] - MEMORY_TARGET:.0f} B over" if not ok else None))
        out.append(("resident memory per cached token (A's RSS before and after presenting all N)",
                    f"≤ {MEMORY_TARGET} B", cells))
        for key, label, judged in LISTS:
            out.append((label + ", owner session, one client",
                        f"p99 ≤ {LIST_TARGET_MS} ms" if judged else "—",
                        [self.list_cell(r.get("lists", {}).get(key), judged) for r in self.results]))
        cells = []
        for r in self.results:
            c = r.get("create")
            cells.append(None if not c else
                         f"{c['rps']:.0f} tokens/s (p50 {c['p50']:.1f} / p99 {c['p99']:.1f} ms, "
                         f"{c['requests']} made{', %d failed' % c['non2xx'] if c['non2xx'] else ''})")
        out.append(("token creation, `POST /access-tokens` (owner session, 4 connections)", "—", cells))
        cells = []
        for r in self.results:
            e = r.get("edit")
            if not e:
                cells.append(None)
                continue
            ok = e["dip_ms"] <= DIP_TIME_TARGET_MS
            cells.append(
                f"below 0.80 × before for {e['dip_ms']} ms of the {e['window_ms']} ms after the "
                f"edit (rounds: {' / '.join(str(x) for x in e['all_dip_ms'])} ms; the same held for "
                f"{e['noise_ms']} ms of the {e['before_ms']} ms before it); lowest 100 ms "
                f"{e['min_ratio']:.2f} ×, first second {e['first_second_ratio']:.2f} × before; "
                f"the edit took {e['edit_ms']:.0f} ms "
                + verdict(ok, f"{e['dip_ms'] - DIP_TIME_TARGET_MS} ms too long" if not ok else None))
        out.append((f"a policy on {self.members_label()} members loses the checked permission while "
                    "wrk runs `/auth/check` with their personal tokens on A: throughput per 100 ms",
                    f"below 0.80 × for ≤ {DIP_TIME_TARGET_MS / 1000:.0f} s", cells))
        cells = []
        for r in self.results:
            rep = r.get("replica")
            if not rep:
                cells.append(None)
                continue
            ok = rep["p99"] <= REPLICA_TARGET_MS
            cells.append(f"p50 {rep['p50']:.2f} / p99 {rep['p99']:.2f} ms ({rep['edits']} edits) " +
                         verdict(ok, f"{rep['p99'] - REPLICA_TARGET_MS:.1f} ms over" if not ok else None))
        out.append(("the same edit made on A: replica B refuses the lost permission after A's response",
                    f"p99 ≤ {REPLICA_TARGET_MS} ms", cells))
        return out

    def members_label(self):
        return " / ".join(f"{r['seed']['custom_members']:,}" for r in self.results if "seed" in r)

    def missing(self):
        return [f"{label} at N={r['n']}" for label, _, cells in self.rows()
                for r, cell in zip(self.results, cells) if cell is None]

    # ------------------------------------------------------------ text

    def header(self):
        run = self.results[0]["run"]
        s = run["settings"]
        loads = "; ".join(f"N={r['n']:,}: {r['load_before'][0]:.1f} before, {r['load_after'][0]:.1f} after"
                          for r in self.results)
        return (
            f"Run {run['at']} on commit `{run['commit']}`"
            f"{' (with uncommitted changes)' if run['dirty'] else ''}: {run['machine']}; release "
            f"build with `--features bench`. Throughput: wrk -t2 -c{s['connections']} "
            f"-d{s['duration']}s, {s['rounds']} interleaved rounds after a discarded {s['warmup']} s "
            f"warm-up; a ratio is the median of the rounds' own ratios against `/health/live` on the "
            f"same process in the same round, with the same client (the random rows' baseline draws "
            f"and sends a credential just as they do). Lists: one client (wrk -t1 -c1) for "
            f"{s['list_duration']} s per page. Replicas A and B cache N + the personal tokens + 1,000 "
            f"entries, Z caches N/10; `TOKENGATE_CACHE_TTL` {s['cache_ttl']} s. Load average (1 min) "
            f"around each N, other work on the machine included: {loads}."
        )

    def seeding_table(self):
        lines = ["| N | members (custom policy) | audit rows | seeding: templates / members / tokens "
                 "/ audit / vacuum analyze / total | database | audit table | tokens table (after "
                 "the loads: size, dead rows) | whole run for this N |",
                 "|---:|---:|---:|---|---:|---:|---:|---:|"]
        for r in self.results:
            s = r["seed"]
            t = s["seconds"]
            after = r.get("tokens_after_loads", {"bytes": 0, "dead": 0})
            lines.append(
                f"| {r['n']:,} | {s['members']:,} ({s['custom_members']:,}) | {s['audit_rows']:,} | "
                f"{t['templates']:.1f} / {t['members']:.1f} / {t['tokens']:.1f} / {t['audit']:.1f} / "
                f"{t['vacuum analyze']:.1f} / {t['total']:.1f} s | {s['db_bytes'] / 2**20:.0f} MiB | "
                f"{s['audit_bytes'] / 2**20:.0f} MiB | {s['tokens_bytes'] / 2**20:.0f} MiB "
                f"({after['bytes'] / 2**20:.0f} MiB, {after['dead']:,}) | "
                f"{r['seconds'] / 60:.1f} min |")
        return "\n".join(lines)

    def markdown(self):
        head = "| measure | target | " + " | ".join(f"N = {r['n']:,}" for r in self.results) + " |"
        sep = "|---|---|" + "---|" * len(self.results)
        body = [f"| {label} | {target} | " + " | ".join(c or "(no number)" for c in cells) + " |"
                for label, target, cells in self.rows()]
        return "\n".join([self.header(), "", head, sep, *body, "", self.seeding_table()])

    def write_docs(self, path):
        block = "\n".join([
            BEGIN, "## At scale", "",
            "Produced by `bench/scale`; `bench/run` keeps this section. How each row is measured "
            "is below the plot, which shows the same numbers against N.", "",
            self.markdown(), "", "![Costs against N](benchmarks-scale.png)", "", METHOD.rstrip(),
            END])
        text = open(path).read() if os.path.exists(path) else "# Benchmarks\n\n" + NOTES + "\n"
        if BEGIN in text and END in text:
            pre, rest = text.split(BEGIN, 1)
            text = pre + block + rest.split(END, 1)[1]
        elif NOTES in text:
            pre, rest = text.split(NOTES, 1)
            text = pre + block + "\n\n" + NOTES + rest
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
        with open(path, "w") as f:
            f.write(text)

    # ------------------------------------------------------------ plot

    def plot(self, path):
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            import matplotlib.ticker
        except ImportError:
            print("[scale] matplotlib is not installed: no plot", flush=True)
            return
        ns = [r["n"] for r in self.results]
        fig, axes = plt.subplots(2, 3, figsize=(16, 9))
        fig.suptitle("tokengate at scale (bench/scale): costs against N", fontsize=14)

        def series(ax, values, label, **kw):
            xs = [n for n, v in zip(ns, values) if v is not None]
            ys = [v for v in values if v is not None]
            if ys:
                ax.plot(xs, ys, marker="o", label=label, **kw)

        def frame(ax, title, ylabel, target=None, target_label=None, logy=False):
            ax.set_title(title, fontsize=11)
            ax.set_xscale("log")
            if logy:
                ax.set_yscale("log")
                ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 5)))
                ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
                ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xticks(ns)
            ax.set_xticklabels([f"{n // 1000:,}k" if n < 10**6 else f"{n / 10**6:g}M" for n in ns])
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xlabel("N (service tokens; members N/10; audit rows 10 N)")
            ax.set_ylabel(ylabel)
            if target is not None:
                ax.axhline(target, color="red", linestyle="--", linewidth=1, label=target_label)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8, loc="lower left" if not logy else "best")

        ax = axes[0][0]
        short = {"hot": "one hot token", "session": "a web session", "uniform": "a random one of N, cache filling",
                 "zipf": "Zipf-like, cache N/10", "all_cached": "all N cached"}
        for key, _, _ in THROUGHPUT:
            series(ax, [r.get(key, {}).get("ratio") for r in self.results], short[key])
        ax.axhline(0.60, color="orange", linestyle="--", linewidth=1, label="target 0.60 (Zipf-like)")
        ax.set_ylim(0, 1.2)
        frame(ax, "verification throughput / `/health/live`", "ratio", 0.80, "target 0.80")

        def ms(key, field="p99"):
            return [(r.get("lists", {}).get(key) or {}).get(field) for r in self.results]

        ax = axes[0][1]
        for key in ("tokens_first", "tokens_cursor", "tokens_deep", "tokens_name", "tokens_creator"):
            series(ax, ms(key), key.replace("tokens_", ""))
        frame(ax, "`GET /access-tokens` p99", "ms", LIST_TARGET_MS, "target 20 ms", logy=True)

        ax = axes[0][2]
        for key in ("audit_first", "audit_cursor", "audit_deep", "audit_action", "audit_target",
                    "audit_actor", "audit_range"):
            series(ax, ms(key), key.replace("audit_", ""))
        frame(ax, "`GET /audit-logs` p99 (10 N rows)", "ms", LIST_TARGET_MS, "target 20 ms",
              logy=True)

        ax = axes[1][0]
        series(ax, [r.get("memory", {}).get("per_token") for r in self.results], "RSS per cached token")
        frame(ax, "memory per cached token", "bytes", MEMORY_TARGET, "target 512 B")
        ax.set_ylim(bottom=0)

        ax = axes[1][1]
        series(ax, [r.get("edit", {}).get("dip_ms") for r in self.results],
               "A: time below 0.80 × throughput")
        series(ax, [r.get("replica", {}).get("p99") for r in self.results], "B: refusal p99")
        ax.axhline(REPLICA_TARGET_MS, color="orange", linestyle="--", linewidth=1,
                   label="target B 50 ms")
        frame(ax, "policy on ≤ 10,000 members edited", "ms", DIP_TIME_TARGET_MS, "target A 1 s")
        ax.set_ylim(bottom=0)

        ax = axes[1][2]
        series(ax, [r.get("create", {}).get("rps") for r in self.results], "tokens created / s")
        frame(ax, "token creation through the API", "req/s")
        ax.set_ylim(bottom=0)

        fig.tight_layout()
        fig.savefig(path, dpi=80)
        print(f"[scale] wrote {path}", flush=True)


if __name__ == "__main__":
    # Renders the table, the docs section and the plot again from saved results:
    #   python3 bench/scale_report.py .data/bench-scale/result-10000.json ...
    report = Report([json.load(open(path)) for path in sys.argv[1:]])
    print(report.markdown())
    report.write_docs(os.path.join(ROOT, "docs", "benchmarks.md"))
    report.plot(os.path.join(ROOT, "docs", "benchmarks-scale.png"))
