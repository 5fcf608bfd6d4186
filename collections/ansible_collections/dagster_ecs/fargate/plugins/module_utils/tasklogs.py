# Copyright: contributors to dagster-ecs-ansible
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The last lines a stopped ECS task's container wrote to its ``awslogs`` stream.

Shared by stack_health (a service's task that keeps stopping) and ecs_run_task (a one-off task that
exited non-zero). The stream is the one the awslogs driver writes: ``<prefix>/<container>/<task id>``.
"""

from __future__ import annotations

from ansible_collections.dagster_ecs.fargate.plugins.module_utils.common import BOTO_ERRORS, client


def stream_name(container: dict, task_arn: str) -> str | None:
    """The awslogs stream of ``container`` (a container definition) in task ``task_arn``; None without awslogs."""
    config = container.get("logConfiguration") or {}
    options = config.get("options") or {}
    if config.get("logDriver") != "awslogs" or "awslogs-stream-prefix" not in options:
        return None
    return f"{options['awslogs-stream-prefix']}/{container['name']}/{task_arn.rsplit('/', 1)[-1]}"


def log_tail(module, ecs, task: dict, lines: int = 5, container_name: str | None = None) -> list[str]:
    """The last ``lines`` non-empty lines of the task's container (the named one, else the first essential one).

    Best effort: a task definition without awslogs, a stream that was never written or an error reading
    it gives ``[]`` (the caller's message still names the exit code and the stopped reason).
    """
    try:
        definition = ecs.describe_task_definition(aws_retry=True, taskDefinition=task["taskDefinitionArn"])
        containers = definition["taskDefinition"]["containerDefinitions"]
        container = next(
            c for c in containers if (c["name"] == container_name if container_name else c.get("essential", True))
        )
        stream = stream_name(container, task["taskArn"])
        if stream is None:
            return []
        events = client(module, "logs").get_log_events(
            aws_retry=True,
            logGroupName=container["logConfiguration"]["options"]["awslogs-group"],
            logStreamName=stream,
            limit=lines,
            startFromHead=False,
        )["events"]
    except (KeyError, StopIteration, *BOTO_ERRORS):
        return []
    return [event["message"].strip()[:300] for event in events if event.get("message", "").strip()]
