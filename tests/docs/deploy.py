#!/usr/bin/env python3
"""Checks the Docker deployment without Docker.

    python3 tests/docs/deploy.py      (scripts/test runs it)

- docker-compose.yml and the Dockerfile keep their promises: PostgreSQL of the same major as
  the one the tests run on, ports published on 127.0.0.1 by default, no password written in
  them, pinned base images, a non-root runtime user, secrets git-ignored and kept out of the
  build context; `docker compose config` accepts the file where the compose client exists.
- The first-start bootstrap runs exactly as the compose file's `bootstrap` service runs it (its
  command, its variables, the password in a secret file), twice against a fresh database: the
  first run creates the organization and an Owner who can log in, the second does nothing
  (also without the password), and neither prints the password.

Python's standard library only.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import service  # noqa: E402

ROOT = service.ROOT
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(f"[deploy] {'ok' if ok else 'FAILED'}: {name}{'' if ok else ' — ' + detail}")


def read(name):
    return open(os.path.join(ROOT, name), encoding="utf-8").read()


def service_block(compose, name):
    """The lines of one service in docker-compose.yml (two-space indented keys)."""
    m = re.search(rf"^  {name}:\n(.*?)(?=^  \S|^\S|\Z)", compose, re.M | re.S)
    return m.group(1) if m else ""


def local_postgres_major():
    psql = os.environ.get("TOKENGATE_PSQL", "")
    postgres = os.path.join(os.path.dirname(psql), "postgres") if os.path.isabs(psql) else ""
    if not os.access(postgres, os.X_OK):
        return None
    out = subprocess.run([postgres, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"\) (\d+)\.", out)
    return m.group(1) if m else None


def static_checks():
    compose, dockerfile = read("docker-compose.yml"), read("Dockerfile")

    images = re.findall(r"^\s+image:\s*(\S+)", compose, re.M)
    pg = [i for i in images if i.startswith("postgres:")]
    majors = {re.match(r"postgres:(\d+)", i).group(1) for i in pg if re.match(r"postgres:\d+", i)}
    check("compose runs PostgreSQL 15", majors == {"15"}, f"images {pg}")
    local = local_postgres_major()
    if local is not None:
        check(
            "the tests' PostgreSQL has the compose file's major",
            local in majors,
            f"tests run {local}, compose {sorted(majors)}",
        )
    check(
        "the docs name the same PostgreSQL major",
        "PostgreSQL 15" in read("docs/operations.md") and "PostgreSQL 15" in compose,
        "docs/operations.md or docker-compose.yml does not say PostgreSQL 15",
    )

    ports = re.findall(r"^\s+-\s*\"?([^\"\n]+:\d+)\"?\s*$", compose.split("ports:", 1)[-1], re.M)
    published = [p for p in ports if p.endswith(":8080") or p.endswith(":5432")]
    check(
        "published ports default to 127.0.0.1",
        bool(published)
        and all(p.startswith("127.0.0.1:") or ":-127.0.0.1:" in p for p in published),
        f"ports {published}",
    )
    check("PostgreSQL is not published", ":5432" not in "".join(published), str(published))

    passwords = re.findall(r"^\s+(POSTGRES_PASSWORD|TOKENGATE_HASH_KEY):\s*(\S.*)", compose, re.M)
    check(
        "no password or key is written in the compose file",
        bool(passwords) and all(v.startswith("${") for _, v in passwords),
        str(passwords),
    )
    urls = re.findall(r"DATABASE_URL:\s*(\S+)", compose)
    check(
        "the database URL takes its password from the environment",
        bool(urls) and all(re.search(r"://[^:]+:\$\{POSTGRES_PASSWORD", u) for u in urls),
        str(urls),
    )

    bases = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    check(
        "Dockerfile bases are pinned (a version with a dot, or a digest)",
        bool(bases) and all(re.search(r":[^:@]*\d+\.\d+|@sha256:", b) for b in bases),
        str(bases),
    )
    pinned = [i for i in images if not i.startswith("tokengate:")]
    check(
        "compose images are pinned",
        all(re.search(r":[^:@]*\d+\.\d+|@sha256:", i) for i in pinned),
        str(pinned),
    )
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    check(
        "the runtime runs as a non-root user",
        bool(users) and users[-1].split(":")[0] not in ("0", "root"),
        str(users),
    )

    for ignore in (".gitignore", ".dockerignore"):
        lines = read(ignore).split()
        check(f"{ignore} keeps .env and secrets/ out", ".env" in lines and "secrets/" in lines)
    example = read(".env.example")
    needed = re.findall(r"\$\{([A-Z_]+)[:?}-]", compose)
    missing = sorted({v for v in needed if not re.search(rf"^{v}=", example, re.M)})
    check(".env.example names every variable the compose file reads", not missing, str(missing))
    check(
        ".env.example holds no value for a secret",
        re.search(r"^(POSTGRES_PASSWORD|TOKENGATE_HASH_KEY)=\s*$", example, re.M) is not None
        and not re.search(r"^(POSTGRES_PASSWORD|TOKENGATE_HASH_KEY)=\S", example, re.M),
    )

    docker = shutil.which("docker")
    compose_ok = docker and subprocess.run(
        [docker, "compose", "version"], capture_output=True
    ).returncode == 0
    if compose_ok:
        with tempfile.NamedTemporaryFile("w", suffix=".env") as env:
            env.write("POSTGRES_PASSWORD=abc123\nTOKENGATE_HASH_KEY=\n")
            env.flush()
            out = subprocess.run(
                [docker, "compose", "-f", "docker-compose.yml", "--env-file", env.name, "config", "-q"],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
        check("docker compose config accepts the file", out.returncode == 0, out.stderr.strip())
    else:
        print("[deploy] skipped: docker compose config (no docker compose client here)")


def bootstrap_checks():
    compose = read("docker-compose.yml")
    block = service_block(compose, "bootstrap")
    m = re.search(r"^\s+command:\s*(\[.*\])\s*$", block, re.M)
    command = json.loads(m.group(1)) if m else None
    check("the compose file has a bootstrap service with a command", bool(command), block[:200])
    if not command:
        return
    variables = set(re.findall(r"^\s+(TOKENGATE_BOOTSTRAP_[A-Z_]+):", block, re.M))
    wanted = {
        "TOKENGATE_BOOTSTRAP_ORG",
        "TOKENGATE_BOOTSTRAP_EMAIL",
        "TOKENGATE_BOOTSTRAP_NAME",
        "TOKENGATE_BOOTSTRAP_PASSWORD_FILE",
    }
    check("the bootstrap service sets the owner and a password file", wanted <= variables, str(variables))

    password = "first-start-password-1"
    with service.fresh_database("tokengate_deploy") as url, tempfile.TemporaryDirectory() as tmp:
        secret = os.path.join(tmp, "owner_password")
        with open(secret, "w") as f:
            f.write(password + "\n")  # as `echo` writes it
        env = service.base_env(url)
        env.update(
            TOKENGATE_BOOTSTRAP_ORG="Acme",
            TOKENGATE_BOOTSTRAP_EMAIL="owner@acme.test",
            TOKENGATE_BOOTSTRAP_NAME="Ann Owner",
            TOKENGATE_BOOTSTRAP_PASSWORD_FILE=secret,
        )
        first = service.run(command, env, check=False)
        check(
            "the first start creates the organization",
            first.returncode == 0 and "created organization" in first.stdout,
            first.stdout + first.stderr,
        )
        second = service.run(command, env, check=False)
        check(
            "a second start does nothing and succeeds",
            second.returncode == 0 and "nothing to bootstrap" in second.stderr,
            second.stdout + second.stderr,
        )
        later = dict(env)
        for var in wanted:
            later.pop(var)
        third = service.run(command, later, check=False)
        check(
            "later starts need neither the owner nor the password",
            third.returncode == 0 and "nothing to bootstrap" in third.stderr,
            third.stdout + third.stderr,
        )
        printed = "".join(r.stdout + r.stderr for r in (first, second, third))
        check("bootstrap never prints the password", password not in printed)

        count = subprocess.run(
            [service.psql(), "-X", "-qtA", url, "-c", "select count(*) from organizations"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        check("exactly one organization exists", count == "1", count)

        env["TOKENGATE_HASH_KEY"] = service.run(["gen-key"], env).stdout.strip()
        port = service.free_port()
        env["TOKENGATE_LISTEN"] = f"127.0.0.1:{port}"
        log_path = os.path.join(ROOT, "target", "docs-test", "deploy.tokengate.log")
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        with open(log_path, "w") as log:
            process = subprocess.Popen([service.binary(), "serve"], env=env, stdout=log, stderr=log)
            try:
                base = f"http://127.0.0.1:{port}"
                service.wait_ready(base, process, log_path)
                request = urllib.request.Request(
                    base + "/api/v1/identity/login",
                    data=json.dumps({"email": "owner@acme.test", "password": password}).encode(),
                    headers={"content-type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=10) as r:
                    token = json.load(r)["data"]["token"]
                check("the Owner logs in with the password from the file", token.startswith("tgw_"))
            except Exception as e:  # noqa: BLE001 - any failure is this check's failure
                check("the Owner logs in with the password from the file", False, repr(e))
            finally:
                process.terminate()
                process.wait(timeout=15)


def main():
    static_checks()
    bootstrap_checks()
    failed = results.count(False)
    print(f"deploy: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
