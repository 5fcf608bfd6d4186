"""The task's nginx, from the image's own template, in front of stub upstreams: what it lets through.

Real nginx (the Debian package the image and the rehearsal use), rendered by ``config.write_all``
exactly as the entrypoint does, on a loopback port. The webserver and the health server behind it
are stubs that echo the request, so each test sees whether nginx refused a request or passed it on.
The Dagster UI in a real browser, against the real webserver, is tested in test_workload.py.
"""

from __future__ import annotations

import contextlib
import http.client
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dagster_ecs_container import auth, config
from dagster_ecs_container.settings import Settings
from support.net import free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
pytestmark = pytest.mark.skipif(
    not shutil.which(NGINX), reason="nginx is not installed (scripts/machine-packages test installs it)"
)
USER, PASSWORD = "admin", "unit-test-password"
HOST = "127.0.0.1"


class Echo(BaseHTTPRequestHandler):
    """Answers every method with 200 and ``upstream <method> <path>``: the request got past nginx."""

    protocol_version = "HTTP/1.0"  # one request per upstream connection: nothing to reuse

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = f"upstream {self.command} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _answer  # noqa: N815 - http.server's names

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture(scope="module")
def nginx(tmp_path_factory):
    base = tmp_path_factory.mktemp("nginx")
    upstreams = []
    for _ in range(2):
        server = ThreadingHTTPServer((HOST, 0), Echo)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        upstreams.append(server)
    port = free_port()
    settings = Settings.from_env(
        {
            "DAGSTER_APP_DIR": str(base),
            "NGINX_LISTEN": HOST,
            "NGINX_PORT": str(port),
            "DAGSTER_WEBSERVER_PORT": str(upstreams[0].server_address[1]),
            "DAGSTER_HEALTH_PORT": str(upstreams[1].server_address[1]),
            "BASIC_AUTH_USER": USER,
            "BASIC_AUTH_PASSWORD": PASSWORD,
        }
    )
    config.write_all(settings, "webserver")
    auth.write_htpasswd(settings)
    run = settings.runtime_dir
    process = subprocess.Popen(
        [NGINX, "-g", "daemon off;", "-e", "stderr", "-p", f"{run}/nginx", "-c", f"{run}/nginx.conf"],
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"nginx did not start: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.05)
    yield port
    process.terminate()
    process.wait(10)
    for server in upstreams:
        server.shutdown()


def send(port, method, path, headers=None, body=None, auth_=True, timeout=5.0):
    """(status, body) of one request; credentials as a browser that has signed in resends them."""
    status, _, text = exchange(port, method, path, headers, body, auth_, timeout)
    return status, text


def exchange(port, method, path, headers=None, body=None, auth_=True, timeout=5.0):
    """(status, response headers, body) of one request, sent as ``send`` sends it."""
    import base64

    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    headers = dict(headers or {})
    headers.setdefault("Host", f"{HOST}:{port}")
    if auth_:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.headers, response.read().decode(errors="replace")
    finally:
        connection.close()


JSON = {"Content-Type": "application/json"}
MUTATION = "/graphql?query=mutation%7BreloadWorkspace%7B__typename%7D%7D"


# --- finding 1: cross-site request forgery ------------------------------------------------------
def test_the_reviews_text_plain_mutation_is_refused(nginx):
    """The review's request: a form can send text/plain with the mutation in the URL."""
    status, body = send(nginx, "POST", MUTATION, {"Content-Type": "text/plain"}, b"x")
    assert status == 415, body
    assert "application/json" in body


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain", ""]
)
def test_graphql_posts_of_a_forms_content_type_are_refused(nginx, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    assert send(nginx, "POST", "/graphql", headers, b"query=x")[0] == 415


def test_graphql_query_in_the_url_is_refused_on_get(nginx):
    assert send(nginx, "GET", MUTATION)[0] == 415


def test_the_uis_own_json_post_passes(nginx):
    origin = {"Origin": f"http://{HOST}:{nginx}", "Sec-Fetch-Site": "same-origin"}
    status, body = send(nginx, "POST", "/graphql?op=LaunchRun", {**JSON, **origin}, b"{}")
    assert (status, body) == (200, "upstream POST /graphql?op=LaunchRun")


def test_an_api_client_without_browser_headers_passes(nginx):
    """Dagster's Python client, the verify stage, curl: no Origin, no Sec-Fetch-*, credentials."""
    assert send(nginx, "POST", "/graphql", JSON, b"{}")[0] == 200
    assert send(nginx, "POST", "/graphql", {"Content-Type": "application/json; charset=utf-8"}, b"{}")[0] == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},  # the same host name on another port is another origin
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"},
    ],
    ids=["cross-site", "same-site", "foreign-origin", "null-origin", "other-port", "origin-wins"],
)
def test_cross_site_state_changes_are_refused(nginx, headers):
    for method, path in [("POST", "/graphql"), ("DELETE", "/anything"), ("POST", "/_dags/sync")]:
        status, body = send(nginx, method, path, {**JSON, **headers}, b"{}")
        assert status == 403, (method, path, status, body)
        assert "cross-site" in body


def test_the_same_host_over_another_scheme_is_another_origin(nginx):
    """A page of http://<the deployment's name> (which someone on the network path can serve, before any redirect)
    is not the UI of https://<name>, nor the other way round. Behind the ALB, which terminates TLS, the scheme is
    its X-Forwarded-Proto."""
    https = {**JSON, "X-Forwarded-Proto": "https"}
    assert send(nginx, "POST", "/graphql", {**https, "Origin": f"http://{HOST}:{nginx}"}, b"{}")[0] == 403
    assert send(nginx, "POST", "/graphql", {**https, "Origin": f"https://{HOST}:{nginx}"}, b"{}")[0] == 200
    assert send(nginx, "POST", "/graphql", {**JSON, "Origin": f"https://{HOST}:{nginx}"}, b"{}")[0] == 403


@pytest.mark.parametrize("auth_", [True, False])
def test_https_answers_keep_the_browser_on_https(nginx, auth_):
    """HSTS: once over HTTPS, the browser never asks for the plain-HTTP URL again (where a sign-in prompt could be
    someone else's). Never sent over plain HTTP, where browsers ignore it."""
    _, answer, _ = exchange(nginx, "GET", "/", {"X-Forwarded-Proto": "https"}, auth_=auth_)
    assert answer["Strict-Transport-Security"] == "max-age=31536000"
    _, answer, _ = exchange(nginx, "GET", "/", auth_=auth_)
    assert "Strict-Transport-Security" not in answer


def test_a_link_from_another_site_still_opens_the_ui(nginx):
    """A top-level GET of a document changes nothing: a bookmark or a link in a chat works."""
    status, body = send(nginx, "GET", "/assets", {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"})
    assert (status, body) == (200, "upstream GET /assets")


@pytest.mark.parametrize(("path", "auth_"), [("/", True), ("/runs", True), ("/graphql", True), ("/", False)])
def test_no_other_site_can_frame_the_ui(nginx, path, auth_):
    """Clickjacking: another site's page that framed the UI (which the browser fills with its cached
    credentials) would pass the user's clicks in it off as the UI's own, past the cross-site checks above.
    Every answer, the sign-in refusal too, forbids framing by any origin but the deployment's own."""
    headers = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "iframe", "Sec-Fetch-Mode": "navigate"}
    status, answer, _ = exchange(nginx, "GET", path, headers, auth_=auth_)
    assert status == (200 if auth_ else 401)
    assert answer["X-Frame-Options"] == "SAMEORIGIN"
    assert answer["Content-Security-Policy"] == "frame-ancestors 'self'"


def test_graphiql_page_is_served(nginx):
    assert send(nginx, "GET", "/graphql", {"Accept": "text/html"})[0] == 200


UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}


def test_a_websocket_from_another_site_is_refused(nginx):
    """Cross-site websocket hijacking: the browser sends the Origin of the page that opened it."""
    assert send(nginx, "GET", "/graphql", {**UPGRADE, "Origin": "https://evil.example"})[0] == 403


def test_the_uis_websocket_reaches_the_webserver(nginx):
    status, body = send(nginx, "GET", "/graphql", {**UPGRADE, "Origin": f"http://{HOST}:{nginx}"})
    assert (status, body) == (200, "upstream GET /graphql")


def test_credentials_are_still_required(nginx):
    assert send(nginx, "POST", "/graphql", JSON, b"{}", auth_=False)[0] == 401


# --- finding 3: /health cannot be used to take the task down -------------------------------------
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_health_takes_only_get_and_head(nginx, method):
    assert send(nginx, method, "/health", auth_=False)[0] == 405


def test_health_takes_no_body(nginx):
    assert send(nginx, "GET", "/health", {"Content-Length": "5"}, b"12345", auth_=False)[0] == 405
    assert send(nginx, "GET", "/health", auth_=False) == (200, "upstream GET /health")
    assert send(nginx, "HEAD", "/health", auth_=False)[0] == 200


SLOW_CONNECTIONS = 400  # bounded: a few hundred sockets, loopback only, under a minute


def _closed(sock) -> bool:
    """nginx ended this connection (closed it, reset it or answered); False while it still waits."""
    sock.settimeout(0.2)
    try:
        sock.recv(1)
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


def test_slow_clients_do_not_starve_health_checks(nginx):
    """A few hundred connections that dribble a request never finish; /health answers in time throughout."""
    slow = []
    try:
        for index in range(SLOW_CONNECTIONS):
            sock = socket.create_connection((HOST, nginx), timeout=2)
            method = "POST" if index % 2 else "GET"
            sock.sendall(f"{method} /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n".encode())
            slow.append(sock)
        deadline = time.monotonic() + 12  # past client_header_timeout: nginx drops the slow ones itself
        answered = 0
        while time.monotonic() < deadline:
            for sock in slow[:: max(1, len(slow) // 20)]:
                with contextlib.suppress(OSError):  # a header line now and then, never the end of the headers
                    sock.sendall(b"X-Slow: 1\r\n")
            started = time.monotonic()
            status, _ = send(nginx, "GET", "/health", auth_=False, timeout=2)
            assert status == 200 and time.monotonic() - started < 2
            answered += 1
            time.sleep(1)
        assert answered >= 10
        # nginx closed the slow connections after client_header_timeout (10 s), not after 60 s
        closed = sum(_closed(sock) for sock in slow)
        assert closed >= SLOW_CONNECTIONS * 0.9, f"only {closed} of {SLOW_CONNECTIONS} slow connections closed"
    finally:
        for sock in slow:
            sock.close()
