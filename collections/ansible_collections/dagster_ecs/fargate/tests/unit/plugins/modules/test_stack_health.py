"""stack_health (the module, one pass): Dagster over HTTP on a loopback server, ECS and ALB through moto."""

from __future__ import annotations

import base64
import json
import os

import pytest
from ansible_collections.dagster_ecs.fargate.plugins.modules import stack_health
from ansible_collections.dagster_ecs.fargate.tests.unit.plugins.harness import (
    FakeOpenUrl,
    LocalServer,
    Reply,
    closed_port_url,
)

HEALTHY = {
    "data": {
        "workspaceOrError": {
            "__typename": "Workspace",
            "locationEntries": [
                {"name": "dags", "loadStatus": "LOADED", "locationOrLoadError": {"__typename": "RepositoryLocation"}}
            ],
        },
        "instance": {
            "daemonHealth": {
                "allDaemonStatuses": [
                    {"daemonType": "SCHEDULER", "required": True, "healthy": True},
                    {"daemonType": "BACKFILL", "required": False, "healthy": False},
                ]
            }
        },
        "assetNodes": [{"assetKey": {"path": ["raw_orders"]}}, {"assetKey": {"path": ["sales", "daily_revenue"]}}],
    }
}


def graphql(**data):
    """HEALTHY with parts of ``data`` replaced."""
    answer = json.loads(json.dumps(HEALTHY))
    answer["data"].update(data)
    return answer


@pytest.fixture
def dagster(http_server):
    http_server.routes[("GET", "/health")] = Reply(200, "OK")
    http_server.routes[("POST", "/graphql")] = Reply(200, HEALTHY)
    return http_server


def check(run_module, url, **extra):
    return run_module(stack_health, {"url": url, "fail_on_unhealthy": False, **extra})


def test_healthy_dagster(run_module, dagster):
    result = run_module(
        stack_health,
        {"url": dagster.url + "/", "expected_assets": ["raw_orders", "sales/daily_revenue"], "timeout": 0},
    )
    assert result["healthy"] and result["unhealthy"] == [] and result["changed"] is False
    assert result["msg"] == "healthy"
    assert result["checks"] == {
        "health_endpoint": {"ok": True, "detail": "HTTP 200: OK"},
        "code_locations": {"ok": True, "detail": "1 loaded"},
        "daemon": {"ok": True, "detail": "2 daemons healthy"},
        "assets": {"ok": True, "detail": "2 assets"},
    }
    post = next(r for r in dagster.requests if r.method == "POST")
    assert post.path == "/graphql" and "workspaceOrError" in json.loads(post.body)["query"]
    assert post.headers["Content-Type"] == "application/json"
    assert "Authorization" not in post.headers


def test_basic_auth_is_sent_and_the_password_hidden(run_module, dagster):
    result = check(run_module, dagster.url, username="admin", password="s3cret-pw")
    assert result["healthy"]
    post = next(r for r in dagster.requests if r.method == "POST")
    assert post.headers["Authorization"] == "Basic " + base64.b64encode(b"admin:s3cret-pw").decode()
    assert "s3cret-pw" not in json.dumps(result)


@pytest.fixture
def elsewhere():
    """Another origin (another port) a redirect could point at; records what reaches it."""
    server = LocalServer()
    server.routes[("GET", "/health")] = server.routes[("GET", "/graphql")] = Reply(200, HEALTHY)
    server.routes[("POST", "/graphql")] = Reply(200, HEALTHY)
    yield server
    server.close()


def test_a_redirect_is_not_followed_with_the_credentials(run_module, dagster, elsewhere):
    """urllib resends every header, Authorization too, to wherever a redirect points (another host, plain
    http), turning a POST into a GET on 301/302: a redirect is reported, not followed."""
    dagster.routes[("GET", "/health")] = Reply(301, "", {"Location": elsewhere.url + "/health"})
    dagster.routes[("POST", "/graphql")] = Reply(302, "", {"Location": elsewhere.url + "/graphql"})
    result = check(run_module, dagster.url, username="admin", password="s3cret-pw")
    assert elsewhere.requests == []
    assert result["checks"]["health_endpoint"] == {
        "ok": False,
        "detail": f"HTTP 301: redirect to {elsewhere.url}/health not followed",
    }
    assert result["checks"]["graphql"] == {
        "ok": False,
        "detail": f"HTTP 302: redirect to {elsewhere.url}/graphql not followed",
    }


def test_username_needs_password(run_module, dagster):
    result = check(run_module, dagster.url, username="admin")
    assert result["failed"] and "password" in result["msg"]


def test_unhealthy_fails_naming_what(run_module, dagster):
    dagster.routes[("GET", "/health")] = Reply(503, "code location loading")
    result = run_module(stack_health, {"url": dagster.url, "expected_assets": ["nope"]})
    assert result["failed"] and not result["healthy"]
    assert result["unhealthy"] == ["health_endpoint", "assets"]
    assert result["msg"] == (
        "Dagster is not healthy: health_endpoint: HTTP 503: code location loading; assets: missing: nope"
    )


def test_unhealthy_without_failing(run_module, dagster):
    dagster.routes[("GET", "/health")] = Reply(500, "")
    result = check(run_module, dagster.url)
    assert "failed" not in result and result["msg"] == "not healthy"
    assert result["checks"]["health_endpoint"] == {
        "ok": False,
        "detail": "HTTP 500: HTTP Error 500: Internal Server Error",
    }


def test_graphql_refused(run_module, dagster):
    dagster.routes[("POST", "/graphql")] = Reply(401, "unauthorized")
    result = check(run_module, dagster.url)
    assert result["checks"]["graphql"] == {"ok": False, "detail": "HTTP 401"}
    assert "code_locations" not in result["checks"]


def test_nothing_listening(run_module, aws):
    result = check(run_module, closed_port_url(), request_timeout=2)
    assert set(result["unhealthy"]) == {"health_endpoint", "graphql"}
    assert "Connection refused" in result["checks"]["health_endpoint"]["detail"]
    assert "Connection refused" in result["checks"]["graphql"]["detail"]


@pytest.mark.parametrize(
    ("entries", "detail"),
    [
        ([], "none"),
        (
            [{"name": "dags", "loadStatus": "LOADING", "locationOrLoadError": None}],
            "dags (LOADING, None)",
        ),
        (
            [
                {"name": "ok", "loadStatus": "LOADED", "locationOrLoadError": {"__typename": "RepositoryLocation"}},
                {"name": "bad", "loadStatus": "LOADED", "locationOrLoadError": {"__typename": "PythonError"}},
            ],
            "bad (LOADED, PythonError)",
        ),
    ],
)
def test_code_locations(run_module, dagster, entries, detail):
    dagster.routes[("POST", "/graphql")] = Reply(200, graphql(workspaceOrError={"locationEntries": entries}))
    result = check(run_module, dagster.url)
    assert result["checks"]["code_locations"] == {"ok": False, "detail": detail}


@pytest.mark.parametrize(
    ("statuses", "detail"),
    [
        ([], "no heartbeat"),
        ([{"daemonType": "SENSOR", "required": True, "healthy": False}], "unhealthy: SENSOR"),
    ],
)
def test_daemons(run_module, dagster, statuses, detail):
    instance = {"daemonHealth": {"allDaemonStatuses": statuses}}
    dagster.routes[("POST", "/graphql")] = Reply(200, graphql(instance=instance))
    result = check(run_module, dagster.url)
    assert result["checks"]["daemon"] == {"ok": False, "detail": detail}


def test_graphql_errors_without_data(run_module, dagster):
    dagster.routes[("POST", "/graphql")] = Reply(200, {"errors": [{"message": "boom"}], "data": None})
    result = check(run_module, dagster.url)
    assert set(result["unhealthy"]) == {"code_locations", "daemon"}
    assert result["checks"]["assets"] == {"ok": True, "detail": "0 assets"}


def test_graphql_answer_that_is_not_json_is_unhealthy_not_a_crash(run_module, dagster):
    """A 200 that is not JSON (a proxy's HTML page, say) must be reported as unhealthy: the action
    plugin keeps waiting on an unhealthy result but stops at once on a module crash."""
    dagster.routes[("POST", "/graphql")] = Reply(200, "<html>Sign in</html>", {"Content-Type": "text/html"})
    result = check(run_module, dagster.url)
    assert not result["healthy"]
    assert "graphql" in result["unhealthy"]


# --- AWS ----------------------------------------------------------------------------------------


def service(name, *, running=1, desired=1, rollout="COMPLETED", status="ACTIVE", deployments=1):
    return {
        "serviceName": name,
        "status": status,
        "runningCount": running,
        "desiredCount": desired,
        "deployments": [{"status": "PRIMARY", "rolloutState": rollout}]
        + [{"status": "ACTIVE", "rolloutState": "COMPLETED"}] * (deployments - 1),
    }


def test_ecs_services(run_module, dagster, aws):
    aws.answer(
        "DescribeServices",
        {
            "services": [
                service("web"),
                service("daemon", running=0, rollout="IN_PROGRESS"),
                service("old", status="INACTIVE"),
                service("two", deployments=2),
            ],
            "failures": [],
        },
    )
    result = check(run_module, dagster.url, cluster="c", services=["web", "daemon", "old", "two", "missing"])
    checks = result["checks"]
    assert checks["ecs:web"] == {"ok": True, "detail": "1/1 running, deployment COMPLETED"}
    assert checks["ecs:daemon"] == {"ok": False, "detail": "0/1 running, deployment IN_PROGRESS"}
    assert checks["ecs:old"] == checks["ecs:missing"] == {"ok": False, "detail": "service not found"}
    assert checks["ecs:two"]["ok"] is False
    assert aws.params("DescribeServices")[0] == {"cluster": "c", "services": ["web", "daemon", "old", "two", "missing"]}


def test_ecs_against_moto(run_module, dagster, aws):
    """moto never runs tasks: its service stays 0/1, IN_PROGRESS."""
    ecs = aws.client("ecs")
    ecs.create_cluster(clusterName="c")
    ecs.register_task_definition(family="web", containerDefinitions=[{"name": "web", "image": "i", "memory": 128}])
    ecs.create_service(cluster="c", serviceName="web", taskDefinition="web", desiredCount=1)
    result = check(run_module, dagster.url, cluster="c", services=["web"])
    assert result["checks"]["ecs:web"]["ok"] is False
    assert result["checks"]["ecs:web"]["detail"].startswith("0/1 running")


def test_services_need_a_cluster(run_module, dagster, aws):
    result = check(run_module, dagster.url, services=["web"])
    assert result["failed"] and result["msg"] == "cluster is required with services"


@pytest.mark.parametrize(
    ("states", "ok", "detail"),
    [
        (["healthy", "healthy"], True, "2 healthy"),
        (["healthy", "draining"], True, "1 draining, 1 healthy"),
        (["healthy", "unhealthy"], False, "1 healthy, 1 unhealthy"),
        (["draining"], False, "1 draining"),
        ([], False, "no targets registered"),
    ],
)
def test_alb_targets(run_module, dagster, aws, states, ok, detail):
    descriptions = [{"Target": {"Id": f"10.0.0.{i}"}, "TargetHealth": {"State": s}} for i, s in enumerate(states)]
    aws.answer("DescribeTargetHealth", {"TargetHealthDescriptions": descriptions})
    result = check(run_module, dagster.url, target_group_arn="arn:aws:elasticloadbalancing:tg")
    assert result["checks"]["alb_targets"] == {"ok": ok, "detail": detail}


@pytest.mark.parametrize(
    ("extra", "operation", "message"),
    [
        ({"cluster": "c", "services": ["web"]}, "DescribeServices", "Failed to describe the ECS services"),
        ({"target_group_arn": "arn:tg"}, "DescribeTargetHealth", "Failed to describe the target group's health"),
    ],
)
def test_aws_errors(run_module, dagster, aws, extra, operation, message):
    aws.fail(operation, "AccessDeniedException")
    result = check(run_module, dagster.url, **extra)
    assert result["failed"] and result["msg"].startswith(message)
    assert result["error"]["code"] == "AccessDeniedException"


def test_throttled_describe_is_retried(run_module, dagster, aws):
    aws.fail("DescribeServices", "ThrottlingException", times=2)
    aws.answer("DescribeServices", {"services": [service("web")]})
    result = check(run_module, dagster.url, cluster="c", services=["web"])
    assert result["healthy"] and aws.count("DescribeServices") == 3


# --- the offline runtime ------------------------------------------------------------------------


def test_local_runtime(run_module, dagster, tmp_path):
    status = tmp_path / "status.json"
    status.write_text(
        json.dumps(
            {
                "services": {
                    "webserver": {"pid": os.getpid(), "running": True, "restarts": 2},
                    "daemon": {"pid": 2**30, "running": True, "restarts": 0},  # no such process
                    "stopped": {"pid": os.getpid(), "running": False, "restarts": 0},
                }
            }
        )
    )
    result = check(
        run_module, dagster.url, local_status_file=str(status), local_services=["webserver", "daemon", "stopped", "x"]
    )
    checks = result["checks"]
    assert checks["local:webserver"] == {"ok": True, "detail": f"running (pid {os.getpid()}, 2 restarts)"}
    for name in ("daemon", "stopped", "x"):
        assert checks[f"local:{name}"] == {"ok": False, "detail": "no running task"}


def test_local_task_of_another_user_counts_as_running(run_module, dagster, tmp_path, monkeypatch):
    """kill(pid, 0) answers EPERM for a process another user owns (a task started with sudo): it exists."""

    def kill(pid, sig):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(stack_health.os, "kill", kill)
    status = tmp_path / "status.json"
    status.write_text(json.dumps({"services": {"webserver": {"pid": 1, "running": True, "restarts": 0}}}))
    result = check(run_module, dagster.url, local_status_file=str(status), local_services=["webserver"])
    assert result["checks"]["local:webserver"] == {"ok": True, "detail": "running (pid 1, 0 restarts)"}


@pytest.mark.parametrize("content", [None, "not json"])
def test_local_runtime_not_running(run_module, dagster, tmp_path, content):
    status = tmp_path / "status.json"
    if content is not None:
        status.write_text(content)
    result = check(run_module, dagster.url, local_status_file=str(status), local_services=["webserver"])
    assert result["checks"]["local_runtime"] == {"ok": False, "detail": "the local runtime is not running"}


# --- failures named, early ----------------------------------------------------------------------

TD = "arn:aws:ecs:ap-southeast-2:123456789012:task-definition/dagster-ecs-webserver:2"


def stopped_task(n, reason="Essential container in task exited", code=1, definition=TD):
    return {
        "taskArn": f"arn:aws:ecs:ap-southeast-2:123456789012:task/c/task{n}",
        "taskDefinitionArn": definition,
        "stoppedAt": f"2026-12-02T07:0{n}:00+00:00",
        "stoppedReason": reason,
        "containers": [{"name": "webserver", "exitCode": code}],
    }


def crash_looping(aws, tasks, running=0, services=None):
    """web's deployment of TD (or ``services``), its stopped ``tasks``, their log."""
    if services is None:
        failing = service("web", running=running, rollout="IN_PROGRESS")
        failing["deployments"][0]["taskDefinition"] = TD
        services = [failing]
    aws.answer("DescribeServices", {"services": services})
    aws.answer("ListTasks", {"taskArns": [t["taskArn"] for t in tasks]})
    aws.answer("DescribeTasks", {"tasks": tasks})
    logging = {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/p", "awslogs-stream-prefix": "web"}}
    aws.answer(
        "DescribeTaskDefinition",
        {"taskDefinition": {"containerDefinitions": [{"name": "webserver", "logConfiguration": logging}]}},
    )
    aws.answer(
        "GetLogEvents",
        {"events": [{"message": "step 2/7 Dagster storage: FAILED: FATAL:  password authentication failed\n"}]},
    )


def test_a_crash_looping_ecs_service_fails_at_once_with_its_error(run_module, dagster, aws):
    crash_looping(aws, [stopped_task(3), stopped_task(2), stopped_task(1)])
    result = check(run_module, dagster.url, cluster="c", services=["web"])
    assert result["failed"] and result["fatal"] == ["ecs:web"]
    detail = result["checks"]["ecs:web"]["detail"]
    assert detail == (
        "0/1 running, deployment IN_PROGRESS; 3 stopped task(s) in a row, the last: Essential container in task "
        "exited; exit code 1 | log: step 2/7 Dagster storage: FAILED: FATAL:  password authentication failed"
    )
    assert result["msg"].startswith("Dagster cannot start, its tasks keep stopping with the same error: ecs:web: ")
    assert aws.params("ListTasks")[0] == {"cluster": "c", "serviceName": "web", "desiredStatus": "STOPPED"}
    assert aws.params("GetLogEvents")[0]["logStreamName"] == "web/webserver/task3"


@pytest.mark.parametrize(
    ("tasks", "running", "limit"),
    [
        ([stopped_task(3), stopped_task(2, code=137), stopped_task(1)], 0, 3),  # not the same error 3 times
        ([stopped_task(3), stopped_task(2), stopped_task(1)], 1, 3),  # one runs now
        ([stopped_task(3), stopped_task(2), stopped_task(1)], 0, 0),  # never give up
        ([stopped_task(3), stopped_task(2), stopped_task(1, definition=TD[:-1] + "1")], 0, 3),  # an old revision's
    ],
)
def test_stopped_tasks_are_named_without_giving_up(run_module, dagster, aws, tasks, running, limit):
    crash_looping(aws, tasks, running=running)
    result = check(run_module, dagster.url, cluster="c", services=["web"], crash_loop_stops=limit)
    assert not result.get("failed") and result["fatal"] == []
    assert "the last: Essential container in task exited; exit code 1" in result["checks"]["ecs:web"]["detail"]


TD3 = TD[:-1] + "3"


def rolled_back(aws, tasks, others=()):
    """web's deployment of TD3 rolled back by the circuit breaker: ECS runs TD again, COMPLETED and 1/1."""
    back = service("web")
    back["deployments"][0]["taskDefinition"] = TD
    crash_looping(aws, tasks, services=[back, *others])


def test_a_rolled_back_deployment_fails_at_once_naming_both_revisions(run_module, dagster, aws):
    """The circuit breaker rolled the new revision back: the old one runs, complete and healthy, and without
    task_definitions the check would pass. ECS will not try the new revision again, so verify fails at once,
    with why its last task stopped."""
    rolled_back(aws, [stopped_task(3, definition=TD3), stopped_task(2, definition=TD3), stopped_task(1)])
    assert check(run_module, dagster.url, cluster="c", services=["web"])["healthy"]  # what it passed as before
    result = check(run_module, dagster.url, cluster="c", services=["web"], task_definitions={"web": TD3})
    assert result["failed"] and result["fatal"] == ["ecs:web"] and result["unhealthy"] == ["ecs:web"]
    web = result["checks"]["ecs:web"]
    assert web["ok"] is False and web["rolled_back"] is True
    assert web["detail"] == (
        "1/1 running, deployment COMPLETED of dagster-ecs-webserver:2, not dagster-ecs-webserver:3: ECS rolled "
        "dagster-ecs-webserver:3 back (the deployment circuit breaker stops a revision whose tasks keep failing) or "
        "another deployment replaced it; 2 stopped task(s) in a row, the last: Essential container in task exited; "
        "exit code 1 | log: step 2/7 Dagster storage: FAILED: FATAL:  password authentication failed"
    )
    assert result["msg"] == f"ECS does not run the revision this deployment registered: ecs:web: {web['detail']}"


def test_a_rolled_back_deployment_and_a_crash_loop_are_both_named(run_module, dagster, aws):
    crashing = service("daemon", running=0, rollout="IN_PROGRESS")
    crashing["deployments"][0]["taskDefinition"] = TD
    rolled_back(aws, [stopped_task(3), stopped_task(2), stopped_task(1)], others=[crashing])
    result = check(run_module, dagster.url, cluster="c", services=["web", "daemon"], task_definitions={"web": TD3})
    assert result["fatal"] == ["ecs:web", "ecs:daemon"]
    assert "rolled_back" not in result["checks"]["ecs:daemon"]
    (back, crash) = result["msg"].split("; Dagster cannot start, its tasks keep stopping with the same error: ")
    assert back.startswith("ECS does not run the revision this deployment registered: ecs:web: 1/1 running")
    assert crash.startswith("ecs:daemon: 0/1 running, deployment IN_PROGRESS; 3 stopped task(s) in a row")


def test_a_deployment_the_circuit_breaker_failed_is_fatal_at_once(run_module, dagster, aws):
    """Without rollback, ECS's circuit breaker leaves the deployment FAILED and starts no more of its tasks:
    waiting cannot help, even while one task still runs (fewer than crash_loop_stops in a row)."""
    failed = service("web", running=1, desired=2, rollout="FAILED")
    failed["deployments"][0]["taskDefinition"] = TD
    crash_looping(aws, [stopped_task(3), stopped_task(2, code=137)], services=[failed])
    result = check(run_module, dagster.url, cluster="c", services=["web"], task_definitions={"web": TD})
    assert result["failed"] and result["fatal"] == ["ecs:web"]
    assert result["checks"]["ecs:web"]["detail"].startswith(
        "1/2 running, deployment FAILED of dagster-ecs-webserver:2 (the deployment circuit breaker: its tasks kept "
        "failing); 1 stopped task(s) in a row, the last: Essential container in task exited; exit code 1"
    )


def test_the_registered_revision_running_passes(run_module, dagster, aws):
    rolled_back(aws, [])
    result = check(run_module, dagster.url, cluster="c", services=["web"], task_definitions={"web": TD, "daemon": TD3})
    assert result["healthy"] and result["fatal"] == []
    assert result["checks"]["ecs:web"] == {"ok": True, "detail": "1/1 running, deployment COMPLETED"}


def test_no_stopped_task_no_explanation(run_module, dagster, aws):
    crash_looping(aws, [])
    result = check(run_module, dagster.url, cluster="c", services=["web"])
    assert result["checks"]["ecs:web"]["detail"] == "0/1 running, deployment IN_PROGRESS"
    assert aws.count("DescribeTasks") == 0


def local_status(tmp_path, running, same_error):
    status = tmp_path / "status.json"
    last = {"code": 1, "error": 'FATAL:  password authentication failed for user "dagster"', "same_error": same_error}
    task = {"pid": os.getpid() if running else None, "running": running, "restarts": 3, "last_exit": last}
    status.write_text(json.dumps({"services": {"webserver": task}}))
    return str(status)


@pytest.mark.parametrize(("running", "same_error", "fatal"), [(False, 3, True), (False, 2, False), (True, 5, False)])
def test_a_crash_looping_local_task_fails_at_once_with_its_error(
    run_module, dagster, tmp_path, running, same_error, fatal
):
    status = local_status(tmp_path, running, same_error)
    result = check(run_module, dagster.url, local_status_file=status, local_services=["webserver"])
    assert result["fatal"] == (["local:webserver"] if fatal else [])
    assert bool(result.get("failed")) is fatal
    detail = result["checks"]["local:webserver"]["detail"]
    assert detail.endswith(
        f"; {same_error} stopped task(s) in a row, the last: exit code 1: FATAL:  password authentication failed for "
        'user "dagster"'
    )


def test_a_local_task_of_an_older_revision_is_not_running_yet(run_module, dagster, tmp_path):
    status = tmp_path / "status.json"
    task = {"pid": os.getpid(), "running": True, "restarts": 0, "task_definition": TD[:-1] + "1"}
    status.write_text(json.dumps({"services": {"webserver": task}}))
    params = {"local_status_file": str(status), "local_services": ["webserver"]}
    result = check(run_module, dagster.url, **params, local_task_definitions={"webserver": TD})
    assert result["checks"]["local:webserver"] == {
        "ok": False,
        "detail": "still running dagster-ecs-webserver:1, not dagster-ecs-webserver:2",
    }
    assert check(run_module, dagster.url, **params, local_task_definitions={"webserver": TD[:-1] + "1"})["healthy"]


# --- never basic auth in clear text to another host -------------------------------------------------------------

ALB = "http://dagster-ecs-alb-123456.ap-southeast-2.elb.amazonaws.com"


@pytest.fixture
def remote(monkeypatch):
    """Dagster at a host that is not this machine: the module's open_url, faked (nothing leaves the test)."""
    fake = FakeOpenUrl({"/health": b"OK", "/graphql": HEALTHY})
    monkeypatch.setattr(stack_health, "open_url", fake)
    return fake


def test_credentials_are_not_sent_over_plain_http_to_another_host(run_module, aws, remote):
    result = check(
        run_module, ALB, username="admin", password="s3cret-pw", cluster="dagster-ecs", services=["web"], timeout=0
    )
    assert result["failed"] and result["url"] == ALB
    assert result["msg"].startswith(f"Refusing to send the basic-auth credentials to {ALB}: plain HTTP")
    assert "loadbalancer_certificate_arn" in result["msg"] and "dagster_ecs_allow_plain_http" in result["msg"]
    assert remote.calls == [] and aws.calls == [], "nothing may be asked before the refusal"
    assert "s3cret-pw" not in json.dumps(result)
    # Without credentials there is nothing to leak: the same URL is checked.
    assert check(run_module, ALB)["healthy"]
    assert [url for url, _request in remote.calls] == [f"{ALB}/health", f"{ALB}/graphql"]


@pytest.mark.parametrize(
    ("url", "allow"), [(ALB, True), (ALB.replace("http://", "https://"), False)], ids=["opt-out", "https"]
)
def test_credentials_go_over_https_or_with_the_opt_out(run_module, remote, url, allow):
    result = check(run_module, url, username="admin", password="s3cret-pw", allow_plain_http=allow)
    assert result["healthy"], result
    url_sent, graphql = remote.calls[1]
    assert url_sent == f"{url}/graphql"
    assert graphql["headers"]["Authorization"] == "Basic " + base64.b64encode(b"admin:s3cret-pw").decode()
