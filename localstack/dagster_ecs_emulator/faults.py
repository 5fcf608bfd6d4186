"""Fault injection: make chosen requests fail the way AWS fails, before moto sees them.

Part of the compatibility layer, for tests: AWS throttles and has transient 5xx errors, moto
never does. A *rule* names a service, optionally an action (or, for REST APIs such as S3, an
HTTP method and a path pattern), the kind of error, and how often: the next ``count``
matching requests, or each matching request with ``probability`` (seeded, so a run is
reproducible). A failed request never reaches moto, so nothing is half-done; the client's
retry sends it again.

Rules are managed over HTTP on the emulator's own endpoint (JSON)::

    POST   /_dagster_ecs_emulator/faults   add a rule (an object) or rules (a list)
    GET    /_dagster_ecs_emulator/faults   the rules with their counters
    DELETE /_dagster_ecs_emulator/faults   remove every rule

or loaded at start (``serve --faults FILE`` / ``DAGSTER_ECS_EMULATOR_FAULTS=FILE``).

Errors are shaped as AWS shapes them, in the protocol the request used, so botocore parses
the code: JSON (``X-Amz-Target``: ECS, Logs, Secrets Manager, Cloud Map, ECR, Application
Auto Scaling), EC2's XML, the query-XML ``ErrorResponse`` (IAM, RDS, ELBv2, STS, Route 53),
S3's XML and REST-JSON (EFS).
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from .wsgi import credential_scope, json_response, query_action

FAULTS_PATH = "/_dagster_ecs_emulator/faults"
ENV_VAR = "DAGSTER_ECS_EMULATOR_FAULTS"

# Names a rule may use for a service, mapped to its SigV4 signing name.
SERVICE_ALIASES = {"elbv2": "elasticloadbalancing", "elb": "elasticloadbalancing", "efs": "elasticfilesystem"}

ERRORS = ("throttle", "internal", "unavailable")
_STATUS = {400: "400 Bad Request", 500: "500 Internal Server Error", 503: "503 Service Unavailable"}


def request_service(environ: dict) -> str:
    """The SigV4 signing name of the request (``ec2``, ``s3``, ``elasticloadbalancing``...), or ``""``."""
    signed = credential_scope(environ)[2]
    if signed:
        return signed
    found = re.search(r"X-Amz-Credential=[^&]*?%2F([a-z0-9-]+)%2Faws4_request", environ.get("QUERY_STRING", ""), re.I)
    if found:
        return found.group(1)
    host = environ.get("HTTP_HOST", "").split(":")[0]
    return host.split(".")[0] if host.endswith(".amazonaws.com") else ""


def request_action(environ: dict) -> str:
    """The API operation: ``X-Amz-Target``'s (JSON protocol) or ``Action`` (query protocol); ``""`` for REST."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return target.rsplit(".", 1)[-1]
    return query_action(environ)


def protocol(environ: dict, service: str) -> str:
    if environ.get("HTTP_X_AMZ_TARGET"):
        return "json"
    if service in ("ec2", "s3"):
        return service
    if service == "route53" or query_action(environ):
        return "query"
    return "rest-json"


def error_code(kind: str, proto: str) -> tuple[int, str]:
    """(HTTP status, AWS error code) of an error kind in a protocol, as AWS answers it."""
    if kind == "throttle":
        return {
            "json": (400, "ThrottlingException"),
            "rest-json": (400, "ThrottlingException"),
            "ec2": (503, "RequestLimitExceeded"),
            "s3": (503, "SlowDown"),
        }.get(proto, (400, "Throttling"))
    if kind == "internal":
        return 500, "InternalFailure" if proto in ("json", "rest-json") else "InternalError"
    return 503, "ServiceUnavailable"


def error_response(kind: str, proto: str, message: str) -> tuple[str, list, bytes]:
    """(status line, headers, body) of an AWS error response."""
    status, code = error_code(kind, proto)
    request_id = str(uuid.uuid4())
    msg = escape(message)
    if proto in ("json", "rest-json"):
        content_type = "application/x-amz-json-1.1" if proto == "json" else "application/json"
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = [("Content-Type", content_type), ("x-amzn-ErrorType", code), ("x-amzn-RequestId", request_id)]
    else:
        if proto == "ec2":
            text = (
                f"<Response><Errors><Error><Code>{code}</Code><Message>{msg}</Message></Error></Errors>"
                f"<RequestID>{request_id}</RequestID></Response>"
            )
        elif proto == "s3":
            text = f"<Error><Code>{code}</Code><Message>{msg}</Message><RequestId>{request_id}</RequestId></Error>"
        else:
            side = "Sender" if status < 500 else "Receiver"
            text = (
                f"<ErrorResponse><Error><Type>{side}</Type><Code>{code}</Code><Message>{msg}</Message></Error>"
                f"<RequestId>{request_id}</RequestId></ErrorResponse>"
            )
        body = b'<?xml version="1.0" encoding="UTF-8"?>\n' + text.encode()
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
    headers.append(("Content-Length", str(len(body))))
    return _STATUS[status], headers, body


@dataclass
class FaultRule:
    """One rule: which requests, which error, how often; and its counters."""

    service: str
    error: str = "throttle"
    action: str | None = None
    method: str | None = None
    path: str | None = None
    count: int | None = None
    probability: float | None = None
    seed: int | None = None
    id: int = 0
    injected: int = 0
    passed: int = 0
    _random: random.Random = field(default=None, repr=False)

    FIELDS = ("service", "error", "action", "method", "path", "count", "probability", "seed")

    @classmethod
    def from_dict(cls, spec: dict) -> FaultRule:
        if not isinstance(spec, dict):
            raise ValueError(f"a fault rule is a JSON object, not {spec!r}")
        unknown = set(spec) - set(cls.FIELDS)
        if unknown:
            known = ", ".join(cls.FIELDS)
            raise ValueError(f"unknown fault rule field(s): {', '.join(sorted(unknown))}; known: {known}")
        if not spec.get("service"):
            raise ValueError("a fault rule needs a service (SigV4 signing name, e.g. ec2, s3, ecs, elbv2)")
        rule = cls(**spec)
        rule.service = SERVICE_ALIASES.get(rule.service, rule.service)
        if rule.error not in ERRORS:
            raise ValueError(f"error {rule.error!r}: one of {', '.join(ERRORS)}")
        if rule.probability is None and rule.count is None:
            rule.count = 1
        if rule.count is not None and (not isinstance(rule.count, int) or rule.count < 0):
            raise ValueError(f"count {rule.count!r}: a non-negative integer")
        if rule.probability is not None and not 0 <= rule.probability <= 1:
            raise ValueError(f"probability {rule.probability!r}: between 0 and 1")
        if rule.path is not None:
            try:
                re.compile(rule.path)
            except re.error as exc:
                raise ValueError(f"path {rule.path!r}: {exc}") from exc
        rule._random = random.Random(rule.seed)  # noqa: S311 - reproducible test faults, not crypto
        return rule

    def matches(self, environ: dict, service: str, action: str) -> bool:
        if service != self.service:
            return False
        if self.method and environ.get("REQUEST_METHOD", "").upper() != self.method.upper():
            return False
        if self.path is not None:
            query = environ.get("QUERY_STRING", "")
            target = environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
            if not re.search(self.path, target):
                return False
        return self.action is None or action == self.action

    def fires(self) -> bool:
        """Whether this matching request is to fail (the caller counts it)."""
        if self.count is not None and self.injected >= self.count:
            return False
        return self.probability is None or self._random.random() < self.probability

    def as_dict(self) -> dict:
        spec = {name: getattr(self, name) for name in self.FIELDS if getattr(self, name) is not None}
        return {"id": self.id, **spec, "injected": self.injected, "passed": self.passed}


class FaultInjector:
    """WSGI middleware: serves ``FAULTS_PATH`` and fails the requests a rule matches."""

    def __init__(self, app, rules=()):
        self.app = app
        self.rules: list[FaultRule] = []
        self.lock = threading.Lock()
        self.next_id = 1
        self.add(list(rules))

    def add(self, specs) -> list[FaultRule]:
        """Validate every spec first, then add them all (a bad spec adds nothing)."""
        parsed = [FaultRule.from_dict(spec) for spec in (specs if isinstance(specs, list) else [specs])]
        with self.lock:
            for rule in parsed:
                rule.id, self.next_id = self.next_id, self.next_id + 1
                self.rules.append(rule)
        return parsed

    def _control(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET")
        status = "200 OK"
        if method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            try:
                added = self.add(json.loads(environ["wsgi.input"].read(length) or b"null"))
                payload = {"added": [rule.as_dict() for rule in added]}
            except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
                status, payload = "400 Bad Request", {"error": str(exc)}
        elif method == "DELETE":
            with self.lock:
                payload = {"removed": [rule.as_dict() for rule in self.rules]}
                self.rules.clear()
        elif method == "GET":
            with self.lock:
                payload = {"rules": [rule.as_dict() for rule in self.rules]}
        else:
            status, payload = "405 Method Not Allowed", {"error": f"{method}: use GET, POST or DELETE"}
        return json_response(start_response, status, payload)

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == FAULTS_PATH:
            return self._control(environ, start_response)
        if not self.rules:
            return self.app(environ, start_response)
        service, action = request_service(environ), request_action(environ)
        with self.lock:
            matched = [rule for rule in self.rules if rule.matches(environ, service, action)]
            fired = next((rule for rule in matched if rule.fires()), None)
            if fired is not None:
                fired.injected += 1
            else:
                for rule in matched:
                    rule.passed += 1
        if fired is None:
            return self.app(environ, start_response)
        what = action or f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}"
        status, headers, body = error_response(
            fired.error, protocol(environ, service), f"Injected by fault rule {fired.id} ({service} {what})"
        )
        start_response(status, headers)
        return [body]


def load_rules(source: str | None) -> list:
    """Rules from a JSON file path (or an inline JSON document); ``None``/empty gives none."""
    if not source:
        return []
    text = source if source.lstrip().startswith(("[", "{")) else Path(source).read_text()
    specs = json.loads(text)
    return specs if isinstance(specs, list) else [specs]


def startup_rules(path: str | None = None) -> list:
    """The rules to start with: ``--faults`` if given, else ``$DAGSTER_ECS_EMULATOR_FAULTS``."""
    return load_rules(path or os.environ.get(ENV_VAR))
