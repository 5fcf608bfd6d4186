"""Test harness for the collection's modules: in-process runs, an AWS call interceptor, a local HTTP server.

The fixtures that use it are in conftest.py.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import socket
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

from ansible.module_utils.common import warnings as _warnings
from ansible.module_utils.testing import patch_module_args
from botocore.exceptions import ClientError
from dagster_ecs_emulator.compat import applicationautoscaling, servicediscovery

REGION = "ap-southeast-2"
ACCOUNT = "123456789012"  # moto's default account


def run_module(module, args=None, *, check_mode=False, diff=True) -> dict:
    """Run ``module.main()`` with ``args``; the result it printed (``failed: true`` when it failed).

    An exception the module does not catch propagates, as it would crash the module under Ansible.
    """
    args = {"region": REGION, **(args or {})}
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    out = io.StringIO()
    # a module process starts with no warnings; in-process runs would accumulate them
    fresh = mock.patch.multiple(_warnings, _global_warnings={}, _global_deprecations={})
    with patch_module_args(args), fresh, contextlib.redirect_stdout(out):
        code = exit_code(module)
    result = json.loads(out.getvalue())
    assert bool(code) == bool(result.get("failed")), f"exit code {code} but result {result}"
    return result


def exit_code(module):
    """The code ``module.main()`` exits with (exit_json and fail_json raise SystemExit)."""
    try:
        module.main()
    except SystemExit as exit_:
        return exit_.code
    raise AssertionError(f"{module.__name__} returned without exit_json or fail_json")


def warnings_of(result) -> list[str]:
    """The warning messages of a result (ansible-core 2.19 returns them as event summaries)."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


# --- AWS --------------------------------------------------------------------------------------


def client_error(operation, code, message="injected by the test", status=400):
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


@dataclass
class Rule:
    operation: str
    service: str | None
    times: int | None  # None: every call
    action: Any  # an exception to raise, or a callable(original, params) -> response

    def applies(self, service, operation):
        return (
            self.operation == operation
            and (self.service is None or self.service == service)
            and (self.times is None or self.times > 0)
        )


@dataclass
class FakeAws:
    calls: list = field(default_factory=list)
    sleeps: list = field(default_factory=list)
    rules: list = field(default_factory=list)
    clients: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # --- what the tests use
    def fail(self, operation, code="AccessDeniedException", *, times=None, status=400, service=None, exception=None):
        """Make ``operation`` raise (a ClientError with ``code``, or ``exception``), ``times`` times or always."""
        error = exception or client_error(operation, code, status=status)
        self.rules.append(Rule(operation, service, times, error))

    def answer(self, operation, response, *, times=None, service=None):
        """Answer ``operation`` with ``response`` (a dict, or ``callable(original, params)``) instead of moto."""
        action = response if callable(response) else (lambda original, params: response)
        self.rules.append(Rule(operation, service, times, action))

    def forget(self):
        """Forget the calls so far (a fixture's set-up) and the retry sleeps."""
        with self.lock:
            self.calls.clear()
            self.sleeps.clear()

    def count(self, operation, service=None):
        return sum(1 for called, op, _params in self.calls if op == operation and service in (None, called))

    def params(self, operation):
        """The parameters of every call of ``operation``."""
        return [params for _service, op, params in self.calls if op == operation]

    def client(self, service):
        """A boto3 client for the test's own set-up and checks (one per service)."""
        import boto3

        if service not in self.clients:
            self.clients[service] = boto3.client(service, region_name=REGION)
        return self.clients[service]

    # --- the interceptor
    def intercept(self, original):
        fake = self

        def _make_api_call(client, operation, params):
            service = client.meta.service_model.service_name
            with fake.lock:
                fake.calls.append((service, operation, dict(params)))
                rule = next((r for r in fake.rules if r.applies(service, operation)), None)
                if rule and rule.times is not None:
                    rule.times -= 1

            def call(p=params):
                return original(client, operation, p)

            if rule is not None:
                if isinstance(rule.action, BaseException):
                    raise rule.action
                return rule.action(call, params)
            emulate = getattr(fake, f"_emulate_{service.replace('-', '_')}_{operation}", None)
            return emulate(call, params) if emulate else call()

        return _make_api_call

    # --- moto 5.2.5 gaps, filled as AWS behaves by the emulator's own shims (dagster_ecs_emulator.compat) ----
    def _emulate_application_autoscaling_RegisterScalableTarget(self, call, params):
        response = call()
        applicationautoscaling.remember_tags(ACCOUNT, REGION, response["ScalableTargetARN"], params.get("Tags"))
        return response

    @staticmethod
    def _autoscaling_tag_call(operation, params):
        answer = applicationautoscaling.tag_call(ACCOUNT, REGION, operation, params)
        if answer is None:
            message = applicationautoscaling.no_target_message(params.get("ResourceARN"))
            raise client_error(operation, "ResourceNotFoundException", message)
        return answer

    def _emulate_application_autoscaling_ListTagsForResource(self, call, params):
        return self._autoscaling_tag_call("ListTagsForResource", params)

    def _emulate_application_autoscaling_TagResource(self, call, params):
        return self._autoscaling_tag_call("TagResource", params)

    def _emulate_application_autoscaling_UntagResource(self, call, params):
        return self._autoscaling_tag_call("UntagResource", params)

    def _emulate_servicediscovery_CreatePrivateDnsNamespace(self, call, params):
        response = call()
        servicediscovery.associate_namespace_vpc(ACCOUNT, REGION, response["OperationId"])
        return response

    def _emulate_servicediscovery_ListNamespaces(self, call, params):
        response = call()
        fields = {"TYPE": lambda item: item.get("Type"), "NAME": lambda item: item.get("Name")}
        response["Namespaces"] = servicediscovery.filtered(response["Namespaces"], params.get("Filters"), fields)
        return response

    def _emulate_servicediscovery_ListServices(self, call, params):
        from moto.servicediscovery.models import servicediscovery_backends

        services = servicediscovery_backends[ACCOUNT][REGION].services
        response = call()
        # a service summary (as botocore parses it) carries no namespace id: moto's service object knows it
        fields = {"NAMESPACE_ID": lambda item: services[item["Id"]].namespace_id}
        response["Services"] = servicediscovery.filtered(response["Services"], params.get("Filters"), fields)
        return response


class FakeClock:
    """``time`` for module_utils.common: sleeping advances it at once."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


# --- HTTP ---------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict | list = b""
    headers: dict = field(default_factory=dict)


class LocalServer:
    """Answers ``routes[(method, path)]``: a Reply, a list of Replies (one per request, the last repeats)
    or ``callable(request) -> Reply``. Unknown paths get 404. ``requests`` records what came in."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                request = SimpleNamespace(
                    method=self.command, path=self.path, headers=dict(self.headers), body=self.rfile.read(length)
                )
                server.requests.append(request)
                reply = server.routes.get((self.command, self.path), Reply(404, b"not found"))
                if isinstance(reply, list):
                    reply = reply.pop(0) if len(reply) > 1 else reply[0]
                if callable(reply):
                    reply = reply(request)
                body = reply.body
                if isinstance(body, dict | list):
                    body = json.dumps(body)
                if isinstance(body, str):
                    body = body.encode()
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _serve

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # shutdown() waits for serve_forever to notice, up to one poll interval (0.5 s by default).
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeOpenUrl:
    """Stands in for a module's ``open_url`` (monkeypatched), for URLs no test may reach: records ``(url, kwargs)``
    of every request in ``calls`` and answers 200 with ``answers[path]`` (bytes, or a dict sent as JSON)."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, url, **kwargs):
        self.calls.append((url, kwargs))
        body = self.answers[urlsplit(url).path]
        body = json.dumps(body).encode() if isinstance(body, dict) else body
        return SimpleNamespace(status=200, read=lambda: body)


def closed_port_url():
    """A loopback URL nothing listens on (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"
