"""A container's health check, run the way the ECS agent runs it (``containerDefinitions[].healthCheck``).

On Fargate the agent runs the check inside the container (Docker's health check), so a task
definition's check is production code: a command that fails there gets the task replaced. The
local runtime runs it too, for each service task it runs, with these rules (ECS ``HealthCheck``
and Docker's ``HEALTHCHECK``, which ECS uses):

* ``command``: ``["CMD", executable, args...]`` runs the executable; ``["CMD-SHELL", "text"]`` runs
  ``/bin/sh -c text``. It runs in the container's environment (its variables and secrets) and
  working directory; the executable is looked up on the image's ``PATH`` (offline: the directory of
  the image's entrypoint first, as the image's venv comes first on its ``PATH``);
* ``interval`` (default 30 s): the first check runs ``interval`` seconds after the container
  started, each next one ``interval`` seconds after the previous one ended;
* ``timeout`` (default 5 s): a check still running then is killed (its whole process group) and
  counts as a failure; exit status 0 is a success, anything else a failure;
* ``retries`` (default 3): that many failures in a row make the container ``UNHEALTHY``;
* ``startPeriod`` (default 0): failures within it do not count, but a success within it counts
  (and ends it);
* the status is ``UNKNOWN`` until the first check that counts, ``HEALTHY`` after a success.

What ECS then does with an ``UNHEALTHY`` essential container (stop the task, the service starts a
new one) is the runtime's (``runtime.py``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

# ECS's defaults for the HealthCheck fields a task definition leaves out.
DEFAULTS = {"interval": 30, "timeout": 5, "retries": 3, "startPeriod": 0}
UNKNOWN, HEALTHY, UNHEALTHY = "UNKNOWN", "HEALTHY", "UNHEALTHY"


def argv(command: list[str], path: str) -> list[str]:
    """The process a ``healthCheck.command`` runs; ``path``: the container's ``PATH`` to find ``CMD``'s executable."""
    if not command:
        raise ValueError("healthCheck.command is empty")
    kind, rest = command[0], list(command[1:])
    if kind == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(rest)]
    if kind == "CMD" and rest:
        return [shutil.which(rest[0], path=path) or rest[0], *rest[1:]]
    raise ValueError(f"healthCheck.command must start with CMD or CMD-SHELL, not {kind!r}")


class ContainerHealth:
    """One container's check: ``poll()`` it every runtime round; ``status`` is what ECS reports."""

    def __init__(self, spec: dict, env: dict[str, str], cwd: Path, image_bin: str = "", clock=time.monotonic):
        settings = {**DEFAULTS, **{key: spec[key] for key in DEFAULTS if spec.get(key) is not None}}
        self.interval, self.timeout = float(settings["interval"]), float(settings["timeout"])
        self.retries, self.start_period = int(settings["retries"]), float(settings["startPeriod"])
        path = os.pathsep.join(part for part in (image_bin, env.get("PATH", os.defpath)) if part)
        self.argv = argv(list(spec["command"]), path)
        self.env, self.cwd, self.clock = env, cwd, clock
        self.started = clock()
        self.next_at = self.started + self.interval
        self.status = UNKNOWN
        self.failures = 0  # failures in a row that count
        self.checks = 0
        self.last_output = ""
        self._check: subprocess.Popen | None = None
        self._output = None
        self._check_started = 0.0

    def poll(self) -> bool:
        """Start a check that is due, collect one that ended or timed out; True when ``status`` changed."""
        before = self.status
        now = self.clock()
        if self._check is not None:
            code = self._check.poll()
            if code is None and now - self._check_started >= self.timeout:
                self._kill()
                self._record(False, f"timed out after {self.timeout:.0f}s", now)
            elif code is not None:
                self._record(code == 0, self._collect(), now)
        if self._check is None and now >= self.next_at:
            # a file, not a pipe: a chatty check never blocks on it; closed by _collect
            self._output = tempfile.TemporaryFile()  # noqa: SIM115
            self._check = subprocess.Popen(  # noqa: S603 - the task definition's own check, as ECS runs it
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=self._output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self._check_started = now
        return self.status != before

    def _record(self, passed: bool, output: str, now: float) -> None:
        self.checks += 1
        self.last_output = output
        self.next_at = now + self.interval
        if passed:
            self.failures, self.status = 0, HEALTHY
            self.start_period = 0.0  # a success ends the start period
            return
        if now - self.started < self.start_period:
            return  # within the start period a failure does not count
        self.failures += 1
        if self.failures >= self.retries:
            self.status = UNHEALTHY

    def _collect(self) -> str:
        """The ended check's output, its last 300 characters (what DescribeTasks would not show, the log does)."""
        self._check = None
        output, self._output = self._output, None
        if output is None:
            return ""
        with output:
            output.seek(0)
            return output.read().decode(errors="replace").strip()[-300:]

    def _kill(self) -> None:
        check = self._check
        if check is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):  # it ended just now
            os.killpg(check.pid, signal.SIGKILL)
        check.wait()
        self._collect()

    def stop(self) -> None:
        """The container stops: a check still running goes with it."""
        self._kill()
