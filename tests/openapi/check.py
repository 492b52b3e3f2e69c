#!/usr/bin/env python3
"""Validates tokengate's /openapi.json as OpenAPI 3.1 (openapi-spec-validator, run by
tests/openapi/run from its venv) and checks what generated clients and contract tests rely on:
unique operationIds, a description on every operation, the envelope on every JSON answer,
each operation's error statuses with the error envelope, enums for kinds and statuses, bounds
on page sizes."""

import json
import os
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs"))
import service  # noqa: E402

from openapi_spec_validator import validate  # noqa: E402

RAW = {"/api/v1/auth/introspect", "/api/v1/secret-scanning/github", "/metrics"}


def problems(doc):
    found = []
    ids = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            ids.setdefault(op.get("operationId"), []).append(where)
            if not op.get("description"):
                found.append(f"{where}: no description")
            responses = op.get("responses", {})
            for status, response in responses.items():
                schema = response.get("content", {}).get("application/json", {}).get("schema", {})
                if status.startswith("2") and path not in RAW:
                    if set(schema.get("required", [])) != {"success", "errors", "data"}:
                        found.append(f"{where} {status}: not the envelope")
                if status[0] in "45" and schema.get("$ref") != "#/components/schemas/ErrorEnvelope":
                    found.append(f"{where} {status}: not the error envelope")
            for status in ("500", "503"):
                if status not in responses:
                    found.append(f"{where}: {status} not documented")
            if op.get("security") != [{}] and "401" not in responses:
                found.append(f"{where}: secured but no 401")
            for param in op.get("parameters", []):
                if param["name"] == "pageSize" and param["schema"].get("maximum") != 100:
                    found.append(f"{where}: pageSize unbounded")
    found += [f"operationId {i!r} used by {w}" for i, w in ids.items() if len(w) > 1 or not i]
    schemas = doc["components"]["schemas"]
    for name in ("TokenKind", "TokenStatus", "Effect"):
        if "enum" not in schemas.get(name, {}):
            found.append(f"{name} is not an enum")
    return found


def main():
    log = os.path.join(service.ROOT, "target", "openapi-check.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with service.demo_service(log) as (base, _):
        with urllib.request.urlopen(f"{base}/openapi.json", timeout=10) as r:
            doc = json.load(r)
    validate(doc)
    print(f"[openapi] {len(doc['paths'])} paths: valid OpenAPI {doc['openapi']}")
    found = problems(doc)
    for p in found:
        print(f"[openapi] {p}")
    print(f"[openapi] {'ok' if not found else f'{len(found)} problems'}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
