"""The shims that extend moto's XML answers (EC2, ELBv2, RDS), read back by botocore as a module reads them.

An in-process emulator (``build_app`` on a loopback port) and boto3: a parsed answer proves the
document the shim wrote (xml.etree, in moto's namespace) is one botocore reads as AWS's. The
scenarios in ``scenarios/`` prove the same shims are needed by the modules (``test_compat.py``).
"""

from __future__ import annotations

import threading

import boto3
import pytest
from dagster_ecs_emulator import patches
from dagster_ecs_emulator.compat import Elbv2AlbDefaultAttributes, RdsUniqueResourceId
from dagster_ecs_emulator.server import build_app
from moto.core.base_backend import BackendDict
from werkzeug.serving import make_server

REGION = "eu-west-1"


@pytest.fixture(scope="module")
def client():
    server = make_server("127.0.0.1", 0, build_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_port}"

    def _client(service):
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    yield _client
    server.shutdown()
    patches.uninstall()
    BackendDict.reset()


def test_rule_description_update_returns_true(client):
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    group = ec2.create_security_group(GroupName="xml", Description="xml", VpcId=vpc)["GroupId"]
    rule = {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "10.9.0.0/16"}]}
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[rule])
    described = dict(rule, IpRanges=[{"CidrIp": "10.9.0.0/16", "Description": "web"}])
    answer = ec2.update_security_group_rule_descriptions_ingress(GroupId=group, IpPermissions=[described])
    assert answer["Return"] is True


def test_alb_attributes_list_the_defaults_and_keep_what_was_set(client):
    ec2, elbv2 = client("ec2"), client("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.8.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")["Subnet"][
            "SubnetId"
        ]
        for i, zone in enumerate("ab")
    ]
    arn = elbv2.create_load_balancer(Name="xml", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
    elbv2.modify_load_balancer_attributes(
        LoadBalancerArn=arn, Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "120"}]
    )
    attributes = elbv2.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]
    keys = [attribute["Key"] for attribute in attributes]
    assert len(keys) == len(set(keys))
    values = {attribute["Key"]: attribute["Value"] for attribute in attributes}
    assert set(Elbv2AlbDefaultAttributes.ALB_DEFAULTS) <= set(values)
    assert values["idle_timeout.timeout_seconds"] == "120"
    assert values["routing.http2.enabled"] == "true"


def test_gp3_instances_report_their_baseline_and_their_own_resource_id(client):
    rds = client("rds")
    common = {"Engine": "postgres", "DBInstanceClass": "db.t4g.micro", "StorageType": "gp3"}
    common |= {"MasterUsername": "dagster", "MasterUserPassword": "not-a-secret-1"}
    small = rds.create_db_instance(DBInstanceIdentifier="small", AllocatedStorage=20, **common)["DBInstance"]
    large = rds.create_db_instance(DBInstanceIdentifier="large", AllocatedStorage=400, **common)["DBInstance"]
    assert (small["Iops"], small["StorageThroughput"]) == (3000, 125)
    assert (large["Iops"], large["StorageThroughput"]) == (12000, 500)
    described = {db["DBInstanceIdentifier"]: db for db in rds.describe_db_instances()["DBInstances"]}
    assert (described["large"]["Iops"], described["large"]["StorageThroughput"]) == (12000, 500)
    ids = {small["DbiResourceId"], large["DbiResourceId"]}
    assert len(ids) == 2 and RdsUniqueResourceId._moto_id not in ids
    assert {db["DbiResourceId"] for db in described.values()} == ids
