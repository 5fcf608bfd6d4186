"""The local runtime's tasks, as Fargate runs them: real processes, real exit codes, StopTask, logs, metadata.

A fresh emulator and the real local runtime (``python -m dagster_ecs_emulator runtime``, one
service configured, created by the service tests) on loopback; the tests talk to the emulated
ECS, EC2 and CloudWatch Logs only, as a run launcher, the deploy and its checks do. The task
definitions' command is a shell (or Python, where the task reads its own metadata), so each case
is one process with a known behaviour.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import boto3
import pytest
from dagster_ecs_emulator import runtime
from support.aws_inventory import clients as aws_clients
from support.emulator import OFFLINE_CREDENTIALS, spawn_emulator
from support.iam_proof import recorded_calls
from support.net import wait_for

REGION = "ap-southeast-2"
CLUSTER = "oneoff"
GROUP = "/ecs/oneoff"
SERVICE = "oneoff-web"  # the one service the runtime runs (key "web")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    emulator = spawn_emulator(tmp_path_factory.mktemp("emulator"))
    state = tmp_path_factory.mktemp("runtime")
    try:
        make = aws_clients(emulator.endpoint, REGION)
        clients = {name: make(name) for name in ("ecs", "ec2", "logs")}
        ec2 = clients["ec2"]
        vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.8.1.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="tasks", Description="tasks", VpcId=vpc)["GroupId"]
        clients["ecs"].create_cluster(clusterName=CLUSTER)
        clients["logs"].create_log_group(logGroupName=GROUP)
        config = {
            "endpoint": emulator.endpoint,
            "region": REGION,
            "access_key": OFFLINE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "secret_key": OFFLINE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "cluster": CLUSTER,
            "services": {"web": SERVICE},
            "command": [],
            "env": {"*": {"TASK_DIR": "{task_dir}"}},
        }
        (state / "config.json").write_text(json.dumps(config))
        runtime.start(state / "config.json", state, timeout=60)
        network = {"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}}
        clients["ec2_resource"] = boto3.resource(
            "ec2", endpoint_url=emulator.endpoint, region_name=REGION, **_boto_credentials()
        )
        yield clients, network, state
    finally:
        runtime.stop(state)
        emulator.stop()


def _boto_credentials() -> dict:
    return {
        "aws_access_key_id": OFFLINE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": OFFLINE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }


def register(ecs, family: str, command: list[str], roles: dict | None = None, **container) -> str:
    return ecs.register_task_definition(
        family=family,
        **(roles or {}),
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[
            {
                "name": "run",
                "image": "local",
                "essential": True,
                "command": command,
                "environment": [{"name": "GREETING", "value": "from the task definition"}],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {"awslogs-group": GROUP, "awslogs-region": REGION, "awslogs-stream-prefix": "run"},
                },
                **container,
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]


def wait_status(ecs, arn: str, wanted: str, timeout: float = 30) -> dict:
    """The task once its lastStatus is ``wanted``, with ``seen``: the statuses it went through on the way."""
    seen = []

    def describe():
        task = describe_task(ecs, arn)
        if not seen or seen[-1] != task["lastStatus"]:
            seen.append(task["lastStatus"])
        return task

    try:
        task = wait_for(describe, timeout, 0.3, f"task {arn} to be {wanted}", until=lambda t: t["lastStatus"] == wanted)
    except AssertionError as error:
        raise AssertionError(f"task {arn} not {wanted} within {timeout}s (seen {seen})") from error
    task["seen"] = seen
    return task


def describe_task(ecs, arn: str) -> dict:
    return ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"][0]


def log_lines(logs, arn: str, timeout: float = 10) -> list[str]:
    stream = f"run/run/{arn.rsplit('/', 1)[-1]}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            events = logs.get_log_events(logGroupName=GROUP, logStreamName=stream)["events"]
        except logs.exceptions.ResourceNotFoundException:
            events = []
        if events or time.monotonic() > deadline:
            return [event["message"] for event in events]
        time.sleep(0.3)


def run(ecs, network, definition: str, **overrides) -> str:
    return ecs.run_task(
        cluster=CLUSTER,
        taskDefinition=definition,
        launchType="FARGATE",
        networkConfiguration=network,
        overrides={"containerOverrides": [{"name": "run", **overrides}]} if overrides else {},
        tags=[{"key": "dagster/run_id", "value": "r-1"}],
    )["tasks"][0]["taskArn"]


def test_a_task_runs_its_override_and_stops_with_its_exit_code(stack):
    (clients, network, _state) = stack
    ecs = clients["ecs"]
    definition = register(ecs, "oneoff-exit", ["sh", "-c", "echo never"])
    arn = run(
        ecs,
        network,
        definition,
        command=["sh", "-c", 'echo "hello $GREETING"; echo "dir ${TASK_DIR##*/}"; sleep 1; exit 3'],
        environment=[{"name": "GREETING", "value": "from RunTask"}],
    )
    assert describe_task(ecs, arn)["lastStatus"] == "PROVISIONING"
    stopped = wait_status(ecs, arn, "STOPPED")
    assert "RUNNING" in stopped["seen"], stopped["seen"]  # not moto's timer: the runtime reported it
    assert stopped["containers"][0]["exitCode"] == 3
    assert stopped["stoppedReason"] == "Essential container in task exited"
    assert stopped["stopCode"] == "EssentialContainerExited"
    lines = log_lines(clients["logs"], arn)
    assert "hello from RunTask" in lines
    assert f"dir oneoff-exit-{arn.rsplit('/', 1)[-1]}" in lines
    assert not (_state / "tasks" / f"oneoff-exit-{arn.rsplit('/', 1)[-1]}").exists()  # its filesystem went with it


def test_a_task_whose_log_stream_cannot_be_created_does_not_start(stack, tmp_path):
    """Fargate's awslogs driver creates the task's stream, as the execution role, before the container starts; a
    task whose stream cannot be created (here: no such log group) stops without having run."""
    (clients, network, _state) = stack
    ecs = clients["ecs"]
    marker = tmp_path / "ran"
    logging = {
        "logDriver": "awslogs",
        "options": {"awslogs-group": "/ecs/no-such-group", "awslogs-region": REGION, "awslogs-stream-prefix": "run"},
    }
    definition = register(ecs, "oneoff-nolog", ["sh", "-c", f"touch {marker}"], logConfiguration=logging)
    arn = run(ecs, network, definition)
    stopped = wait_status(ecs, arn, "STOPPED")
    assert "RUNNING" not in stopped["seen"], stopped["seen"]
    assert stopped["stoppedReason"].startswith("ResourceInitializationError: failed to validate logger args: ")
    assert "/ecs/no-such-group" in stopped["stoppedReason"]
    time.sleep(1)
    assert not marker.exists()  # the container never ran


WHO_AM_I = """
import os, boto3
print("access key in the environment:", "AWS_ACCESS_KEY_ID" in os.environ)
print("acting as", boto3.client("sts").get_caller_identity()["Arn"])
"""


def test_a_task_acts_as_its_task_role_and_its_agent_as_its_execution_role(stack):
    """As on Fargate: no key in the task, its task role's credentials from its credentials endpoint; the
    agent (the runtime) ships its logs as the execution role. The emulator's recorder names both."""
    (clients, network, _state) = stack
    ecs = clients["ecs"]
    endpoint = ecs.meta.endpoint_url
    iam = aws_clients(endpoint, REGION)("iam")
    trust = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", '
    trust += '"Principal": {"Service": "ecs-tasks.amazonaws.com"}}]}'
    roles = {
        key: iam.create_role(RoleName=f"oneoff-{name}", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
        for key, name in (("taskRoleArn", "task"), ("executionRoleArn", "execution"))
    }
    definition = register(ecs, "oneoff-role", [sys.executable, "-c", WHO_AM_I], roles=roles)
    where = [{"name": "AWS_ENDPOINT_URL", "value": endpoint}, {"name": "AWS_DEFAULT_REGION", "value": REGION}]
    arn = run(ecs, network, definition, environment=where)
    stopped = wait_status(ecs, arn, "STOPPED")
    task_id = arn.rsplit("/", 1)[-1]
    lines = log_lines(clients["logs"], arn)
    assert stopped["containers"][0]["exitCode"] == 0, lines
    assert "access key in the environment: False" in lines
    assert f"acting as arn:aws:sts::123456789012:assumed-role/oneoff-task/{task_id}" in lines
    calls = recorded_calls(endpoint)
    shipped = {(c["principal"], c["action"]) for c in calls if c["resource"] and c["resource"].endswith(task_id)}
    assert (roles["executionRoleArn"], "logs:PutLogEvents") in shipped, shipped
    assert (roles["executionRoleArn"], "logs:CreateLogStream") in shipped, shipped


def test_a_task_left_alone_stays_running(stack):
    """moto's own tasks advance on every DescribeTasks; ours stay RUNNING while the process runs."""
    (clients, network, _state) = stack
    ecs = clients["ecs"]
    arn = run(ecs, network, register(ecs, "oneoff-long", ["sh", "-c", "sleep 30"]))
    wait_status(ecs, arn, "RUNNING")
    for _ in range(6):
        assert describe_task(ecs, arn)["lastStatus"] == "RUNNING"
    ecs.stop_task(cluster=CLUSTER, task=arn, reason="test done")
    wait_status(ecs, arn, "STOPPED")


def test_stop_task_sends_sigterm_and_reports_the_reason(stack):
    (clients, network, _state) = stack
    ecs = clients["ecs"]
    script = 'trap "echo got TERM; exit 7" TERM; echo ready; while true; do sleep 0.2; done'
    arn = run(ecs, network, register(ecs, "oneoff-term", ["sh", "-c", script]))
    wait_status(ecs, arn, "RUNNING")
    assert "ready" in log_lines(clients["logs"], arn)
    answer = ecs.stop_task(cluster=CLUSTER, task=arn, reason="Dagster run terminated")["task"]
    assert answer["desiredStatus"] == "STOPPED"
    assert answer["lastStatus"] == "RUNNING"  # as on AWS: STOPPED once the container exited
    stopped = wait_status(ecs, arn, "STOPPED")
    assert stopped["containers"][0]["exitCode"] == 7
    assert stopped["stoppedReason"] == "Dagster run terminated"
    assert stopped["stopCode"] == "UserInitiated"
    assert "got TERM" in log_lines(clients["logs"], arn, timeout=5)


def test_a_task_that_ignores_sigterm_is_killed_after_its_stop_timeout(stack):
    (clients, network, _state) = stack
    ecs = clients["ecs"]
    script = 'trap "" TERM; while true; do sleep 0.2; done'
    arn = run(ecs, network, register(ecs, "oneoff-kill", ["sh", "-c", script], stopTimeout=2))
    wait_status(ecs, arn, "RUNNING")
    began = time.monotonic()
    ecs.stop_task(cluster=CLUSTER, task=arn, reason="stop")
    stopped = wait_status(ecs, arn, "STOPPED", timeout=20)
    assert time.monotonic() - began >= 2
    assert stopped["containers"][0]["exitCode"] == 137


def test_a_task_no_runtime_claimed_stops_at_once(stack):
    """StopTask of a task nobody runs (not yet picked up) stops it at once, as moto did."""
    (clients, network, state) = stack
    ecs = clients["ecs"]
    arn = run(ecs, network, register(ecs, "oneoff-never", ["sh", "-c", "exit 0"]))
    answer = ecs.stop_task(cluster=CLUSTER, task=arn, reason="changed my mind")["task"]
    if answer["lastStatus"] != "STOPPED":  # the runtime claimed it in between: it stops it
        wait_status(ecs, arn, "STOPPED")
    status = json.loads((state / "status.json").read_text())
    assert "oneoff" in status


# --- the metadata endpoint v4 and the services' tasks ------------------------------------------

READ_METADATA = """
import json, os, signal, sys, time
import requests
from dagster_aws.ecs.tasks import current_ecs_container_name, get_current_ecs_task_metadata

uri = os.environ["ECS_CONTAINER_METADATA_URI_V4"]
current = get_current_ecs_task_metadata()
found = {"uri": uri, "cluster": current.cluster, "task_arn": current.task_arn, "name": current_ecs_container_name()}
found["task"] = requests.get(uri + "/task", timeout=5).json()
found["other"] = requests.get(uri + "/stats", timeout=5).status_code
with open(os.path.join(os.environ["TASK_DIR"], "metadata.json"), "w") as out:
    json.dump(found, out)
print("metadata read", flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(0.2)
"""


def service_tasks(ecs, desired: str = "RUNNING") -> list[dict]:
    arns = ecs.list_tasks(cluster=CLUSTER, serviceName=SERVICE, desiredStatus=desired)["taskArns"]
    return ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"] if arns else []


def wait_service(ecs, check, timeout: float = 60) -> dict:
    return wait_for(
        lambda: ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0],
        timeout,
        0.5,
        f"service {SERVICE} to meet the test's condition",
        until=check,
    )


def completed(service: dict, definition: str) -> bool:
    (primary, *others) = service["deployments"]
    return (
        not others
        and service["runningCount"] == service["desiredCount"] == 1
        and primary["rolloutState"] == "COMPLETED"
        and primary["taskDefinition"] == definition
    )


def deploy_service(ecs, network, definition: str, until=completed) -> None:
    """The service runs one task of ``definition`` (created, or updated when an earlier test made it);
    returns once ``until(service, definition)`` holds."""
    if ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"]:
        ecs.update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=definition, desiredCount=1)
    else:
        ecs.create_service(
            cluster=CLUSTER,
            serviceName=SERVICE,
            taskDefinition=definition,
            desiredCount=1,
            launchType="FARGATE",
            networkConfiguration=network,
        )
    wait_service(ecs, lambda service: until(service, definition))


def read_metadata(state: Path, timeout: float = 60, unless=()) -> dict:
    """What the service's task read from its metadata endpoint (a task whose ARN is not in ``unless``)."""
    found = state / "tasks" / "web" / "metadata.json"

    def written():
        try:
            read = json.loads(found.read_text())
        except (OSError, ValueError):  # not written yet, or being written
            return None
        return None if read["task_arn"] in unless else read

    return wait_for(written, timeout, 0.3, "the service's task to read its metadata")


def test_a_service_task_is_an_ecs_task_with_its_metadata_endpoint(stack):
    """runningCount, DescribeTasks, ListTasks(serviceName) and the metadata endpoint answer as on Fargate.

    dagster-aws's own helpers read the endpoint inside the task; ``get_task_kwargs_from_current_task``
    (what ``use_current_ecs_task_config`` does) finds the service's subnet and security group from
    the task's network interface.
    """
    from dagster_aws.ecs.tasks import get_task_kwargs_from_current_task

    (clients, network, state) = stack
    ecs = clients["ecs"]
    definition = register(ecs, "oneoff-web", [sys.executable, "-c", READ_METADATA])
    deploy_service(ecs, network, definition)
    (task,) = service_tasks(ecs)
    assert task["group"] == f"service:{SERVICE}"
    assert task["lastStatus"] == "RUNNING"
    assert task["startedBy"].startswith("ecs-svc/")
    found = read_metadata(state)
    assert found["task_arn"] == task["taskArn"]
    assert found["cluster"] == task["clusterArn"]
    assert found["name"] == "run"
    assert found["task"]["Family"] == "oneoff-web"
    assert found["task"]["ServiceName"] == SERVICE
    assert found["task"]["KnownStatus"] == "RUNNING"
    assert found["other"] == 404
    assert found["uri"].startswith("http://127.0.0.1:")
    kwargs = get_task_kwargs_from_current_task(clients["ec2_resource"], CLUSTER, task)
    assert kwargs["networkConfiguration"]["awsvpcConfiguration"]["subnets"] == network["awsvpcConfiguration"]["subnets"]
    assert (
        kwargs["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"]
        == (network["awsvpcConfiguration"]["securityGroups"])
    )
    assert "metadata read" in log_lines(clients["logs"], task["taskArn"])


def test_a_new_revision_replaces_the_service_task_and_stop_task_is_honoured(stack):
    (clients, network, state) = stack
    ecs = clients["ecs"]
    if not ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"]:
        pytest.skip("needs the service of test_a_service_task_is_an_ecs_task_with_its_metadata_endpoint")
    (old,) = service_tasks(ecs)
    definition = register(ecs, "oneoff-web", [sys.executable, "-c", READ_METADATA])
    ecs.update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=definition)
    wait_service(ecs, lambda service: completed(service, definition))
    stopped = wait_status(ecs, old["taskArn"], "STOPPED")
    assert stopped["containers"][0]["exitCode"] == 0  # its SIGTERM handler exits 0
    assert "new task definition" in stopped["stoppedReason"]
    (new,) = service_tasks(ecs)
    assert new["taskDefinitionArn"] == definition

    assert read_metadata(state, unless=[old["taskArn"]])["task_arn"] == new["taskArn"]
    ecs.stop_task(cluster=CLUSTER, task=new["taskArn"], reason="stopped from outside")
    stopped = wait_status(ecs, new["taskArn"], "STOPPED")
    assert stopped["stoppedReason"] == "stopped from outside"
    assert stopped["stopCode"] == "UserInitiated"
    read_metadata(state, unless=[old["taskArn"], new["taskArn"]])  # the service's replacement runs
    wait_service(ecs, lambda service: completed(service, definition))
    listed = {task["taskArn"] for task in service_tasks(ecs, "STOPPED")}
    assert {old["taskArn"], new["taskArn"]} <= listed
    ecs.update_service(cluster=CLUSTER, service=SERVICE, desiredCount=0)
    wait_service(ecs, lambda service: service["runningCount"] == 0)


HEALTHY_WHILE_MARKED = {
    "command": ["CMD-SHELL", 'test -f "$TASK_DIR/ready"'],
    "interval": 5,  # ECS's minimum
    "timeout": 2,
    "retries": 2,
    "startPeriod": 0,
}


def test_a_service_task_that_fails_its_health_check_is_replaced(stack):
    """The container's healthCheck runs as the ECS agent runs it: in the container's environment, every
    ``interval``; DescribeTasks reports its status (UNKNOWN, then HEALTHY) and the deployment completes only
    once its task is HEALTHY, as ECS completes one; ``retries`` failures in a row stop the task ("Task failed
    container health checks") and the service starts another one, checked again."""
    (clients, network, state) = stack
    ecs = clients["ecs"]
    ready = state / "tasks" / "web" / "ready"
    ready.unlink(missing_ok=True)
    command = ["sh", "-c", 'touch "$TASK_DIR/ready"; trap "exit 0" TERM; while :; do sleep 1; done']
    definition = register(ecs, "oneoff-health", command, healthCheck=HEALTHY_WHILE_MARKED)
    deploy_service(ecs, network, definition, until=lambda service, _: service["runningCount"] == 1)
    # The service first: its task still UNKNOWN after it means it was read before any check counted.
    service = ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
    (task,) = service_tasks(ecs)
    assert task["healthStatus"] == task["containers"][0]["healthStatus"] == "UNKNOWN"  # no check has run yet
    assert service["deployments"][0]["rolloutState"] == "IN_PROGRESS"  # running, not yet healthy
    healthy = wait_health(ecs, task["taskArn"], "HEALTHY")
    assert healthy["containers"][0]["healthStatus"] == "HEALTHY"
    wait_service(ecs, lambda service: completed(service, definition), timeout=10)

    ready.unlink()  # from now on the check fails: after 2 checks in a row, the task stops
    stopped = wait_status(ecs, task["taskArn"], "STOPPED", timeout=40)
    assert stopped["stoppedReason"] == "Task failed container health checks"
    assert stopped["healthStatus"] == "UNHEALTHY"
    # status.json is written at the end of the runtime's round, which may come after ECS shows the task STOPPED
    last_exit = wait_for(
        lambda: json.loads((state / "status.json").read_text())["services"]["web"]["last_exit"],
        10,
        0.3,
        "the runtime's status.json to record the stopped task's exit",
    )
    assert "container health check failed 2 times in a row" in last_exit["error"]

    wait_service(ecs, lambda service: completed(service, definition), timeout=60)  # its replacement
    (replacement,) = service_tasks(ecs)
    assert replacement["taskArn"] != task["taskArn"]
    wait_health(ecs, replacement["taskArn"], "HEALTHY")
    ecs.update_service(cluster=CLUSTER, service=SERVICE, desiredCount=0)
    wait_service(ecs, lambda service: service["runningCount"] == 0)


def wait_health(ecs, arn: str, wanted: str, timeout: float = 30) -> dict:
    return wait_for(
        lambda: describe_task(ecs, arn),
        timeout,
        0.3,
        f"task {arn} to be {wanted}",
        until=lambda task: task.get("healthStatus") == wanted,
    )


BREAKER = {
    "deploymentCircuitBreaker": {"enable": True, "rollback": True},
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
}


def test_a_revision_whose_tasks_keep_failing_is_rolled_back(stack):
    """ECS's deployment circuit breaker (the ecs role turns it on with rollback): 3 failed tasks of the new
    deployment (half the desired count, at least 3) fail it, and the service goes back to the revision of its last
    completed deployment; the runtime runs that one again, and starts no more task of the failed one."""
    (clients, network, state) = stack
    ecs = clients["ecs"]
    # With a health check, as the ecs role's services have: a task that dies at once never counts as in service
    # (without one, ECS completes a deployment whose task was RUNNING a moment, and the breaker is then off).
    command = ["sh", "-c", 'touch "$TASK_DIR/ready"; trap "exit 0" TERM; while :; do sleep 1; done']
    good = register(ecs, "oneoff-breaker", command, healthCheck=HEALTHY_WHILE_MARKED)
    deploy_service(ecs, network, good)
    ecs.update_service(cluster=CLUSTER, service=SERVICE, deploymentConfiguration=BREAKER)
    bad = register(ecs, "oneoff-breaker", ["sh", "-c", "echo cannot start; exit 1"], healthCheck=HEALTHY_WHILE_MARKED)
    try:
        ecs.update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=bad)
        # 3 failures with the runtime's back-off (2 s, 4 s), then the old revision's task starts again
        service = wait_service(ecs, lambda service: completed(service, good), timeout=90)
        messages = [event["message"] for event in service["events"]]
        assert any("deployment failed: tasks failed to start." in message for message in messages), messages
        assert f"(service {SERVICE}) rolling back to {good.rsplit('/', 1)[-1]}." in messages
        failed = ecs.list_tasks(cluster=CLUSTER, serviceName=SERVICE, desiredStatus="STOPPED")["taskArns"]
        failed = [
            t for t in ecs.describe_tasks(cluster=CLUSTER, tasks=failed)["tasks"] if t["taskDefinitionArn"] == bad
        ]
        assert len(failed) == 3 and {t["stoppedReason"] for t in failed} == {"Essential container in task exited"}
        status = wait_for(
            lambda: json.loads((state / "status.json").read_text())["services"]["web"],
            10,
            0.3,
            "the runtime's status.json to show the old revision running",
            until=lambda web: web.get("task_definition") == good and web.get("running"),
        )
        assert status["task_definition"] == good
        time.sleep(5)  # longer than the back-off the runtime would have waited before a 4th task of the bad one
        assert completed(ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0], good)
    finally:
        off = {"deploymentCircuitBreaker": {"enable": False, "rollback": False}}
        ecs.update_service(cluster=CLUSTER, service=SERVICE, deploymentConfiguration=off, desiredCount=0)
        wait_service(ecs, lambda service: service["runningCount"] == 0)


@pytest.mark.parametrize(
    ("desired", "failed", "trips"), [(1, 2, False), (1, 3, True), (10, 4, False), (10, 5, True), (1000, 200, True)]
)
def test_the_circuit_breakers_threshold_is_half_the_desired_count_between_3_and_200(desired, failed, trips):
    from types import SimpleNamespace

    from dagster_ecs_emulator import ecs_tasks

    service = SimpleNamespace(
        deployment_configuration=BREAKER, desired_count=desired, task_definition="x:2", dagster_ecs_completed="x:1"
    )
    assert ecs_tasks._circuit_breaker_trips(service, [object()] * failed) is trips
    service.dagster_ecs_completed = None  # nothing completed to go back to: the failing deployment is retried
    assert ecs_tasks._circuit_breaker_trips(service, [object()] * failed) is False
    service.dagster_ecs_completed = "x:2"  # this deployment completed: the breaker watches it no more
    assert ecs_tasks._circuit_breaker_trips(service, [object()] * failed) is False
