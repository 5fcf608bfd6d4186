"""The stage map (playbooks/vars/stages.yml) is the one place the stages are written: the rest follows it.

site.yml, the stage playbooks, the roles' exported facts, molecule's scenarios and the README's stage
table are checked against it here; the playbooks' lookups, the preflight's validate list, the services
a LocalStack must serve and molecule's order and needs are derived from it when they run.
"""

from __future__ import annotations

import re
import sys

import pytest
import yaml
from support.paths import ROOT

MAP = yaml.safe_load((ROOT / "playbooks/vars/stages.yml").read_text())
STAGES = MAP["dagster_ecs_stages"]
NAMES = [stage["name"] for stage in STAGES]
BY_NAME = {stage["name"]: stage for stage in STAGES}


def need_names(stage) -> list[str]:
    return [need["stage"] if isinstance(need, dict) else need for need in stage.get("needs", [])]


def set_facts(path, seen=None) -> set[str]:
    """The facts a task file sets with set_fact, following its import_tasks/include_tasks of the same role."""
    seen = seen if seen is not None else set()
    if path in seen or not path.exists():
        return set()
    seen.add(path)
    found: set[str] = set()

    def walk(tasks):
        for task in tasks or []:
            for key in ("block", "rescue", "always"):
                walk(task.get(key))
            facts = task.get("ansible.builtin.set_fact")
            if isinstance(facts, dict):
                found.update(name for name in facts if name != "cacheable")
            for key in ("ansible.builtin.import_tasks", "ansible.builtin.include_tasks"):
                target = task.get(key)
                target = target.get("file") if isinstance(target, dict) else target
                if target and "{{" not in target:
                    found.update(set_facts(path.parent / target, seen))

    walk(yaml.safe_load(path.read_text()))
    return found


def test_names_are_unique_and_needs_come_first():
    assert len(NAMES) == len(set(NAMES))
    for position, stage in enumerate(STAGES):
        for name in need_names(stage) + stage.get("after", []):
            assert name in NAMES[:position], f"{stage['name']} needs {name}, which is not an earlier stage"


def test_site_yml_imports_the_stages_in_the_maps_order():
    site = yaml.safe_load((ROOT / "site.yml").read_text())
    found = [(play["name"], play["ansible.builtin.import_playbook"], play["tags"]) for play in site]
    expected = [
        (
            stage["title"],
            f"playbooks/{stage['name']}.yml",
            ["always" if stage["name"] == "preflight" else stage["name"]],
        )
        for stage in STAGES
    ]
    assert found == expected


@pytest.mark.parametrize("name", [name for name in NAMES if name != "preflight"])
def test_each_stage_playbook_is_gated_by_its_name_runs_its_role_and_looks_up_from_the_map(name):
    (play,) = yaml.safe_load((ROOT / "playbooks" / f"{name}.yml").read_text())
    assert play["vars_files"] == ["vars/stages.yml"]
    assert play["vars"]["dagster_ecs_stage"] == name
    gate, lookups = play["pre_tasks"]
    assert gate == {
        "name": "Skip this stage unless its tag is selected",
        "ansible.builtin.import_tasks": "tasks/stage_gate.yml",
    }
    assert lookups["ansible.builtin.import_tasks"] == "tasks/lookup_needs.yml"
    assert [role["role"] for role in play["roles"]] == [BY_NAME[name]["role"]]
    # no lookup written by hand beside the map's
    assert "include_role" not in (ROOT / "playbooks" / f"{name}.yml").read_text()


@pytest.mark.parametrize("stage", [s for s in STAGES if s.get("exports")], ids=lambda s: s["name"])
def test_main_and_lookup_export_the_same_facts(stage):
    tasks = ROOT / "roles" / stage["role"] / "tasks"
    exports = set(stage["exports"])
    from_lookup = set_facts(tasks / "lookup.yml")
    from_main = set()
    for path in tasks.glob("*.yml"):
        if path.name != "lookup.yml":
            from_main |= set_facts(path)
    assert exports <= from_lookup, f"lookup.yml does not set {sorted(exports - from_lookup)}"
    assert exports <= from_main, f"the role's main tasks do not set {sorted(exports - from_main)}"


def test_special_lookups_set_what_the_map_says():
    for stage in STAGES:
        for need in stage.get("needs", []):
            if isinstance(need, dict):
                role = BY_NAME[need["stage"]]["role"]
                assert need["sets"] in set_facts(ROOT / "roles" / role / "tasks" / f"{need['tasks']}.yml")


def test_the_preflight_validates_every_role_that_has_a_validate_file():
    with_file = {path.parent.parent.name for path in (ROOT / "roles").glob("*/tasks/validate.yml")}
    assert with_file == {stage["role"] for stage in STAGES if stage.get("validate")}


def test_molecule_has_a_scenario_per_stage_named_like_it_that_converges_its_playbook():
    sys.path.insert(0, str(ROOT / "molecule"))
    try:
        import run
    finally:
        sys.path.pop(0)
    scenarios = {path.parent.name for path in (ROOT / "molecule").glob("*/molecule.yml")}
    assert set(run.order()) == scenarios
    for name in NAMES:
        scenario = yaml.safe_load((ROOT / "molecule" / name / "molecule.yml").read_text())
        provisioner = scenario["provisioner"]
        assert provisioner["env"]["MOLECULE_STAGE"] == name
        assert "MOLECULE_STAGE_NEEDS" not in provisioner["env"], f"{name}: its needs come from the stage map"
        if name != "preflight":
            assert provisioner["playbooks"]["converge"] == f"../../playbooks/{name}.yml"


def test_the_readme_stage_table_follows_the_map():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("| Tag | Playbook | What it converges |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| (\S+) \| `([^`]+)` \|", table, re.M)
    expected = [("*(always)*", "playbooks/preflight.yml")] + [
        (f"`{name}`", f"{name}.yml") for name in NAMES if name != "preflight"
    ]
    assert rows == expected


def test_the_offline_endpoint_derives_its_services_from_the_map():
    text = (ROOT / "roles/offline_endpoint/vars/main.yml").read_text()
    assert "offline_endpoint_stage_map" in text
    assert not any(f"\n  {name}:" in text for name in NAMES), "the stages are written in the role again"


def test_the_services_each_stage_calls_are_what_they_were_before_the_map():
    """The offline endpoint's derivation, rendered: each stage's own services and its lookups' (a LocalStack
    lacking one stops the run before any AWS call, naming the stage). The expected table is the one the
    role wrote by hand before the stage map (stages renamed)."""
    import jinja2

    template = yaml.safe_load((ROOT / "roles/offline_endpoint/vars/main.yml").read_text())["offline_endpoint_stages"]
    environment = jinja2.Environment()  # noqa: S701 - renders data for YAML, not HTML
    rendered = environment.from_string(template).render(offline_endpoint_stage_map=STAGES)
    derived = {name: sorted(info["services"]) for name, info in yaml.safe_load(rendered).items()}
    assert derived == {
        "preflight": ["iam", "sts"],
        "network": ["ec2"],
        "security_groups": ["ec2"],
        "logging": ["logs"],
        "storage": ["ec2", "efs", "s3"],
        "dags": ["s3", "secretsmanager"],
        "registry": ["ecr"],
        "image": ["ecr"],
        "secrets": ["secretsmanager"],
        "database": ["ec2", "rds", "secretsmanager"],
        "iam": ["ec2", "ecr", "efs", "iam", "logs", "s3", "secretsmanager"],
        "loadbalancer": ["ec2", "elbv2"],
        "discovery": ["ec2", "servicediscovery"],
        "ecs": ["ec2", "ecr", "ecs", "efs", "elbv2", "iam", "logs", "rds", "s3", "secretsmanager", "servicediscovery"],
        "autoscaling": ["application-autoscaling"],
        "local_runtime": ["ecs", "rds", "secretsmanager"],
        "outputs": ["ec2", "ecr", "ecs", "efs", "elbv2", "logs", "rds", "s3", "secretsmanager", "servicediscovery"],
        "verify": ["ecs", "elbv2", "rds", "secretsmanager"],
    }
