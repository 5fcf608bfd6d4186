"""The offline profile starts its emulator; the production inventory deploys and tears down on it.

One emulator for the module, started by the offline profile itself (nothing listens on the
chosen port). The production inventory (the code path real AWS takes: no emulator start,
credentials from the environment) then runs site.yml against it with only the endpoint
overridden, and teardown refuses without confirmation, then deletes everything but the final
snapshot. The offline site.yml end to end (every stage's resources, a check-mode re-run) is
tests/integration/test_workload.py's; each stage alone, its idempotence and teardown's are the
molecule scenarios' (tests/test_molecule.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_inventory import leftovers
from conftest import OFFLINE_CREDENTIALS, ROOT, offline_environment, run_playbook

pytestmark = pytest.mark.integration

PROJECT = "dagster-ecs"
REGION = "ap-southeast-2"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with offline_environment(tmp_path_factory) as environment:
        yield environment


@pytest.fixture(scope="module")
def emulator(env):
    """The offline profile's preflight: nothing listens on the endpoint, so it starts the emulator."""
    return run_playbook("playbooks/preflight.yml", extra_vars=env["extra"])


def test_the_offline_profile_starts_the_emulator(emulator, env):
    assert emulator.returncode == 0, emulator.output[-6000:]
    pid_file = env["state"] / "localstack" / "emulator.pid"
    assert pid_file.exists(), "the offline profile did not record the emulator it started"
    assert f"{env['endpoint']} is served by dagster-ecs-emulator (started now" in emulator.output


def test_production_inventory_against_the_emulator(emulator, env):
    """The code path real AWS takes: no emulator start, credentials from the environment."""
    extra = {
        "dagster_ecs_aws_endpoint_url": env["endpoint"],
        "dagster_ecs_state_dir": str(env["state"]),
        "dagster_ecs_project": PROJECT,
    }
    creds = dict(OFFLINE_CREDENTIALS)
    assert leftovers(env["endpoint"], PROJECT) == {}
    # verify is the one stage that cannot pass here: it waits for Fargate tasks behind the ALB,
    # and the emulator runs no task (the offline profile's local runtime does, not production's).
    skip = ("--skip-tags", "verify")
    run = run_playbook("site.yml", *skip, inventory="inventory/production", extra_vars=extra, env=creds)
    assert run.returncode == 0, run.output[-6000:]
    assert "served by" not in run.output, "the production inventory must never start or probe an emulator"
    assert not (env["state"] / "production" / "runtime").exists(), "production must not start the local runtime"
    outputs = json.loads((env["state"] / "production" / "outputs.json").read_text())
    assert (outputs["environment"], outputs["project"]) == ("production", PROJECT)

    refused = run_playbook("playbooks/teardown.yml", inventory="inventory/production", extra_vars=extra, env=creds)
    assert refused.returncode != 0
    assert f"teardown_confirm={PROJECT}" in refused.output
    assert leftovers(env["endpoint"], PROJECT), "an unconfirmed teardown deleted something"

    down = run_playbook(
        "playbooks/teardown.yml",
        inventory="inventory/production",
        env=creds,
        extra_vars={**extra, "teardown_confirm": PROJECT},
    )
    assert down.returncode == 0, down.output[-6000:]
    left = leftovers(env["endpoint"], PROJECT)
    snapshots = left.pop("db_snapshots", [])
    assert left == {}
    assert len(snapshots) == 1 and snapshots[0].startswith(f"{PROJECT}-final-"), "production keeps a final snapshot"


def test_down_stops_the_emulator(env):
    pid_file = env["state"] / "localstack" / "emulator.pid"
    pid = int(pid_file.read_text())
    down = run_playbook("playbooks/down.yml", extra_vars=env["extra"])
    assert down.returncode == 0, down.output[-3000:]
    assert not pid_file.exists()
    assert not _running(pid), f"emulator {pid} still runs after make down"


def _running(pid: int) -> bool:
    """True while the process exists and is not a zombie (an exited child nobody reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_inventories_differ_only_in_endpoint_and_offline_settings():
    offline = ROOT / "inventory/localstack/group_vars/all/dagster_ecs.yml"
    production = ROOT / "inventory/production/group_vars/all/dagster_ecs.yml"
    assert offline.resolve() == production.resolve(), "the offline profile must deploy production's tunables"
    files = {p.name for p in (ROOT / "inventory/localstack/group_vars/all").iterdir()}
    assert (
        files
        == {p.name for p in (ROOT / "inventory/production/group_vars/all").iterdir()}
        == {"aws.yml", "dagster_ecs.yml"}
    )
