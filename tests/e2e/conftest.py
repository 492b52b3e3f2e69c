"""Browser tests of the web UI: the real binary, a fresh database, Debian's Chromium.

Run by scripts/test (which makes the database and the Python environment); by hand:

    TOKENGATE_E2E_DATABASE_URL=postgres://…/empty_db TOKENGATE_BIN=target/debug/tokengate \
        .data/e2e-venv/bin/pytest tests/e2e

A failing test leaves a screenshot in target/e2e/failures/.
"""

import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "target" / "e2e"
OWNER_EMAIL = "owner@e2e.test"
PASSWORD = "e2e-password-1"
CHROMIUM_ARGS = [
    # As root Chromium refuses its sandbox; the rest keep it off this closed network.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEVELOPER = "66f3687f-939d-4257-bd3f-c3553d39e1b6"
ADMINISTRATOR = "3e961f0f-6fd4-4cf4-910f-52d356f8cc08"

expect.set_options(timeout=10_000)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """The JSON API, from the test's side (setting up members and checking tokens)."""

    def __init__(self, base):
        self.base = base

    def call(self, method, path, token=None, body=None, org=None, headers=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.base}/api/v1{path}", data=data, method=method)
        if body is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        if org:
            request.add_header("Organization", org)
        for k, v in (headers or {}).items():
            request.add_header(k, v)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null"), response.headers
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw.decode(errors="replace")
            return e.code, parsed, e.headers

    def ok(self, method, path, token=None, body=None, org=None):
        status, envelope, _ = self.call(method, path, token, body, org)
        assert status in (200, 201), f"{method} {path} -> {status} {envelope}"
        return envelope["data"]

    def login(self, email, password=PASSWORD):
        return self.ok("POST", "/identity/login", body={"email": email, "password": password})["token"]

    def forward(self, secret, action="ManageFeatureFlag", resource="project/web:env/prod:flag/dark-mode"):
        """What a gateway would be told for a request carrying this token."""
        status, _, _ = self.call(
            "GET", "/auth/forward", token=secret,
            headers={"X-Auth-Action": action, "X-Auth-Resource": resource})
        return status


class Org:
    """A fresh organization for one test, made by the bootstrap owner, and its members."""

    def __init__(self, api, owner_token, name):
        self.api = api
        self.owner = owner_token
        self.id = api.ok("POST", "/organizations", owner_token, {"name": name})["id"]
        self.tag = name.lower()

    def as_owner(self, method, path, body=None):
        return self.api.ok(method, path, self.owner, body, org=self.id)

    def member(self, name, policy_ids):
        email = f"{re.sub(r'[^a-z0-9]+', '.', name.lower())}.{self.tag}@e2e.test"
        member = self.as_owner("POST", "/members", {
            "email": email, "name": name, "password": PASSWORD, "policyIds": policy_ids})
        return {"id": member["id"], "email": email, "name": name}

    def policy(self, name, statements):
        return self.as_owner("POST", "/policies", {"name": name, "statements": statements})["id"]

    def token_for(self, member, name, kind="Personal", permissions=None):
        """A token made through the API, as `member` would (for tests about managing one)."""
        session = self.api.login(member["email"])
        body = {"name": name, "type": kind}
        if permissions is not None:
            body["permissions"] = permissions
        return self.api.ok("POST", "/access-tokens", session, body, org=self.id)


@pytest.fixture(scope="session")
def server():
    database_url = os.environ.get("TOKENGATE_E2E_DATABASE_URL")
    if not database_url:
        pytest.exit("TOKENGATE_E2E_DATABASE_URL is not set: run the browser tests with scripts/test", 2)
    binary = os.environ.get("TOKENGATE_BIN", str(ROOT / "target" / "debug" / "tokengate"))
    OUT.mkdir(parents=True, exist_ok=True)
    key = subprocess.run([binary, "gen-key"], check=True, capture_output=True, text=True).stdout.strip()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "TOKENGATE_HASH_KEY": key,
        "TOKENGATE_LISTEN": f"127.0.0.1:{port}",
        "RUST_LOG": "info",
        "NO_COLOR": "1",
    }
    subprocess.run([binary, "migrate"], check=True, env=env, capture_output=True)
    subprocess.run(
        [binary, "bootstrap", "--org", "E2E", "--email", OWNER_EMAIL, "--name", "Olivia Owner", "--password-stdin"],
        input=PASSWORD, text=True, check=True, env=env, capture_output=True)
    log = open(OUT / "tokengate.log", "w")
    process = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health/ready", timeout=2) as r:
                if r.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError):
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.exit(f"tokengate did not become ready; see {OUT / 'tokengate.log'}", 3)
        time.sleep(0.1)
    yield base
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="session")
def api(server):
    return Api(server)


@pytest.fixture(scope="session")
def owner_token(api):
    return api.login(OWNER_EMAIL)


@pytest.fixture
def org(api, owner_token, request):
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return Org(api, owner_token, f"{name}-{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="session")
def browser():
    executable = os.environ.get("TOKENGATE_CHROMIUM", "/usr/bin/chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def page(browser, server, request):
    context = browser.new_context(viewport={"width": 1360, "height": 860}, locale="en-US")
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
    page = context.new_page()
    problems = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    def on_console(message):
        # 401/403/404 answers the test provokes show as failed loads; anything else is a fault.
        text = message.text
        if message.type == "error" and "Failed to load resource" not in text:
            problems.append(f"console: {text}")

    page.on("console", on_console)
    yield page
    failed = getattr(request.node, "report_call", None)
    if failed is not None and failed.failed:
        shots = OUT / "failures"
        shots.mkdir(parents=True, exist_ok=True)
        path = shots / f"{request.node.name}.png"
        try:
            page.screenshot(path=str(path), full_page=True)
            print(f"screenshot of the failure: {path}")
        except Exception as e:  # the page may be gone; the report matters more
            print(f"no screenshot: {e}")
    context.close()
    assert not problems, "the page reported errors (a CSP violation shows here too):\n" + "\n".join(problems)


@pytest.fixture
def ui(page, server):
    return Ui(page, server)


class Ui:
    """Steps a person takes on the page, found by role and name as SPEC §10 names them."""

    def __init__(self, page, base):
        self.page = page
        self.base = base

    def login(self, email, password=PASSWORD):
        self.page.goto(self.base + "/")
        self.page.get_by_label("Email", exact=True).fill(email)
        self.page.get_by_label("Password", exact=True).fill(password)
        self.page.get_by_role("button", name="Log in", exact=True).click()
        expect(self.page.get_by_role("heading", name="Access tokens", exact=True)).to_be_visible()
        self.wait_for_list()

    def logout(self):
        """Log out and wait until the page has forgotten the session: navigating away before
        that can abort the logout call and leave the session in sessionStorage."""
        self.page.get_by_role("button", name="Log out", exact=True).click()
        expect(self.page.get_by_role("button", name="Log in", exact=True)).to_be_visible()

    def wait_for_list(self):
        expect(self.page.locator("table.tokens[aria-busy]")).to_have_count(0)

    def table(self):
        return self.page.get_by_role("table", name="Access tokens")

    def row(self, name):
        # The row whose first cell is the token's name.
        return self.table().get_by_role("row").filter(
            has=self.page.locator("td:first-child", has_text=re.compile(f"^{re.escape(name)}$")))

    def open_add(self):
        self.page.get_by_role("button", name="Add", exact=True).click()
        drawer = self.page.get_by_role("dialog", name="Add access token")
        expect(drawer).to_be_visible()
        return drawer

    def menu(self, token_name):
        self.row(token_name).get_by_role("button", name=f"Actions for {token_name}").click()
        return self.page.get_by_role("group", name=f"Actions for {token_name}")

    def secret(self):
        """The one-time secret as shown, after Copy has put it on the clipboard."""
        panel = self.page.locator(".secret-panel")
        expect(panel).to_be_visible()
        panel.get_by_role("button", name="Copy", exact=True).click()
        expect(panel.get_by_role("status")).to_have_text("Copied to the clipboard.")
        copied = self.page.evaluate("navigator.clipboard.readText()")
        shown = panel.get_by_role("textbox").input_value()
        assert copied == shown
        return copied
