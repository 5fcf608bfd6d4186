"""RunTask's tasks, run by the local runtime as Fargate would: real processes, real exit codes, StopTask, logs.

A fresh emulator and the real local runtime (``python -m dagster_ecs_emulator runtime``, no
service configured) on loopback; the test talks to the emulated ECS and CloudWatch Logs only,
as a run launcher does. The task definitions' command is a shell, so each case is one process
with a known behaviour.
"""

from __future__ import annotations

import json
import time

import pytest
from aws_inventory import clients as aws_clients
from conftest import OFFLINE_CREDENTIALS, spawn_emulator
from dagster_ecs_emulator import runtime

REGION = "ap-southeast-2"
CLUSTER = "oneoff"
GROUP = "/ecs/oneoff"


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
            "services": {},
            "command": [],
            "env": {"*": {"TASK_DIR": "{task_dir}"}},
        }
        (state / "config.json").write_text(json.dumps(config))
        runtime.start(state / "config.json", state, timeout=60)
        network = {"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}}
        yield clients, network, state
    finally:
        runtime.stop(state)
        emulator.stop()


def register(ecs, family: str, command: list[str], **container) -> str:
    return ecs.register_task_definition(
        family=family,
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
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"][0]
        if not seen or seen[-1] != task["lastStatus"]:
            seen.append(task["lastStatus"])
        if task["lastStatus"] == wanted:
            task["seen"] = seen
            return task
        time.sleep(0.3)
    raise AssertionError(f"task {arn} not {wanted} within {timeout}s (seen {seen})")


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
    assert ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"][0]["lastStatus"] == "PROVISIONING"
    stopped = wait_status(ecs, arn, "STOPPED")
    assert "RUNNING" in stopped["seen"], stopped["seen"]  # not moto's timer: the runtime reported it
    assert stopped["containers"][0]["exitCode"] == 3
    assert stopped["stoppedReason"] == "Essential container in task exited"
    assert stopped["stopCode"] == "EssentialContainerExited"
    lines = log_lines(clients["logs"], arn)
    assert "hello from RunTask" in lines
    assert f"dir oneoff-exit-{arn.rsplit('/', 1)[-1]}" in lines


def test_a_task_left_alone_stays_running(stack):
    """moto's own tasks advance on every DescribeTasks; ours stay RUNNING while the process runs."""
    (clients, network, _state) = stack
    ecs = clients["ecs"]
    arn = run(ecs, network, register(ecs, "oneoff-long", ["sh", "-c", "sleep 30"]))
    wait_status(ecs, arn, "RUNNING")
    for _ in range(6):
        assert ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"][0]["lastStatus"] == "RUNNING"
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
