#!/usr/bin/env python3
"""Real gateways in front of a real tokengate, configured with exactly docs/integrations.md's
recipes (extracted from the Markdown; only addresses are substituted, as the docs test does).

    python3 tests/gateways/gateways.py      (tests/gateways/run prepares the tools; scripts/test runs it)

nginx and Caddy come from Debian, Traefik from its PyPI wheel (TOKENGATE_TRAEFIK names the
binary). Each recipe is checked for: a token that may is let through and the upstream gets
tokengate's identity headers, never the client's; one that may not gets 403, none gets 401;
a client cannot ask its own question (client-sent X-Auth-* and X-Forwarded-* are overwritten);
the 31st bad token of a burst gets tokengate's 429 with Retry-After (nginx through `error_page`);
and nginx's `error_page` turns a 503 with Retry-After into the client's 503. The route-rules
recipe runs with the docs' rules file. Envoy is not installable here: its request shape is
tested in tests/api/gateway.rs.
"""

import contextlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs"))
import service  # noqa: E402

DOC = os.path.join(service.ROOT, "docs", "integrations.md")
FLAG = "project/web:env/prod:flag/"


def recipes():
    """{heading: {lang: body}} for docs/integrations.md's fenced blocks."""
    found, heading, lang, body = {}, None, None, None
    for line in open(DOC, encoding="utf-8"):
        if body is None:
            if line.startswith("#"):
                heading = line.strip("# \n")
            m = re.match(r"^```(\w+)", line)
            if m:
                lang, body = m.group(1), []
        elif line.startswith("```"):
            found.setdefault(heading, {})[lang] = "".join(body)
            body = None
        else:
            body.append(line)
    return found


class Upstream(http.server.BaseHTTPRequestHandler):
    """The protected API: answers every request with what it received."""

    def answer(self):
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = answer

    def log_message(self, *args):
        pass


class Unavailable(http.server.BaseHTTPRequestHandler):
    """A tokengate whose database is down, as nginx sees it: 503 with Retry-After."""

    def do_GET(self):
        body = b'{"success":false,"errors":["ServiceUnavailable"],"data":null}'
        self.send_response(503)
        self.send_header("retry-after", "1")
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve_in_thread(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def call(method, url, headers=None, data=None):
    request = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, dict((k.lower(), v) for k, v in r.headers.items()), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict((k.lower(), v) for k, v in e.headers.items()), e.read()


def api(base, method, path, token, body=None, org=None):
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    if org:
        headers["organization"] = org
    status, _, raw = call(method, f"{base}/api/v1{path}", headers, json.dumps(body).encode() if body is not None else None)
    if status >= 300:
        raise RuntimeError(f"{method} {path}: {status} {raw!r}")
    return json.loads(raw)["data"]


def service_token(base, owner, name, statements):
    data = api(base, "POST", "/access-tokens", owner, {"name": name, "type": "Service", "permissions": statements})
    return data["id"], data["token"]


def statement(resource_type, actions, resources):
    return {"resourceType": resource_type, "effect": "allow", "actions": actions, "resources": resources}


@contextlib.contextmanager
def process(args, log_path, env=None, ready_url=None, ready_status=401):
    """Runs a gateway until the block ends; ready once `ready_url` (a protected path, without a
    token) answers `ready_status`: the gateway is up and its routes are loaded."""
    log = open(log_path, "w")
    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 30
        while ready_url:
            try:
                if call("GET", ready_url)[0] == ready_status:
                    break
            except (urllib.error.URLError, OSError):
                pass
            if p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} did not start; see {log_path}")
            time.sleep(0.1)
        yield p
    finally:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()


def nginx(work, name, server_block, tokengate, upstream_port, port, ready_status=401):
    server_block = server_block.replace("listen 80;", f"listen 127.0.0.1:{port};")
    server_block = server_block.replace("127.0.0.1:8080", tokengate)
    conf = os.path.join(work, f"{name}.conf")
    temp = os.path.join(work, f"{name}-temp")
    os.makedirs(temp, exist_ok=True)
    with open(conf, "w") as f:
        f.write(
            f"""daemon off;
pid {work}/{name}.pid;
error_log {work}/{name}-error.log notice;
events {{}}
http {{
    access_log off;
    client_body_temp_path {temp}/body; proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi; uwsgi_temp_path {temp}/uwsgi; scgi_temp_path {temp}/scgi;
    upstream flags-backend {{ server 127.0.0.1:{upstream_port}; }}
{server_block}
}}
"""
        )
    return process(["nginx", "-p", work, "-c", conf], os.path.join(work, f"{name}.log"),
                   ready_url=f"http://127.0.0.1:{port}/api/flags/x", ready_status=ready_status)


def caddy(work, caddyfile, tokengate, upstream_port, port):
    body = caddyfile.replace("example.com {", f"http://127.0.0.1:{port} {{", 1)
    body = body.replace("127.0.0.1:8080", tokengate).replace("127.0.0.1:9000", f"127.0.0.1:{upstream_port}")
    path = os.path.join(work, "Caddyfile")
    with open(path, "w") as f:
        f.write("{\n    admin off\n    auto_https off\n}\n" + body)
    env = {**os.environ, "HOME": work, "XDG_DATA_HOME": work, "XDG_CONFIG_HOME": work}
    return process(["caddy", "run", "--config", path, "--adapter", "caddyfile"],
                   os.path.join(work, "caddy.log"), env=env, ready_url=f"http://127.0.0.1:{port}/api/flags/x")


def traefik(work, dynamic, tokengate, upstream_port, port):
    body = dynamic.replace("127.0.0.1:8080", tokengate).replace("127.0.0.1:9000", f"127.0.0.1:{upstream_port}")
    path = os.path.join(work, "traefik-dynamic.yaml")
    with open(path, "w") as f:
        f.write(body)
    binary = os.environ.get("TOKENGATE_TRAEFIK", "traefik")
    args = [binary, f"--entrypoints.web.address=127.0.0.1:{port}", f"--providers.file.filename={path}",
            "--log.level=INFO", "--global.checknewversion=false", "--global.sendanonymoususage=false"]
    return process(args, os.path.join(work, "traefik.log"), ready_url=f"http://127.0.0.1:{port}/api/flags/x")


class Checks:
    def __init__(self):
        self.failures = []

    def expect(self, what, condition, detail=""):
        print(f"[gateways] {'ok  ' if condition else 'FAIL'} {what}" + ("" if condition else f": {detail}"))
        if not condition:
            self.failures.append(what)


def fixed_recipe_checks(checks, name, url, tokens, one_flag_allowed):
    everything, one, token_id = tokens["all"], tokens["one"], tokens["all_id"]
    forged = {"X-Auth-Principal": "session", "X-Auth-User-Id": "forged", "X-Auth-Token-Id": "forged"}
    status, _, raw = call("GET", f"{url}/api/flags/dark-mode", {"Authorization": f"Bearer {everything}", **forged})
    seen = json.loads(raw)["headers"] if status == 200 else {}
    checks.expect(f"{name}: an allowed token passes", status == 200, status)
    checks.expect(f"{name}: the upstream gets tokengate's identity", seen.get("x-auth-principal") == "service-token"
                  and seen.get("x-auth-token-id") == token_id, seen)
    checks.expect(f"{name}: a client-sent X-Auth-User-Id never reaches the upstream",
                  not seen.get("x-auth-user-id"), seen)
    status, _, _ = call("GET", f"{url}/api/flags/dark-mode")
    checks.expect(f"{name}: no token is 401", status == 401, status)
    # The client asks its own question: the recipe's replaces it.
    own = {"Authorization": f"Bearer {one}", "X-Auth-Action": "ManageFeatureFlag",
           "X-Auth-Resource": FLAG + "dark-mode"}
    status, _, _ = call("GET", f"{url}/api/flags/other", own)
    checks.expect(f"{name}: client-sent X-Auth-Action/Resource are overwritten", status == 403, status)
    status, _, _ = call("GET", f"{url}/api/flags/dark-mode", {"Authorization": f"Bearer {one}"})
    checks.expect(f"{name}: a token for one flag is {'let through' if one_flag_allowed else 'refused'}",
                  status == (200 if one_flag_allowed else 403), status)


def rules_recipe_checks(checks, url, token):
    auth = {"Authorization": f"Bearer {token}"}
    for method, path, expected in [
        ("PUT", "/api/projects/web/envs/prod/flags/dark-mode", 200),
        ("GET", "/api/projects/web/envs/prod/flags/dark-mode", 200),
        ("PUT", "/api/projects/mobile/envs/prod/flags/dark-mode", 403),
        ("DELETE", "/api/projects/web/envs/prod/flags/dark-mode", 403),
        ("GET", "/api/unmapped", 403),
        ("PUT", "/api/projects/web%3Aenv%2Fprod/envs/prod/flags/x", 403),
    ]:
        status, _, _ = call(method, f"{url}{path}", auth, b"{}" if method == "PUT" else None)
        checks.expect(f"nginx rules: {method} {path} is {expected}", status == expected, status)
    smuggle = {**auth, "X-Forwarded-Method": "PUT", "X-Forwarded-Uri": "/api/projects/web/envs/prod/flags/x",
               "X-Auth-Action": "UpdateFlagName", "X-Auth-Resource": FLAG + "x"}
    status, _, _ = call("PUT", f"{url}/api/projects/mobile/envs/prod/flags/x", smuggle, b"{}")
    checks.expect("nginx rules: client-sent questions are ignored", status == 403, status)


def burst_checks(checks, name, url):
    """Run last: it empties 127.0.0.1's failure bucket (successful requests never count)."""
    last = None
    for _ in range(40):
        last = call("GET", f"{url}/api/flags/dark-mode", {"Authorization": "Bearer tgs_bad"})
        if last[0] == 429:
            break
    status, headers, body = last
    checks.expect(f"{name}: a burst of bad tokens gets 429 with Retry-After",
                  status == 429 and headers.get("retry-after", "").isdigit(), (status, headers, body))


def main():
    docs = recipes()
    nginx_fixed = docs["nginx (`auth_request`)"]["nginx"]
    nginx_rules = docs["nginx with route rules"]["nginx"]
    traefik_dynamic = docs["Traefik (ForwardAuth)"]["yaml"]
    caddyfile = docs["Caddy (`forward_auth`)"]["caddyfile"]
    rules = docs["Route rules"]["toml"]
    checks = Checks()
    out = os.path.join(service.ROOT, "target", "gateways-test")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    work = tempfile.mkdtemp(prefix="tg-gateways-", dir=out)
    rules_path = os.path.join(work, "rules.toml")
    with open(rules_path, "w") as f:
        f.write(rules)
    upstream, upstream_port = serve_in_thread(Upstream)
    unavailable, unavailable_port = serve_in_thread(Unavailable)
    with service.demo_service(os.path.join(work, "tokengate.log"), {"TOKENGATE_ROUTE_RULES": rules_path}) as (base, _):
        tokengate = base.removeprefix("http://")
        owner = json.loads(call("POST", f"{base}/api/v1/identity/login", {"content-type": "application/json"},
                                json.dumps({"email": service.DEMO_EMAIL, "password": service.DEMO_PASSWORD}).encode())[2])["data"]["token"]
        all_id, everything = service_token(base, owner, "gw-all", [statement("flag", ["ManageFeatureFlag"], [FLAG + "*"])])
        _, one = service_token(base, owner, "gw-one", [statement("flag", ["ManageFeatureFlag"], [FLAG + "dark-mode"])])
        _, ruled = service_token(base, owner, "gw-rules", [
            statement("flag", ["UpdateFlagName"], [FLAG + "*"]),
            statement("env", ["CanAccessEnv"], ["project/web:env/prod"]),
        ])
        tokens = {"all": everything, "all_id": all_id, "one": one}
        ports = [service.free_port() for _ in range(5)]
        with nginx(work, "nginx", nginx_fixed, tokengate, upstream_port, ports[0]), \
                nginx(work, "nginx-rules", nginx_rules, tokengate, upstream_port, ports[1]), \
                nginx(work, "nginx-down", nginx_fixed, f"127.0.0.1:{unavailable_port}", upstream_port, ports[2], 503), \
                caddy(work, caddyfile, tokengate, upstream_port, ports[3]), \
                traefik(work, traefik_dynamic, tokengate, upstream_port, ports[4]):
            urls = {name: f"http://127.0.0.1:{port}" for name, port in
                    zip(["nginx", "nginx-rules", "nginx-down", "caddy", "traefik"], ports)}
            fixed_recipe_checks(checks, "nginx", urls["nginx"], tokens, one_flag_allowed=True)
            fixed_recipe_checks(checks, "caddy", urls["caddy"], tokens, one_flag_allowed=False)
            fixed_recipe_checks(checks, "traefik", urls["traefik"], tokens, one_flag_allowed=False)
            rules_recipe_checks(checks, urls["nginx-rules"], ruled)
            status, headers, _ = call("GET", f"{urls['nginx-down']}/api/flags/x", {"Authorization": f"Bearer {one}"})
            checks.expect("nginx: tokengate's 503 reaches the client with Retry-After",
                          status == 503 and headers.get("retry-after") == "1", (status, headers))
            for name in ["nginx", "caddy", "traefik"]:
                burst_checks(checks, name, urls[name])
    upstream.shutdown()
    unavailable.shutdown()
    if checks.failures:
        print(f"[gateways] {len(checks.failures)} failed; logs in {work}")
        return 1
    print("[gateways] all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
