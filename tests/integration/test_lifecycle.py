"""The rehearsal's lifecycle, on one offline profile, in order: start over, rotate, upgrade Dagster, re-run, a task
that cannot start, a migration that fails.

A user's natural sequence: deploy; ``playbooks/teardown.yml`` then ``site.yml`` again (the local
runtime must follow the new RDS instance: a new, empty database with the new password, nothing
stale left running); rotate both credentials (``-e secrets_rotate=both``: the old ones refused by
nginx and PostgreSQL, the new ones accepted); upgrade Dagster (a new image's version: ``dagster
instance migrate`` runs once, as a one-off ECS task, before the services roll); a re-run that asks
for nothing changes nothing; a task that cannot start (its database secret no longer matches the
instance) makes verify fail quickly with the task's own error line instead of waiting out its
timeout, and ECS's circuit breaker rolls the services back to the revisions before; and on that
broken database a version change's migration fails, stopping the rollout with the task's log.

The Dagster version is what the ecs stage reads from requirements/constraints.txt (the image's pins);
the offline tasks run the venv's Dagster, so the upgrade is the deployment's side of one: the version
the task definitions carry changes, and the migration really runs against the rehearsal's PostgreSQL.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import boto3
import psycopg2
import pytest
from dagster_ecs_container.settings import short_socket_dir
from support.emulator import OFFLINE_CREDENTIALS
from support.net import request, wait_for
from support.playbook import offline_environment, run_playbook

pytestmark = pytest.mark.integration
PROJECT = "dagster-ecs"
SERVICES = [f"{PROJECT}-webserver", f"{PROJECT}-daemon"]
MIGRATE = f"{PROJECT}-migrate"  # the migration task's startedBy
UPGRADED = "1.13.99"  # stands for the next image's Dagster version
# The version every deploy carries unless told otherwise: the image's pin.
PINNED = re.search(r"^dagster==(\S+)$", (Path(__file__).parents[2] / "requirements/constraints.txt").read_text(), re.M)[
    1
]
LAUNCH = """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
ORDERS_JOB = {
    "selector": {"repositoryLocationName": "dags", "repositoryName": "__repository__", "jobName": "orders_job"}
}


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    with offline_environment(tmp_path_factory) as env:
        first = run_playbook("site.yml", extra_vars=env["extra"])
        assert first.returncode == 0, first.output[-6000:]
        session = boto3.session.Session(
            aws_access_key_id=OFFLINE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=OFFLINE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name="ap-southeast-2",
        )
        yield {
            **env,
            "url": f"http://127.0.0.1:{env['extra']['local_runtime_proxy_port']}",
            "runtime": env["state"] / "offline" / "runtime",
            "secrets": session.client("secretsmanager", endpoint_url=env["endpoint"]),
            "ecs": session.client("ecs", endpoint_url=env["endpoint"]),
            "logs": session.client("logs", endpoint_url=env["endpoint"]),
        }


def secret(rehearsal, name) -> dict:
    return json.loads(rehearsal["secrets"].get_secret_value(SecretId=f"{PROJECT}/{name}")["SecretString"])


def graphql(rehearsal, query, variables=None):
    basic = secret(rehearsal, "basic-auth")
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    status, answer = request(f"{rehearsal['url']}/graphql", (basic["username"], basic["password"]), body)
    assert status == 200, answer[:300]
    return json.loads(answer)["data"]


def run_ids(rehearsal) -> list[str]:
    runs = graphql(rehearsal, "{ runsOrError { ... on Runs { results { runId status } } } }")["runsOrError"]
    return [run["runId"] for run in runs["results"]]


def migrations(rehearsal) -> list[dict]:
    ecs = rehearsal["ecs"]
    arns = ecs.list_tasks(cluster=PROJECT, startedBy=MIGRATE, desiredStatus="STOPPED")["taskArns"]
    arns += ecs.list_tasks(cluster=PROJECT, startedBy=MIGRATE, desiredStatus="RUNNING")["taskArns"]
    return ecs.describe_tasks(cluster=PROJECT, tasks=arns)["tasks"] if arns else []


def services(rehearsal) -> dict[str, dict]:
    return {
        s["serviceName"]: s for s in rehearsal["ecs"].describe_services(cluster=PROJECT, services=SERVICES)["services"]
    }


def connects(rehearsal, password) -> bool:
    port = json.loads((rehearsal["runtime"] / "status.json").read_text())["database"]["port"]
    try:
        psycopg2.connect(host="127.0.0.1", port=port, dbname="dagster", user="dagster", password=password).close()
    except psycopg2.OperationalError as error:
        assert "password authentication failed" in str(error), error
        return False
    return True


def test_start_over_after_teardown_is_healthy_on_a_new_database(rehearsal):
    launched = graphql(rehearsal, LAUNCH, {"p": ORDERS_JOB})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    def finished():
        run = graphql(rehearsal, "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", {"id": run_id})
        return run["runOrError"]["status"] if run["runOrError"]["status"] in ("SUCCESS", "FAILURE") else None

    assert wait_for(finished, 180, 2, "the run to finish") == "SUCCESS"
    old_password = secret(rehearsal, "database")["password"]

    started = time.monotonic()
    teardown = run_playbook("playbooks/teardown.yml", extra_vars=rehearsal["extra"])
    assert teardown.returncode == 0, teardown.output[-6000:]
    torn_down = time.monotonic()

    sockets = [short_socket_dir(rehearsal["runtime"] / "tasks" / task / "run") for task in ("webserver", "daemon")]
    assert all(sockets), "the test's state dir is deep enough for the tasks' /tmp socket directories"

    def nothing_left():
        status = json.loads((rehearsal["runtime"] / "status.json").read_text())
        gone = not status["services"] and not (rehearsal["runtime"] / "postgres" / "data").exists()
        return (gone and not any(path.exists() for path in sockets)) or None

    # The runtime follows the deleted stack: no task, no PostgreSQL (its files too), no task socket directory.
    wait_for(nothing_left, 60, 1, "the local runtime to stop what the teardown deleted")

    redeploy = time.monotonic()
    again = run_playbook("site.yml", extra_vars=rehearsal["extra"])
    assert again.returncode == 0, again.output[-6000:]
    print(f"start over: teardown {torn_down - started:.0f} s, then site.yml {time.monotonic() - redeploy:.0f} s")
    assert f"Dagster is healthy at {rehearsal['url']}" in again.output
    assert run_ids(rehearsal) == []  # a new instance: a new, empty database
    new_password = secret(rehearsal, "database")["password"]
    assert new_password != old_password
    assert connects(rehearsal, new_password) and not connects(rehearsal, old_password)


def test_rotating_both_credentials_rolls_the_services_onto_them(rehearsal):
    before = {name: secret(rehearsal, name)["password"] for name in ("database", "basic-auth")}
    started = time.monotonic()
    rotate = run_playbook("site.yml", extra_vars={**rehearsal["extra"], "secrets_rotate": "both"})
    elapsed = time.monotonic() - started
    assert rotate.returncode == 0, rotate.output[-6000:]
    assert f"Dagster is healthy at {rehearsal['url']}" in rotate.output
    print(f"rotation of both credentials, site.yml -e secrets_rotate=both: {elapsed:.0f} s")
    after = {name: secret(rehearsal, name)["password"] for name in ("database", "basic-auth")}
    assert after["database"] != before["database"] and after["basic-auth"] != before["basic-auth"]
    for value in (*before.values(), *after.values()):
        assert value not in rotate.output
    assert connects(rehearsal, after["database"]) and not connects(rehearsal, before["database"])
    assert request(f"{rehearsal['url']}/server_info", ("admin", before["basic-auth"]))[0] == 401
    assert request(f"{rehearsal['url']}/server_info", ("admin", after["basic-auth"]))[0] == 200


def test_a_dagster_upgrade_migrates_the_storage_once_before_the_services_roll(rehearsal):
    # Every deploy so far (the first, the one after teardown, the rotation's roll) kept the version: no migration.
    assert migrations(rehearsal) == []
    before = services(rehearsal)
    upgrade = run_playbook(
        "site.yml",
        "--tags",
        "ecs,outputs,verify",
        extra_vars={**rehearsal["extra"], "dagster_ecs_dagster_version": UPGRADED},
    )
    assert upgrade.returncode == 0, upgrade.output[-6000:]
    assert f"Dagster {PINNED} -> {UPGRADED}: ran `dagster instance migrate` in task" in upgrade.output
    assert f"Dagster is healthy at {rehearsal['url']}" in upgrade.output
    (task,) = migrations(rehearsal)
    assert task["lastStatus"] == "STOPPED" and task["containers"][0]["exitCode"] == 0, task
    run_definition = rehearsal["ecs"].describe_task_definition(taskDefinition=task["taskDefinitionArn"])
    environment = {
        e["name"]: e["value"] for e in run_definition["taskDefinition"]["containerDefinitions"][0]["environment"]
    }
    assert environment["DAGSTER_ECS_DAGSTER_VERSION"] == UPGRADED  # the new revision's task, not the old one's
    for name, service in services(rehearsal).items():
        primary = service["deployments"][0]
        assert primary["id"] != before[name]["deployments"][0]["id"], f"{name} did not roll"
        assert task["stoppedAt"] < primary["createdAt"], f"{name} rolled before the migration stopped"
    stream = f"run/run/{task['taskArn'].rsplit('/', 1)[-1]}"
    events = rehearsal["logs"].get_log_events(logGroupName=f"/ecs/{PROJECT}", logStreamName=stream)["events"]
    assert any("Storage schema state after migration" in event["message"] for event in events), events[-5:]
    # From here on the rehearsal runs "the upgraded image": the re-run below must not migrate again.
    rehearsal["extra"]["dagster_ecs_dagster_version"] = UPGRADED


def test_a_run_that_asks_for_nothing_changes_nothing(rehearsal):
    rerun = run_playbook("site.yml", extra_vars=rehearsal["extra"])
    assert rerun.returncode == 0, rerun.output[-6000:]
    assert rerun.recap["changed"] == 0, rerun.changed_tasks()
    assert len(migrations(rehearsal)) == 1  # the version did not change: no second migration


def test_a_rotation_without_the_stages_it_needs_is_refused_before_any_call(rehearsal):
    refused = run_playbook(
        "site.yml", "--tags", "secrets", extra_vars={**rehearsal["extra"], "secrets_rotate": "database"}
    )
    assert refused.returncode != 0
    assert "the database and ecs stage(s) must run in the same play" in refused.output
    assert "TASK [preflight : Identify the AWS account]" not in refused.output


def test_a_task_that_cannot_start_fails_verify_at_once_with_its_error(rehearsal):
    # The database secret no longer matches the instance's password (the database stage does not run).
    wrong = {**secret(rehearsal, "database"), "password": "not-the-instance-password-1234567"}
    rehearsal["secrets"].put_secret_value(SecretId=f"{PROJECT}/database", SecretString=json.dumps(wrong))
    before = {name: service["taskDefinition"] for name, service in services(rehearsal).items()}
    started = time.monotonic()
    run = run_playbook("site.yml", "--tags", "ecs,verify", extra_vars=rehearsal["extra"])
    elapsed = time.monotonic() - started
    assert run.returncode != 0
    # The new revisions' tasks keep failing, so ECS's circuit breaker (the ecs role turns it on, with rollback)
    # goes back to the revisions before them, which take the secret's previous version. Verify fails at once
    # either way: the revision this run registered is not the one that runs (as on AWS, where the old tasks keep
    # serving during the rolling update), or, offline, where the old task stopped first, at the third failure
    # the local runtime has recorded before ECS has counted it, the crash loop.
    assert (
        "ECS does not run the revision this deployment registered" in run.output
        or "Dagster cannot start, its tasks keep stopping with the same error" in run.output
    ), run.output[-6000:]
    assert 'password authentication failed for user \\"dagster\\"' in run.output  # the task's own error line
    # 3 task starts (~7 s each: the entrypoint's storage check) with the runtime's 2 s and 4 s back-offs,
    # then one verify interval; far below verify's 900 s timeout.
    assert elapsed < 240, f"verify took {elapsed:.0f} s to give up"
    # ECS rolled both services back to their previous revisions, which take the credentials they were made with.
    # (The rolled-back deployment's completion, after the old tasks' health checks, is tests/unit/test_oneoff.py's.)
    rolled_back = wait_for(
        lambda: services(rehearsal),
        120,
        1,
        "the services to be rolled back to their previous revisions",
        until=lambda now: all(now[name]["taskDefinition"] == before[name] for name in SERVICES),
    )
    for name in SERVICES:
        messages = [event["message"] for event in rolled_back[name]["events"]]
        assert f"(service {name}) rolling back to {before[name].rsplit('/', 1)[-1]}." in messages, messages
        assert any("deployment failed: tasks failed to start." in message for message in messages), messages


def test_a_migration_that_fails_stops_the_rollout_with_the_tasks_log(rehearsal):
    # As the test before left it: the database secret no longer matches the instance's password.
    before = {name: service["taskDefinition"] for name, service in services(rehearsal).items()}
    failed = run_playbook(
        "site.yml", "--tags", "ecs", extra_vars={**rehearsal["extra"], "dagster_ecs_dagster_version": "1.14.0"}
    )
    assert failed.returncode != 0
    assert (
        "run (migrate) of arn:aws:ecs:" in failed.output
        and ", exited 1: Essential container in task exited" in failed.output
    )
    assert "password authentication failed" in failed.output  # the task's own log line, in the failure
    assert "TASK [ecs : Create or update the services]" not in failed.output
    assert {name: service["taskDefinition"] for name, service in services(rehearsal).items()} == before
    assert [t["containers"][0].get("exitCode") for t in migrations(rehearsal)].count(1) == 1
