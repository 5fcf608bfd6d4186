"""Shared fixtures: a real emulator over HTTP and a real ansible-playbook.

Nothing here mocks AWS: tests start ``python -m dagster_ecs_emulator serve`` (moto
behind the compatibility layer) on a free loopback port and drive the stock modules
through ansible-playbook, exactly as a user does.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from stage_checks import wait_for_status

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OFFLINE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAOFFLINEREHEARSAL",
    "AWS_SECRET_ACCESS_KEY": "offline-rehearsal-not-a-secret",
    "AWS_DEFAULT_REGION": "ap-southeast-2",
}
RECAP = re.compile(
    r"^(?P<host>\S+)\s+: ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
    r"failed=(?P<failed>\d+)",
    re.M,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_health(endpoint: str, timeout: float = 30) -> None:
    url = f"{endpoint}/_dagster_ecs_emulator/health"
    wait_for_status(url, 200, timeout, 0.1, f"the emulator at {endpoint}", request_timeout=1)


@dataclass
class Emulator:
    endpoint: str
    process: subprocess.Popen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def spawn_emulator(log_dir: Path, disabled_shims=()) -> Emulator:
    """A fresh emulator on a free loopback port, answering; its log in ``log_dir``. Stop it with ``stop()``."""
    port = free_port()
    command = [sys.executable, "-m", "dagster_ecs_emulator", "serve", "--port", str(port)]
    for shim in disabled_shims:
        command += ["--disable-shim", shim]
    with open(log_dir / f"emulator-{port}.log", "wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    emulator = Emulator(f"http://127.0.0.1:{port}", process)
    try:
        wait_for_health(emulator.endpoint)
    except BaseException:
        emulator.stop()
        raise
    return emulator


@pytest.fixture
def start_emulator(tmp_path):
    """Factory: start a fresh emulator (optionally without some shims); all are stopped at the end."""
    started: list[Emulator] = []

    def _start(disabled_shims=()) -> Emulator:
        emulator = spawn_emulator(tmp_path, disabled_shims)
        started.append(emulator)
        return emulator

    yield _start
    for emulator in started:
        emulator.stop()


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
        command += ["-e", f"{key}={value}"]
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


@pytest.fixture
def playbook():
    return run_playbook


# The test files that take minutes (paths under tests/), longest first (seconds in CI, --durations). `make test` runs
# files on 2 workers (xdist --dist loadfile with --no-loadscope-reorder hands them out in collection
# order; xdist's default would reorder them by number of tests, and start the 2-test molecule file last),
# so starting the long ones first keeps one worker from running the longest file alone at the end.
LONGEST_FIRST = [
    "test_molecule.py",  # ~710 s
    "integration/test_workload.py",  # ~600 s: the stack, then runs as ECS tasks (terminate, limit, monitoring)
    "integration/test_lifecycle.py",  # ~700 s alone: start over, rotate, upgrade, re-run, crash loop, failed migration
    "emulator/test_compat.py",  # ~480 s, in 19 scenarios
    "integration/test_faults.py",  # ~230 s
    "integration/test_site.py",  # ~220 s
    "integration/test_dags.py",  # ~155 s
    "test_lint.py",  # ~140 s
    "test_ansible_sanity.py",  # ~95 s
    "test_bad_input.py",  # ~55 s
    "test_coverage.py",  # ~50 s
    "integration/test_image.py",  # ~45 s
    "unit/test_oneoff.py",  # ~45 s
]


@pytest.hookimpl(trylast=True)  # after -m/-k deselected what they do
def pytest_collection_modifyitems(session, config, items):
    rank = {name: n for n, name in enumerate(LONGEST_FIRST)}
    tests = Path(__file__).parent

    def file_rank(item):
        return rank.get(item.path.relative_to(tests).as_posix(), len(rank))

    items.sort(key=file_rank)  # stable: the rest keep their order
    run_once_under_coverage(config, items)


def run_once_under_coverage(config, items):
    """The collection's unit tests run inside test_coverage's own pytest (which fails if any of them
    fails, naming it): when that test is selected, they are not run a second time beside it."""
    from test_coverage import UNIT_TESTS

    if not any(item.nodeid.startswith("tests/test_coverage.py::") for item in items):
        return
    root = Path(__file__).parent.parent
    covered = [root / path for path in UNIT_TESTS]
    twice = [item for item in items if any(item.path == path or path in item.path.parents for path in covered)]
    if twice:
        config.hook.pytest_deselected(items=twice)
        items[:] = [item for item in items if item not in twice]
