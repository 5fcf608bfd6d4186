"""The offline profile's local ECS runtime: run each ECS service's task as host processes.

moto's ECS accepts services but never starts a task. This runtime does what Fargate would,
on this machine, from what is in the emulator:

* for each configured ECS service, the current task definition's containers run as host
  processes: the image's entrypoint (a local command, from the config) with the container's
  ``command``, ``environment`` and ``secrets`` (resolved from the emulated Secrets Manager),
  plus the profile's overrides (ports, paths, the database address);
* a new task definition revision replaces the running task (stop, then start: the daemon
  must never run twice); a task that exits is replaced, with backoff, as ECS would;
* the RDS instance is a real PostgreSQL server on a loopback port, initialised with the
  instance's master user and database and the password from its secret;
* it writes ``status.json`` (what runs, since when, restarts) for the verify stage and tests.

``python -m dagster_ecs_emulator runtime start|stop|status`` manages it like the emulator.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

LOG = logging.getLogger("dagster_ecs_emulator.runtime")
PG_BINDIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


@dataclass
class Task:
    service: str
    task_definition: str
    process: subprocess.Popen
    log: Path
    started_at: float = field(default_factory=time.time)


class LocalDatabase:
    """A real PostgreSQL server standing in for the emulated RDS instance."""

    def __init__(self, config: dict, state_dir: Path, clients):
        self.config, self.clients = config, clients
        self.base = state_dir / "postgres"
        self.marker = self.base / "instance.json"
        self.port = int(config.get("port") or 0) or free_port()
        self.bindir = Path(config["bindir"]) if config.get("bindir") else (PG_BINDIRS[0] if PG_BINDIRS else None)
        self.user = None
        home = self.base
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as a system user ...
            for name in ("postgres", "nobody"):
                try:
                    self.user = pwd.getpwnam(name)
                    break
                except KeyError:
                    continue
            # ... in a directory that user can reach (the state dir may sit below a 0700 one).
            digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]
            home = Path(tempfile.gettempdir()) / f"dagster-ecs-postgres-{digest}"
        self.data = home / "data"
        self.socket_dir = home
        self.log = home / "postgres.log"

    def _run(self, *args, check=True, **kwargs):
        kwargs.setdefault("capture_output", True)
        if self.user:
            kwargs.update(user=self.user.pw_uid, group=self.user.pw_gid)
        result = subprocess.run([str(self.bindir / args[0]), *args[1:]], check=False, **kwargs)
        if check and result.returncode != 0:
            output = (result.stderr or result.stdout or b"").decode(errors="replace").strip()
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {output[-500:]}")
        return result

    def _chown(self, path: Path) -> None:
        if self.user:
            for item in [path, *path.rglob("*")]:
                os.chown(item, self.user.pw_uid, self.user.pw_gid)

    def credentials(self) -> tuple[str, str, str]:
        instance = self.clients("rds").describe_db_instances(DBInstanceIdentifier=self.config["identifier"])
        instance = instance["DBInstances"][0]
        secret = json.loads(
            self.clients("secretsmanager").get_secret_value(SecretId=self.config["secret"])["SecretString"]
        )
        return instance["MasterUsername"], secret["password"], instance.get("DBName") or "postgres"

    def _identity(self) -> dict:
        instance = self.clients("rds").describe_db_instances(DBInstanceIdentifier=self.config["identifier"])
        instance = instance["DBInstances"][0]
        return {"arn": instance["DBInstanceArn"], "created": str(instance.get("InstanceCreateTime"))}

    def start(self) -> None:
        if self.bindir is None or not (self.bindir / "postgres").exists():
            raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
        username, password, dbname = self.credentials()
        self.base.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._chown(self.socket_dir)
        identity = self._identity()
        known = json.loads(self.marker.read_text()) if self.marker.exists() else None
        if known != identity and self.data.exists():
            # Another RDS instance than the one these files belong to (the emulator restarted empty):
            # like a new instance on AWS, start from an empty database with the new credentials.
            LOG.info("RDS instance %s is new: re-initialising the local PostgreSQL", self.config["identifier"])
            self.stop()
            shutil.rmtree(self.data)
        if not (self.data / "PG_VERSION").exists():
            with tempfile.NamedTemporaryFile("w", dir=self.socket_dir, delete=False) as pwfile:
                pwfile.write(password)
            self._chown(Path(pwfile.name))
            try:
                self._run(
                    "initdb",
                    "-D",
                    str(self.data),
                    "-U",
                    username,
                    f"--pwfile={pwfile.name}",
                    "-A",
                    "scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-instructions",
                )
            finally:
                os.unlink(pwfile.name)
            LOG.info("initialised PostgreSQL for RDS instance %s (user %s)", self.config["identifier"], username)
        self.marker.write_text(json.dumps(identity))
        if self.user:
            self.log.touch()
            os.chown(self.log, self.user.pw_uid, self.user.pw_gid)
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "60", "start")
        env = dict(os.environ, PGPASSWORD=password)
        created = self._run(
            "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", username, dbname, env=env, check=False
        )
        if created.returncode != 0 and b"already exists" not in created.stderr:
            raise RuntimeError(f"createdb {dbname} failed: {created.stderr.decode(errors='replace').strip()}")
        LOG.info("RDS instance %s served by PostgreSQL on 127.0.0.1:%d", self.config["identifier"], self.port)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)


class Runtime:
    def __init__(self, config: dict, state_dir: Path):
        self.config, self.state_dir = config, state_dir
        self.clients = _clients(config)
        self.tasks: dict[str, Task] = {}
        self.restarts: dict[str, int] = {}
        self.next_start: dict[str, float] = {}
        self.stopping = threading.Event()
        self.database = LocalDatabase(config["database"], state_dir, self.clients) if config.get("database") else None

    # --- tasks -----------------------------------------------------------------------
    def _task_definition(self, service_name: str) -> tuple[dict | None, int]:
        ecs = self.clients("ecs")
        found = ecs.describe_services(cluster=self.config["cluster"], services=[service_name])["services"]
        if not found or found[0].get("status") != "ACTIVE":
            return None, 0
        definition = ecs.describe_task_definition(taskDefinition=found[0]["taskDefinition"])["taskDefinition"]
        return definition, found[0].get("desiredCount", 0)

    def _environment(self, service: str, container: dict, task_dir: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "HOME", "TZ", "TMPDIR")}
        env.update({item["name"]: item["value"] for item in container.get("environment", [])})
        secretsmanager = self.clients("secretsmanager")
        for item in container.get("secrets", []):
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
        return env

    def start_task(self, service: str, definition: dict) -> None:
        container = definition["containerDefinitions"][0]
        task_dir = self.state_dir / "tasks" / service
        task_dir.mkdir(parents=True, exist_ok=True)
        log = self.state_dir / f"{service}.log"
        env = self._environment(service, container, task_dir)
        command = list(self.config["command"]) + list(container.get("command", []))
        with open(log, "ab") as handle:
            handle.write(f"\n--- {time.strftime('%F %T')} starting {definition['taskDefinitionArn']}\n".encode())
            process = subprocess.Popen(
                command,
                env=env,
                cwd=task_dir,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.tasks[service] = Task(service, definition["taskDefinitionArn"], process, log)
        LOG.info("%s: started %s (pid %d)", service, definition["taskDefinitionArn"].rsplit("/", 1)[-1], process.pid)

    def stop_task(self, service: str, reason: str) -> None:
        task = self.tasks.pop(service, None)
        if task is None:
            return
        LOG.info("%s: stopping task %d (%s)", service, task.process.pid, reason)
        stop_session(task.process.pid, timeout=30)
        try:
            task.process.wait(5)
        except subprocess.TimeoutExpired:
            LOG.warning("%s: task %d did not exit", service, task.process.pid)

    def reconcile(self) -> None:
        for service, service_name in self.config["services"].items():
            try:
                definition, desired = self._task_definition(service_name)
            except Exception as exc:  # noqa: BLE001 - the emulator may be restarting; retry next round
                LOG.warning("%s: cannot read the service (%s)", service, exc)
                continue
            task = self.tasks.get(service)
            if definition is None or desired == 0:
                self.stop_task(service, "service gone or scaled to 0")
                continue
            if task and task.task_definition != definition["taskDefinitionArn"]:
                self.stop_task(service, f"new task definition {definition['taskDefinitionArn'].rsplit('/', 1)[-1]}")
                task = None
            if task and task.process.poll() is not None:
                self.restarts[service] = self.restarts.get(service, 0) + 1
                delay = min(30, 2 ** min(self.restarts[service], 5))
                LOG.warning("%s: task exited with %s; replacing it in %ds", service, task.process.returncode, delay)
                # Its essential process is gone, so the task is: stop what is left of it (as ECS does).
                stop_session(task.process.pid, timeout=10)
                self.tasks.pop(service)
                self.next_start[service] = time.monotonic() + delay
                task = None
            if task is None and time.monotonic() >= self.next_start.get(service, 0):
                self.start_task(service, definition)

    def write_status(self, config_digest: str) -> None:
        status = {
            "pid": os.getpid(),
            "config_hash": config_digest,
            "updated_at": time.time(),
            "database": {"port": self.database.port} if self.database else None,
            "services": {
                service: {
                    "task_definition": task.task_definition,
                    "pid": task.process.pid,
                    "running": task.process.poll() is None,
                    "started_at": task.started_at,
                    "restarts": self.restarts.get(service, 0),
                    "log": str(task.log),
                }
                for service, task in self.tasks.items()
            },
        }
        tmp = self.state_dir / ".status.json.tmp"
        tmp.write_text(json.dumps(status, indent=1))
        os.replace(tmp, self.state_dir / "status.json")

    def run(self, interval: float = 2.0) -> None:
        digest = config_hash(self.config)
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        signal.signal(signal.SIGINT, lambda *_: self.stopping.set())
        if self.database:
            self.database.start()
        try:
            while not self.stopping.is_set():
                self.reconcile()
                self.write_status(digest)
                self.stopping.wait(interval)
        finally:
            for service in list(self.tasks):
                self.stop_task(service, "runtime stopping")
            if self.database:
                self.database.stop()
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
