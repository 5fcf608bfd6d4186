"""Every role documents every variable it has, and its README is generated from that."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir())


def test_readmes_are_up_to_date():
    from support import role_docs

    assert role_docs.main(["--check"]) == 0, "run: python tests/support/role_docs.py"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_role_layout(role):
    for required in ("meta/argument_specs.yml", "defaults/main.yml", "tasks/main.yml", "README.md"):
        assert (role / required).exists(), f"{role.name} has no {required}"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_defaults_are_prefixed_and_declared(role):
    defaults = yaml.safe_load((role / "defaults/main.yml").read_text()) or {}
    options = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    for name in defaults:
        assert name.startswith(f"{role.name}_"), f"{role.name}: default {name} lacks the role prefix"
        assert name in options, f"{role.name}: default {name} is not in meta/argument_specs.yml"
    for name in options:
        assert name.startswith(("dagster_ecs_", "preflight_", f"{role.name}_")), f"{role.name}: option {name}"


def _tasks(tasks):
    for task in tasks or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key))


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_roles_use_other_roles_through_their_main_entry_point(role):
    """A role's tasks never reach into another role's task files (tasks_from): what several roles share is a role of
    its own, included whole with its documented, validated arguments (e.g. preview, which ends a check-mode preview)."""
    for path in sorted((role / "tasks").glob("*.yml")):
        for task in _tasks(yaml.safe_load(path.read_text())):
            for key in ("ansible.builtin.include_role", "ansible.builtin.import_role"):
                if isinstance(task.get(key), dict) and task[key].get("name") != role.name:
                    assert "tasks_from" not in task[key], f"{path.relative_to(ROOT)}: {task['name']} uses tasks_from"
