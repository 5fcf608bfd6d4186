"""The IAM policy documents the iam role renders: parliament-clean, scoped, PassRole only to ECS tasks."""

from __future__ import annotations

import json

import pytest
from parliament import analyze_policy_string
from support.iam_actions import (
    DAEMON_ONLY,
    EXECUTION,
    JOBS,
    RUN,
    UNSCOPABLE,
    WEBSERVER_ONLY,
    actions_of,
    as_list,
    statements,
)
from support.iam_proof import ACCOUNT, REGION, render_template
from support.iam_proof import EXAMPLE_VALUES as VALUES


def render(name: str, run_launcher: bool, job: str = "daemon") -> dict:
    return render_template(name, **VALUES, iam_ecs_run_launcher=run_launcher, iam_task_kind=job)


CASES = [
    (name, launcher, job)
    for name in ("execution-policy.json.j2", "task-policy.json.j2", "trust-policy.json.j2")
    for launcher in (False, True)
    for job in (JOBS if name == "task-policy.json.j2" else ("daemon",))
]


@pytest.mark.parametrize(("name", "launcher", "job"), CASES)
def test_policies_have_no_parliament_findings(name, launcher, job):
    document = render(name, launcher, job)
    if name.startswith("trust"):
        return  # a trust policy is not an identity policy; checked below
    findings = analyze_policy_string(json.dumps(document)).findings
    assert [f"{f.issue}: {f.detail}" for f in findings] == []


@pytest.mark.parametrize(("name", "launcher", "job"), CASES)
def test_no_wildcard_action_and_star_resources_only_where_aws_allows_no_scope(name, launcher, job):
    for statement in statements(render(name, launcher, job)):
        actions = as_list(statement["Action"])
        assert all("*" not in action for action in actions), statement
        if "*" in as_list(statement.get("Resource", [])):
            assert set(actions) <= UNSCOPABLE, statement


def test_pass_role_only_to_ecs_tasks_and_only_our_roles():
    passes = [s for s in statements(render("task-policy.json.j2", True)) if "iam:PassRole" in as_list(s["Action"])]
    assert len(passes) == 1
    assert passes[0]["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    assert sorted(r.rsplit("/", 1)[1] for r in as_list(passes[0]["Resource"])) == [
        "dagster-ecs-execution",
        "dagster-ecs-run-task",
    ]  # the roles of the run task definition, not the daemon's own
    assert not [s for s in statements(render("task-policy.json.j2", False)) if "iam:PassRole" in as_list(s["Action"])]


def test_one_role_per_job_only_the_daemon_starts_runs():
    granted = {job: actions_of(render("task-policy.json.j2", True, job)) for job in JOBS}
    assert granted["daemon"] - granted["webserver"] == DAEMON_ONLY
    # Terminate from the UI; loading the instance's launcher reads the run task definition.
    assert granted["webserver"] - granted["run"] == WEBSERVER_ONLY
    # A run's task calls no ECS API (test_workload's IAM proof: no run task ever did).
    assert granted["run"] == RUN
    assert {job: actions_of(render("task-policy.json.j2", False, job)) for job in JOBS} == {
        job: granted["run"] for job in JOBS
    }


@pytest.mark.parametrize("launcher", [False, True])
def test_the_execution_role_pulls_the_image_writes_the_logs_and_reads_the_secrets(launcher):
    assert actions_of(render("execution-policy.json.j2", launcher)) == EXECUTION


def test_trust_is_limited_to_this_accounts_ecs_tasks():
    (statement,) = statements(render("trust-policy.json.j2", False))
    assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}


@pytest.mark.parametrize("launcher", [False, True])
@pytest.mark.parametrize("job", JOBS)
def test_tasks_read_only_current_dag_objects(launcher, job):
    """The sync reads the manifest and bundles by key: no older versions (a versioned bucket keeps deleted ones)."""
    actions = actions_of(render("task-policy.json.j2", launcher, job))
    assert "s3:GetObject" in actions
    assert not {a for a in actions if a.startswith("s3:GetObjectVersion")}


def test_the_launcher_starts_only_the_run_task_definition():
    """Runs start from <project>-run, which the ecs stage registers: not the services' families, no
    RegisterTaskDefinition, and no ENI lookups (the network comes from the launcher's configuration)."""
    document = render("task-policy.json.j2", True)
    (run,) = [s for s in statements(document) if "ecs:RunTask" in as_list(s["Action"])]
    assert run["Resource"] == f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/dagster-ecs-run:*"
    assert not actions_of(document) & {"ecs:RegisterTaskDefinition", "ec2:DescribeNetworkInterfaces"}
