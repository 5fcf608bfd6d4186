"""A stand-in for LocalStack Community on a loopback port, for the tests of the profile's endpoint check.

It answers ``/_localstack/health`` as localstack-core 2026.3.0 does (the services it serves, ECS, RDS,
ELBv2, EFS, ECR, Cloud Map and Application Auto Scaling absent), answers those APIs with LocalStack's
HTTP 501 ``InternalFailure`` license message, and forwards every other AWS request to ``backend`` (an
embedded emulator) when one is given, else answers 501 too. ``requests`` records (method, path,
service) of everything that came in.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import urllib.error
import urllib.request

# What /_localstack/health listed in localstack-core 2026.3.0 (FACTS.md: 36 services).
SERVED = [
    "acm", "apigateway", "cloudformation", "cloudwatch", "config", "dynamodb", "dynamodbstreams", "ec2", "es",
    "events", "firehose", "iam", "kinesis", "kms", "lambda", "logs", "opensearch", "redshift", "resource-groups",
    "resourcegroupstaggingapi", "route53", "route53resolver", "s3", "s3control", "scheduler", "secretsmanager",
    "ses", "sns", "sqs", "ssm", "stepfunctions", "sts", "support", "swf", "transcribe", "apigatewayv2",
]  # fmt: skip
LICENSED = [
    "ecs",
    "rds",
    "elasticloadbalancing",
    "elasticfilesystem",
    "ecr",
    "servicediscovery",
    "application-autoscaling",
]
SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")


class LocalStackStub:
    def __init__(self, backend: str | None = None):
        self.backend = backend
        self.requests: list[tuple[str, str, str]] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status, body, content_type="application/json"):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                found = SCOPE.search(self.headers.get("Authorization", ""))
                service = found.group(1) if found else ""
                stub.requests.append((self.command, self.path, service))
                if self.path.startswith("/_localstack/health"):
                    health = {"services": dict.fromkeys(SERVED, "available"), "edition": "community",
                              "version": "2026.3.0"}  # fmt: skip
                    return self._answer(200, json.dumps(health).encode())
                if self.path.startswith("/_"):
                    return self._answer(404, b'{"message": "not found"}')
                if service in LICENSED or not stub.backend:
                    name = {"elasticfilesystem": "efs", "elasticloadbalancing": "elbv2"}.get(service, service)
                    message = (
                        f"The API for service '{name}' is either not included in your current license plan "
                        "or has not yet been emulated by LocalStack. Please refer to "
                        "https://docs.localstack.cloud/references/coverage for more details."
                    )
                    error = {"__type": "InternalFailure", "message": message}
                    return self._answer(501, json.dumps(error).encode())
                forward = urllib.request.Request(
                    stub.backend + self.path, data=body or None, method=self.command, headers=dict(self.headers)
                )
                try:
                    with urllib.request.urlopen(forward, timeout=30) as answer:  # noqa: S310 - loopback backend
                        status, headers, payload = answer.status, answer.headers, answer.read()
                except urllib.error.HTTPError as error:
                    status, headers, payload = error.code, error.headers, error.read()
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def aws_calls(self) -> list[tuple[str, str, str]]:
        return [r for r in self.requests if not r[1].startswith("/_")]
