"""The task's memory headroom a release decides from (container/dagster_ecs_container/memory.py).

The limit comes from the local runtime's real task metadata endpoint (what Fargate serves in
ECS_CONTAINER_METADATA_URI_V4); the task's memory and the live server's from /proc of real processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster_ecs_container import layers
from dagster_ecs_container.codeservers import Server, processes
from dagster_ecs_container.memory import MARGIN_MB, Budget, Headroom, layer_mb, task_limit_mb, task_mb
from dagster_ecs_emulator.metadata import MetadataEndpoint

TASK_ARN = "arn:aws:ecs:ap-southeast-2:000000000000:task/dagster-ecs/0123456789abcdef"


@pytest.fixture
def endpoint():
    served = MetadataEndpoint()
    yield served
    served.close()


def metadata_uri(endpoint, memory):
    task = {"taskArn": TASK_ARN, "clusterArn": "arn:aws:ecs:ap-southeast-2:000000000000:cluster/dagster-ecs"}
    definition = {"family": "dagster-ecs-webserver", "revision": 1, "cpu": "256", "memory": str(memory)}
    container = {"name": "webserver"}
    return endpoint.publish(task, definition, container)


@pytest.fixture
def server():
    """A live code server stand-in: a real process with some resident memory."""
    code = "import sys, time; b = bytearray(40 << 20); print('ready', flush=True); time.sleep(60)"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)  # noqa: S603
    assert process.stdout.readline() == "ready\n"
    yield Server("v1", Path("/nonexistent.sock"), process)
    process.kill()
    process.wait()


def test_the_limit_is_the_tasks_memory_from_the_metadata_endpoint(endpoint):
    assert task_limit_mb({"ECS_CONTAINER_METADATA_URI_V4": metadata_uri(endpoint, 512)}) == 512
    assert task_limit_mb({"ECS_CONTAINER_METADATA_URI_V4": metadata_uri(endpoint, 2048)}) == 2048


def test_no_endpoint_or_one_that_does_not_answer_means_no_limit(endpoint, caplog):
    assert task_limit_mb({}) is None
    assert task_limit_mb({"ECS_CONTAINER_METADATA_URI_V4": f"{endpoint.base()}/v4/no-such-task"}) is None
    assert "the task's memory limit is unknown" in caplog.text and "releases start the new server first" in caplog.text


def test_the_budget_adds_the_live_server_and_what_the_new_layer_adds():
    assert Budget(512, 300, 130, 0).fits
    assert not Budget(512, 300, 130, 90).fits  # 300 + 130 + 90 + 16 > 512
    assert Budget(512, 300, 130, -80).needed_mb == 130  # a smaller layer is not counted as freed memory
    assert Budget(512, 512 - 130 - MARGIN_MB, 130, 0).fits and not Budget(512, 512 - 129 - MARGIN_MB, 130, 0).fits
    assert str(Budget(512, 400, 190, 120)) == (
        "task 400 MB + new code server ~310 MB (live one 190 MB, layer +120 MB) + 16 MB margin vs limit 512 MB"
    )


def test_the_layer_a_version_adds_is_its_size_on_disk(tmp_path):
    site = tmp_path / "layers" / "abc"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "big.so").write_bytes(b"\0" * (3 << 20))
    (site / "pkg" / "__init__.py").write_bytes(b"\0" * (1 << 20))
    version = tmp_path / "v2"
    version.mkdir()
    assert layer_mb(version) == 0 and layer_mb(None) == 0
    layers.attach(version, site)
    assert layer_mb(version) == pytest.approx(4.0)


def sum_of_rss_mb():
    return sum(p.rss_kb for p in processes() if p.sid == os.getsid(0)) / 1024


def test_a_task_short_of_memory_is_found_from_its_real_processes(server, tmp_path):
    new = tmp_path / "v2"
    new.mkdir()
    assert 10 < task_mb() <= sum_of_rss_mb()
    budget = Headroom(64).short(server, None, new)  # a 64 MB task: this process alone uses more
    assert budget is not None and budget.server_mb > 30 and budget.task_mb >= task_mb() * 0.5
    assert Headroom(1 << 20).short(server, None, new) is None  # 1 TB: two servers fit
    assert Headroom(None).short(server, None, new) is None  # no limit known: never short
    assert Headroom(64).short(None, None, new) is None  # no live server: nothing to stop
