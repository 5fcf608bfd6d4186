"""module_utils.plain_http: is a URL safe to send basic-auth credentials to (pure functions)."""

from __future__ import annotations

import pytest
from ansible_collections.dagster_ecs.fargate.plugins.module_utils.plain_http import is_loopback, plain_http_refusal

ALB = "http://dagster-ecs-alb-123456.ap-southeast-2.elb.amazonaws.com"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://127.9.8.7/",
        "http://localhost:8080/health",
        "http://LocalHost",
        "http://[::1]:8080/",
        "https://dagster.example.com",
        "https://10.0.0.5:8443/",
        ALB.replace("http://", "https://"),
    ],
)
def test_https_and_loopback_are_safe(url):
    assert plain_http_refusal(url) is None


@pytest.mark.parametrize(
    "url",
    [
        ALB,
        ALB + "/",
        "HTTP://Dagster.Example.com:80",
        "http://10.0.0.5:8080",
        "http://0.0.0.0:8080",
        "http://[2001:db8::1]:8080",
        "http://localhost.example.com",
        "http://127.0.0.1.nip.io",
        "http://127.0.0.1@dagster.example.com/",  # user info: the host is dagster.example.com
    ],
)
def test_plain_http_elsewhere_is_refused_naming_the_url_and_the_fix(url):
    message = plain_http_refusal(url)
    assert message.startswith(f"Refusing to send the basic-auth credentials to {url}: plain HTTP")
    assert "clear text" in message
    for fix in ("loadbalancer_certificate_arn", "aws acm request-certificate", "dagster_ecs_allow_plain_http: true"):
        assert fix in message
    assert plain_http_refusal(url, allow_plain_http=True) is None


def test_what_is_named():
    assert plain_http_refusal(ALB, what="the token").startswith(f"Refusing to send the token to {ALB}")


def test_the_opt_out_is_named_where_the_caller_sets_it():
    """A module's refusal names its option after the inventory variable; the filter's names none (``opt_out=None``)."""
    assert plain_http_refusal(ALB).endswith(
        "set dagster_ecs_allow_plain_http: true in the inventory (this module's allow_plain_http option)."
    )
    assert plain_http_refusal(ALB, opt_out="the role's opt-out").endswith("in the inventory (the role's opt-out).")
    assert plain_http_refusal(ALB, opt_out=None).endswith("set dagster_ecs_allow_plain_http: true in the inventory.")


def test_an_invalid_url_is_refused_unless_allowed():
    assert plain_http_refusal("http://[::1/x").startswith(
        "Refusing to send the basic-auth credentials to http://[::1/x"
    )
    assert "not a valid URL" in plain_http_refusal("http://[::1/x")
    assert plain_http_refusal("http://[::1/x", allow_plain_http=True) is None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.255.0.1", True), ("::1", True), ("localhost", True), ("LOCALHOST", True)]
    + [("128.0.0.1", False), ("::2", False), ("example.com", False), ("", False), (None, False)],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback
