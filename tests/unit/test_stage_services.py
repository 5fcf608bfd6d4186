"""The offline profile's stage -> AWS services map (roles/offline_endpoint/vars/main.yml) matches the playbooks."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
STAGES = yaml.safe_load((ROOT / "roles/offline_endpoint/vars/main.yml").read_text())["offline_endpoint_stages"]
ROLE_STAGE = {"security_groups": "security", "local_runtime": "runtime"}  # roles named unlike their stage


def lookups(playbook: Path) -> list[str]:
    found = []
    for play in yaml.safe_load(playbook.read_text()):
        for task in play.get("pre_tasks", []) + play.get("tasks", []):
            include = task.get("ansible.builtin.include_role") or {}
            if include.get("tasks_from") == "lookup":
                found.append(ROLE_STAGE.get(include["name"], include["name"]))
    return found


def test_every_stage_of_site_yml_is_mapped():
    site = yaml.safe_load((ROOT / "site.yml").read_text())
    tags = {tag for play in site for tag in play.get("tags", []) if tag != "always"}
    assert set(STAGES) == tags | {"preflight"}


def test_each_stage_looks_up_what_its_playbook_looks_up():
    for stage, info in STAGES.items():
        assert lookups(ROOT / "playbooks" / f"{stage}.yml") == info["looks_up"], stage
