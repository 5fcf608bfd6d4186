"""Headless Chromium from Debian's packages, driven by Playwright (no browser download).

``scripts/machine-packages test`` installs /usr/bin/chromium. The flags keep it off the network:
no background requests, no QUIC, no component updates (the machine's network is closed, and the
tests send traffic to loopback only).
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",  # root in CI; the pages are the test's own
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def chromium(credentials: tuple[str, str]):
    """A browser context that has signed in with basic auth (it answers every challenge, as a browser
    with cached credentials does), with a 1400x900 viewport."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            context = browser.new_context(
                http_credentials={"username": credentials[0], "password": credentials[1]},
                viewport={"width": 1400, "height": 900},
            )
            yield context
        finally:
            browser.close()


@contextlib.contextmanager
def serve_page(html: str):
    """Serve ``html`` at ``/`` on 127.0.0.1 (a free port): another site's page. Yields the port."""
    body = html.encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
