"""/health: 200 only when the Dagster webserver answers and every code location loaded without error.

Served on 127.0.0.1 by the sidecar; nginx exposes ``/health`` without authentication. The
answer is a short reason and nothing else (no versions, paths, errors or hostnames), so the
one public path reveals nothing about the deployment. The check itself (the webserver's GraphQL
API) is ``webserver.check_webserver``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = logging.getLogger("dagster_ecs.health")


class HealthCache:
    """Checks at most every ``ttl`` seconds, however often the ALB and ECS ask."""

    def __init__(self, check, ttl: float = 2.0):
        self.check, self.ttl = check, ttl
        self._lock = threading.Lock()
        self._at, self._value = 0.0, (False, "starting")

    def get(self) -> tuple[bool, str]:
        with self._lock:
            if time.monotonic() - self._at > self.ttl:
                self._value, self._at = self.check(), time.monotonic()
            return self._value


def serve(port: int, cache: HealthCache, details=None, sync=None) -> ThreadingHTTPServer:
    """``/health`` (public through nginx), ``/health/details`` (JSON) and ``POST /sync`` (nginx requires
    basic auth for both; it serves the last as ``/_dags/sync``).

    ``details`` returns a dict (the DAG sync's status: live version, last error, failures in a row);
    ``sync`` polls the DAG manifest now and returns that status (the publisher's "go live now").
    """

    class Handler(BaseHTTPRequestHandler):
        server_version = "health"
        sys_version = ""

        def do_GET(self):  # noqa: N802 - http.server API
            path = self.path.split("?", 1)[0]
            if path == "/health":
                healthy, reason = cache.get()
                self._send(200 if healthy else 503, (reason + "\n").encode(), "text/plain; charset=utf-8")
            elif path == "/health/details":
                healthy, reason = cache.get()
                body = {"healthy": healthy, "reason": reason, **(details() if details else {})}
                self._send(200 if healthy else 503, json.dumps(body).encode(), "application/json")
            else:
                self.send_error(404)

        def do_POST(self):  # noqa: N802 - http.server API
            if self.path.split("?", 1)[0] != "/sync" or sync is None:
                self.send_error(404)
                return
            body = sync()
            self._send(200 if not body.get("last_error") else 409, json.dumps(body).encode(), "application/json")

        def _send(self, status, body, content_type):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # the ALB asks every few seconds: keep the log quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    LOG.info("health endpoint on 127.0.0.1:%d/health", port)
    return server
