"""How the dags role calls dagster_ecs.fargate.dag_notify: the repository's side of the module's contract.

These tests were in the collection's tests/unit/plugins/modules/test_dag_notify.py (and keep their names); they read
roles/dags/tasks/main.yml, which the collection does not ship, so they stay with the role. The module's own
behaviour is tested there.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROLE_TASKS = Path(__file__).resolve().parents[2] / "roles" / "dags" / "tasks" / "main.yml"


def test_notify_not_when_unchanged_or_in_check_mode():
    """The role's "not when unchanged": the notification task runs only when the publish or rollback
    changed the live version (that check mode sends nothing is the module's half of this test, in the collection)."""
    tasks = {task["name"]: task for task in yaml.safe_load(ROLE_TASKS.read_text())}
    [after] = [
        task for name, task in tasks.items() if name.startswith("Ask the webserver to take the new DAG version now")
    ]
    assert "dags_result is changed" in after["when"] and "not ansible_check_mode" in after["when"]
    assert after["dagster_ecs.fargate.dag_notify"]["version"] == "{{ dags_version }}"


def test_the_role_checks_the_url_before_it_writes():
    """The check-mode run of dag_notify comes before both dag_publish tasks, with the same URL and opt-out."""
    tasks = yaml.safe_load(ROLE_TASKS.read_text())
    modules = [next((key for key in task if key.startswith("dagster_ecs.")), None) for task in tasks]
    first_write = modules.index("dagster_ecs.fargate.dag_publish")
    check = tasks[modules.index("dagster_ecs.fargate.dag_notify")]
    assert modules.index("dagster_ecs.fargate.dag_notify") < first_write and check["check_mode"] is True
    notify_task = tasks[len(modules) - 1 - modules[::-1].index("dagster_ecs.fargate.dag_notify")]
    for option in ("url", "secret", "allow_plain_http"):
        assert check["dagster_ecs.fargate.dag_notify"][option] == notify_task["dagster_ecs.fargate.dag_notify"][option]
    assert check["when"] in notify_task["when"]
