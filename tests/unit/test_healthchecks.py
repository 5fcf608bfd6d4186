"""A container's health check as the ECS agent runs it (localstack/dagster_ecs_emulator/healthchecks.py).

Real check processes (``/bin/sh``, ``true``, ``false``, ``sleep``) on a clock the test moves, so each
rule of ECS's ``HealthCheck`` (interval, timeout, retries, startPeriod) is one step of time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from dagster_ecs_emulator.healthchecks import HEALTHY, UNHEALTHY, UNKNOWN, ContainerHealth, argv


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settle(health: ContainerHealth, timeout: float = 10) -> bool:
    """Poll until the running check ended (the clock stands still); True when the status changed."""
    deadline = time.monotonic() + timeout
    changed = health.poll()
    while health._check is not None:
        assert time.monotonic() < deadline, "the check did not end"
        time.sleep(0.02)
        changed = health.poll() or changed
    return changed


def check(tmp_path, command, clock, **spec) -> ContainerHealth:
    env = {"PATH": os.environ["PATH"], "MARK": str(tmp_path / "mark")}
    return ContainerHealth({"command": command, **spec}, env, tmp_path, clock=clock)


def test_the_command_forms_ecs_accepts(tmp_path):
    (tmp_path / "probe").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "probe").chmod(0o755)
    assert argv(["CMD-SHELL", "curl -f http://localhost/ || exit 1"], "/bin") == [
        "/bin/sh",
        "-c",
        "curl -f http://localhost/ || exit 1",
    ]
    # CMD's executable is found on the given PATH first (the image's bin directory, then the container's PATH)
    assert argv(["CMD", "probe", "webserver"], f"{tmp_path}:/usr/bin") == [str(tmp_path / "probe"), "webserver"]
    assert argv(["CMD", "not-anywhere-xyz"], "/usr/bin") == ["not-anywhere-xyz"]  # fails when run, as in a container
    for bad in ([], ["NONE"], ["curl", "-f", "http://localhost/"], ["CMD"]):
        with pytest.raises(ValueError, match="healthCheck.command"):
            argv(bad, "/usr/bin")


def test_ecs_defaults_apply_to_what_the_definition_leaves_out(tmp_path):
    health = check(tmp_path, ["CMD-SHELL", "true"], Clock())
    assert (health.interval, health.timeout, health.retries, health.start_period) == (30, 5, 3, 0)
    health = check(tmp_path, ["CMD-SHELL", "true"], Clock(), interval=10, timeout=8, retries=2, startPeriod=60)
    assert (health.interval, health.timeout, health.retries, health.start_period) == (10, 8, 2, 60)


def test_the_first_check_runs_one_interval_after_the_start_and_a_success_is_healthy(tmp_path):
    clock = Clock()
    health = check(tmp_path, ["CMD-SHELL", 'touch "$MARK"'], clock, interval=30)
    clock.now += 29
    assert not health.poll() and health._check is None and health.status == UNKNOWN
    clock.now += 1
    assert settle(health) and health.status == HEALTHY and health.checks == 1
    assert (tmp_path / "mark").exists()  # it ran in the container's environment (MARK) and directory
    # the next check waits one interval after this one ended
    clock.now += 29
    assert not health.poll() and health._check is None


def test_retries_failures_in_a_row_make_it_unhealthy_and_a_success_resets_them(tmp_path):
    clock = Clock()
    probe = 'test -f "$MARK" && echo ok || { echo "no mark"; exit 1; }'
    health = check(tmp_path, ["CMD-SHELL", probe], clock, retries=3)
    for expected in (1, 2):
        clock.now += 30
        settle(health)
        assert (health.failures, health.status, health.last_output) == (expected, UNKNOWN, "no mark")
    (tmp_path / "mark").touch()
    clock.now += 30
    settle(health)
    assert (health.failures, health.status, health.last_output) == (0, HEALTHY, "ok")
    (tmp_path / "mark").unlink()
    for expected in (1, 2, 3):
        clock.now += 30
        changed = settle(health)
        assert health.failures == expected
    assert changed and (health.failures, health.status) == (3, UNHEALTHY)


def test_failures_within_the_start_period_do_not_count_but_a_success_does(tmp_path):
    clock = Clock()
    health = check(tmp_path, ["CMD-SHELL", 'test -f "$MARK"'], clock, interval=10, retries=1, startPeriod=60)
    for _ in range(5):  # 10 .. 50 s after the start
        clock.now += 10
        settle(health)
    assert (health.checks, health.failures, health.status) == (5, 0, UNKNOWN)
    clock.now += 10  # 60 s: the start period is over; one failure is enough (retries=1)
    settle(health)
    assert health.status == UNHEALTHY

    clock = Clock()
    health = check(tmp_path, ["CMD-SHELL", 'test -f "$MARK"'], clock, interval=10, retries=1, startPeriod=300)
    (tmp_path / "mark").touch()
    clock.now += 10
    settle(health)
    assert health.status == HEALTHY  # a success within the start period counts and ends it
    (tmp_path / "mark").unlink()
    clock.now += 10
    settle(health)
    assert health.status == UNHEALTHY


def test_a_check_past_its_timeout_is_killed_with_its_children_and_fails(tmp_path):
    clock = Clock()
    health = check(tmp_path, ["CMD-SHELL", 'sleep 30 & echo $! > "$MARK"; wait'], clock, timeout=2, retries=1)
    clock.now += 30
    health.poll()
    deadline = time.monotonic() + 5
    while not (tmp_path / "mark").exists() or not (tmp_path / "mark").read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child = int((tmp_path / "mark").read_text())
    clock.now += 1
    assert not health.poll() and health._check is not None  # still within its timeout
    clock.now += 1
    assert health.poll() and health.status == UNHEALTHY and health.last_output == "timed out after 2s"
    assert health.failures == 1 and health._check is None
    deadline = time.monotonic() + 5
    while alive(child):
        assert time.monotonic() < deadline, "the check's child outlived its timeout"
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for init."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_stopping_the_container_stops_a_running_check(tmp_path):
    clock = Clock()
    health = check(tmp_path, ["CMD", "sleep", "30"], clock)
    clock.now += 30
    health.poll()
    process = health._check
    assert process is not None and process.poll() is None
    health.stop()
    assert process.poll() is not None and health._check is None
