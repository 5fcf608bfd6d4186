"""The ECS run launcher, with run tags that cannot change what a run task runs.

``EcsRunLauncher`` applies the run tags ``ecs/container_overrides``, ``ecs/task_overrides`` and
``ecs/run_task_kwargs`` as given: anyone who may launch a run from the UI could run any command
with the task role and the database password (``{"command": ["sh", "-c", "..."]}``). Of the
launcher's ``ecs/`` tags only the run's size passes here; a run carrying any other is refused
before any AWS call, and the refusal is the run's failure message in its event log. The
``ecs/task_arn`` and ``ecs/cluster`` tags the launcher itself writes are refused on a new run too
(with them a run could point "terminate" at another task) and accepted on a resumed one.
"""

from __future__ import annotations

from dagster_aws.ecs import EcsRunLauncher

SIZE_TAGS = frozenset({"ecs/cpu", "ecs/memory"})
LAUNCHER_TAGS = frozenset({"ecs/task_arn", "ecs/cluster"})  # written by the launcher after RunTask


class RunTagRefused(Exception):
    """A run tag would change what the run's ECS task runs."""


def refused_tags(tags: dict[str, str], resumed: bool = False) -> list[str]:
    allowed = SIZE_TAGS | (LAUNCHER_TAGS if resumed else frozenset())
    return sorted(tag for tag in tags if tag.startswith("ecs/") and tag not in allowed)


def check_tags(tags: dict[str, str], resumed: bool = False) -> None:
    refused = refused_tags(tags, resumed)
    if refused:
        raise RunTagRefused(
            f"run tag(s) {', '.join(refused)} refused: a run's tags may set only its size "
            f"({', '.join(sorted(SIZE_TAGS))}). The run task's command, environment and settings come "
            "from the task definition the launcher is configured with (roles/ecs); change them there "
            "and deploy with --tags ecs."
        )


class GuardedEcsRunLauncher(EcsRunLauncher):
    """``EcsRunLauncher`` (same configuration) that refuses the override run tags."""

    def launch_run(self, context) -> None:
        check_tags(context.dagster_run.tags)
        super().launch_run(context)

    def resume_run(self, context) -> None:
        check_tags(context.dagster_run.tags, resumed=True)
        super().resume_run(context)
