"""Each compatibility shim is needed: its scenario passes with it and fails without it.

A scenario (``scenarios/<shim>.yml``) drives the stock module that trips over moto's
divergence, the way the roles use it, and asserts the AWS behaviour. It runs twice: with every
shim (must pass) and with this shim disabled (must fail). Each run starts from empty state: the
runs with every shim share one emulator per test process, reset (moto's ``/moto-api/reset``)
before each; a run without a shim gets a fresh emulator started without it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster_ecs_emulator.compat import SHIMS
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
def every_shim(tmp_path_factory):
    """One emulator with every shim, for the runs that must pass; reset it before each."""
    emulator = spawn_emulator(tmp_path_factory.mktemp("every-shim"))
    yield emulator
    emulator.stop()


@pytest.mark.integration  # two ansible-playbook runs per shim
@pytest.mark.parametrize("shim", [shim.name for shim in SHIMS])
def test_scenario_passes_with_the_shim_and_fails_without(shim, every_shim, start_emulator):
    scenario = SCENARIOS / f"{shim}.yml"
    status, answer = request(f"{every_shim.endpoint}/moto-api/reset", data=b"")
    assert status == 200, answer  # moto forgets everything: the scenario starts from empty state
    with_shim = run_playbook(
        scenario, "-c", "local", inventory="localhost,", extra_vars={"endpoint": every_shim.endpoint}
    )
    assert with_shim.returncode == 0, with_shim.output[-4000:]
    without = run_playbook(
        scenario, "-c", "local", inventory="localhost,", extra_vars={"endpoint": start_emulator([shim]).endpoint}
    )
    assert without.returncode != 0, f"{shim} is not needed any more: its scenario passes without it"
