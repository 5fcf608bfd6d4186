"""Tasks started by ``RunTask`` (a Dagster run's own task, a one-off command), run here as on Fargate.

Each round the runtime looks at its cluster's tasks whose desired status is RUNNING. A task in
PROVISIONING that no service owns (its group is not ``service:...``) is started: the task
definition's container with ``RunTask``'s container override (command, environment), the
container's secrets resolved as the ECS agent does (as the execution role), the task role's
credentials endpoint (``credentials.py``), and the profile's paths and ports. The
runtime claims it and reports RUNNING; when its process exits, STOPPED with the exit code
(``ecs_tasks.py`` records both on moto's task). ``StopTask`` sets the desired status to STOPPED:
the task's processes get SIGTERM, then SIGKILL after the container's ``stopTimeout`` (30 s by
default, as ECS), and the task reports STOPPED with the reason given to ``StopTask``. Its output
goes to the CloudWatch Logs stream its ``awslogs`` settings name (``tasklogs.py``), it finds its task
metadata endpoint in ``ECS_CONTAINER_METADATA_URI_V4`` (``metadata.py``), and its directory (its
container's filesystem) goes when it stopped.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import ecs_tasks
from .tasklogs import LoggerError, LogShipper, open_stream, stream_name

LOG = logging.getLogger("dagster_ecs_emulator.oneoff")

DEFAULT_STOP_TIMEOUT = 30  # seconds, ECS's default for a container without stopTimeout


def exit_code(process: subprocess.Popen) -> int | None:
    """What the container's exit code would be: the process's, or 128 + the signal that killed it."""
    code = process.poll()
    return 128 - code if code is not None and code < 0 else code


@dataclass
class OneOff:
    arn: str
    process: subprocess.Popen
    shipper: LogShipper
    stop_timeout: int
    task_dir: Path
    stopping: threading.Thread | None = None
    started_at: float = field(default_factory=time.time)


class OneOffTasks:
    def __init__(self, runtime):
        self.runtime = runtime
        self.config = runtime.config
        self.tasks: dict[str, OneOff] = {}
        self.finished: list[dict] = []  # the last few stopped tasks (status.json)

    def reconcile(self) -> None:
        ecs = self.runtime.clients("ecs")
        cluster = self.config["cluster"]
        services = {task.arn for task in self.runtime.tasks.values() if task.arn}
        listed = set(ecs.list_tasks(cluster=cluster, desiredStatus="RUNNING").get("taskArns", []))
        arns = sorted(listed | set(self.tasks) | services)
        for start in range(0, len(arns), 100):
            for task in ecs.describe_tasks(cluster=cluster, tasks=arns[start : start + 100]).get("tasks", []):
                self.follow(task)

    def follow(self, task: dict) -> None:
        arn = task["taskArn"]
        local = self.tasks.get(arn)
        if local is None and task.get("desiredStatus") == "STOPPED":
            self.runtime.stop_requested(arn, task.get("stoppedReason", ""))  # a service's task, if it is one
            return
        if local is None:
            if (
                task.get("lastStatus") == "PROVISIONING"
                and task.get("desiredStatus") == "RUNNING"
                and not str(task.get("group", "")).startswith("service:")
            ):
                self.start(task)
            return
        if local.process.poll() is not None:
            self.finish(local)
        elif task.get("desiredStatus") == "STOPPED" and local.stopping is None:
            from .runtime import stop_session

            reason = task.get("stoppedReason")
            LOG.info("%s: StopTask (%s): SIGTERM, SIGKILL after %ds", arn, reason, local.stop_timeout)
            local.stopping = threading.Thread(
                target=stop_session, args=(local.process.pid, local.stop_timeout), daemon=True
            )
            local.stopping.start()

    def start(self, task: dict) -> None:
        arn = task["taskArn"]
        task_id = arn.rsplit("/", 1)[-1]
        definition = self.runtime.definition(task["taskDefinitionArn"])
        container = definition["containerDefinitions"][0]
        override = next(
            (
                item
                for item in (task.get("overrides") or {}).get("containerOverrides", [])
                if item.get("name") == container["name"]
            ),
            {},
        )
        logs = self.runtime.agent_clients(definition, arn)("logs")
        destination = stream_name(container, arn)
        try:
            open_stream(logs, destination)  # the awslogs driver's, before the container starts
        except LoggerError as exc:  # as on Fargate: the task stops before its container ran
            LOG.warning("%s: task %s cannot start: %s", definition["family"], task_id, exc)
            ecs_tasks.report(self.config, task=arn, lastStatus="STOPPED", stoppedReason=str(exc))
            return
        task_dir = self.runtime.state_dir / "tasks" / f"{definition['family']}-{task_id}"
        task_dir.mkdir(parents=True, exist_ok=True)
        uri = self.runtime.metadata.publish(task, definition, container)
        env = self.runtime.environment(
            container["name"],
            definition,
            task_dir,
            arn,
            extra=override.get("environment", []),
            metadata_uri=uri,
            task_role=(task.get("overrides") or {}).get("taskRoleArn"),
        )
        command = list(self.config["command"]) + list(override.get("command") or container.get("command") or [])
        log = self.runtime.state_dir / f"{definition['family']}.log"
        from .runtime import spawn

        process = spawn(command, env, task_dir, log, f"starting task {task_id} of {definition['family']}", pipe=True)
        shipper = LogShipper(process.stdout, log, logs, destination)
        shipper.start()
        self.tasks[arn] = OneOff(
            arn, process, shipper, int(container.get("stopTimeout") or DEFAULT_STOP_TIMEOUT), task_dir
        )
        ecs_tasks.report(self.config, task=arn, lastStatus="RUNNING")
        self.runtime.metadata.status(arn, "RUNNING")
        LOG.info("%s: started task %s (pid %d)", definition["family"], task_id, process.pid)

    def finish(self, local: OneOff, reason: str | None = None) -> None:
        """Report the task STOPPED with its real exit code (and ``reason``, else the one ECS gives)."""
        local.shipper.join(10)
        code = exit_code(local.process)
        stopped = {"lastStatus": "STOPPED", "exitCode": code, **({"stoppedReason": reason} if reason else {})}
        answer = ecs_tasks.report(
            self.config, task=local.arn, **stopped
        )  # first: if the emulator does not answer, the next round retries
        self.runtime.metadata.forget(local.arn)
        self.tasks.pop(local.arn, None)
        shutil.rmtree(local.task_dir, ignore_errors=True)  # a stopped container's filesystem goes with it
        self.finished = (self.finished + [{"task": local.arn, "exit_code": code, **answer}])[-20:]
        LOG.info("%s: stopped with exit code %s (%s)", local.arn.rsplit("/", 1)[-1], code, answer.get("stoppedReason"))

    def stop_all(self, reason: str) -> None:
        """The runtime stops: every task it runs stops (SIGTERM, SIGKILL after at most 10 s), reported as it exited."""
        from .runtime import stop_session

        for local in list(self.tasks.values()):
            stop_session(local.process.pid, timeout=min(local.stop_timeout, 10))
            try:
                local.process.wait(5)
            except subprocess.TimeoutExpired:
                LOG.warning("%s: did not exit", local.arn)
                continue
            with contextlib.suppress(OSError):  # the emulator may be gone first
                self.finish(local, reason)
