"""Every role's molecule scenario (molecule/<role>/) on one fresh emulator: molecule/run.py (`make molecule`).

The default scenario starts the emulator (create) and stops it with the local tasks (destroy); each
role scenario runs converge -> idempotence -> verify on it (.config/molecule/config.yml), in site.yml's
order, which builds every scenario's needs before it (so no prepare: .config/molecule/ordered.yml). Ports
are chosen free and the shared ephemeral directory is this test's own, so the run meets neither a rehearsal
on 4566 nor another molecule run. That directory is deep (pytest's tmp_path): the local_runtime scenario
also proves the local tasks start from a long path, where supervisord's socket would not fit in sun_path's
108 bytes without settings.supervisor_socket's fallback.
"""

from __future__ import annotations

import re
import time

import pytest
from support.paths import ROOT
from support.playbook import run_python

pytestmark = [pytest.mark.integration, pytest.mark.molecule]

SCENARIOS = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())


def test_every_role_has_a_scenario():
    assert set(ROLES) <= set(SCENARIOS), f"roles without a molecule scenario: {sorted(set(ROLES) - set(SCENARIOS))}"


def test_every_scenario_converges_idempotently_and_verifies(tmp_path):
    env = {"MOLECULE_EPHEMERAL_DIRECTORY": str(tmp_path / "molecule"), "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
    started = time.monotonic()
    proc = run_python("molecule/run.py", timeout=1800, env=env)
    elapsed = time.monotonic() - started
    (tmp_path / "molecule.log").write_text(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-12000:]
    recap = proc.stdout[proc.stdout.rfind("SCENARIO RECAP") :]
    print(f"molecule: {len(SCENARIOS)} scenarios in {elapsed:.0f} s\n{recap}")
    for scenario in SCENARIOS:
        assert re.search(rf"^{re.escape(scenario)}\s+: actions=\d+\s+successful=\d+", recap, re.M), scenario
    assert not re.search(r"(failed|missing)=[1-9]", recap), recap
