"""Every AWS module a role calls gets the endpoint, region and credentials of the profile.

The plays set them once, for ``group/dagster_ecs.fargate.aws`` (our collection's action group,
meta/runtime.yml), which lists our modules and the amazon.aws / community.aws modules the roles
use. A stock module missing from the group would run without the profile's endpoint: offline it
would reach for real AWS. This test keeps the group complete.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COLLECTION = ROOT / "collections/ansible_collections/dagster_ecs/fargate"
AWS_MODULE = re.compile(r"^(amazon\.aws|community\.aws|dagster_ecs\.fargate)\.\w+$")


def _modules(node, found: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and AWS_MODULE.match(key):
                found.add(key)
            _modules(value, found)
    elif isinstance(node, list):
        for item in node:
            _modules(item, found)
    return found


def _task_files():
    yield from (ROOT / "playbooks").glob("*.yml")
    for sub in ("tasks", "handlers"):
        yield from (ROOT / "roles").glob(f"*/{sub}/*.yml")


def test_every_aws_module_the_roles_call_is_in_the_action_group():
    runtime = yaml.safe_load((COLLECTION / "meta/runtime.yml").read_text())
    group = {a if "." in a else f"dagster_ecs.fargate.{a}" for a in runtime["action_groups"]["aws"]}
    used: set[str] = set()
    for path in _task_files():
        _modules(yaml.safe_load(path.read_text()), used)
    assert used, "no AWS module found: the walk is broken"
    assert sorted(used - group) == [], "add these to action_groups.aws in meta/runtime.yml"
    ours = {f"dagster_ecs.fargate.{p.stem}" for p in (COLLECTION / "plugins/modules").glob("*.py")}
    assert ours <= group, "every module of the collection talks to AWS and belongs in the group"


def test_plays_use_the_short_group_only():
    """group/amazon.aws.aws and group/community.aws.aws cost seconds of parsing per play."""
    for path in (ROOT / "playbooks").glob("*.yml"):
        for play in yaml.safe_load(path.read_text()):
            defaults = play.get("module_defaults") or {}
            assert set(defaults) <= {"group/dagster_ecs.fargate.aws"}, f"{path.name}: {sorted(defaults)}"


def test_every_stage_play_ends_early_when_its_tag_is_not_selected():
    """site.yml --tags dags must not run (nor validate the arguments of) the other stages' roles."""
    site = yaml.safe_load((ROOT / "site.yml").read_text())
    stages = {Path(entry["ansible.builtin.import_playbook"]).stem: entry["tags"] for entry in site}
    for stem, tags in stages.items():
        if tags == ["always"]:
            continue
        plays = yaml.safe_load((ROOT / "playbooks" / f"{stem}.yml").read_text())
        for play in plays:
            first = (play.get("pre_tasks") or [{}])[0]
            assert first.get("ansible.builtin.import_tasks") == "tasks/stage_gate.yml", f"{stem}: {play['name']}"
            assert play["vars"]["dagster_ecs_stage"] in tags, f"{stem}: the play names another stage's tag"
