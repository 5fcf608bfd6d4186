"""WSGI helpers the emulator's layers share: read a request once, tell its operation and scope, answer JSON.

The compatibility shims (``compat/``), the fault injector (``faults.py``), the call recorder
(``calls.py``) and the ECS task control endpoint (``ecs_tasks.py``) all look at a request before moto
does; each reads the body through :func:`request_body`, so moto still gets an unread copy.
"""

from __future__ import annotations

import io
import json
import os
import re
from urllib.parse import parse_qs


def request_body(environ: dict) -> bytes:
    """Read the request body once; keep it in the environ and give moto an unread copy."""
    if "dagster_ecs.body" not in environ:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["dagster_ecs.body"] = body
    return environ["dagster_ecs.body"]


def request_json(environ: dict):
    """The JSON-protocol request body as a document (``{}`` when empty)."""
    return json.loads(request_body(environ) or b"{}")


def request_form(environ: dict, name: str) -> str:
    """A field of a query-protocol (form-encoded) request body, or ``""``."""
    return parse_qs(request_body(environ).decode("utf-8", "replace")).get(name, [""])[0]


def json_response(start_response, status: str, payload) -> list[bytes]:
    """Answer a WSGI request with ``payload`` as JSON (the emulator's own control endpoints)."""
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def rewrite_path(environ: dict, path: str, query: str = "") -> None:
    """Point the request at another path. moto reads ``RAW_URI`` as well as ``PATH_INFO``."""
    environ.setdefault("dagster_ecs.original_path", environ.get("PATH_INFO", ""))
    environ["PATH_INFO"] = path
    environ["QUERY_STRING"] = query
    environ["RAW_URI"] = environ["REQUEST_URI"] = f"{path}?{query}" if query else path


def replace_body(environ: dict, body: bytes) -> None:
    """Give moto a different request body."""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))


_CREDENTIAL = re.compile(r"Credential=(?P<key>[^/]+)/[^/]+/(?P<region>[^/]+)/(?P<service>[^/]+)/")


def credential_scope(environ: dict) -> tuple[str, str, str]:
    """(access key, region, signing name) of a SigV4 ``Authorization`` header, or three empty strings."""
    found = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    return (found.group("key"), found.group("region"), found.group("service")) if found else ("", "", "")


def moto_scope(environ: dict) -> tuple[str, str]:
    """(account id, region) moto files this request under, as moto itself derives them."""
    from moto.iam.models import get_account_id_from

    access_key, region, _service = credential_scope(environ)
    region = region or "us-east-1"
    account = (
        os.environ.get("MOTO_ACCOUNT_ID") or environ.get("HTTP_X_MOTO_ACCOUNT_ID") or get_account_id_from(access_key)
    )
    return account, region


def query_action(environ: dict) -> str:
    """The ``Action`` of a query-protocol (EC2, IAM, RDS, ELBv2, STS) request, or ``""``.

    Reads a form-encoded body once, keeps it in the environ and puts an unread copy
    back in ``wsgi.input`` so moto still sees the whole request.
    """
    if "dagster_ecs.action" in environ:
        return environ["dagster_ecs.action"]
    action = parse_qs(environ.get("QUERY_STRING", "")).get("Action", [""])[0]
    if not action and environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        action = request_form(environ, "Action")
    environ["dagster_ecs.action"] = action
    return action
