"""The emulator's call recorder (calls.py) and the roles' credentials (credentials.py), over real HTTP.

A fresh emulator; boto3 signs as the deployer's key or as a role's key from the emulator's STS
(``RoleSessions``, what the local runtime hands each task); ``GET /_dagster_ecs_emulator/calls``
must name each call's principal, action, resource and context as IAM would judge it, including the
actions ``RunTask`` implies (``ecs:TagResource`` with tags, ``iam:PassRole`` of the task's roles).
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import urllib.request

import boto3
import pytest
from botocore.config import Config
from dagster_ecs_emulator.calls import CALLS_PATH
from dagster_ecs_emulator.credentials import ENV, CredentialsRoutes, RoleSessions
from dagster_ecs_emulator.metadata import MetadataEndpoint
from support.aws_inventory import REGION, clients
from support.emulator import spawn_emulator

ACCOUNT = "123456789012"
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    started = spawn_emulator(tmp_path_factory.mktemp("emulator"))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def world(emulator):
    make = clients(emulator.endpoint)
    iam, ec2, ecs = make("iam"), make("ec2"), make("ecs")
    roles = {
        name: iam.create_role(RoleName=f"p-{name}", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
        for name in ("daemon-task", "run-task", "execution")
    }
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="tasks", Description="tasks", VpcId=vpc)["GroupId"]
    ecs.create_cluster(clusterName="p")
    definition = ecs.register_task_definition(
        family="p-run",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        taskRoleArn=roles["run-task"],
        executionRoleArn=roles["execution"],
        containerDefinitions=[{"name": "run", "image": "local", "essential": True}],
    )["taskDefinition"]["taskDefinitionArn"]
    s3 = make("s3")
    s3.create_bucket(Bucket="dags", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="dags", Key="manifest.json", Body=b"{}")
    return {
        "roles": roles,
        "network": {"subnets": [subnet], "securityGroups": [group]},
        "definition": definition,
        "sessions": RoleSessions(make),
    }


def recorded(emulator, forget=False) -> list[dict]:
    method = "DELETE" if forget else "GET"
    request = urllib.request.Request(emulator.endpoint + CALLS_PATH, method=method)
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - the test's own loopback emulator
        return json.loads(answer.read())["calls"]


def as_role(world, emulator, role: str):
    return world["sessions"].client_factory(world["roles"][role], "task-1", emulator.endpoint, REGION)


def test_a_run_task_is_recorded_with_what_it_implies(emulator, world):
    recorded(emulator, forget=True)
    ecs = as_role(world, emulator, "daemon-task")("ecs")
    task = ecs.run_task(
        cluster="p",
        taskDefinition="p-run",
        launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": world["network"]},
        tags=[{"key": "dagster/run_id", "value": "r-1"}],
    )["tasks"][0]["taskArn"]
    ecs.describe_tasks(cluster="p", tasks=[task.rsplit("/", 1)[-1]])
    cluster = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/p"
    daemon = world["roles"]["daemon-task"]
    calls = {
        (c["action"], c["resource"], json.dumps(c["context"], sort_keys=True))
        for c in recorded(emulator)
        if c["principal"] == daemon and c["outcome"] == "ok"
    }
    assert calls == {
        ("ecs:RunTask", world["definition"], json.dumps({"ecs:cluster": cluster})),
        ("ecs:TagResource", task, json.dumps({"ecs:CreateAction": "RunTask"})),
        ("iam:PassRole", world["roles"]["execution"], json.dumps({"iam:PassedToService": "ecs-tasks.amazonaws.com"})),
        ("iam:PassRole", world["roles"]["run-task"], json.dumps({"iam:PassedToService": "ecs-tasks.amazonaws.com"})),
        ("ecs:DescribeTasks", task, json.dumps({"ecs:cluster": cluster})),
    }


def test_s3_reads_name_the_object_and_the_bucket_and_the_deployer_is_itself(emulator, world):
    recorded(emulator, forget=True)
    s3 = as_role(world, emulator, "run-task")("s3")
    s3.get_object(Bucket="dags", Key="manifest.json")
    s3.head_object(Bucket="dags", Key="manifest.json")
    s3.list_objects_v2(Bucket="dags", Prefix="versions/")
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket="dags", Key="missing")
    clients(emulator.endpoint)("s3").get_bucket_versioning(Bucket="dags")
    run = world["roles"]["run-task"]
    calls = {(c["principal"], c["action"], c["resource"], c["outcome"], c["count"]) for c in recorded(emulator)}
    assert calls == {
        (run, "s3:GetObject", "arn:aws:s3:::dags/manifest.json", "ok", 2),
        (run, "s3:ListBucket", "arn:aws:s3:::dags", "ok", 1),
        (run, "s3:GetObject", "arn:aws:s3:::dags/missing", "404", 1),
        ("access-key/AKIAOFFLINEREHEARSAL", "s3:GetBucketVersioning", "arn:aws:s3:::dags", "ok", 1),
        ("access-key/AKIAOFFLINEREHEARSAL", "sts:AssumeRole", run, "ok", 1),  # RoleSessions, as ECS
    }


def test_a_task_reads_its_roles_credentials_from_its_credentials_uri_and_holds_no_key(emulator, world):
    routes = CredentialsRoutes(world["sessions"])
    endpoint = MetadataEndpoint(credentials=routes)
    try:
        uri = endpoint.credentials_uri(world["roles"]["run-task"], f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/p/abc")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            {
                ENV: uri,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_CONFIG_FILE": os.devnull,
            }
        )
        code = (
            f"import boto3; print(boto3.client('sts', endpoint_url={emulator.endpoint!r}).get_caller_identity()['Arn'])"
        )
        answer = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert answer.returncode == 0, answer.stderr[-2000:]
        assert answer.stdout.strip() == f"arn:aws:sts::{ACCOUNT}:assumed-role/p-run-task/abc"
        endpoint.forget(f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/p/abc")
        assert routes.answer(uri.removeprefix(endpoint.base()))[0] == 404, "a stopped task's credentials are gone"
    finally:
        endpoint.close()


def test_credentials_are_assumed_again_before_they_expire(world):
    sessions = world["sessions"]
    first = sessions.credentials(world["roles"]["run-task"], "refresh")
    assert sessions.credentials(world["roles"]["run-task"], "refresh")["AccessKeyId"] == first["AccessKeyId"]
    key = (world["roles"]["run-task"], "refresh")

    sessions.sessions[key]["Expiration"] = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
    assert sessions.credentials(world["roles"]["run-task"], "refresh")["AccessKeyId"] != first["AccessKeyId"]


def test_a_deploys_task_definition_passes_its_roles_and_says_it_came_from_ansible(emulator, world):
    recorded(emulator, forget=True)
    ecs = boto3.session.Session(
        aws_access_key_id="AKIAOFFLINEREHEARSAL", aws_secret_access_key="x", region_name=REGION
    ).client("ecs", endpoint_url=emulator.endpoint, config=Config(user_agent="APN/1.0 Ansible/2.18.1 amazon.aws/9.5.0"))
    ecs.register_task_definition(
        family="p-run",
        taskRoleArn=world["roles"]["run-task"],
        containerDefinitions=[{"name": "run", "image": "local", "essential": True, "memory": 512}],
    )
    calls = {(c["principal"], c["action"], c["resource"], c["client"]) for c in recorded(emulator)}
    deployer = "access-key/AKIAOFFLINEREHEARSAL"
    assert calls == {
        (deployer, "ecs:RegisterTaskDefinition", "*", "ansible"),
        (deployer, "iam:PassRole", world["roles"]["run-task"], "ansible"),
    }
