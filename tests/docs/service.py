"""A tokengate process on a database of its own, for the docs and deployment checks.

Python's standard library only: these checks must run wherever `scripts/test` runs.
"""

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The demo organization `scripts/run` creates on its first start: the docs are written for it.
DEMO_ORG = "Demo"
DEMO_EMAIL = "owner@demo.test"
DEMO_NAME = "Demo Owner"
DEMO_PASSWORD = "tokengate-demo-password"


def binary():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    path = os.environ.get("TOKENGATE_BIN", os.path.join(target, "debug", "tokengate"))
    if not os.access(path, os.X_OK):
        raise SystemExit(f"{path} is not built (cargo build)")
    return path


def psql():
    return os.environ.get("TOKENGATE_PSQL", "psql")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_url():
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("DATABASE_URL is not set (scripts/test sets it)")
    return url


def _admin(sql):
    subprocess.run(
        [psql(), "-X", "-q", "-v", "ON_ERROR_STOP=1", server_url(), "-c", sql],
        check=True,
        env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
        stdout=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def fresh_database(prefix):
    """A new database on DATABASE_URL's server, dropped afterwards; yields its URL."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    base, _, query = server_url().partition("?")
    url = base.rsplit("/", 1)[0] + "/" + name + (("?" + query) if query else "")
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield url
    finally:
        try:
            _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except subprocess.CalledProcessError:
            print(f"[docs] could not drop database {name}")


def run(args, env, stdin=None, check=True):
    return subprocess.run(
        [binary(), *args],
        env=env,
        input=stdin,
        text=True,
        capture_output=True,
        check=check,
        timeout=60,
    )


def base_env(database_url):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TOKENGATE_") and k not in ("RUST_LOG", "DATABASE_URL")
    }
    env["DATABASE_URL"] = database_url
    env["TOKENGATE_LOG_FORMAT"] = "json"
    return env


def wait_ready(base, process, log_path, seconds=30):
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"tokengate did not become ready; see {log_path}")
        time.sleep(0.1)


@contextlib.contextmanager
def demo_service(log_path, extra_env=None):
    """What `scripts/run` gives a reader: the demo organization and owner, serving on a free
    port (with `extra_env` besides). Yields (base URL, environment of the process)."""
    with fresh_database("tokengate_docs") as url:
        env = {**base_env(url), **(extra_env or {})}
        env["TOKENGATE_HASH_KEY"] = run(["gen-key"], env).stdout.strip()
        run(
            [
                "bootstrap",
                "--org",
                DEMO_ORG,
                "--email",
                DEMO_EMAIL,
                "--name",
                DEMO_NAME,
                "--password-stdin",
            ],
            env,
            stdin=DEMO_PASSWORD,
        )
        port = free_port()
        env["TOKENGATE_LISTEN"] = f"127.0.0.1:{port}"
        base = f"http://127.0.0.1:{port}"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [binary(), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
            try:
                wait_ready(base, process, log_path)
                yield base, env
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
