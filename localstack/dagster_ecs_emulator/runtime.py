"""The offline profile's local ECS runtime: run each ECS service's task as host processes.

moto's ECS accepts services but never starts a task. This runtime does what Fargate would,
on this machine, from what is in the emulator:

* for each configured ECS service, the current task definition's containers run as host
  processes: the image's entrypoint (a local command, from the config) with the container's
  ``command``, ``environment`` and ``secrets`` (resolved from the emulated Secrets Manager),
  plus the profile's overrides (ports, paths, the database address);
* a new task definition revision replaces the running task (stop, then start: the daemon
  must never run twice); a task that exits is replaced, with backoff, as ECS would;
* each task it runs is a task of the emulated ECS, as on Fargate: registered in its service
  (``runningCount``, ``DescribeTasks`` with its network interface, ``ListTasks``), RUNNING while its
  process runs, STOPPED with its exit code when it exited; ``StopTask`` stops it (and the service
  gets a new one); its output goes to its ``awslogs`` stream (``tasklogs.py``) and it finds its
  task metadata endpoint v4 in ``ECS_CONTAINER_METADATA_URI_V4`` (``metadata.py``);
* a container's ``healthCheck`` runs as the ECS agent runs it (``healthchecks.py``): its status is the
  task's ``healthStatus``, and a task whose check failed ``retries`` times in a row is stopped ("Task
  failed container health checks") and replaced, as the ECS service scheduler does;
* each task acts as its task role and holds no access key: its credentials endpoint
  (``AWS_CONTAINER_CREDENTIALS_FULL_URI``) answers the role's credentials from the emulator's STS;
  the runtime reads the task's secrets and writes its logs as the task's execution role, as the ECS
  agent does (``credentials.py``);
* the RDS instance is a real PostgreSQL server on a loopback port that follows the emulated
  instance (a new instance, a new database; a new master password, a new role password; a
  deleted instance, no server): ``localdb.py``;
* it writes ``status.json`` (what runs, since when, restarts) for the verify stage and tests.

``python -m dagster_ecs_emulator runtime start|stop|status`` manages it like the emulator.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import ecs_tasks
from .credentials import ENV as CREDENTIALS_ENV
from .credentials import CredentialsRoutes, RoleSessions
from .healthchecks import UNHEALTHY, ContainerHealth
from .localdb import LocalDatabase, free_port
from .metadata import ENV as METADATA_ENV
from .metadata import MetadataEndpoint
from .oneoff import OneOffTasks, exit_code
from .tasklogs import LoggerError, LogShipper, open_stream, stream_name

LOG = logging.getLogger("dagster_ecs_emulator.runtime")


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def _clients(config: dict):
    import boto3

    session = boto3.session.Session(
        aws_access_key_id=config["access_key"],
        aws_secret_access_key=config["secret_key"],
        region_name=config["region"],
    )
    return lambda service: session.client(service, endpoint_url=config["endpoint"])


def secret_value(secretsmanager, value_from: str) -> str:
    """Resolve an ECS ``valueFrom`` (``<secret arn>[:json-key[:stage[:version]]]``) like the ECS agent."""
    parts = value_from.split(":")
    secret_id, rest = (":".join(parts[:7]), parts[7:]) if value_from.startswith("arn:") else (value_from, [])
    json_key = rest[0] if rest else ""
    kwargs = {"SecretId": secret_id}
    if len(rest) > 1 and rest[1]:
        kwargs["VersionStage"] = rest[1]
    if len(rest) > 2 and rest[2]:
        kwargs["VersionId"] = rest[2]
    text = secretsmanager.get_secret_value(**kwargs)["SecretString"]
    return str(json.loads(text)[json_key]) if json_key else text


def session_members(sid: int) -> list[int]:
    """Every live process of a session: a task's processes, whatever process groups they made.

    A task starts in its own session (as a container has its own PID namespace), and its
    processes stay in it even when supervisord puts each program in a process group of its
    own, so the session is what "the task" is when it has to be stopped.
    """
    from dagster_ecs_container.codeservers import processes  # the tasks' own package, beside us in the venv

    return [proc.pid for proc in processes() if proc.sid == sid and proc.state != "Z"]


def stop_session(sid: int, timeout: float) -> None:
    """SIGTERM every process of the session, SIGKILL what is left after ``timeout`` seconds."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        members = session_members(sid)
        if not members:
            return
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and session_members(sid):
            time.sleep(0.2)


def spawn(command: list[str], env: dict, task_dir: Path, log: Path, banner: str, pipe: bool = False):
    """Start a task's process in its own session (as a container has its own PID namespace).

    Its output goes to ``log`` (after a ``--- <time> <banner>`` line), or to a pipe with ``pipe``.
    """
    with open(log, "ab") as handle:
        handle.write(f"\n--- {time.strftime('%F %T')} {banner}\n".encode())
        return subprocess.Popen(
            command,
            env=env,
            cwd=task_dir,
            stdout=subprocess.PIPE if pipe else handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def remove_short_socket_dir(task: Task) -> None:
    """A stopped task's sockets go with it, like its container's filesystem (the /tmp one of a deep task dir)."""
    from dagster_ecs_container.settings import short_socket_dir

    if task.runtime_dir and (short := short_socket_dir(Path(task.runtime_dir))) is not None:
        shutil.rmtree(short, ignore_errors=True)


BACKOFF_RESET_SECONDS = 120  # a task that ran this long before it exited starts the back-off over
ERROR_MARKS = ("FAILED", "FATAL", "Error", "ERROR", "Exception", "Traceback")


def task_log_tail(log: Path, lines: int = 40) -> list[str]:
    """The last ``lines`` lines the task wrote since it started (the log holds every task of its service)."""
    try:
        with open(log, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except OSError:
        return []
    since_start = text.rsplit("\n--- ", 1)[-1].splitlines()[1:] if "\n--- " in text else text.splitlines()
    return [line.rstrip() for line in since_start if line.strip()][-lines:]


LOG_PREFIX = re.compile(r"^\S*\d{4}-\d\d-\d\d[ T][\d:.,]+\S*\s+(\+\d{4}\s+)?(-\s+)?")


def error_line(lines: list[str]) -> str:
    """The line that says why a task stopped: the last one that reports an error, else the last one.

    Without its leading timestamp, so that two tasks that stopped for the same reason say the same.
    """
    found = [line for line in lines if any(mark in line for mark in ERROR_MARKS)]
    line = (found or lines or [""])[-1].strip()
    return LOG_PREFIX.sub("", line)[:300]


@dataclass
class Task:
    service: str
    task_definition: str
    process: subprocess.Popen
    log: Path
    runtime_dir: str = ""
    arn: str = ""  # its task in the emulated ECS
    shipper: LogShipper | None = None
    started_at: float = field(default_factory=time.time)
    health: ContainerHealth | None = None  # its container's healthCheck, when the definition has one


class Runtime:
    def __init__(self, config: dict, state_dir: Path):
        self.config, self.state_dir = config, state_dir
        self.clients = _clients(config)
        self.tasks: dict[str, Task] = {}
        self.restarts: dict[str, int] = {}  # every replacement of a service's task (status.json)
        self.failures: dict[str, int] = {}  # exits in a row, for the back-off (reset by a new revision, a long run)
        self.next_start: dict[str, float] = {}
        # Each service's last task exit (code, error line, log tail) and how many exits in a row had that error.
        self.last_exit: dict[str, dict] = {}
        self.stopping = threading.Event()
        self.oneoffs = OneOffTasks(self)  # RunTask's tasks (each Dagster run's own task): oneoff.py
        self.roles = RoleSessions(self.clients)  # the task and execution roles' credentials: credentials.py
        # every task's ECS task metadata endpoint v4 (metadata.py) and credentials endpoint (credentials.py)
        self.metadata = MetadataEndpoint(credentials=CredentialsRoutes(self.roles))
        self.definitions: dict[str, dict] = {}  # task definition revisions read so far, by ARN
        self.database = (
            LocalDatabase(config["database"], state_dir, config["endpoint"], config["region"])
            if config.get("database")
            else None
        )

    # --- tasks -----------------------------------------------------------------------
    def definition(self, arn: str) -> dict:
        """A task definition revision (immutable, so read once)."""
        if arn not in self.definitions:
            self.definitions[arn] = self.clients("ecs").describe_task_definition(taskDefinition=arn)["taskDefinition"]
        return self.definitions[arn]

    def _services(self) -> dict[str, dict]:
        """The configured services that are ACTIVE, by name: one DescribeServices a round."""
        names = sorted(set(self.config["services"].values()))
        if not names:
            return {}
        found = self.clients("ecs").describe_services(cluster=self.config["cluster"], services=names)["services"]
        return {service["serviceName"]: service for service in found if service.get("status") == "ACTIVE"}

    def _task_definition(self, services: dict[str, dict], service_name: str) -> tuple[dict | None, dict]:
        found = services.get(service_name)
        if not found:
            return None, {}
        return self.definition(found["taskDefinition"]), found

    def agent_clients(self, definition: dict, task_arn: str):
        """``factory(service)``: the clients the ECS agent uses for a task, signed as its execution role."""
        role = definition.get("executionRoleArn")
        if not role:
            return self.clients
        session = task_arn.rsplit("/", 1)[-1]
        return self.roles.client_factory(role, session, self.config["endpoint"], self.config["region"])

    def environment(
        self,
        service: str,
        definition: dict,
        task_dir: Path,
        task_arn: str,
        extra=(),
        metadata_uri: str = "",
        task_role: str | None = None,
    ) -> dict[str, str]:
        """The container's environment, ``extra`` (RunTask's override), its secrets, then the profile's paths/ports.

        ``metadata_uri``: the task's metadata endpoint, in ``ECS_CONTAINER_METADATA_URI_V4`` as Fargate sets it.
        The task's role (``task_role``, RunTask's override, else the definition's ``taskRoleArn``) reaches it as
        a credentials endpoint, never as a key; no shared AWS config file is read (a Fargate task has none).
        """
        container = definition["containerDefinitions"][0]
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "HOME", "TZ", "TMPDIR")}
        env.update({item["name"]: item["value"] for item in container.get("environment", [])})
        env.update({item["name"]: item["value"] for item in extra})
        if container.get("secrets"):
            secretsmanager = self.agent_clients(definition, task_arn)("secretsmanager")
            for item in container["secrets"]:
                env[item["name"]] = secret_value(secretsmanager, item["valueFrom"])
        placeholders = {
            "task_dir": str(task_dir),
            "state_dir": str(self.state_dir),
            "db_port": str(self.database.port if self.database else ""),
        }
        overrides = dict(self.config.get("env", {}).get("*", {}))
        overrides.update(self.config.get("env", {}).get(service, {}))
        for name, value in overrides.items():
            value = str(value)
            if value == "{free_port}":
                value = str(free_port())
            env[name] = value.format(**placeholders)
        if metadata_uri:
            env[METADATA_ENV] = metadata_uri
        role = task_role or definition.get("taskRoleArn")
        if role:
            env[CREDENTIALS_ENV] = self.metadata.credentials_uri(role, task_arn)
            env["AWS_SHARED_CREDENTIALS_FILE"] = env["AWS_CONFIG_FILE"] = os.devnull
        return env

    def register_task(self, definition: dict, service: dict) -> dict:
        """The service's new task in the emulated ECS (as the scheduler places it): its DescribeTasks item."""
        deployment = next((d for d in service.get("deployments", []) if d.get("status") == "PRIMARY"), {})
        spec = {
            "taskDefinition": definition["taskDefinitionArn"],
            "group": f"service:{service['serviceName']}",
            "startedBy": deployment.get("id", ""),
        }
        if service.get("networkConfiguration"):
            spec["networkConfiguration"] = service["networkConfiguration"]
        arn = ecs_tasks.report(self.config, register=spec)["taskArn"]
        return self.clients("ecs").describe_tasks(cluster=self.config["cluster"], tasks=[arn])["tasks"][0]

    def start_task(self, service: str, definition: dict, described: dict) -> None:
        container = definition["containerDefinitions"][0]
        registered = self.register_task(definition, described)
        arn = registered["taskArn"]
        task_dir = self.state_dir / "tasks" / service
        task_dir.mkdir(parents=True, exist_ok=True)
        log = self.state_dir / f"{service}.log"
        uri = self.metadata.publish(registered, definition, container)
        destination = stream_name(container, arn)
        try:
            logs = self.agent_clients(definition, arn)("logs")
            open_stream(logs, destination)  # the awslogs driver's, before the container starts
            env = self.environment(service, definition, task_dir, arn, metadata_uri=uri)
            command = list(self.config["command"]) + list(container.get("command", []))
            process = spawn(command, env, task_dir, log, f"starting {definition['taskDefinitionArn']}", pipe=True)
        except Exception as exc:
            self.metadata.forget(arn)  # as ECS: the task stops before its container ran
            reason = str(exc) if isinstance(exc, LoggerError) else f"CannotStartContainerError: {exc}"
            ecs_tasks.report(self.config, task=arn, lastStatus="STOPPED", stoppedReason=reason)
            raise
        shipper = LogShipper(process.stdout, log, logs, destination)
        shipper.start()
        self.tasks[service] = Task(
            service,
            definition["taskDefinitionArn"],
            process,
            log,
            env.get("DAGSTER_RUNTIME_DIR", ""),
            arn,
            shipper,
            health=self.health_check(service, container, env, task_dir),
        )
        ecs_tasks.report(self.config, task=arn, lastStatus="RUNNING", healthStatus="UNKNOWN")
        self.metadata.status(arn, "RUNNING")
        LOG.info("%s: started %s (pid %d)", service, definition["taskDefinitionArn"].rsplit("/", 1)[-1], process.pid)

    def health_check(self, service: str, container: dict, env: dict, task_dir: Path) -> ContainerHealth | None:
        """The container's ``healthCheck`` as the ECS agent runs it (healthchecks.py), in the container's environment.

        Its ``CMD`` executable is looked up in the image's bin directory first: offline, the directory of the
        image's entrypoint (the project's venv), as the image's venv comes first on its ``PATH``.
        """
        if not container.get("healthCheck"):
            return None
        image_bin = str(Path(self.config["command"][0]).parent) if self.config.get("command") else ""
        try:
            return ContainerHealth(container["healthCheck"], env, task_dir, image_bin)
        except (KeyError, TypeError, ValueError) as exc:
            LOG.error("%s: the container's healthCheck cannot run (%s); the task runs unchecked", service, exc)
            return None

    def follow_health(self, service: str, task: Task) -> bool:
        """Run the task's health check when due; False when it turned UNHEALTHY and the task was stopped.

        As ECS does for a service's task whose essential container is unhealthy: the task stops (the
        service starts another one, with the back-off a crashing task gets).
        """
        if task.health is None or not task.health.poll():
            return True
        status = task.health.status
        LOG.info("%s: container health %s (%s)", service, status, task.health.last_output or "no output")
        try:
            ecs_tasks.report(self.config, task=task.arn, healthStatus=status)
        except OSError as exc:  # the emulator may be restarting: reported at the next change
            LOG.warning("%s: cannot report the container's health (%s)", service, exc)
        if status != UNHEALTHY:
            return True
        self.stop_task(service, "Task failed container health checks")
        failed = f"container health check failed {task.health.failures} times in a row: {task.health.last_output}"
        self.replace_later(service, task, error=failed.strip().rstrip(":"))
        return False

    def report_stopped(self, task: Task, reason: str) -> None:
        """Its ECS task is STOPPED with its container's exit code; its logs shipped; its endpoint gone."""
        if task.shipper:
            task.shipper.join(10)
        self.metadata.forget(task.arn)
        if task.arn:
            try:
                code = exit_code(task.process)
                ecs_tasks.report(self.config, task=task.arn, lastStatus="STOPPED", exitCode=code, stoppedReason=reason)
            except OSError as exc:  # the emulator may be gone first (make down stops both)
                LOG.warning("%s: cannot report task %s stopped (%s)", task.service, task.arn, exc)

    def stop_task(self, service: str, reason: str) -> None:
        task = self.tasks.pop(service, None)
        if task is None:
            return
        LOG.info("%s: stopping task %d (%s)", service, task.process.pid, reason)
        if task.health:
            task.health.stop()
        stop_session(task.process.pid, timeout=30)
        try:
            task.process.wait(5)
        except subprocess.TimeoutExpired:
            LOG.warning("%s: task %d did not exit", service, task.process.pid)
        remove_short_socket_dir(task)
        self.report_stopped(task, reason)

    def stop_requested(self, arn: str, reason: str) -> bool:
        """``StopTask`` of a service's task: stop it (the next round starts its replacement, as ECS does)."""
        for service, task in list(self.tasks.items()):
            if task.arn == arn:
                self.stop_task(service, reason or "Task stopped by user")
                return True
        return False

    def follow_database(self) -> None:
        try:
            self.database.follow()
        except Exception as exc:  # noqa: BLE001 - the emulator may be restarting; retry next round
            LOG.warning("database: cannot follow the RDS instance (%s)", exc)

    def reconcile(self) -> None:
        if self.database:
            self.follow_database()
        try:
            services = self._services()
        except Exception as exc:  # noqa: BLE001 - the emulator may be restarting; retry next round
            LOG.warning("cannot read the services (%s)", exc)
            services = None
        if services is None or len(services) < len(set(self.config["services"].values())):
            # A service gone (teardown) or an emulator restarted: a new stack may reuse a revision's ARN.
            self.definitions.clear()
        for service, service_name in self.config["services"].items() if services is not None else ():
            try:
                definition, described = self._task_definition(services, service_name)
            except Exception as exc:  # noqa: BLE001 - the emulator may be restarting; retry next round
                LOG.warning("%s: cannot read the service (%s)", service, exc)
                continue
            desired = described.get("desiredCount", 0)
            task = self.tasks.get(service)
            if definition is None or desired == 0:
                self.stop_task(service, "service gone or scaled to 0")
                self.forget_failures(service)
                continue
            revision = definition["taskDefinitionArn"]
            if (self.last_exit.get(service) or {}).get("task_definition", revision) != revision:
                self.forget_failures(service)
            if task and task.task_definition != revision:
                self.stop_task(service, f"new task definition {revision.rsplit('/', 1)[-1]}")
                self.forget_failures(service)
                task = None
            if task and task.process.poll() is None and not self.follow_health(service, task):
                task = None
            if task and task.process.poll() is not None:
                if task.health:
                    task.health.stop()
                # Its essential process is gone, so the task is: stop what is left of it (as ECS does),
                # then read what it wrote (the log shipper has it all once every process is gone).
                stop_session(task.process.pid, timeout=10)
                if task.shipper:
                    task.shipper.join(10)
                delay = self.replace_later(service, task)
                LOG.warning(
                    "%s: task exited with %s (%s); replacing it in %ds",
                    service,
                    task.process.returncode,
                    self.last_exit[service]["error"],
                    delay,
                )
                remove_short_socket_dir(task)
                self.report_stopped(task, "Essential container in task exited")
                self.tasks.pop(service)
                task = None
            if task is None and time.monotonic() >= self.next_start.get(service, 0):
                try:
                    self.start_task(service, definition, described)
                except Exception as exc:  # noqa: BLE001 - the emulator may be restarting; retry next round
                    LOG.warning("%s: cannot start a task (%s)", service, exc)
        try:
            self.oneoffs.reconcile()
        except Exception as exc:  # noqa: BLE001 - the emulator may be restarting; retry next round
            LOG.warning("one-off tasks: cannot follow them (%s)", exc)

    def forget_lost_tasks(self) -> None:
        """A runtime that starts runs no task yet: its services' tasks still RUNNING in ECS died with the last one.

        On AWS a task whose host is gone is STOPPED; without this, a runtime that was killed leaves
        its tasks counted in ``runningCount`` for ever.
        """
        ecs = self.clients("ecs")
        for service_name in self.config["services"].values():
            try:
                listed = ecs.list_tasks(
                    cluster=self.config["cluster"], serviceName=service_name, desiredStatus="RUNNING"
                )
                for arn in listed.get("taskArns", []):
                    reason = "Task stopped: the local runtime that ran it is gone"
                    ecs_tasks.report(self.config, task=arn, lastStatus="STOPPED", stoppedReason=reason)
                    LOG.info("%s: task %s was lost with the previous runtime", service_name, arn.rsplit("/", 1)[-1])
            except Exception as exc:  # noqa: BLE001 - no cluster yet, or the emulator restarting: nothing to forget
                LOG.debug("%s: no lost tasks to forget (%s)", service_name, exc)

    def forget_failures(self, service: str) -> None:
        """The old revision's exits are not the new one's: no record, no back-off."""
        for kept in (self.last_exit, self.failures, self.next_start):
            kept.pop(service, None)

    def replace_later(self, service: str, task: Task, error: str | None = None) -> int:
        """A service's task stopped by itself (``error``: why, if not its log's): record it and when its
        replacement starts, with the back-off ECS applies to tasks that keep failing. Returns the delay."""
        self.restarts[service] = self.restarts.get(service, 0) + 1
        ran = time.time() - task.started_at
        self.failures[service] = 1 if ran > BACKOFF_RESET_SECONDS else self.failures.get(service, 0) + 1
        delay = min(30, 2 ** min(self.failures[service], 5))
        self.record_exit(service, task, error)
        self.next_start[service] = time.monotonic() + delay
        return delay

    def record_exit(self, service: str, task: Task, error: str | None = None) -> None:
        """What ECS reports of a stopped task: its exit code, and (its log stream) the last lines it wrote."""
        tail = task_log_tail(task.log)
        error = error or error_line(tail) or f"exit code {task.process.returncode}"
        previous = self.last_exit.get(service) or {}
        self.last_exit[service] = {
            "task_definition": task.task_definition,
            "code": task.process.returncode,
            "at": time.time(),
            "error": error,
            "tail": tail[-10:],
            "same_error": previous.get("same_error", 0) + 1 if previous.get("error") == error else 1,
        }

    def write_status(self, config_digest: str) -> None:
        services = {}
        for service in self.config["services"]:
            task = self.tasks.get(service)
            if task is None and service not in self.last_exit:
                continue
            services[service] = {
                "task_definition": task.task_definition if task else None,
                "pid": task.process.pid if task else None,
                "running": bool(task) and task.process.poll() is None,
                "started_at": task.started_at if task else None,
                "task_arn": task.arn if task else None,
                "restarts": self.restarts.get(service, 0),
                "health": task.health.status if task and task.health else None,
                "log": str(task.log if task else self.state_dir / f"{service}.log"),
                "last_exit": self.last_exit.get(service),
            }
        status = {
            "pid": os.getpid(),
            "config_hash": config_digest,
            "updated_at": time.time(),
            "database": {"port": self.database.port} if self.database else None,
            "services": services,
            "oneoff": {
                "running": {
                    arn: {"pid": task.process.pid, "started_at": task.started_at}
                    for arn, task in self.oneoffs.tasks.items()
                },
                "stopped": self.oneoffs.finished,
            },
        }
        tmp = self.state_dir / ".status.json.tmp"
        tmp.write_text(json.dumps(status, indent=1))
        os.replace(tmp, self.state_dir / "status.json")

    def run(self, interval: float = 2.0) -> None:
        digest = config_hash(self.config)
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        signal.signal(signal.SIGINT, lambda *_: self.stopping.set())
        if self.database and self.database.follow() is None:
            raise RuntimeError(f"RDS instance {self.config['database']['identifier']} not found in the emulator")
        self.forget_lost_tasks()
        try:
            while not self.stopping.is_set():
                self.reconcile()
                self.write_status(digest)
                self.stopping.wait(interval)
        finally:
            self.oneoffs.stop_all("local runtime stopping")
            for service in list(self.tasks):
                self.stop_task(service, "runtime stopping")
            if self.database:
                self.database.stop()
            self.metadata.close()
            (self.state_dir / "status.json").unlink(missing_ok=True)
            LOG.info("stopped")


# --- command line helpers (used by cli.py) ---------------------------------------------


def read_status(state_dir: Path) -> dict | None:
    try:
        status = json.loads((state_dir / "status.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(status["pid"], 0)
    except (ProcessLookupError, KeyError):
        return None
    return status


def start(config_file: Path, state_dir: Path, timeout: float) -> dict:
    """Start the runtime unless it runs with this config already; restart it when the config changed."""
    import sys

    config = json.loads(config_file.read_text())
    digest = config_hash(config)
    status = read_status(state_dir)
    if status and status.get("config_hash") == digest:
        return {"changed": False, "started": False, "pid": status["pid"]}
    restarted = bool(status)
    if status:
        stop(state_dir, timeout=60)
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "runtime.log", "ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dagster_ecs_emulator",
                "runtime",
                "run",
                "--config",
                str(config_file),
                "--state-dir",
                str(state_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (state_dir / "runtime.pid").write_text(f"{process.pid}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (state_dir / "runtime.log").read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError(f"local runtime exited with {process.returncode}: " + " | ".join(tail))
        status = read_status(state_dir)
        if status and status.get("config_hash") == digest:
            return {
                "changed": True,
                "started": True,
                "restarted": restarted,
                "pid": process.pid,
                "log": str(state_dir / "runtime.log"),
            }
        time.sleep(0.2)
    raise RuntimeError(f"local runtime did not report within {timeout}s (see {state_dir / 'runtime.log'})")


def stop(state_dir: Path, timeout: float = 60) -> dict:
    try:
        pid = int((state_dir / "runtime.pid").read_text())
    except (FileNotFoundError, ValueError):
        return {"changed": False, "stopped": False}
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        (state_dir / "runtime.pid").unlink(missing_ok=True)
        return {"changed": False, "stopped": False}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                break
        except (ProcessLookupError, FileNotFoundError):
            break
        time.sleep(0.2)
    else:
        os.killpg(pid, signal.SIGKILL)
    (state_dir / "runtime.pid").unlink(missing_ok=True)
    return {"changed": True, "stopped": True, "pid": pid}


def clean(state_dir: Path) -> None:
    """Remove the runtime's local state (tasks' directories, the database)."""
    shutil.rmtree(state_dir, ignore_errors=True)
