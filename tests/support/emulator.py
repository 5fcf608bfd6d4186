"""The embedded AWS emulator (``python -m dagster_ecs_emulator serve``: moto behind the compatibility
layer) on a free loopback port, as the tests start it; and the offline profile's credentials."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from support.net import free_port, wait_for_status
from support.paths import ROOT

OFFLINE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAOFFLINEREHEARSAL",
    "AWS_SECRET_ACCESS_KEY": "offline-rehearsal-not-a-secret",
    "AWS_DEFAULT_REGION": "ap-southeast-2",
}


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
