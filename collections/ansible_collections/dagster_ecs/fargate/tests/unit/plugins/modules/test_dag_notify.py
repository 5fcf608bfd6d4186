"""dag_notify: ask the webserver to take a published DAG version now (moto's Secrets Manager, a loopback webserver).

These tests were in test_dag_publish.py while the notification was part of dag_publish; they keep their names.
What dag_publish reported there (``changed``: the version was published) is now the publish task's own result
(test_dag_publish.py); here the notification alone, which never touches the bucket.

How the project's dags role calls the module (the check-mode run before the publish, the notification only after a
change) is the repository's, not the collection's: tests/unit/test_dag_notify_role.py, with the same test names.
"""

from __future__ import annotations

import json
from importlib import resources

import pytest
from ansible_collections.dagster_ecs.fargate.plugins.modules import dag_notify
from ansible_collections.dagster_ecs.fargate.tests.unit.plugins.harness import (
    FakeOpenUrl,
    LocalServer,
    Reply,
    closed_port_url,
    warnings_of,
)
from botocore.exceptions import EndpointConnectionError

SECRET = "dagster-ecs/basic-auth"
VERSION = "3f6c2a9e81d04b7c"


@pytest.fixture
def secret(aws):
    aws.client("secretsmanager").create_secret(
        Name=SECRET, SecretString=json.dumps({"username": "admin", "password": "pw"})
    )
    aws.forget()


def notify_args(url):
    return {"url": url + "/", "secret": SECRET, "version": VERSION, "timeout": 5}


def notify(run_module, url, **extra):
    return run_module(dag_notify, {**notify_args(url), **extra})


def test_notify_confirmed(run_module, secret, http_server, aws):
    http_server.routes[("POST", "/_dags/sync")] = Reply(200, {"version": VERSION, "seconds": 1.5, "changed": True})
    result = notify(run_module, http_server.url)
    assert result["changed"] and "failed" not in result
    assert result["live"] == {"url": http_server.url + "/", "confirmed": True, "version": VERSION, "seconds": 1.5}
    request = http_server.requests[0]
    assert request.headers["Authorization"].startswith("Basic ")
    assert request.headers["Content-Type"] == "application/json"
    assert [op for _service, op, _params in aws.calls] == ["GetSecretValue"]  # the bucket is not touched


def test_notify_says_when_the_old_code_server_stopped_first(run_module, secret, http_server):
    """A task short of memory for two code servers stopped the old one first: the play says so, with the figures."""
    budget = "task 400 MB + new code server ~310 MB (live one 190 MB, layer +120 MB) + 16 MB margin vs limit 512 MB"
    http_server.routes[("POST", "/_dags/sync")] = Reply(
        200, {"version": VERSION, "seconds": 4.2, "changed": True, "stopped_first": budget}
    )
    result = notify(run_module, http_server.url)
    assert result["live"]["confirmed"] and result["live"]["stopped_first"] == budget


def test_notify_already_live_is_not_a_change(run_module, secret, http_server):
    """The webserver had taken the version at its own poll: confirmed, and nothing changed."""
    http_server.routes[("POST", "/_dags/sync")] = Reply(200, {"version": VERSION, "changed": False})
    result = notify(run_module, http_server.url)
    assert not result["changed"] and result["live"]["confirmed"]


def test_notify_not_when_unchanged_or_in_check_mode(run_module, secret, http_server, aws):
    """Check mode sends nothing (no secret read, no request). "Not when unchanged" is the role's condition
    (tests/unit/test_dag_notify_role.py::test_notify_not_when_unchanged_or_in_check_mode)."""
    result = notify(run_module, http_server.url, _ansible_check_mode=True)
    assert not result["changed"] and "live" not in result
    assert http_server.requests == [] and aws.calls == []


def test_notify_refused_fails_naming_the_rollback(run_module, secret, http_server, aws):
    http_server.routes[("POST", "/_dags/sync")] = Reply(
        409, {"version": "0ld0ld0ld0ld0ld0", "last_error": "ImportError: no module x", "seconds": 2}
    )
    result = notify(run_module, http_server.url)
    assert result["failed"] and not result.get("changed")
    assert result["msg"] == (
        f"DAG version {VERSION} is published, but the webserver refused it and keeps 0ld0ld0ld0ld0ld0: "
        "ImportError: no module x. Fix the DAGs and publish again, or roll back (-e dags_rollback_to=previous)."
    )
    assert result["live"]["confirmed"] is False
    assert [op for _service, op, _params in aws.calls] == ["GetSecretValue"]  # the published version stays published


def test_notify_conflict_without_json(run_module, secret, http_server):
    http_server.routes[("POST", "/_dags/sync")] = Reply(409, "busy")
    result = notify(run_module, http_server.url)
    assert "failed" not in result and result["live"]["confirmed"] is False and result["live"]["version"] is None


def test_notify_server_error_is_not_a_failure(run_module, secret, http_server):
    http_server.routes[("POST", "/_dags/sync")] = Reply(502, "bad gateway")
    result = notify(run_module, http_server.url)
    assert "failed" not in result and not result["changed"]
    assert result["live"]["error"] == f"HTTP 502 from {http_server.url}/_dags/sync"


@pytest.mark.parametrize("code", [302, 307])
def test_notify_does_not_follow_a_redirect_with_the_credentials(run_module, secret, http_server, code):
    """urllib resends Authorization to wherever a redirect points: the notification stops there instead."""
    elsewhere = LocalServer()
    try:
        elsewhere.routes[("POST", "/_dags/sync")] = elsewhere.routes[("GET", "/_dags/sync")] = Reply(200, {})
        http_server.routes[("POST", "/_dags/sync")] = Reply(code, "", {"Location": elsewhere.url + "/_dags/sync"})
        result = notify(run_module, http_server.url)
        assert elsewhere.requests == []
    finally:
        elsewhere.close()
    assert "failed" not in result and not result["changed"]
    assert result["live"]["error"] == (
        f"HTTP {code} from {http_server.url}/_dags/sync: redirect to {elsewhere.url}/_dags/sync not followed"
    )


def test_notify_unreachable_is_not_a_failure(run_module, secret):
    url = closed_port_url()
    result = notify(run_module, url)
    assert "failed" not in result and result["live"]["error"].startswith(f"no answer from {url}/_dags/sync: ")


def test_notify_answer_with_last_error_but_confirmed(run_module, secret, http_server):
    http_server.routes[("POST", "/_dags/sync")] = Reply(200, {"version": VERSION, "last_error": "slow"})
    result = notify(run_module, http_server.url)
    assert result["live"]["confirmed"] and result["live"]["error"] == "slow" and "failed" not in result


def test_notify_without_readable_secret_warns(run_module, aws, http_server):
    result = notify(run_module, http_server.url)
    assert "failed" not in result and not result["changed"]
    assert result["live"]["error"] == f"cannot read the basic-auth credentials {SECRET} (ResourceNotFoundException)"
    assert warnings_of(result) == [f"Not notifying the webserver: {result['live']['error']}"]
    assert http_server.requests == []


def test_notify_secret_connection_error(run_module, http_server, aws):
    aws.fail("GetSecretValue", exception=EndpointConnectionError(endpoint_url="https://sm.example"))
    result = notify(run_module, http_server.url)
    assert result["live"]["error"].endswith("(EndpointConnectionError)")


def test_notify_secret_throttled_is_retried(run_module, secret, http_server, aws):
    aws.fail("GetSecretValue", "ThrottlingException", status=400, times=2)
    http_server.routes[("POST", "/_dags/sync")] = Reply(200, {"version": VERSION})
    result = notify(run_module, http_server.url)
    assert result["live"]["confirmed"] and len(aws.sleeps) == 2


def test_notify_secret_not_json(run_module, http_server, aws):
    aws.client("secretsmanager").create_secret(Name=SECRET, SecretString="admin:pw")
    result = notify(run_module, http_server.url)
    assert result["live"]["error"] == f"secret {SECRET} is not JSON with username and password"


def test_notify_secret_without_username(run_module, http_server, aws):
    """JSON, but not with username and password: the same warning as for a secret that is not JSON at all,
    and the publish (already done) is not turned into a crash."""
    aws.client("secretsmanager").create_secret(Name=SECRET, SecretString=json.dumps({"user": "admin", "pass": "pw"}))
    result = notify(run_module, http_server.url)
    assert "failed" not in result
    assert result["live"]["error"] == f"secret {SECRET} is not JSON with username and password"


def test_rollback_notifies(run_module, secret, http_server):
    """After a rollback the role notifies with the restored version, as after a publish."""
    http_server.routes[("POST", "/_dags/sync")] = Reply(200, {"version": VERSION})
    result = notify(run_module, http_server.url)
    assert result["live"]["confirmed"] and isinstance(result["live"]["seconds"], float | int)


def test_arguments(run_module, aws, http_server):
    result = run_module(dag_notify, {"url": http_server.url})
    assert result["failed"] and "secret" in result["msg"]
    result = run_module(dag_notify, {"url": http_server.url, "secret": SECRET})
    assert result["msg"] == "version is required to notify the webserver (only check mode sends nothing)"
    assert aws.calls == [] and http_server.requests == []


# --- never basic auth in clear text to another host ---------------------------------------------------------------

ALB = "http://dagster-ecs-alb-123456.ap-southeast-2.elb.amazonaws.com"


@pytest.fixture
def remote(monkeypatch):
    """The webserver at a host that is not this machine: the module's open_url, faked (nothing leaves the test)."""
    fake = FakeOpenUrl({"/_dags/sync": {"version": VERSION, "seconds": 1.0}})
    monkeypatch.setattr(dag_notify, "open_url", fake)
    return fake


@pytest.mark.parametrize("check_mode", [True, False], ids=["before-the-publish", "after-it"])
def test_notify_refuses_plain_http_to_another_host_before_anything(run_module, secret, remote, aws, check_mode):
    """Check mode refuses the URL and sends nothing (a play can run it before it publishes; the dags role checks the
    same rule with the plain_http_refusal filter instead, without a module run), and the notification itself refuses
    the same URL."""
    result = notify(run_module, ALB, _ansible_check_mode=check_mode)
    assert result["failed"] and result["url"] == ALB + "/"
    assert result["msg"].startswith(f"Refusing to send the basic-auth credentials to {ALB}/: plain HTTP")
    assert result["msg"].endswith("Nothing was sent.")
    assert "loadbalancer_certificate_arn" in result["msg"] and "dagster_ecs_allow_plain_http" in result["msg"]
    assert remote.calls == [] and aws.calls == [], "nothing may be done before the refusal"


@pytest.mark.parametrize(
    ("url", "allow"), [(ALB, True), (ALB.replace("http://", "https://"), False)], ids=["opt-out", "https"]
)
def test_notify_over_https_or_with_the_opt_out(run_module, secret, remote, url, allow):
    result = notify(run_module, url, allow_plain_http=allow)
    assert result["live"]["confirmed"], result
    [(sent, request)] = remote.calls
    assert sent == f"{url}/_dags/sync"
    assert (request["url_username"], request["url_password"], request["force_basic_auth"]) == ("admin", "pw", True)


def test_the_sync_path_is_the_one_nginx_serves():
    """One path, written in the publisher's module; the container's nginx serves it (and nothing else there)."""
    nginx = resources.files("dagster_ecs_container") / "templates" / "nginx.conf"
    assert f"location = {dag_notify.SYNC_PATH} {{" in nginx.read_text()
