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


def flat_tasks(tasks):
    """Every task of a task list, those in a block, rescue or always too."""
    for task in tasks or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from flat_tasks(task.get(key))


def task_files(path, seen=None) -> list:
    """A task file and the task files of the same role it imports or includes (import_tasks/include_tasks), all the
    way down."""
    seen = seen if seen is not None else []
    if path in seen or not path.exists():
        return seen
    seen.append(path)
    for task in flat_tasks(yaml.safe_load(path.read_text())):
        for key in ("ansible.builtin.import_tasks", "ansible.builtin.include_tasks"):
            target = task.get(key)
            target = target.get("file") if isinstance(target, dict) else target
            if target and "{{" not in target:
                task_files(path.parent / target, seen)
    return seen


def own_set_facts(path) -> set[str]:
    """The facts a task file sets with set_fact itself, not through the files it imports."""
    found: set[str] = set()
    for task in flat_tasks(yaml.safe_load(path.read_text())):
        facts = task.get("ansible.builtin.set_fact")
        if isinstance(facts, dict):
            found.update(name for name in facts if name != "cacheable")
    return found


def set_facts(path) -> set[str]:
    """The facts a task file sets with set_fact, following its import_tasks/include_tasks of the same role."""
    return set().union(*(own_set_facts(file) for file in task_files(path)))


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
    assert "vars_files" not in play  # the map comes in through lookup_needs.yml's tasks/stage_map.yml
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


def test_the_playbooks_read_the_map_once_per_run_through_one_task_file():
    """No play reads the map as vars_files (Ansible would read the file again on every variable lookup, several
    times a task); tasks/stage_map.yml includes it once per run, before anything reads it: first thing in the
    preflight's plays and in lookup_needs.yml, which every stage play imports right after its gate."""
    (include,) = yaml.safe_load((ROOT / "playbooks/tasks/stage_map.yml").read_text())
    assert include["ansible.builtin.include_vars"] == {"file": "vars/stages.yml"}
    assert include["when"] == "dagster_ecs_stages is not defined" and include["tags"] == ["always"]
    for path in sorted((ROOT / "playbooks").glob("*.yml")):
        for play in yaml.safe_load(path.read_text()):
            assert "vars/stages.yml" not in str(play.get("vars_files", [])), path.name
    first = yaml.safe_load((ROOT / "playbooks/tasks/lookup_needs.yml").read_text())[0]
    assert first["ansible.builtin.import_tasks"] == "stage_map.yml"
    validate, endpoint, _identity = yaml.safe_load((ROOT / "playbooks/preflight.yml").read_text())
    assert validate["tasks"][0]["ansible.builtin.import_tasks"] == "tasks/stage_map.yml"
    assert endpoint["pre_tasks"][0]["ansible.builtin.import_tasks"] == "tasks/stage_map.yml"


@pytest.mark.parametrize("stage", [s for s in STAGES if s.get("exports")], ids=lambda s: s["name"])
def test_main_and_lookup_export_the_same_facts(stage):
    """One export per role: tasks/export.yml sets exactly the map's exports, from inputs main.yml (what the role
    created) and lookup.yml (what it found) pass it; both import it (directly or through a task file of the role they
    import: the secrets role's main imports its lookup) and neither sets an export itself."""
    tasks = ROOT / "roles" / stage["role"] / "tasks"
    exports = set(stage["exports"])
    export = tasks / "export.yml"
    assert export.exists(), f"{stage['role']} has no tasks/export.yml"
    assert set_facts(export) == exports, f"export.yml sets {sorted(set_facts(export))}, the map says {sorted(exports)}"
    for entry in ("main.yml", "lookup.yml"):
        files = task_files(tasks / entry)
        assert export in files, f"{entry} does not import export.yml"
        for path in files:
            if path != export:
                itself = own_set_facts(path) & exports
                assert not itself, f"{path.name} sets {sorted(itself)} itself, not through export.yml"


def test_special_lookups_set_what_the_map_says():
    for stage in STAGES:
        for need in stage.get("needs", []):
            if isinstance(need, dict):
                role = BY_NAME[need["stage"]]["role"]
                assert need["sets"] in set_facts(ROOT / "roles" / role / "tasks" / f"{need['tasks']}.yml")


def test_the_preflight_validates_every_role_that_has_a_validate_file():
    with_file = {path.parent.parent.name for path in (ROOT / "roles").glob("*/tasks/validate.yml")}
    assert with_file == {stage["role"] for stage in STAGES if stage.get("validate")}


def molecule_run():
    """molecule/run.py, imported (it is a script, not a package)."""
    sys.path.insert(0, str(ROOT / "molecule"))
    try:
        import run
    finally:
        sys.path.pop(0)
    return run


def test_molecule_has_a_scenario_per_stage_named_like_it_that_converges_its_playbook():
    run = molecule_run()
    scenarios = {path.parent.name for path in (ROOT / "molecule").glob("*/molecule.yml")}
    assert set(run.order()) == scenarios
    for name in NAMES:
        scenario = yaml.safe_load((ROOT / "molecule" / name / "molecule.yml").read_text())
        provisioner = scenario["provisioner"]
        assert provisioner["env"]["MOLECULE_STAGE"] == name
        assert "MOLECULE_STAGE_NEEDS" not in provisioner["env"], f"{name}: its needs come from the stage map"
        if name != "preflight":
            assert provisioner["playbooks"]["converge"] == f"../../playbooks/{name}.yml"


def test_the_ordered_molecule_run_leaves_prepare_out_only_because_its_order_builds_every_need_first():
    run = molecule_run()
    order = run.order()
    teardown = yaml.safe_load((ROOT / "molecule/teardown/molecule.yml").read_text())["provisioner"]["env"]
    needs = {name: need_names(BY_NAME[name]) + BY_NAME[name].get("after", []) for name in NAMES}
    needs["teardown"] = teardown["MOLECULE_STAGE_NEEDS"].split(",")
    for scenario, names in needs.items():
        for need in names:
            assert order.index(need) < order.index(scenario), f"molecule/run.py runs {scenario} before {need}"
    argv, _ = run.command([])
    config, ordered = ROOT / ".config/molecule/config.yml", ROOT / ".config/molecule/ordered.yml"
    assert argv[1 : argv.index("test")] == ["--base-config", str(config), "--base-config", str(ordered)]
    shared = yaml.safe_load(config.read_text())["scenario"]["test_sequence"]
    assert "prepare" in shared  # a scenario run alone prepares
    assert yaml.safe_load(ordered.read_text())["scenario"]["test_sequence"] == [a for a in shared if a != "prepare"]


def test_the_readme_stage_table_follows_the_map():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("| Tag | Playbook | What it converges |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| (\S+) \| `([^`]+)` \|", table, re.M)
    expected = [("*(always)*", "playbooks/preflight.yml")] + [
        (f"`{name}`", f"{name}.yml") for name in NAMES if name != "preflight"
    ]
    assert rows == expected


def stage_needs() -> dict[str, list[dict]]:
    """dagster_ecs_stage_needs of the map, rendered: each stage's needs, normalised there once."""
    import jinja2

    environment = jinja2.Environment()  # noqa: S701 - renders data for YAML, not HTML
    rendered = environment.from_string(MAP["dagster_ecs_stage_needs"]).render(dagster_ecs_stages=STAGES)
    return yaml.safe_load(rendered)


def test_each_need_is_normalised_once_in_the_map():
    """A need is written as a stage's name or {stage, tasks, sets, services}; its readers get one shape."""
    needs = stage_needs()
    assert list(needs) == NAMES
    for stage in STAGES:
        assert [need["stage"] for need in needs[stage["name"]]] == need_names(stage), stage["name"]
        for written, need in zip(stage.get("needs", []), needs[stage["name"]], strict=True):
            other = BY_NAME[need["stage"]]
            spec = written if isinstance(written, dict) else {}
            assert need == {
                "stage": other["name"],
                "role": other["role"],
                "tasks": spec.get("tasks", "lookup"),
                "sets": spec.get("sets") or other["exports"][0],
                "services": spec.get("services", other.get("services", [])),
                "offline_only": other.get("offline_only", False),
            }
    # The DAG bucket's name: its own task file, no AWS call; the local runtime: offline only.
    assert needs["dags"] == [
        {"stage": "storage", "role": "storage", "tasks": "bucket", "sets": "storage_bucket", "services": [],
         "offline_only": False}
    ]  # fmt: skip
    assert [(need["stage"], need["offline_only"]) for need in needs["verify"]] == [
        ("ecs", False), ("loadbalancer", False), ("local_runtime", True)
    ]  # fmt: skip


def test_the_readers_of_needs_take_them_normalised():
    """lookup_needs.yml, the offline endpoint and molecule's prepare read dagster_ecs_stage_needs: none of them
    tells a name from a {stage, ...} need again."""
    readers = {
        "playbooks/tasks/lookup_needs.yml": "dagster_ecs_stage_needs[dagster_ecs_stage]",
        "roles/offline_endpoint/vars/main.yml": "offline_endpoint_stage_needs[stage.name]",
        "molecule/shared/prepare.yml": "dagster_ecs_stage_needs[stage.name]",
    }
    for path, reads in readers.items():
        text = (ROOT / path).read_text()
        assert reads in text, path
        assert "is mapping" not in text and ".needs" not in text, f"{path} normalises the needs itself"
    (_, endpoint, _) = yaml.safe_load((ROOT / "playbooks/preflight.yml").read_text())
    (role,) = endpoint["roles"]
    assert role["offline_endpoint_stage_needs"] == "{{ dagster_ecs_stage_needs }}"


@pytest.mark.parametrize(
    ("stage", "offline", "looked_up"),
    [
        ("verify", True, ["ecs", "loadbalancer", "local_runtime"]),
        ("verify", False, ["ecs", "loadbalancer"]),  # against real AWS no offline-only need...
        ("local_runtime", False, []),  # ...and nothing for an offline-only stage
        ("local_runtime", True, ["ecs"]),
        ("dags", False, ["storage"]),
    ],
)
def test_lookup_needs_looks_up_what_the_map_says(stage, offline, looked_up):
    import jinja2

    (_, _, include) = yaml.safe_load((ROOT / "playbooks/tasks/lookup_needs.yml").read_text())
    environment = jinja2.Environment()  # noqa: S701 - renders data for YAML, not HTML
    environment.filters["bool"] = bool  # Ansible's, for the booleans given here
    rendered = environment.from_string(include["vars"]["lookup_needs"]).render(
        dagster_ecs_stages=STAGES, dagster_ecs_stage_needs=stage_needs(), dagster_ecs_stage=stage,
        dagster_ecs_offline=offline,
    )  # fmt: skip
    needs = yaml.safe_load(rendered)
    assert [need["stage"] for need in needs] == looked_up
    assert needs == [need for need in stage_needs()[stage] if need["stage"] in looked_up]


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
    # As playbooks/preflight.yml passes them: the map and its needs, normalised in the map.
    rendered = environment.from_string(template).render(
        offline_endpoint_stage_map=STAGES, offline_endpoint_stage_needs=stage_needs()
    )
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
