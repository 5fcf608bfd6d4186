"""The emulator's start/status/stop life cycle, as the offline profile and `make down` use it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
from dagster_ecs_emulator.server import build_app
from support.net import free_port
from support.paths import ROOT


def cli(*args):
    proc = subprocess.run(
        [sys.executable, "-m", "dagster_ecs_emulator", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "{}")


def test_start_status_stop(tmp_path):
    port = str(free_port())
    rc, started = cli("start", "--port", port, "--state-dir", str(tmp_path))
    try:
        assert rc == 0 and started["started"] and started["kind"] == "dagster-ecs-emulator"
        assert (tmp_path / "emulator.pid").read_text().strip() == str(started["pid"])
        rc, again = cli("start", "--port", port, "--state-dir", str(tmp_path))
        assert rc == 0 and again == {
            "changed": False,
            "started": False,
            "endpoint": f"http://127.0.0.1:{port}",
            "kind": "dagster-ecs-emulator",
        }
        rc, status = cli("status", "--port", port, "--state-dir", str(tmp_path))
        assert status["pid"] == started["pid"]
    finally:
        rc, stopped = cli("stop", "--state-dir", str(tmp_path))
    assert stopped["stopped"] is True
    assert not (tmp_path / "emulator.pid").exists()
    rc, again = cli("stop", "--state-dir", str(tmp_path))
    assert again == {"changed": False, "stopped": False}
    assert cli("status", "--port", port, "--state-dir", str(tmp_path))[1]["kind"] == "none"


def test_something_else_listening_is_reported_not_replaced(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = str(sock.getsockname()[1])
        rc, result = cli("start", "--port", port, "--state-dir", str(tmp_path), "--timeout", "2")
    assert rc == 0 and result["started"] is False and result["kind"] == "other"
    assert not (tmp_path / "emulator.pid").exists()


def test_refuses_to_bind_beyond_loopback():
    from dagster_ecs_emulator.server import serve

    with pytest.raises(ValueError, match="loopback only"):
        serve("0.0.0.0", 0)  # noqa: S104 - the point of the test


def test_unknown_shim_is_an_error():
    with pytest.raises(ValueError, match="unknown shim"):
        build_app(["no-such-shim"])
