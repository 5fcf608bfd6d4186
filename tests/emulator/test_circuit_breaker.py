"""ECS's deployment circuit breaker in the emulated ECS (ecs_tasks.count_service_tasks), in process: moto's backend with
the emulator's ECS patches, the runtime's reports made by hand. What every DescribeServices answers around a trip: the
same deployments (ids, states) from one call to the next, the FAILED one listed until its rollback completes.
The same breaker with the real local runtime is tested in tests/unit/test_oneoff.py."""

from __future__ import annotations

import boto3
import pytest
from dagster_ecs_emulator import ecs_tasks, patches
from moto import mock_aws

ACCOUNT, REGION = "123456789012", "ap-southeast-2"
BREAKER = {"deploymentCircuitBreaker": {"enable": True, "rollback": True}}


@pytest.fixture
def ecs():
    patches.uninstall()
    with mock_aws():
        patches.install(ecs_tasks.patches())
        client = boto3.client("ecs", region_name=REGION)
        client.create_cluster(clusterName="c")
        yield client
    patches.uninstall()


def definition(ecs, command: str) -> str:
    container = {"name": "web", "image": "local", "memory": 128, "command": [command]}
    return ecs.register_task_definition(family="web", containerDefinitions=[container])["taskDefinition"][
        "taskDefinitionArn"
    ]


def backend():
    from moto.ecs.models import ecs_backends

    return ecs_backends[ACCOUNT][REGION]


def start(arn: str, deployment: str, then: str | None = None):
    """A task of the service as the runtime registers and reports it; ``then``: it failed with that reason."""
    (task,) = backend().run_task("c", arn, 1, None, deployment, None, "FARGATE", group="service:web")
    ecs_tasks.set_state(task)
    ecs_tasks.set_state(task, "RUNNING")
    if then:
        ecs_tasks.set_state(task, "STOPPED", 1, then)
    return task


def describe(ecs) -> dict:
    return ecs.describe_services(cluster="c", services=["web"])["services"][0]


def shape(service: dict) -> list[tuple]:
    return [(d["id"], d["status"], d["rolloutState"], d["taskDefinition"][-5:]) for d in service["deployments"]]


@pytest.fixture
def rolled_back(ecs):
    """web:1 completed, then web:2 whose 3 tasks failed: tripped and rolled back."""
    good = definition(ecs, "serve")
    ecs.create_service(cluster="c", serviceName="web", taskDefinition=good, desiredCount=1)
    first = start(good, describe(ecs)["deployments"][0]["id"])
    assert describe(ecs)["deployments"][0]["rolloutState"] == "COMPLETED"
    ecs.update_service(cluster="c", service="web", deploymentConfiguration=BREAKER)
    bad = definition(ecs, "crash")
    ecs.update_service(cluster="c", service="web", taskDefinition=bad)
    ecs_tasks.set_state(first, "STOPPED", 0, f"new task definition {bad.rsplit('/', 1)[-1]}")  # not a failure
    failing = describe(ecs)["deployments"][0]["id"]
    for _ in range(3):
        start(bad, failing, then="Essential container in task exited")
    return good, bad, failing


def test_the_trip_is_the_same_deployments_on_every_answer(ecs, rolled_back):
    good, bad, failing = rolled_back
    answers = [describe(ecs) for _ in range(3)]
    assert shape(answers[0]) == shape(answers[1]) == shape(answers[2])
    (rollback, failed) = answers[0]["deployments"]
    assert answers[0]["taskDefinition"] == good
    assert (rollback["status"], rollback["rolloutState"], rollback["taskDefinition"]) == (
        "PRIMARY",
        "IN_PROGRESS",
        good,
    )
    assert (failed["id"], failed["status"], failed["rolloutState"]) == (failing, "ACTIVE", "FAILED")
    assert failed["failedTasks"] == 3 and failed["taskDefinition"] == bad
    assert [e["message"] for e in answers[0]["events"]][:2] == [
        "(service web) rolling back to web:1.",
        f"(service web) (deployment {failing}) deployment failed: tasks failed to start.",
    ]


def test_the_failed_deployment_goes_once_its_rollback_completed(ecs, rolled_back):
    good, _bad, _failing = rolled_back
    start(good, describe(ecs)["deployments"][0]["id"])
    service = describe(ecs)
    assert [(d["status"], d["rolloutState"]) for d in service["deployments"]] == [("PRIMARY", "COMPLETED")]
    assert len(service["events"]) == 2  # no second trip


def test_a_completed_deployments_later_failures_are_not_rolled_back(ecs):
    ecs.create_service(cluster="c", serviceName="web", taskDefinition=definition(ecs, "one"), desiredCount=1)
    ecs.update_service(cluster="c", service="web", deploymentConfiguration=BREAKER)
    second = definition(ecs, "two")
    ecs.update_service(cluster="c", service="web", taskDefinition=second)
    deployment = describe(ecs)["deployments"][0]["id"]
    start(second, deployment, then=None)
    assert describe(ecs)["deployments"][0]["rolloutState"] == "COMPLETED"
    for task in backend().tasks["c"].values():
        ecs_tasks.set_state(task, "STOPPED", 1, "Essential container in task exited")
    for _ in range(3):
        start(second, deployment, then="Essential container in task exited")
    service = describe(ecs)
    assert service["taskDefinition"] == second and service["events"] == []
