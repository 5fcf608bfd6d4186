"""ecs_run_task: a one-off task to completion (task definition and logs in moto, the task's progress answered)."""

from __future__ import annotations

import time

import pytest
from ansible_collections.dagster_ecs.fargate.plugins.modules import ecs_run_task

CLUSTER = "dagster-ecs"
GROUP = "/ecs/dagster-ecs"
TASK = "arn:aws:ecs:ap-southeast-2:123456789012:task/dagster-ecs/0123456789abcdef"
ARGS = {
    "cluster": CLUSTER,
    "task_definition": "dagster-ecs-run:1",
    "container": "run",
    "command": ["migrate"],
    "started_by": "dagster-ecs-migrate",
    "network_configuration": {"subnets": ["subnet-1"], "security_groups": ["sg-1"], "assign_public_ip": True},
    "tags": {"Project": "dagster-ecs"},
    "wait_timeout": 60,
}


@pytest.fixture
def definition(aws):
    """The cluster, the run task definition (awslogs to GROUP, prefix run) and the task's log stream, in moto."""
    aws.client("ecs").create_cluster(clusterName=CLUSTER)
    arn = aws.client("ecs").register_task_definition(
        family="dagster-ecs-run",
        containerDefinitions=[
            {
                "name": "run",
                "image": "repo:tag",
                "memory": 512,
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": GROUP,
                        "awslogs-region": "ap-southeast-2",
                        "awslogs-stream-prefix": "run",
                    },
                },
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    logs = aws.client("logs")
    logs.create_log_group(logGroupName=GROUP)
    logs.create_log_stream(logGroupName=GROUP, logStreamName="run/run/0123456789abcdef")
    logs.put_log_events(
        logGroupName=GROUP,
        logStreamName="run/run/0123456789abcdef",
        logEvents=[
            {"timestamp": int(time.time() * 1000) + i, "message": line}
            for i, line in enumerate(["one", "  ", "two", "three"])
        ],
    )
    aws.forget()
    return arn


def task(definition, status, **extra):
    return {"taskArn": TASK, "taskDefinitionArn": definition, "lastStatus": status, **extra}


def progress(aws, definition, *states):
    """RunTask starts TASK; DescribeTasks answers ``states`` in turn (the last one from then on)."""
    aws.answer("RunTask", {"tasks": [task(definition, "PROVISIONING")], "failures": []})
    answers = list(states)

    def describe(original, params):
        assert params["tasks"] == [TASK]
        return {"tasks": [answers.pop(0) if len(answers) > 1 else answers[0]]}

    aws.answer("DescribeTasks", describe)


def stopped(definition, code, reason="Essential container in task exited", container_reason=None):
    container = {"name": "run", **({"exitCode": code} if code is not None else {})}
    if container_reason:
        container["reason"] = container_reason
    return task(definition, "STOPPED", stoppedReason=reason, containers=[container])


def test_runs_the_command_and_reports_exit_code_zero(run_module, aws, definition, clock):
    progress(aws, definition, task(definition, "RUNNING"), stopped(definition, 0))
    result = run_module(ecs_run_task, ARGS)
    assert not result.get("failed"), result
    assert result["changed"] is True and result["resumed"] is False
    assert result["exit_code"] == 0 and result["task_arn"] == TASK
    assert result["stopped_reason"] == "Essential container in task exited"
    assert result["log"] == ["one", "two", "three"]
    (request,) = aws.params("RunTask")
    assert request == {
        "cluster": CLUSTER,
        "taskDefinition": "dagster-ecs-run:1",
        "launchType": "FARGATE",
        "platformVersion": "LATEST",
        "count": 1,
        "networkConfiguration": {
            "awsvpcConfiguration": {"subnets": ["subnet-1"], "securityGroups": ["sg-1"], "assignPublicIp": "ENABLED"}
        },
        "overrides": {"containerOverrides": [{"name": "run", "command": ["migrate"]}]},
        "startedBy": "dagster-ecs-migrate",
        "tags": [{"key": "Project", "value": "dagster-ecs"}],
    }
    assert aws.count("DescribeTasks") == 2  # polled until STOPPED
    assert aws.params("ListTasks")[0] == {
        "cluster": CLUSTER,
        "startedBy": "dagster-ecs-migrate",
        "desiredStatus": "RUNNING",
    }


def test_a_non_zero_exit_fails_with_the_reason_and_the_log(run_module, aws, definition, clock):
    progress(aws, definition, stopped(definition, 1))
    result = run_module(ecs_run_task, {**ARGS, "log_lines": 2})
    assert result["failed"] and result["exit_code"] == 1
    assert result["msg"] == (
        "Task 0123456789abcdef, run (migrate) of dagster-ecs-run:1, exited 1: Essential container in task exited. "
        "Its last log lines:\ntwo\nthree"
    )


def test_a_task_that_could_not_start_fails_with_the_containers_reason(run_module, aws, definition, clock):
    progress(
        aws,
        definition,
        stopped(definition, None, reason="Task failed to start", container_reason="CannotPullContainerError: no"),
    )
    result = run_module(ecs_run_task, ARGS)
    assert result["failed"] and result["exit_code"] is None
    assert "stopped without an exit code (CannotPullContainerError: no): Task failed to start" in result["msg"]


def test_without_awslogs_the_failure_still_names_the_exit_code(run_module, aws, definition, clock):
    arn = aws.client("ecs").register_task_definition(
        family="plain", containerDefinitions=[{"name": "run", "image": "repo:tag", "memory": 512}]
    )["taskDefinition"]["taskDefinitionArn"]
    aws.forget()
    progress(aws, arn, stopped(arn, 3))
    result = run_module(ecs_run_task, {**ARGS, "task_definition": "plain:1", "started_by": None, "tags": None})
    assert result["failed"] and result["log"] == []
    assert result["msg"].endswith(
        "exited 3: Essential container in task exited. Its last log lines:\n(no log lines in its awslogs stream)"
    )
    assert aws.count("ListTasks") == 0
    assert "startedBy" not in aws.params("RunTask")[0] and "tags" not in aws.params("RunTask")[0]


def test_a_task_that_does_not_stop_in_time_is_stopped(run_module, aws, definition, clock):
    progress(aws, definition, task(definition, "RUNNING"))
    aws.answer("StopTask", {"task": task(definition, "RUNNING")})
    result = run_module(ecs_run_task, {**ARGS, "wait_timeout": 12})
    assert result["failed"]
    assert result["msg"] == (
        "Timed out after 12s waiting for task 0123456789abcdef (run (migrate) of dagster-ecs-run:1) to stop; "
        "task 0123456789abcdef (run (migrate) of dagster-ecs-run:1) stopped"
    )
    (stop,) = aws.params("StopTask")
    assert stop == {"cluster": CLUSTER, "task": TASK, "reason": "ecs_run_task: not stopped after 12s"}


def test_check_mode_starts_nothing(run_module, aws, definition):
    result = run_module(ecs_run_task, ARGS, check_mode=True)
    assert result["changed"] is True and result["msg"] == "Would run run (migrate) of dagster-ecs-run:1 once"
    assert aws.count("RunTask") == 0


def test_an_interrupted_run_is_waited_for_not_started_again(run_module, aws, definition, clock):
    other = "arn:aws:ecs:ap-southeast-2:123456789012:task/dagster-ecs/ffff"
    aws.answer("ListTasks", {"taskArns": [other, TASK]})
    answers = [
        {
            "tasks": [
                {**task("arn:aws:ecs:ap-southeast-2:123456789012:task-definition/old:1", "RUNNING"), "taskArn": other},
                task(definition, "RUNNING"),
            ]
        },
        {"tasks": [stopped(definition, 0)]},
    ]
    aws.answer("DescribeTasks", lambda original, params: answers.pop(0))
    result = run_module(ecs_run_task, ARGS)
    assert result["resumed"] is True and result["exit_code"] == 0 and result["task_arn"] == TASK
    assert aws.count("RunTask") == 0


def test_no_task_started_fails_with_the_failures(run_module, aws, definition):
    aws.answer("RunTask", {"tasks": [], "failures": [{"arn": "arn:x", "reason": "RESOURCE:MEMORY"}]})
    result = run_module(ecs_run_task, {**ARGS, "started_by": None})
    assert result["failed"]
    assert result["msg"] == "ECS started no task of dagster-ecs-run:1: arn:x RESOURCE:MEMORY"


def test_an_aws_error_fails_naming_the_call(run_module, aws, definition):
    aws.fail("RunTask", "AccessDeniedException")
    result = run_module(ecs_run_task, {**ARGS, "started_by": None})
    assert result["failed"] and result["msg"].startswith("Failed to run a task of dagster-ecs-run:1")
    assert result["error"]["code"] == "AccessDeniedException"


def test_started_by_longer_than_ecs_allows_is_refused_before_any_call(run_module, aws):
    result = run_module(ecs_run_task, {**ARGS, "started_by": "x" * 37})
    assert result["failed"] and "at most 36 characters" in result["msg"]
    assert aws.calls == []
