#!/usr/bin/env python3
"""Runs every shell block of README.md and docs/*.md against a started tokengate.

    python3 tests/docs/run_blocks.py [FILE.md ...]      (scripts/test runs it)

For each file with shell blocks (```sh, ```bash or ```shell), a fresh database gets what
`scripts/run` gives a reader on its first start (the organization Demo, its owner
owner@demo.test / tokengate-demo-password), a tokengate serves it on a free port, and the
file's blocks run in order as one bash script with `set -euo pipefail`, in a scratch
directory, with `tokengate` on PATH and the service's DATABASE_URL and TOKENGATE_HASH_KEY in
the environment. `127.0.0.1:8080` in a block is replaced by the service's address. A block
fails the file when any command fails: blocks state what they claim with `curl -f`, `jq -e`,
`test` or `grep -q`, so a doc that contradicts the service fails here.

Markers (HTML comments, invisible on GitHub):
  <!-- not run: why -->        on the line right before a block: the block is only checked
                               for syntax (`bash -n`); for what cannot run here (Docker, a
                               process that serves until stopped)
  <!-- docs-test: runs=2 -->   anywhere in a file: run its blocks twice on the same database,
                               as a reader who runs the page again would; before the second
                               run the demo owner also founds a second organization, so the
                               page must name the one it means (the `Organization` header)

Every fenced block must name its language, so no shell block escapes by being untagged. A
`| grep -q` is refused: grep leaves at the first match, the command before it may then die of
SIGPIPE, and with pipefail the block fails now and then; `grep` without `-q` reads it all.
Python's standard library only.
"""

import os
import re
import subprocess
import sys
import json
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import service  # noqa: E402

SHELL = {"sh", "bash", "shell"}
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)")
NOT_RUN = re.compile(r"^\s*<!--\s*not run:\s*(\S.*?)\s*-->\s*$")
RUNS = re.compile(r"<!--\s*docs-test:\s*runs=(\d+)\s*-->")
FILE_TIMEOUT = 60
OUT = os.path.join(service.ROOT, "target", "docs-test")


class Block:
    def __init__(self, path, line, lang, body, not_run):
        self.path, self.line, self.lang, self.body, self.not_run = path, line, lang, body, not_run

    @property
    def where(self):
        return f"{os.path.relpath(self.path, service.ROOT)}:{self.line}"


def parse(path):
    """The fenced blocks of a Markdown file, and the problems with its fences."""
    lines = open(path, encoding="utf-8").read().split("\n")
    blocks, problems = [], []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m.group(1), m.group(2).lower(), i
        marker = NOT_RUN.match(lines[i - 1]) if i > 0 else None
        body = []
        i += 1
        while i < len(lines) and not re.match(
            r"^ {0,3}" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*$", lines[i]
        ):
            body.append(lines[i])
            i += 1
        if i == len(lines):
            problems.append(f"{path}:{start + 1}: the block is never closed")
        i += 1
        where = f"{os.path.relpath(path, service.ROOT)}:{start + 1}"
        if not lang:
            problems.append(f"{where}: a fenced block without a language (sh, text, nginx, …)")
        elif lang == "console":
            problems.append(f"{where}: write shell as ```sh without prompts, so it runs here")
        elif lang in SHELL and re.search(r"\|\s*grep\s+(-\w*\s+)*-\w*q", "\n".join(body)):
            problems.append(f"{where}: '| grep -q' can fail on SIGPIPE under pipefail; drop -q")
        elif marker and lang not in SHELL:
            problems.append(f"{where}: 'not run' marks a {lang} block, which never runs anyway")
        blocks.append(
            Block(path, start + 1, lang, "\n".join(body), marker.group(1) if marker else None)
        )
    return blocks, problems


def syntax_error(block):
    result = subprocess.run(
        ["bash", "-n"], input=block.body, text=True, capture_output=True
    )
    return result.stderr.strip() if result.returncode else None


def script(blocks, base):
    port = base.rsplit(":", 1)[1]
    parts = [
        "set -euo pipefail",
        "__tg_block=start",
        "trap '__tg_rc=$?; [ $__tg_rc -eq 0 ] || "
        "printf \"\\n[docs] FAILED in the block at %s (exit %s)\\n\" \"$__tg_block\" \"$__tg_rc\" >&2' EXIT",
    ]
    for b in blocks:
        body = b.body.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
        body = body.replace("localhost:8080", f"localhost:{port}")
        parts += [
            f"__tg_block='{b.where}'",
            "printf '\\n[docs] --- %s\\n' \"$__tg_block\" >&2",
            body,
        ]
    return "\n".join(parts) + "\n"


def post(url, body, token=None, ok=(200, 201)):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status in ok, r.status
        return json.load(r)["data"]


def found_second_organization(base):
    """What a reader may have done between two runs: the owner now has two organizations."""
    api = base + "/api/v1"
    session = post(
        api + "/identity/login",
        {"email": service.DEMO_EMAIL, "password": service.DEMO_PASSWORD},
    )["token"]
    post(api + "/organizations", {"name": f"Second {time.time_ns()}"}, session)


def run_file(path, blocks, runs):
    name = os.path.relpath(path, service.ROOT).replace("/", "_")
    log_path = os.path.join(OUT, name + ".tokengate.log")
    out_path = os.path.join(OUT, name + ".out")
    with service.demo_service(log_path) as (base, env):
        env = dict(env)
        paths = [os.path.dirname(service.binary())]
        if os.path.isabs(service.psql()):
            paths.append(os.path.dirname(service.psql()))  # pg_dump and pg_restore beside it
        env["PATH"] = os.pathsep.join([*paths, env.get("PATH", "")])
        text = script(blocks, base)
        with open(out_path, "w") as out, tempfile.TemporaryDirectory(prefix="docs-") as scratch:
            for n in range(runs):
                if n == 1:
                    found_second_organization(base)
                out.write(f"\n[docs] ===== run {n + 1} of {runs}\n")
                out.flush()
                try:
                    result = subprocess.run(
                        ["bash", "-c", text],
                        cwd=scratch,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        timeout=FILE_TIMEOUT,
                    )
                    failed = result.returncode != 0
                except subprocess.TimeoutExpired:
                    out.write(f"\n[docs] FAILED: still running after {FILE_TIMEOUT} s\n")
                    failed = True
                if failed:
                    break
    if failed:
        for label, p, count in (("output", out_path, 80), ("tokengate log", log_path, 20)):
            lines = open(p, encoding="utf-8", errors="replace").read().splitlines()
            print(f"----- {label} ({p}), last {count} lines")
            print("\n".join(lines[-count:]))
    return not failed


def main(argv):
    os.makedirs(OUT, exist_ok=True)
    files = [os.path.abspath(a) for a in argv] or [
        os.path.join(service.ROOT, "README.md"),
        *sorted(
            os.path.join(service.ROOT, "docs", f)
            for f in os.listdir(os.path.join(service.ROOT, "docs"))
            if f.endswith(".md")
        ),
    ]
    passed = failed = run_blocks = not_run = 0
    started = time.monotonic()
    for path in files:
        blocks, problems = parse(path)
        shell = [b for b in blocks if b.lang in SHELL]
        for b in shell:
            error = syntax_error(b)
            if error:
                problems.append(f"{b.where}: bash -n: {error}")
        rel = os.path.relpath(path, service.ROOT)
        if problems:
            print("\n".join(problems))
            failed += 1
            continue
        runnable = [b for b in shell if b.not_run is None]
        not_run += len(shell) - len(runnable)
        if not runnable:
            print(f"[docs] {rel}: no shell block to run ({len(shell)} not run)")
            passed += 1
            continue
        text = open(path, encoding="utf-8").read()
        m = RUNS.search(text)
        runs = int(m.group(1)) if m else 1
        t = time.monotonic()
        ok = run_file(path, runnable, runs)
        run_blocks += len(runnable)
        times = f" × {runs}" if runs > 1 else ""
        print(
            f"[docs] {rel}: {len(runnable)} blocks{times} "
            f"{'ok' if ok else 'FAILED'} ({time.monotonic() - t:.1f} s)"
        )
        passed += ok
        failed += not ok
    print(
        f"[docs] {run_blocks} shell blocks run, {not_run} only syntax-checked, "
        f"{len(files)} files, {time.monotonic() - started:.1f} s"
    )
    print(f"docs: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
