"""ansible-playbook (and this venv's Python) run as a user runs them: from the repository root, with the
venv's bin first on PATH and plain output; and a private offline profile to run them in."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from support.net import free_port
from support.paths import BIN, ROOT

RECAP = re.compile(
    r"^(?P<host>\S+)\s+: ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
    r"failed=(?P<failed>\d+)",
    re.M,
)


@dataclass
class PlaybookRun:
    args: list[str]
    returncode: int
    output: str

    @property
    def recap(self) -> dict[str, int]:
        found = RECAP.findall(self.output)
        assert found, f"no PLAY RECAP in output of {self.args}:\n{self.output[-3000:]}"
        keys = ("ok", "changed", "unreachable", "failed")
        return {key: int(found[-1][i + 1]) for i, key in enumerate(keys)}

    def changed_tasks(self) -> list[str]:
        """Names of the tasks that reported a change (needs the default callback's output)."""
        names, current = [], None
        for line in self.output.splitlines():
            if line.startswith("TASK ["):
                current = line[6 : line.rfind("]")]
            elif line.startswith("changed:") and current and current not in names:
                names.append(current)
        return names


def playbook_environment(extra=None) -> dict[str, str]:
    """The environment ansible-playbook runs with in the tests: the venv first, plain output."""
    environment = dict(os.environ)
    environment.update(
        PATH=f"{BIN}{os.pathsep}{environment.get('PATH', '')}",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PYTHONUNBUFFERED="1",
    )
    environment.update(extra or {})
    return environment


def run_playbook(playbook, *args, inventory=None, extra_vars=None, env=None, timeout=1800) -> PlaybookRun:
    command = [str(BIN / "ansible-playbook"), str(playbook)]
    if inventory:
        command += ["-i", str(inventory)]
    for key, value in (extra_vars or {}).items():
        # key=value gives Ansible a string; a list or a dict goes as JSON, which keeps its type
        command += ["-e", json.dumps({key: value}) if isinstance(value, list | dict) else f"{key}={value}"]
    command += list(args)
    proc = subprocess.run(
        command,
        cwd=ROOT,
        env=playbook_environment(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    return PlaybookRun(command, proc.returncode, proc.stdout)


def run_python(*args: str, timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """This venv's Python on a script or module of the project (no stdin; stdout and stderr together)."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextlib.contextmanager
def offline_environment(tmp_path_factory, **more):
    """A private offline profile: its own endpoint port (nothing listens: the profile starts the
    emulator), state directory and proxy port, as extra vars; ``playbooks/down.yml`` stops what it
    started at the end. ``more`` adds extra vars."""
    state = tmp_path_factory.mktemp("state")
    endpoint = f"http://127.0.0.1:{free_port()}"
    extra = {
        "dagster_ecs_aws_endpoint_url": endpoint,
        "dagster_ecs_state_dir": str(state),
        "local_runtime_proxy_port": free_port(),
        **more,
    }
    try:
        yield {"endpoint": endpoint, "state": Path(state), "extra": extra}
    finally:
        run_playbook("playbooks/down.yml", extra_vars=extra)
