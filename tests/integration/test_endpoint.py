"""Another emulator on the profile's endpoint: LocalStack Community is understood before anything is deployed.

tests/support/localstack_stub.py answers like localstack-core 2026.3.0 (its /_localstack/health, and HTTP 501
license answers for ECS, RDS, ELBv2, EFS, ECR, Cloud Map and Application Auto Scaling), forwarding the
APIs it does serve to an embedded emulator when given one.
"""

from __future__ import annotations

import json
import shutil

import boto3
import pytest
from support.emulator import OFFLINE_CREDENTIALS
from support.localstack_stub import LocalStackStub
from support.paths import ROOT
from support.playbook import run_playbook

pytestmark = pytest.mark.integration
BUCKET = "dagster-ecs-dags-123456789012-ap-southeast-2"


def test_localstack_lacking_services_stops_the_run_before_any_aws_call(tmp_path):
    with LocalStackStub() as stub:
        extra = {"dagster_ecs_aws_endpoint_url": stub.endpoint, "dagster_ecs_state_dir": str(tmp_path)}
        run = run_playbook("site.yml", extra_vars=extra, timeout=300)
    assert run.returncode != 0
    output = " ".join(run.output.split())
    assert f"{stub.endpoint} is LocalStack (community 2026.3.0), which does not serve" in output
    for service, stage in [("efs", "storage"), ("rds", "database"), ("elbv2", "loadbalancer"), ("ecs", "ecs"),
                           ("ecr", "registry"), ("servicediscovery", "discovery"),
                           ("application-autoscaling", "autoscaling")]:  # fmt: skip
        assert f"{service} (" in output and stage in output.split(f"{service} (", 1)[1].split(")")[0], service
    assert "LocalStack Pro" in output and "make rehearsal ENDPOINT=http://127.0.0.1:4599" in output
    assert (
        "Of the selected stages LocalStack can serve preflight, network, security_groups, logging, dags, secrets"
        in output
    )
    assert stub.aws_calls() == [], "an AWS call reached the endpoint before the check"


def test_dags_alone_publishes_through_a_localstack(tmp_path, start_emulator):
    backend = start_emulator()
    session = boto3.session.Session(
        aws_access_key_id=OFFLINE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=OFFLINE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name="ap-southeast-2",
    )
    s3 = session.client("s3", endpoint_url=backend.endpoint)
    # The storage stage's bucket (LocalStack Community cannot run that stage: it needs EFS).
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "ap-southeast-2"})
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    dags = tmp_path / "dags"
    shutil.copytree(ROOT / "dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
    with LocalStackStub(backend.endpoint) as stub:
        extra = {
            "dagster_ecs_aws_endpoint_url": stub.endpoint,
            "dagster_ecs_state_dir": str(tmp_path / "state"),
            "dagster_ecs_dags_dir": str(dags),
        }
        run = run_playbook("site.yml", "--tags", "dags", extra_vars=extra, timeout=600)
    assert run.returncode == 0, run.output[-4000:]
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key="dags/manifest.json")["Body"].read())
    assert manifest["version"]
    # What the preflight (aws_caller_info: sts, iam) and the dags stage call, and nothing else.
    assert {service for _, _, service in stub.aws_calls()} <= {"sts", "iam", "s3", "secretsmanager"}
