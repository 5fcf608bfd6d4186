"""The repository's ansible.cfg is how every playbook runs; molecule, which writes an ansible.cfg of its own, agrees."""

from __future__ import annotations

import configparser
from pathlib import Path

import yaml
from support.paths import ROOT

PATHS = {"collections_path", "roles_path"}  # relative to the repository in ansible.cfg, absolute in molecule's


def ansible_cfg() -> dict[str, str]:
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "ansible.cfg")
    return dict(config["defaults"])


def molecule_defaults() -> dict[str, str]:
    base = yaml.safe_load((ROOT / ".config/molecule/config.yml").read_text())
    return {key: str(value) for key, value in base["provisioner"]["config_options"]["defaults"].items()}


def test_molecule_runs_with_the_settings_of_ansible_cfg():
    ours, theirs = ansible_cfg(), molecule_defaults()
    assert set(theirs) <= set(ours), f"molecule sets what ansible.cfg does not: {set(theirs) - set(ours)}"
    for key, value in theirs.items():
        if key in PATHS:
            assert (
                Path(value.replace("${MOLECULE_PROJECT_DIRECTORY}", str(ROOT))).resolve()
                == (ROOT / ours[key]).resolve()
            )
        else:
            assert value == ours[key], f"{key}: molecule {value!r}, ansible.cfg {ours[key]!r}"


def test_the_controller_polls_its_workers_less_often_than_ansibles_default_in_both():
    """Ansible's default (1 ms) spends the CPU the modules need on a busy machine (tests/bench/controller.py); a
    task waits at most one interval longer, so it stays short."""
    interval = ansible_cfg()["internal_poll_interval"]
    assert molecule_defaults()["internal_poll_interval"] == interval
    assert 0.001 < float(interval) <= 0.02
