"""No web page can call the emulator (``dagster_ecs_emulator/browsers.py``): moto checks no signature and
answers every origin's cross-origin requests, so without the guard any page the developer visits during a
rehearsal could read its secrets or publish DAG code to its bucket. Real emulator, real HTTP on loopback;
the browser's requests are written as a browser sends them (its headers), every AWS client's as boto3 sends
them."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import boto3
import pytest
from dagster_ecs_emulator.browsers import host_name, is_loopback
from dagster_ecs_emulator.server import SHIMS_PATH
from support.emulator import OFFLINE_CREDENTIALS, spawn_emulator

REGION = OFFLINE_CREDENTIALS["AWS_DEFAULT_REGION"]
SECRET = "rehearsal/basic-auth"
VALUE = '{"username": "admin", "password": "not-for-other-sites"}'
# What a page can put in its request: any access key id and a signature it cannot compute (moto checks none).
GET_SECRET = {
    "Content-Type": "application/x-amz-json-1.1",
    "X-Amz-Target": "secretsmanager.GetSecretValue",
    "Authorization": f"AWS4-HMAC-SHA256 Credential=AKIAOFFLINEREHEARSAL/20261207/{REGION}/secretsmanager/aws4_request, "
    "SignedHeaders=host;x-amz-target, Signature=" + "0" * 64,
}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    emulator = spawn_emulator(tmp_path_factory.mktemp("emulator"))
    session = boto3.Session(
        aws_access_key_id=OFFLINE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=OFFLINE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )
    session.client("secretsmanager", endpoint_url=emulator.endpoint).create_secret(Name=SECRET, SecretString=VALUE)
    yield emulator, session
    emulator.stop()


def send(endpoint, method, path, headers, body=b""):
    """(status, response headers, body) of a raw request to the emulator."""
    connection = http.client.HTTPConnection(urlsplit(endpoint).netloc, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.headers, answer.read().decode()
    finally:
        connection.close()


def read_secret(endpoint, **headers):
    body = json.dumps({"SecretId": SECRET}).encode()
    return send(endpoint, "POST", "/", {**GET_SECRET, **headers}, body)


def test_aws_clients_are_served(emulator):
    """boto3 (as every module, the CLI and the local runtime) sends no browser header: served as before."""
    (emulator, session) = emulator
    secrets = session.client("secretsmanager", endpoint_url=emulator.endpoint)
    assert secrets.get_secret_value(SecretId=SECRET)["SecretString"] == VALUE
    for host in ("localhost", "127.0.0.1", "bucket.s3.localhost"):
        port = urlsplit(emulator.endpoint).port
        status, _, body = read_secret(emulator.endpoint, Host=f"{host}:{port}")
        assert status == 200 and json.loads(body)["SecretString"] == VALUE, (host, body)


def test_a_web_pages_fetch_is_refused(emulator):
    """A cross-origin fetch of another site's page: its CORS preflight and the request itself."""
    (emulator, _) = emulator
    evil = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}
    preflight = {**evil, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-amz-target"}
    status, headers, _ = send(emulator.endpoint, "OPTIONS", "/", preflight)
    assert status == 403 and "Access-Control-Allow-Origin" not in headers
    status, headers, body = read_secret(emulator.endpoint, **evil)
    assert status == 403 and "Access-Control-Allow-Origin" not in headers
    assert "not-for-other-sites" not in body and "another site" in json.loads(body)["error"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},  # a browser without Sec-Fetch-*
        {"Origin": "null"},  # a sandboxed frame, a file
        {"Sec-Fetch-Site": "cross-site"},  # a no-cors request (an image, a form's GET)
        {"Sec-Fetch-Site": "same-site"},  # another port of the same machine
    ],
)
def test_what_another_page_sends_is_refused(emulator, headers):
    (emulator, _) = emulator
    status, _, body = read_secret(emulator.endpoint, **headers)
    assert status == 403 and "not-for-other-sites" not in body


def test_dns_rebinding_is_refused(emulator):
    """A name of the attacker's resolving to 127.0.0.1 makes the page same-origin with the emulator: its Host
    header still names the attacker's domain."""
    (emulator, _) = emulator
    status, _, body = read_secret(emulator.endpoint, Host=f"rebind.evil.example:{urlsplit(emulator.endpoint).port}")
    assert status == 403 and "is not loopback" in json.loads(body)["error"]


def test_a_page_cannot_switch_the_shims_off(emulator):
    (emulator, _) = emulator
    body = json.dumps({"disabled": ["ecs-task-lifecycle"]}).encode()
    status, _, _ = send(
        emulator.endpoint, "PUT", SHIMS_PATH, {"Origin": "https://evil.example", "Content-Type": "text/plain"}, body
    )
    assert status == 403
    assert json.loads(send(emulator.endpoint, "GET", SHIMS_PATH, {})[2])["disabled"] == []


def test_moto_dashboard_opens_in_the_users_browser(emulator):
    """Typed in the address bar (Sec-Fetch-Site: none), then its own same-origin requests."""
    (emulator, _) = emulator
    own = urlsplit(emulator.endpoint).netloc
    assert send(emulator.endpoint, "GET", "/moto-api/", {"Sec-Fetch-Site": "none"})[0] == 200
    same_origin = {"Sec-Fetch-Site": "same-origin", "Origin": f"http://{own}"}
    status, _, body = read_secret(emulator.endpoint, **same_origin)
    assert status == 200 and json.loads(body)["SecretString"] == VALUE


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1:4566", True),
        ("127.8.9.10", True),
        ("[::1]:4566", True),
        ("localhost:4566", True),
        ("LOCALHOST", True),
        ("bucket.s3.localhost:4566", True),
        ("localhost.evil.example", False),
        ("10.0.0.5:4566", False),
        ("evil.example", False),
        ("[::ffff:10.0.0.5]:4566", False),
        ("", False),
    ],
)
def test_loopback_hosts(host, loopback):
    assert is_loopback(host_name(host)) is loopback
