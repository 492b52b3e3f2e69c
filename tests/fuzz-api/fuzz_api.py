#!/usr/bin/env python3
"""Helpers for tests/fuzz-api/run, which scripts/fuzz-api calls (standard library only; runs
with any python3 >= 3.8).

    fuzz_api.py db-urls DATABASE_URL NAME   print "ADMIN_URL<TAB>FUZZ_URL": the same server with
                                            the database /postgres (admin) and /NAME
    fuzz_api.py free-port                   print a free TCP port on 127.0.0.1
    fuzz_api.py json-get PATH               read JSON on stdin, print the value at PATH
                                            (dotted: data.token); exit 1 if absent or null
    fuzz_api.py summary NDJSON SERVER_LOG   summarise a schemathesis NDJSON event report; exit 1
                                            if any response was a 5xx (or the server crashed)

The summary prints the operations tested, the examples sent, the failures per check, and, for
every distinct 5xx (method, path, status), one request that triggers it, the response and the
server log lines that carry the same request id (the server answers x-request-id).
"""

import base64
import json
import re
import socket
import sys
from collections import OrderedDict
from urllib.parse import urlsplit, urlunsplit


def db_urls(url, name):
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        sys.exit(f"fuzz_api.py: DATABASE_URL must be a postgres:// URL (got scheme {parts.scheme!r})")
    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
    fuzz = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
    print(f"{admin}\t{fuzz}")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def json_get(path):
    raw = sys.stdin.read()
    try:
        value = json.loads(raw)
    except ValueError:
        sys.exit(f"fuzz_api.py: not JSON: {raw[:300]!r}")
    for key in path.split("."):
        if not isinstance(value, dict) or value.get(key) is None:
            sys.exit(f"fuzz_api.py: no {path!r} in {raw[:300]!r}")
        value = value[key]
    print(value if isinstance(value, str) else json.dumps(value))


# --- the summary ---------------------------------------------------------------------------------


def _iter_events(path):
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except ValueError:
                continue


def _walk(node):
    """Every dict inside node (depth first)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _header(headers, name):
    if not isinstance(headers, dict):
        return None
    for key, value in headers.items():
        if key.lower() == name:
            if isinstance(value, list):
                return value[0] if value else None
            return value
    return None


def _body_text(body):
    """A request/response body as schemathesis records it: a string or {"$base64": ...}."""
    if body is None:
        return ""
    if isinstance(body, dict) and "$base64" in body:
        try:
            return base64.b64decode(body["$base64"]).decode("utf-8", errors="replace")
        except (ValueError, TypeError):
            return str(body["$base64"])
    if isinstance(body, (dict, list)):
        return json.dumps(body)
    return str(body)


def summarise(ndjson_path, log_path):
    try:
        open(ndjson_path, encoding="utf-8").close()
    except OSError as exc:
        print(f"fuzz_api.py: no schemathesis report: {exc}", file=sys.stderr)
        return 3
    operations = set()
    operations_total = None
    examples = 0  # test cases (inputs) generated and sent
    requests = 0  # HTTP requests, retries and stateful steps included
    statuses = {}
    failures_by_check = {}
    server_errors = OrderedDict()  # (method, path, status) -> first occurrence
    interactions_seen = set()
    errors = []

    for event in _iter_events(ndjson_path):
        if not isinstance(event, dict) or len(event) != 1:
            continue
        kind, payload = next(iter(event.items()))
        if not isinstance(payload, dict):
            continue
        if kind == "EngineStarted":
            continue
        if kind == "PhaseStarted":
            total = None
            for d in _walk(payload):
                if "operations_count" in d and isinstance(d["operations_count"], int):
                    total = d["operations_count"]
            if total is not None:
                operations_total = max(operations_total or 0, total)
        if kind == "NonFatalError":
            info = payload.get("info") or {}
            label = payload.get("label") or ""
            text = f"{label}: {info.get('title', '')}: {info.get('message', '')}"
            errors.append(" ".join(text.split()))
        if kind != "ScenarioFinished":
            continue
        recorder = payload.get("recorder") or {}
        label = recorder.get("label") or payload.get("label")
        if label and re.match(r"^[A-Z]+ /", label):
            operations.add(label)
        cases = recorder.get("cases") or {}
        examples += len(cases)
        interactions = recorder.get("interactions") or {}
        checks = recorder.get("checks") or {}
        for case_id, interaction in interactions.items():
            key = (label, case_id)
            if key in interactions_seen:
                continue
            interactions_seen.add(key)
            requests += 1
            response = (interaction or {}).get("response") or {}
            request = (interaction or {}).get("request") or {}
            status = response.get("status_code")
            if isinstance(status, int):
                statuses[status] = statuses.get(status, 0) + 1
            if isinstance(status, int) and status >= 500:
                method = request.get("method", "?")
                url = request.get("uri") or request.get("url") or "?"
                path = re.sub(r"^https?://[^/]+", "", url).split("?")[0]
                case = (cases.get(case_id) or {}).get("value") or {}
                # The case names the operation (path template); stateful scenarios are labelled
                # "Stateful tests", so the label alone is not enough.
                route = case.get("path") if isinstance(case, dict) else None
                if not route:
                    route = label.split(" ", 1)[1] if label and re.match(r"^[A-Z]+ /", label) else path
                dedup = (method, route, status)
                if dedup not in server_errors:
                    server_errors[dedup] = {
                        "url": url,
                        "request": request,
                        "response": response,
                        "phase": payload.get("phase"),
                    }
                else:
                    server_errors[dedup].setdefault("count", 1)
                    server_errors[dedup]["count"] += 1
        for case_id, results in checks.items():
            for result in results or []:
                if not isinstance(result, dict):
                    continue
                if result.get("status") in ("FAILURE", "failure", 2, "Status.FAILURE"):
                    name = result.get("name", "?")
                    failures_by_check.setdefault(name, set()).add((label, case_id))

    print("== fuzz-api summary ==")
    tested = len(operations)
    if operations_total:
        print(f"operations tested : {tested} (of {operations_total} in the schema)")
    else:
        print(f"operations tested : {tested}")
    print(f"examples sent     : {examples} test cases, {requests} HTTP responses recorded")
    print("status codes      : " + ", ".join(f"{k}×{v}" for k, v in sorted(statuses.items())))
    if failures_by_check:
        print("check failures    : " + ", ".join(
            f"{name}: {len(cases)}" for name, cases in sorted(failures_by_check.items())))
    else:
        print("check failures    : none")
    if errors:
        print(f"errors            : {len(errors)} (schemathesis could not test a case; not a verdict on the API)")
        for text in list(OrderedDict.fromkeys(errors))[:10]:
            print(f"  - {text[:300]}")

    log_lines = []
    try:
        with open(log_path, encoding="utf-8", errors="replace") as fh:
            log_lines = fh.read().splitlines()
    except OSError:
        pass
    panics = [line for line in log_lines if "panicked" in line]

    if server_errors:
        print(f"5xx responses     : {sum(v.get('count', 1) for v in server_errors.values())} "
              f"({len(server_errors)} distinct method/route/status)")
        for (method, route, status), item in server_errors.items():
            print(f"\n--- {status} on {method} {route} (phase {item.get('phase')}) ---")
            req = item["request"]
            print(f"request : {method} {item['url']}")
            headers = {k: v for k, v in (req.get("headers") or {}).items()
                       if k.lower() not in ("authorization",)}
            if headers:
                print(f"headers : {json.dumps(headers)[:600]}")
            body = _body_text(req.get("body"))
            if body:
                print(f"body    : {body[:1000]}")
            resp = item["response"]
            print(f"response: {resp.get('status_code')} {_body_text(resp.get('content') or resp.get('body'))[:1000]}")
            rid = _header(resp.get("headers"), "x-request-id")
            if rid:
                print(f"x-request-id: {rid}")
                for line in [line for line in log_lines if rid in line][:20]:
                    print(f"  log | {line[:400]}")
    else:
        print("5xx responses     : 0")
    if panics:
        print(f"server panics     : {len(panics)}")
        for line in panics[:10]:
            print(f"  log | {line[:400]}")
    conformance = sorted(name for name in failures_by_check if name in CONFORMANCE_CHECKS)
    if conformance:
        print("conformance       : FAILED (" + ", ".join(conformance) + "): the responses contradict /openapi.json")
    return 1 if (server_errors or panics or conformance) else 0


# Responses must match /openapi.json: these checks gate the run as a 5xx does.
CONFORMANCE_CHECKS = {
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
}


def main(argv):
    if len(argv) >= 2 and argv[1] == "db-urls" and len(argv) == 4:
        db_urls(argv[2], argv[3])
    elif len(argv) == 2 and argv[1] == "free-port":
        free_port()
    elif len(argv) == 3 and argv[1] == "json-get":
        json_get(argv[2])
    elif len(argv) == 4 and argv[1] == "summary":
        return summarise(argv[2], argv[3])
    else:
        sys.exit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
