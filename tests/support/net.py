"""Loopback networking for the tests: a free port, the one HTTP request helper and the one wait loop."""

from __future__ import annotations

import base64
import socket
import time
import urllib.error
import urllib.request


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(url, auth=None, data=None, timeout=10, headers=None, method=None) -> tuple[int | None, bytes]:
    """GET (POST with ``data``, as JSON unless ``headers`` say otherwise; or ``method``) with optional basic
    auth: ``(status, body)``, ``(None, error)`` if nothing answers. The one HTTP helper of the tests."""
    headers = {**({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    try:
        prepared = urllib.request.Request(url, data=data, headers=headers, method=method)
        with urllib.request.urlopen(prepared, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError as err:  # refused, reset, timed out: nothing (yet) serves the URL
        return None, str(err).encode()


def wait_for(probe, timeout, interval=1.0, what="condition", until=bool):
    """``probe()``'s first value that ``until`` accepts (by default: the first truthy one), tried every
    ``interval`` s; after ``timeout`` s an AssertionError that names ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if until(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; the last answer: {value!r}")
        time.sleep(interval)


def wait_for_status(url, status, timeout, interval=1.0, what=None, request_timeout=10):
    """Until a GET of ``url`` answers HTTP ``status``; on timeout the error names the last status."""
    what = what or f"{url} to answer {status}"
    return wait_for(
        lambda: request(url, timeout=request_timeout)[0], timeout, interval, what, until=lambda now: now == status
    )
