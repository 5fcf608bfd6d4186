"""site.yml end to end on a fresh emulator, the way a user runs it.

One emulator for the module: the offline profile starts it itself (nothing listens on the
chosen port), site.yml provisions everything, a second run must change nothing, the
resources are checked through boto3, a single stage runs alone, teardown leaves nothing,
and then the production inventory (the code path real AWS takes) is run against the same
emulator with only the endpoint overridden.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_inventory import clients, leftovers
from conftest import OFFLINE_CREDENTIALS, ROOT, free_port, run_playbook

pytestmark = pytest.mark.integration

PROJECT = "dagster-ecs"
REGION = "ap-southeast-2"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    extra = {
        "dagster_ecs_aws_endpoint_url": endpoint,
        "dagster_ecs_state_dir": str(state),
        "local_runtime_proxy_port": free_port(),
    }
    yield {"endpoint": endpoint, "state": Path(state), "extra": extra}
    run_playbook("playbooks/down.yml", extra_vars=extra)


@pytest.fixture(scope="module")
def aws(env):
    return clients(env["endpoint"], REGION)


@pytest.fixture(scope="module")
def first_run(env):
    return run_playbook("site.yml", extra_vars=env["extra"])


def test_first_run_provisions_and_starts_the_emulator(first_run, env):
    assert first_run.returncode == 0, first_run.output[-6000:]
    assert first_run.recap["failed"] == 0
    assert first_run.recap["changed"] > 20
    pid_file = env["state"] / "localstack" / "emulator.pid"
    assert pid_file.exists(), "the offline profile did not record the emulator it started"
    assert f"{env['endpoint']} is served by dagster-ecs-emulator (started now" in first_run.output


def test_network(first_run, aws):
    ec2 = aws("ec2")
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Project", "Values": [PROJECT]}])["Vpcs"]
    assert [v["CidrBlock"] for v in vpcs] == ["10.0.0.0/16"]
    vpc_id = vpcs[0]["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    assert sorted((s["CidrBlock"], s["AvailabilityZone"]) for s in subnets) == [
        ("10.0.1.0/24", "ap-southeast-2a"),
        ("10.0.2.0/24", "ap-southeast-2b"),
    ]
    assert all(s["MapPublicIpOnLaunch"] for s in subnets)
    igws = ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}])
    assert len(igws["InternetGateways"]) == 1
    tables = ec2.describe_route_tables(Filters=[{"Name": "tag:Name", "Values": [f"{PROJECT}-public"]}])["RouteTables"]
    assert len(tables) == 1
    routes = {r.get("DestinationCidrBlock"): r.get("GatewayId") for r in tables[0]["Routes"]}
    assert routes["0.0.0.0/0"] == igws["InternetGateways"][0]["InternetGatewayId"]
    assert {a["SubnetId"] for a in tables[0]["Associations"]} == {s["SubnetId"] for s in subnets}


def _groups(ec2):
    found = ec2.describe_security_groups(Filters=[{"Name": "tag:Project", "Values": [PROJECT]}])["SecurityGroups"]
    return {g["GroupName"].removeprefix(f"{PROJECT}-"): g for g in found}


def test_security_groups_chain(first_run, aws):
    groups = _groups(aws("ec2"))
    assert set(groups) == {"alb", "tasks", "database", "efs"}
    ids = {name: g["GroupId"] for name, g in groups.items()}

    def ingress(name):
        return [
            (
                p["IpProtocol"],
                p.get("FromPort"),
                [r["CidrIp"] for r in p["IpRanges"]],
                sorted(u["GroupId"] for u in p["UserIdGroupPairs"]),
            )
            for p in groups[name]["IpPermissions"]
        ]

    assert ingress("alb") == [("tcp", 80, ["0.0.0.0/0"], [])]
    assert ("tcp", 8080, [], [ids["alb"]]) in ingress("tasks")
    assert all(not cidrs for _, _, cidrs, _ in ingress("tasks")), "tasks must not be open to any CIDR"
    assert ingress("database") == [("tcp", 5432, [], [ids["tasks"]])]
    assert ingress("efs") == [("tcp", 2049, [], [ids["tasks"]])]
    alb_egress = groups["alb"]["IpPermissionsEgress"]
    assert [
        (p["IpProtocol"], p.get("FromPort"), [u["GroupId"] for u in p["UserIdGroupPairs"]]) for p in alb_egress
    ] == [("tcp", 8080, [ids["tasks"]])]
    assert groups["database"]["IpPermissionsEgress"] == []
    assert groups["efs"]["IpPermissionsEgress"] == []


def test_storage(first_run, aws):
    s3 = aws("s3")
    bucket = f"{PROJECT}-dags-123456789012-{REGION}"
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {
        k: True for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
    }
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    efs = aws("efs")
    systems = efs.describe_file_systems(CreationToken=PROJECT)["FileSystems"]
    assert len(systems) == 1
    fs = systems[0]
    assert fs["Encrypted"] is True
    assert fs["ThroughputMode"] == "bursting"
    assert fs["Name"] == PROJECT
    targets = efs.describe_mount_targets(FileSystemId=fs["FileSystemId"])["MountTargets"]
    assert len(targets) == 2
    efs_sg = _groups(aws("ec2"))["efs"]["GroupId"]
    for target in targets:
        groups = efs.describe_mount_target_security_groups(MountTargetId=target["MountTargetId"])["SecurityGroups"]
        assert groups == [efs_sg]
    points = efs.describe_access_points(FileSystemId=fs["FileSystemId"])["AccessPoints"]
    assert len(points) == 1
    assert points[0]["PosixUser"] == {"Uid": 1000, "Gid": 1000}
    assert points[0]["RootDirectory"]["Path"] == "/dagster"


def test_registry_secrets_logs(first_run, aws):
    ecr = aws("ecr")
    repo = ecr.describe_repositories(repositoryNames=[PROJECT])["repositories"][0]
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    assert repo["imageTagMutability"] == "IMMUTABLE"
    lifecycle = json.loads(ecr.get_lifecycle_policy(repositoryName=PROJECT)["lifecyclePolicyText"])
    assert lifecycle["rules"][0]["selection"]["countNumber"] == 10
    tags = {t["Key"]: t["Value"] for t in ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]}
    assert tags["Project"] == PROJECT
    sm = aws("secretsmanager")
    for name, keys in (
        (f"{PROJECT}/database", {"username", "password", "dbname", "engine"}),
        (f"{PROJECT}/basic-auth", {"username", "password"}),
    ):
        value = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
        assert set(value) == keys
        assert len(value["password"]) == 32
    logs = aws("logs").describe_log_groups(logGroupNamePrefix=f"/ecs/{PROJECT}")["logGroups"]
    assert [(g["logGroupName"], g["retentionInDays"]) for g in logs] == [(f"/ecs/{PROJECT}", 30)]


def test_database(first_run, aws):
    db = aws("rds").describe_db_instances(DBInstanceIdentifier=PROJECT)["DBInstances"][0]
    assert db["Engine"] == "postgres"
    assert db["DBInstanceClass"] == "db.t3.micro"
    assert db["StorageEncrypted"] is True
    assert db["PubliclyAccessible"] is False
    assert db["DeletionProtection"] is True
    assert [g["VpcSecurityGroupId"] for g in db["VpcSecurityGroups"]] == [_groups(aws("ec2"))["database"]["GroupId"]]
    assert db["DBSubnetGroup"]["DBSubnetGroupName"] == PROJECT
    assert len(db["DBSubnetGroup"]["Subnets"]) == 2


def test_iam_roles(first_run, aws):
    iam = aws("iam")
    for role in (f"{PROJECT}-task-execution", f"{PROJECT}-task"):
        found = iam.get_role(RoleName=role)["Role"]
        trust = found["AssumeRolePolicyDocument"]
        assert trust["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    assert iam.list_users()["Users"] == [], "no IAM user (and so no static key) is ever created"
    execution = iam.get_role_policy(RoleName=f"{PROJECT}-task-execution", PolicyName=f"{PROJECT}-task-execution")
    actions = {a for s in execution["PolicyDocument"]["Statement"] for a in _list(s["Action"])}
    assert actions == {
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "secretsmanager:GetSecretValue",
    }
    task = iam.get_role_policy(RoleName=f"{PROJECT}-task", PolicyName=f"{PROJECT}-task")["PolicyDocument"]
    by_sid = {s["Sid"]: s for s in task["Statement"]}
    assert by_sid["ListTheDagBucket"]["Resource"] == f"arn:aws:s3:::{PROJECT}-dags-123456789012-{REGION}"
    assert by_sid["RunLauncherPassTheseRolesToEcsTasksOnly"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }


def _list(value):
    return value if isinstance(value, list) else [value]


def test_load_balancer(first_run, aws):
    elb = aws("elbv2")
    lb = elb.describe_load_balancers(Names=[f"{PROJECT}-alb"])["LoadBalancers"][0]
    assert lb["Scheme"] == "internet-facing"
    assert len(lb["AvailabilityZones"]) == 2
    assert lb["SecurityGroups"] == [_groups(aws("ec2"))["alb"]["GroupId"]]
    tg = elb.describe_target_groups(Names=[f"{PROJECT}-web"])["TargetGroups"][0]
    assert (tg["TargetType"], tg["Port"], tg["Protocol"]) == ("ip", 8080, "HTTP")
    assert tg["HealthCheckPath"] == "/health"
    listeners = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    assert [(li["Port"], li["Protocol"], li["DefaultActions"][0]["TargetGroupArn"]) for li in listeners] == [
        (80, "HTTP", tg["TargetGroupArn"])
    ]


def test_service_discovery(first_run, aws):
    sd = aws("servicediscovery")
    namespaces = [n for n in sd.list_namespaces()["Namespaces"] if n["Name"] == f"{PROJECT}.local"]
    assert len(namespaces) == 1 and namespaces[0]["Type"] == "DNS_PRIVATE"
    services = sd.list_services(Filters=[{"Name": "NAMESPACE_ID", "Values": [namespaces[0]["Id"]], "Condition": "EQ"}])[
        "Services"
    ]
    assert sorted(s["Name"] for s in services) == ["daemon", "webserver"]


def test_ecs(first_run, aws):
    ecs = aws("ecs")
    described = ecs.describe_services(
        cluster=PROJECT, services=[f"{PROJECT}-webserver", f"{PROJECT}-daemon"], include=["TAGS"]
    )["services"]
    services = {s["serviceName"].removeprefix(f"{PROJECT}-"): s for s in described}
    assert set(services) == {"webserver", "daemon"}
    for name, service in services.items():
        assert service["launchType"] == "FARGATE"
        breaker = service["deploymentConfiguration"]["deploymentCircuitBreaker"]
        assert breaker == {"enable": True, "rollback": True}
        assert service["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "ENABLED"
        assert len(service["serviceRegistries"]) == 1
        definition = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
        assert definition["runtimePlatform"] == {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"}
        assert (definition["cpu"], definition["memory"]) == ("256", "512")
        assert definition["requiresCompatibilities"] == ["FARGATE"]
        container = definition["containerDefinitions"][0]
        assert container["command"] == [name]
        assert container["logConfiguration"]["options"]["awslogs-group"] == f"/ecs/{PROJECT}"
        assert container["healthCheck"]["command"][:3] == ["CMD", "dagster-ecs-entrypoint", "healthcheck"]
        secrets = {s["name"]: s["valueFrom"] for s in container["secrets"]}
        assert secrets["DAGSTER_POSTGRES_PASSWORD"].endswith(":password::")
        assert not any("PASSWORD" in e["name"] for e in container["environment"])
        efs = definition["volumes"][0]["efsVolumeConfiguration"]
        assert efs["transitEncryption"] == "ENABLED"
        assert efs["authorizationConfig"]["iam"] == "ENABLED"
    web = services["webserver"]
    assert web["deploymentConfiguration"]["minimumHealthyPercent"] == 100
    assert web["deploymentConfiguration"]["maximumPercent"] == 200
    assert web["loadBalancers"][0]["containerPort"] == 8080
    assert web["healthCheckGracePeriodSeconds"] == 120
    daemon = services["daemon"]
    assert daemon["deploymentConfiguration"]["maximumPercent"] == 100, "two Dagster daemons must never overlap"
    assert daemon["loadBalancers"] == []


def test_autoscaling(first_run, aws):
    aas = aws("application-autoscaling")
    targets = aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert [(t["ResourceId"], t["MinCapacity"], t["MaxCapacity"]) for t in targets] == [
        (f"service/{PROJECT}/{PROJECT}-webserver", 1, 2)
    ]
    policies = aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]
    tracked = {
        p["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]["PredefinedMetricType"]: p[
            "TargetTrackingScalingPolicyConfiguration"
        ]["TargetValue"]
        for p in policies
    }
    assert tracked == {"ECSServiceAverageCPUUtilization": 70.0, "ECSServiceAverageMemoryUtilization": 80.0}


def test_outputs_file_has_ids_and_no_secret_values(first_run, env, aws):
    outputs = json.loads((env["state"] / "offline" / "outputs.json").read_text())
    for key in (
        "load_balancer_url",
        "dag_bucket",
        "ecs_cluster",
        "ecs_services",
        "ecr_repository_url",
        "database_endpoint",
        "secrets",
    ):
        assert outputs[key], key
    assert outputs["load_balancer_url"].startswith("http://")
    text = json.dumps(outputs)
    sm = aws("secretsmanager")
    for arn in outputs["secrets"].values():
        password = json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])["password"]
        assert password not in text
        assert password not in first_run.output, "a generated secret reached the playbook output"


def test_second_run_changes_nothing(first_run, env):
    again = run_playbook("site.yml", extra_vars=env["extra"])
    assert again.returncode == 0, again.output[-6000:]
    assert again.recap["changed"] == 0, f"changed on re-run: {again.changed_tasks()}"


def test_check_mode_on_the_converged_stack_changes_nothing(first_run, env):
    check = run_playbook("site.yml", "--check", "--diff", extra_vars=env["extra"])
    assert check.returncode == 0, check.output[-6000:]
    assert check.recap["changed"] == 0, check.changed_tasks()


def test_one_stage_alone_looks_up_the_others(first_run, env):
    stage = run_playbook("site.yml", "--tags", "ecs", extra_vars=env["extra"])
    assert stage.returncode == 0, stage.output[-6000:]
    assert stage.recap["changed"] == 0, stage.changed_tasks()
    assert "Create the VPC" not in stage.output, "--tags ecs ran the network stage"


def test_teardown_leaves_nothing(first_run, env):
    down = run_playbook("playbooks/teardown.yml", extra_vars=env["extra"])
    assert down.returncode == 0, down.output[-6000:]
    assert leftovers(env["endpoint"], PROJECT) == {}
    again = run_playbook("playbooks/teardown.yml", extra_vars=env["extra"])
    assert again.returncode == 0, again.output[-6000:]
    assert again.recap["changed"] == 0, again.changed_tasks()


def test_production_inventory_against_the_emulator(env):
    """The code path real AWS takes: no emulator start, credentials from the environment."""
    extra = {"dagster_ecs_aws_endpoint_url": env["endpoint"], "dagster_ecs_state_dir": str(env["state"])}
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
    assert outputs["environment"] == "production"
    again = run_playbook("site.yml", *skip, inventory="inventory/production", extra_vars=extra, env=creds)
    assert again.recap["changed"] == 0, again.changed_tasks()

    refused = run_playbook("playbooks/teardown.yml", inventory="inventory/production", extra_vars=extra, env=creds)
    assert refused.returncode != 0
    assert "teardown_confirm=dagster-ecs" in refused.output
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
