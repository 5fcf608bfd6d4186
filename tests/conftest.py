"""Fixtures and pytest hooks only; the helpers the tests import live in ``tests/support/``.

Nothing here mocks AWS: tests start ``python -m dagster_ecs_emulator serve`` (moto behind the
compatibility layer) on a free loopback port and drive the stock modules through ansible-playbook,
exactly as a user does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import durations
from support.emulator import Emulator, spawn_emulator
from support.playbook import run_playbook


@pytest.fixture
def start_emulator(tmp_path):
    """Factory: start a fresh emulator with every shim (a shim is switched off on a running one:
    test_compat.py); all are stopped at the end."""
    started: list[Emulator] = []

    def _start() -> Emulator:
        emulator = spawn_emulator(tmp_path)
        started.append(emulator)
        return emulator

    yield _start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def playbook():
    return run_playbook


def pytest_addoption(parser):
    parser.addoption(
        "--store-durations",
        action="store_true",
        help="write each test file's seconds to the durations file (the order make test starts files in)",
    )
    parser.addoption(
        "--durations-file",
        type=Path,
        default=durations.DURATIONS,
        help="the durations file the order is read from and --store-durations writes (default: tests/durations.json)",
    )


def pytest_configure(config):
    # On the controller only (xdist's workers send it their reports): it sees every file's tests.
    if config.getoption("store_durations") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(StoreDurations(config.getoption("durations_file")), "dagster-ecs-store-durations")


class StoreDurations:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.recorder = durations.Recorder()

    def pytest_runtest_logreport(self, report):
        self.recorder.add(report)

    def pytest_sessionfinish(self, session):
        self.recorder.save(self.path)


@pytest.hookimpl(trylast=True)  # after -m/-k deselected what they do
def pytest_collection_modifyitems(session, config, items):
    durations.longest_first(items, durations.load(config.getoption("durations_file")))
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
