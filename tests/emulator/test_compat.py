"""Each compatibility shim is needed: its scenario passes with it and fails without it.

A scenario (``scenarios/<shim>.yml``) drives the stock module that trips over moto's
divergence, the way the roles use it, and asserts the AWS behaviour. It runs twice: with every
shim (must pass) and with this shim disabled (must fail). Each run starts from empty state on one
emulator per test process: reset (moto's ``/moto-api/reset``) before each, and served without the
shim for the second run through the emulator's shim switch (``PUT /_dagster_ecs_emulator/shims``,
server.ShimSwitch: the application rebuilt without the shim, moto's patches put back), then with
every shim again. One emulator instead of one started per shim: the switch is tested in
test_shim_switch.py, with an emulator started ``--disable-shim`` too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster_ecs_emulator.compat import SHIMS
from dagster_ecs_emulator.server import SHIMS_PATH
from support.emulator import spawn_emulator
from support.net import request
from support.playbook import run_playbook

SCENARIOS = Path(__file__).parent / "scenarios"


def test_every_shim_has_a_scenario():
    assert sorted(p.stem for p in SCENARIOS.glob("*.yml")) == sorted(shim.name for shim in SHIMS)


def test_every_shim_is_documented():
    readme = (Path(__file__).resolve().parents[2] / "localstack" / "README.md").read_text()
    for shim in SHIMS:
        assert f"`{shim.name}`" in readme, f"localstack/README.md does not list {shim.name}"
        assert shim.__doc__ and shim.summary


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """One emulator for every run of this process's scenarios; reset before each, its shims switched."""
    emulator = spawn_emulator(tmp_path_factory.mktemp("emulator"))
    yield emulator
    emulator.stop()


def serve_without(emulator, shims: list[str]) -> None:
    """Empty state, served without ``shims`` (every shim when empty)."""
    status, answer = request(f"{emulator.endpoint}/moto-api/reset", data=b"")
    assert status == 200, answer  # moto forgets everything: the scenario starts from empty state
    body = json.dumps({"disabled": shims}).encode()
    status, answer = request(f"{emulator.endpoint}{SHIMS_PATH}", data=body, method="PUT")
    assert status == 200 and json.loads(answer)["disabled"] == shims, answer


@pytest.mark.integration  # two ansible-playbook runs per shim
@pytest.mark.parametrize("shim", [shim.name for shim in SHIMS])
def test_scenario_passes_with_the_shim_and_fails_without(shim, emulator):
    scenario = SCENARIOS / f"{shim}.yml"
    serve_without(emulator, [])
    with_shim = run_playbook(
        scenario, "-c", "local", inventory="localhost,", extra_vars={"endpoint": emulator.endpoint}
    )
    assert with_shim.returncode == 0, with_shim.output[-4000:]
    serve_without(emulator, [shim])
    try:
        without = run_playbook(
            scenario, "-c", "local", inventory="localhost,", extra_vars={"endpoint": emulator.endpoint}
        )
    finally:
        serve_without(emulator, [])
    assert without.returncode != 0, f"{shim} is not needed any more: its scenario passes without it"
