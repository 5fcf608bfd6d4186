"""Every role's molecule scenario (molecule/<role>/) on one fresh emulator: molecule/run.py (`make molecule`).

The default scenario starts the emulator (create) and stops it with the local tasks (destroy); each
role scenario runs prepare -> converge -> idempotence -> verify on it (.config/molecule/config.yml),
in site.yml's order. Ports are chosen free and the shared ephemeral directory is this test's own,
so the run meets neither a rehearsal on 4566 nor another molecule run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
from conftest import ROOT

# Not in `make test` yet (Makefile: -m "not molecule"; `make molecule` runs it): in CI, under the load of
# the other suites, the local_runtime scenario's webserver task never listened (verify waited 240 s; two
# CI runs), while every run on this machine alone passed. To find before it joins make test again.
pytestmark = [pytest.mark.integration, pytest.mark.molecule]

SCENARIOS = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())


def test_every_role_has_a_scenario():
    assert set(ROLES) <= set(SCENARIOS), f"roles without a molecule scenario: {sorted(set(ROLES) - set(SCENARIOS))}"


def test_every_scenario_converges_idempotently_and_verifies(tmp_path):
    env = {"MOLECULE_EPHEMERAL_DIRECTORY": str(tmp_path / "molecule"), "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "molecule/run.py"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1800,
        check=False,
    )
    elapsed = time.monotonic() - started
    (tmp_path / "molecule.log").write_text(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-12000:]
    recap = proc.stdout[proc.stdout.rfind("SCENARIO RECAP") :]
    print(f"molecule: {len(SCENARIOS)} scenarios in {elapsed:.0f} s\n{recap}")
    for scenario in SCENARIOS:
        assert re.search(rf"^{re.escape(scenario)}\s+: actions=\d+\s+successful=\d+", recap, re.M), scenario
    assert not re.search(r"(failed|missing)=[1-9]", recap), recap
