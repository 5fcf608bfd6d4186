"""Tasks started by ``RunTask`` (a Dagster run's own task, a one-off command), run here as on Fargate.

Each round the runtime looks at its cluster's tasks whose desired status is RUNNING. A task in
PROVISIONING that no service owns (its group is not ``service:...``) is started: the task
definition's container with ``RunTask``'s container override (command, environment), the
container's secrets resolved as the ECS agent does, and the profile's paths and ports. The
runtime claims it and reports RUNNING; when its process exits, STOPPED with the exit code
(``ecs_tasks.py`` records both on moto's task). ``StopTask`` sets the desired status to STOPPED:
the task's processes get SIGTERM, then SIGKILL after the container's ``stopTimeout`` (30 s by
default, as ECS), and the task reports STOPPED with the reason given to ``StopTask``. Its output
goes to the CloudWatch Logs stream its ``awslogs`` settings name (``tasklogs.py``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .ecs_tasks import TASK_PATH
from .tasklogs import LogShipper, stream_name

LOG = logging.getLogger("dagster_ecs_emulator.oneoff")

DEFAULT_STOP_TIMEOUT = 30  # seconds, ECS's default for a container without stopTimeout


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

    def report(self, task_arn: str, **state) -> dict:
        """Tell the emulator what the task is (``ecs_tasks.TaskControl``)."""
        body = json.dumps(
            {"region": self.config["region"], "cluster": self.config["cluster"], "task": task_arn, **state}
        ).encode()
        request = urllib.request.Request(  # noqa: S310 - the emulator's own loopback URL (http://127.0.0.1:port)
            self.config["endpoint"].rstrip("/") + TASK_PATH,
            body,
            {"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - the emulator's loopback URL
            return json.load(answer)

    def reconcile(self) -> None:
        ecs = self.runtime.clients("ecs")
        cluster = self.config["cluster"]
        arns = set(ecs.list_tasks(cluster=cluster, desiredStatus="RUNNING").get("taskArns", [])) | set(self.tasks)
        arns = sorted(arns)
        for start in range(0, len(arns), 100):
            for task in ecs.describe_tasks(cluster=cluster, tasks=arns[start : start + 100]).get("tasks", []):
                self.follow(task)

    def follow(self, task: dict) -> None:
        arn = task["taskArn"]
        local = self.tasks.get(arn)
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
        ecs = self.runtime.clients("ecs")
        definition = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
        container = definition["containerDefinitions"][0]
        override = next(
            (
                item
                for item in (task.get("overrides") or {}).get("containerOverrides", [])
                if item.get("name") == container["name"]
            ),
            {},
        )
        task_dir = self.runtime.state_dir / "tasks" / f"{definition['family']}-{task_id}"
        task_dir.mkdir(parents=True, exist_ok=True)
        env = self.runtime.environment(container["name"], container, task_dir, extra=override.get("environment", []))
        command = list(self.config["command"]) + list(override.get("command") or container.get("command") or [])
        log = self.runtime.state_dir / f"{definition['family']}.log"
        from .runtime import spawn

        process = spawn(command, env, task_dir, log, f"starting task {task_id} of {definition['family']}", pipe=True)
        shipper = LogShipper(process.stdout, log, self.runtime.clients("logs"), stream_name(container, arn))
        shipper.start()
        self.tasks[arn] = OneOff(
            arn, process, shipper, int(container.get("stopTimeout") or DEFAULT_STOP_TIMEOUT), task_dir
        )
        self.report(arn, lastStatus="RUNNING")
        LOG.info("%s: started task %s (pid %d)", definition["family"], task_id, process.pid)

    def finish(self, local: OneOff) -> None:
        local.shipper.join(10)
        code = local.process.returncode
        if code < 0:  # killed by a signal: what the container's exit code would be (128 + signal)
            code = 128 - code
        answer = self.report(local.arn, lastStatus="STOPPED", exitCode=code)
        self.tasks.pop(local.arn, None)
        self.finished = (self.finished + [{"task": local.arn, "exit_code": code, **answer}])[-20:]
        LOG.info("%s: stopped with exit code %s (%s)", local.arn.rsplit("/", 1)[-1], code, answer.get("stoppedReason"))

    def stop_all(self, reason: str) -> None:
        from .runtime import stop_session

        for local in list(self.tasks.values()):
            stop_session(local.process.pid, timeout=min(local.stop_timeout, 10))
            try:
                local.process.wait(5)
            except subprocess.TimeoutExpired:
                continue
            with contextlib.suppress(OSError):  # the emulator may be gone first
                self.report(local.arn, lastStatus="STOPPED", exitCode=128 + 15, stoppedReason=reason)
            self.tasks.pop(local.arn, None)
