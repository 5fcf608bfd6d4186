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


CHECK = "Check the webserver's URL before anything is written (nothing is sent)"
ALB = "http://dagster-ecs-alb-123456.ap-southeast-2.elb.amazonaws.com"


def test_the_role_checks_the_url_before_it_writes():
    """The check (dag_notify's rule, as the collection's plain_http_refusal filter: no module run) comes before both
    dag_publish tasks, with the same URL and opt-out as the notification, under the same condition."""
    tasks = yaml.safe_load(ROLE_TASKS.read_text())
    modules = [next((key for key in task if key.startswith("dagster_ecs.")), None) for task in tasks]
    first_write = modules.index("dagster_ecs.fargate.dag_publish")
    names = [task["name"] for task in tasks]
    check = tasks[names.index(CHECK)]
    assert names.index(CHECK) < first_write and "dagster_ecs.fargate.dag_notify" not in check
    notify_task = tasks[len(modules) - 1 - modules[::-1].index("dagster_ecs.fargate.dag_notify")]
    url, allow = (expression(notify_task["dagster_ecs.fargate.dag_notify"][key]) for key in ("url", "allow_plain_http"))
    assert check["vars"]["dags_notify_refusal"] == f"{{{{ {url} | dagster_ecs.fargate.plain_http_refusal({allow}) }}}}"
    assert check["when"] in notify_task["when"]


def expression(value: str) -> str:
    """The Jinja expression of a ``"{{ ... }}"`` value."""
    assert value.startswith("{{ ") and value.endswith(" }}"), value
    return value[3:-3]


def check_the_url(url, allow_plain_http=False):
    """The role's check rendered with the collection's filter: None when it passes, else its fail_msg."""
    import jinja2
    from ansible_collections.dagster_ecs.fargate.plugins.filter.plain_http_refusal import plain_http_refusal

    (check,) = [task for task in yaml.safe_load(ROLE_TASKS.read_text()) if task["name"] == CHECK]
    environment = jinja2.Environment()  # noqa: S701 - renders text, not HTML
    environment.filters["dagster_ecs.fargate.plain_http_refusal"] = plain_http_refusal
    values = {"dags_notify_url": url, "dagster_ecs_allow_plain_http": allow_plain_http}
    values["dags_notify_refusal"] = environment.from_string(check["vars"]["dags_notify_refusal"]).render(values)
    if environment.compile_expression(check["ansible.builtin.assert"]["that"])(values):
        return None
    return " ".join(environment.from_string(check["ansible.builtin.assert"]["fail_msg"]).render(values).split())


def test_the_check_refuses_plain_http_to_another_host_naming_the_cause_and_the_fixes():
    message = check_the_url(ALB + "/")
    assert message.startswith(f"dags_notify_url: Refusing to send the basic-auth credentials to {ALB}/: plain HTTP")
    for fix in ("loadbalancer_certificate_arn", "dagster_ecs_allow_plain_http: true", "dags_notify=false"):
        assert fix in message
    assert message.endswith("Nothing was published or rolled back.")


def test_the_check_passes_https_loopback_and_the_opt_out():
    assert check_the_url(ALB.replace("http://", "https://")) is None
    assert check_the_url("http://127.0.0.1:18080") is None
    assert check_the_url(ALB, allow_plain_http=True) is None


def live_note(live, changed=True):
    """The role's line about the webserver, rendered from ``dags_notified.live`` (plain Jinja, as Ansible would)."""
    import jinja2

    (show,) = [task for task in yaml.safe_load(ROLE_TASKS.read_text()) if task["name"] == "Show the DAG version"]
    environment = jinja2.Environment()  # noqa: S701 - renders text, not HTML
    context = {"dags_notified": {"live": live}, "dags_result": {"changed": changed}, "ansible_check_mode": False}
    assert show["vars"]["dags_live"] == "{{ dags_notified.live | default({}) }}"
    context["dags_live"] = live  # what that gives in Ansible (plain Jinja would render the dict as text)
    return environment.from_string(show["vars"]["dags_live_note"]).render(context)


def test_the_play_says_when_the_old_code_server_stopped_first():
    live = {"url": ALB, "confirmed": True, "version": "3f6c2a9e81d04b7c", "seconds": 4.2}
    assert (
        live_note(live)
        == f"Live on the webserver at {ALB} (4.2 s in the task); the daemon task takes it at its next poll."
    )
    budget = "task 400 MB + new code server ~310 MB (live one 190 MB, layer +120 MB) + 16 MB margin vs limit 512 MB"
    assert live_note({**live, "stopped_first": budget}).endswith(
        "The task's memory did not hold two code servers at once, so the old one stopped first (a short reload "
        f"window): {budget}."
    )
