"""What each stage of site.yml must have built, asserted through boto3 (and HTTP for the local stages).

One function per site.yml stage tag, each taking a :class:`Stack` (the emulator endpoint, the
project and the state directory). Used by tests/integration/test_workload.py after a whole site.yml and
by the molecule scenarios' verify step (molecule/shared/verify.yml), one stage at a time:

    python tests/support/stage_checks.py network --endpoint http://127.0.0.1:4566 --project dagster-ecs

Exits 0 and prints ``ok: <stage>`` or exits 1 with the failed assertion. ``--mark FILE`` creates FILE once
every check passed (molecule's verify marks the stage built that way, with no module run of its own).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

if __package__ in (None, ""):  # run as a script (molecule's verify): python tests/support/stage_checks.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.aws_inventory import REGION, clients, leftovers  # noqa: E402
from support.iam_actions import DAEMON_ONLY, EXECUTION, JOBS, RUN, WEBSERVER_ONLY, actions_of  # noqa: E402
from support.net import request, wait_for  # noqa: E402

ACCOUNT = "123456789012"
# What the checks expect is what the offline profile's inventory asks for (its literal values).
INVENTORY_VARS = Path(__file__).resolve().parents[2] / "inventory/localstack/group_vars/all/dagster_ecs.yml"


def inventory(name: str):
    """A variable of the offline inventory (a literal value, not a template)."""
    value = yaml.safe_load(INVENTORY_VARS.read_text())[name]
    assert "{{" not in str(value), f"{name} in {INVENTORY_VARS} is a template; the checks read literal values only"
    return value


@dataclass
class Stack:
    endpoint: str
    project: str = "dagster-ecs"
    region: str = REGION
    state_dir: Path | None = None
    environment: str = "offline"
    url: str = ""
    _clients: dict = field(default_factory=dict, repr=False)

    def aws(self, service):
        if service not in self._clients:
            self._clients[service] = clients(self.endpoint, self.region)(service)
        return self._clients[service]

    @property
    def bucket(self) -> str:
        return f"{self.project}-dags-{ACCOUNT}-{self.region}"

    def outputs(self) -> dict:
        assert self.state_dir, "the stage check needs --state-dir"
        return json.loads((self.state_dir / self.environment / "outputs.json").read_text())

    def groups(self) -> dict:
        found = self.aws("ec2").describe_security_groups(Filters=[{"Name": "tag:Project", "Values": [self.project]}])
        return {g["GroupName"].removeprefix(f"{self.project}-"): g for g in found["SecurityGroups"]}


def network(stack: Stack) -> None:
    ec2 = stack.aws("ec2")
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Project", "Values": [stack.project]}])["Vpcs"]
    assert [v["CidrBlock"] for v in vpcs] == [inventory("network_vpc_cidr")]
    vpc_id = vpcs[0]["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    assert sorted((s["CidrBlock"], s["AvailabilityZone"]) for s in subnets) == sorted(
        (subnet["cidr"], f"{stack.region}{subnet['az']}") for subnet in inventory("network_public_subnets")
    )
    assert all(s["MapPublicIpOnLaunch"] for s in subnets)
    igws = ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}])
    assert len(igws["InternetGateways"]) == 1
    tables = ec2.describe_route_tables(Filters=[{"Name": "tag:Name", "Values": [f"{stack.project}-public"]}])
    tables = tables["RouteTables"]
    assert len(tables) == 1
    routes = {r.get("DestinationCidrBlock"): r.get("GatewayId") for r in tables[0]["Routes"]}
    assert routes["0.0.0.0/0"] == igws["InternetGateways"][0]["InternetGatewayId"]
    assert {a["SubnetId"] for a in tables[0]["Associations"]} == {s["SubnetId"] for s in subnets}


def security_groups(stack: Stack) -> None:
    groups = stack.groups()
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

    port = inventory("dagster_ecs_proxy_port")
    assert ingress("alb") == [("tcp", 80, inventory("security_groups_alb_ingress_cidrs"), [])]
    assert ("tcp", port, [], [ids["alb"]]) in ingress("tasks")
    assert all(not cidrs for _, _, cidrs, _ in ingress("tasks")), "tasks must not be open to any CIDR"
    assert ingress("database") == [("tcp", 5432, [], [ids["tasks"]])]
    assert ingress("efs") == [("tcp", 2049, [], [ids["tasks"]])]
    alb_egress = groups["alb"]["IpPermissionsEgress"]
    assert [
        (p["IpProtocol"], p.get("FromPort"), [u["GroupId"] for u in p["UserIdGroupPairs"]]) for p in alb_egress
    ] == [("tcp", port, [ids["tasks"]])]
    assert groups["database"]["IpPermissionsEgress"] == []
    assert groups["efs"]["IpPermissionsEgress"] == []


def logging(stack: Stack) -> None:
    logs = stack.aws("logs").describe_log_groups(logGroupNamePrefix=f"/ecs/{stack.project}")["logGroups"]
    retention = inventory("logging_retention_days")
    assert [(g["logGroupName"], g["retentionInDays"]) for g in logs] == [(f"/ecs/{stack.project}", retention)]


def storage(stack: Stack) -> None:
    s3 = stack.aws("s3")
    rule = s3.get_bucket_encryption(Bucket=stack.bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_versioning(Bucket=stack.bucket)["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=stack.bucket)["PublicAccessBlockConfiguration"]
    assert block == {
        k: True for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
    }
    policy = json.loads(s3.get_bucket_policy(Bucket=stack.bucket)["Policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    efs = stack.aws("efs")
    systems = efs.describe_file_systems(CreationToken=stack.project)["FileSystems"]
    assert len(systems) == 1
    fs = systems[0]
    assert fs["Encrypted"] is True
    assert fs["ThroughputMode"] == "bursting"
    assert fs["Name"] == stack.project
    targets = efs.describe_mount_targets(FileSystemId=fs["FileSystemId"])["MountTargets"]
    assert len(targets) == 2
    efs_sg = stack.groups()["efs"]["GroupId"]
    for target in targets:
        groups = efs.describe_mount_target_security_groups(MountTargetId=target["MountTargetId"])["SecurityGroups"]
        assert groups == [efs_sg]
    points = efs.describe_access_points(FileSystemId=fs["FileSystemId"])["AccessPoints"]
    assert len(points) == 1
    assert points[0]["PosixUser"] == {"Uid": 1000, "Gid": 1000}
    assert points[0]["RootDirectory"]["Path"] == "/dagster"


def dags(stack: Stack) -> None:
    """The live manifest names the example DAGs, its version is in the history, every object is stored."""
    s3 = stack.aws("s3")
    manifest = json.loads(s3.get_object(Bucket=stack.bucket, Key="dags/manifest.json")["Body"].read())
    files = manifest["files"]
    assert any(path.endswith("definitions.py") for path in files), sorted(files)
    s3.head_object(Bucket=stack.bucket, Key=f"dags/manifests/{manifest['version']}.json")
    for path, entry in files.items():
        stored = s3.head_object(Bucket=stack.bucket, Key=f"dags/objects/{entry['sha256']}")
        assert stored["ContentLength"] == entry["size"], path


def registry(stack: Stack) -> None:
    ecr = stack.aws("ecr")
    repo = ecr.describe_repositories(repositoryNames=[stack.project])["repositories"][0]
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    assert repo["imageTagMutability"] == "IMMUTABLE"
    lifecycle = json.loads(ecr.get_lifecycle_policy(repositoryName=stack.project)["lifecyclePolicyText"])
    assert lifecycle["rules"][0]["selection"]["countNumber"] == 10
    tags = {t["Key"]: t["Value"] for t in ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]}
    assert tags["Project"] == stack.project


def image(stack: Stack) -> None:
    """Without a Docker engine the stage builds nothing; with one, the configured tag is in ECR."""
    registry(stack)
    images = stack.aws("ecr").list_images(repositoryName=stack.project)["imageIds"]
    assert all(i.get("imageTag") for i in images), f"untagged images in {stack.project}: {images}"


def secrets(stack: Stack) -> None:
    sm = stack.aws("secretsmanager")
    for name, keys in (
        (f"{stack.project}/database", {"username", "password", "dbname", "engine"}),
        (f"{stack.project}/basic-auth", {"username", "password"}),
    ):
        value = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
        assert set(value) == keys
        assert len(value["password"]) == 32


def database(stack: Stack) -> None:
    db = stack.aws("rds").describe_db_instances(DBInstanceIdentifier=stack.project)["DBInstances"][0]
    assert db["Engine"] == "postgres"
    assert db["DBInstanceClass"] == "db.t3.micro"
    assert db["StorageEncrypted"] is True
    assert db["PubliclyAccessible"] is False
    assert db["DeletionProtection"] is True
    assert [g["VpcSecurityGroupId"] for g in db["VpcSecurityGroups"]] == [stack.groups()["database"]["GroupId"]]
    assert db["DBSubnetGroup"]["DBSubnetGroupName"] == stack.project
    assert len(db["DBSubnetGroup"]["Subnets"]) == 2


def iam(stack: Stack) -> None:
    client = stack.aws("iam")
    project = stack.project
    for role in (f"{project}-task-execution", *(f"{project}-{job}-task" for job in JOBS)):
        found = client.get_role(RoleName=role)["Role"]
        trust = found["AssumeRolePolicyDocument"]
        assert trust["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert client.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    assert client.list_users()["Users"] == [], "no IAM user (and so no static key) is ever created"
    execution = client.get_role_policy(RoleName=f"{project}-task-execution", PolicyName=f"{project}-task-execution")
    assert actions_of(execution["PolicyDocument"]) == EXECUTION
    granted = {}
    for job in JOBS:
        document = client.get_role_policy(RoleName=f"{project}-{job}-task", PolicyName=f"{project}-{job}-task")
        statements = document["PolicyDocument"]["Statement"]
        granted[job] = actions_of(document["PolicyDocument"])
        assert {s["Sid"]: s for s in statements}["ListTheDagBucket"]["Resource"] == f"arn:aws:s3:::{stack.bucket}"
    # One role per job: only the daemon starts runs and passes roles; a run's task can do nothing with ECS.
    assert granted["daemon"] - granted["webserver"] == DAEMON_ONLY
    assert granted["webserver"] - granted["run"] == WEBSERVER_ONLY
    assert not {a for a in granted["run"] if a.startswith("ecs:")}
    assert granted["run"] == RUN


def loadbalancer(stack: Stack) -> None:
    elb = stack.aws("elbv2")
    lb = elb.describe_load_balancers(Names=[f"{stack.project}-alb"])["LoadBalancers"][0]
    assert lb["Scheme"] == "internet-facing"
    assert len(lb["AvailabilityZones"]) == 2
    assert lb["SecurityGroups"] == [stack.groups()["alb"]["GroupId"]]
    tg = elb.describe_target_groups(Names=[f"{stack.project}-web"])["TargetGroups"][0]
    assert (tg["TargetType"], tg["Port"], tg["Protocol"]) == ("ip", inventory("dagster_ecs_proxy_port"), "HTTP")
    assert tg["HealthCheckPath"] == "/health"
    listeners = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    assert [(li["Port"], li["Protocol"], li["DefaultActions"][0]["TargetGroupArn"]) for li in listeners] == [
        (80, "HTTP", tg["TargetGroupArn"])
    ]


def discovery(stack: Stack) -> None:
    sd = stack.aws("servicediscovery")
    namespaces = [n for n in sd.list_namespaces()["Namespaces"] if n["Name"] == f"{stack.project}.local"]
    assert len(namespaces) == 1 and namespaces[0]["Type"] == "DNS_PRIVATE"
    services = sd.list_services(Filters=[{"Name": "NAMESPACE_ID", "Values": [namespaces[0]["Id"]], "Condition": "EQ"}])
    assert sorted(s["Name"] for s in services["Services"]) == ["daemon", "webserver"]


def ecs(stack: Stack) -> None:
    client = stack.aws("ecs")
    project = stack.project
    described = client.describe_services(
        cluster=project, services=[f"{project}-webserver", f"{project}-daemon"], include=["TAGS"]
    )["services"]
    services = {s["serviceName"].removeprefix(f"{project}-"): s for s in described}
    assert set(services) == {"webserver", "daemon"}
    for name, service in services.items():
        assert service["launchType"] == "FARGATE"
        breaker = service["deploymentConfiguration"]["deploymentCircuitBreaker"]
        assert breaker == {"enable": True, "rollback": True}
        assert service["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "ENABLED"
        assert len(service["serviceRegistries"]) == 1
        definition = client.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
        assert definition["runtimePlatform"] == {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"}
        assert (definition["cpu"], definition["memory"]) == ("256", "512")
        assert definition["requiresCompatibilities"] == ["FARGATE"]
        container = definition["containerDefinitions"][0]
        assert container["command"] == [name]
        assert container["logConfiguration"]["options"]["awslogs-group"] == f"/ecs/{project}"
        assert container["healthCheck"]["command"][:3] == ["CMD", "dagster-ecs-entrypoint", "healthcheck"]
        secret_refs = {s["name"]: s["valueFrom"] for s in container["secrets"]}
        # Pinned to the secret's AWSCURRENT version: a rotation rolls the services onto the new one.
        current = stack.aws("secretsmanager").describe_secret(SecretId=f"{project}/database")["VersionIdsToStages"]
        version = next(v for v, stages in current.items() if "AWSCURRENT" in stages)
        assert secret_refs["DAGSTER_POSTGRES_PASSWORD"].endswith(f":password::{version}")
        assert not any("PASSWORD" in e["name"] for e in container["environment"])
        efs = definition["volumes"][0]["efsVolumeConfiguration"]
        assert efs["transitEncryption"] == "ENABLED"
        assert efs["authorizationConfig"]["iam"] == "ENABLED"
    web = services["webserver"]
    assert web["deploymentConfiguration"]["minimumHealthyPercent"] == 100
    assert web["deploymentConfiguration"]["maximumPercent"] == 200
    assert web["loadBalancers"][0]["containerPort"] == inventory("dagster_ecs_proxy_port")
    assert web["healthCheckGracePeriodSeconds"] == 120
    daemon = services["daemon"]
    assert daemon["deploymentConfiguration"]["maximumPercent"] == 100, "two Dagster daemons must never overlap"
    assert daemon["loadBalancers"] == []
    # Each run's own task: registered by the stage (never at run time), named by the daemon's launcher.
    run = client.describe_task_definition(taskDefinition=f"{project}-run", include=["TAGS"])
    definition, tags = run["taskDefinition"], {t["key"]: t["value"] for t in run.get("tags", [])}
    assert (definition["cpu"], definition["memory"], tags.get("DagsterService")) == ("256", "512", "run")
    (container,) = definition["containerDefinitions"]
    assert container["name"] == "run" and "command" not in container  # the launcher gives each run's command
    assert {s["name"] for s in container["secrets"]} == {"DAGSTER_POSTGRES_USER", "DAGSTER_POSTGRES_PASSWORD"}
    assert container["logConfiguration"]["options"]["awslogs-stream-prefix"] == "run"
    launcher = client.describe_task_definition(taskDefinition=daemon["taskDefinition"])["taskDefinition"]
    env = {e["name"]: e["value"] for e in launcher["containerDefinitions"][0]["environment"]}
    assert env["DAGSTER_ECS_RUN_TASK_DEFINITION"] == definition["taskDefinitionArn"]
    assert (
        env["DAGSTER_ECS_RUN_SECURITY_GROUPS"]
        == daemon["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"][0]
    )


def autoscaling(stack: Stack) -> None:
    aas = stack.aws("application-autoscaling")
    targets = aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert [(t["ResourceId"], t["MinCapacity"], t["MaxCapacity"]) for t in targets] == [
        (f"service/{stack.project}/{stack.project}-webserver", 1, 2)
    ]
    policies = aas.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]
    tracked = {
        p["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]["PredefinedMetricType"]: p[
            "TargetTrackingScalingPolicyConfiguration"
        ]["TargetValue"]
        for p in policies
    }
    assert tracked == {"ECSServiceAverageCPUUtilization": 70.0, "ECSServiceAverageMemoryUtilization": 80.0}


def outputs(stack: Stack) -> None:
    """The outputs file names every id a user needs, and no secret value."""
    values = stack.outputs()
    for key in (
        "load_balancer_url",
        "dag_bucket",
        "ecs_cluster",
        "ecs_services",
        "ecr_repository_url",
        "database_endpoint",
        "secrets",
    ):
        assert values[key], key
    assert values["load_balancer_url"].startswith("http://")
    assert values["dag_bucket"] == stack.bucket
    text = json.dumps(values)
    sm = stack.aws("secretsmanager")
    for arn in values["secrets"].values():
        password = json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])["password"]
        assert password not in text


def _local_url(stack: Stack) -> str:
    """The local runtime's nginx (the offline load balancer URL)."""
    assert stack.url.startswith("http://127.0.0.1:"), f"needs --url (the local runtime's), not {stack.url!r}"
    return stack.url


def local_runtime(stack: Stack) -> None:
    """The local tasks serve Dagster behind basic auth: /health is public, the rest needs the credentials."""
    url = _local_url(stack)
    # The local_runtime stage starts the tasks and returns (on AWS, the verify stage is what waits for them).
    wait_for(lambda: request(f"{url}/health"), 240, 2, "/health", until=lambda answer: answer == (200, b"ok\n"))
    assert request(f"{url}/server_info")[0] == 401
    auth = json.loads(
        stack.aws("secretsmanager").get_secret_value(SecretId=f"{stack.project}/basic-auth")["SecretString"]
    )
    status, body = request(f"{url}/server_info", (auth["username"], auth["password"]))
    assert status == 200 and b"dagster_webserver_version" in body, (status, body[:200])


def verify(stack: Stack) -> None:
    """The verify stage's module saw what these see: /health is 200 and the outputs' URL is the runtime's."""
    local_runtime(stack)
    assert stack.outputs()["load_balancer_url"] == _local_url(stack)


def preflight(stack: Stack) -> None:
    assert stack.aws("sts").get_caller_identity()["Account"] == ACCOUNT


def offline_endpoint(stack: Stack) -> None:
    status, body = request(f"{stack.endpoint}/_dagster_ecs_emulator/health")
    assert status == 200, (status, body[:200])
    preflight(stack)


def teardown(stack: Stack) -> None:
    left = leftovers(stack.endpoint, stack.project, stack.region)
    assert left == {}, f"teardown left resources of {stack.project}: {left}"


CHECKS = {
    fn.__name__: fn
    for fn in (
        preflight,
        offline_endpoint,
        network,
        security_groups,
        logging,
        storage,
        dags,
        registry,
        image,
        secrets,
        database,
        iam,
        loadbalancer,
        discovery,
        ecs,
        autoscaling,
        local_runtime,
        outputs,
        verify,
        teardown,
    )
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stages", nargs="+", choices=sorted(CHECKS), metavar="STAGE")
    parser.add_argument("--endpoint", required=True, help="the AWS endpoint (the emulator)")
    parser.add_argument("--project", default="dagster-ecs")
    parser.add_argument("--region", default=REGION)
    parser.add_argument("--state-dir", type=Path, help="dagster_ecs_state_dir (outputs file, local runtime)")
    parser.add_argument("--environment", default="offline")
    parser.add_argument("--url", default="", help="the local runtime's URL (its nginx, the offline load balancer)")
    parser.add_argument(
        "--mark",
        type=Path,
        metavar="FILE",
        help="once every check passed, create this empty file (molecule's verify: the stage is built in this run)",
    )
    args = parser.parse_args(argv)
    stack = Stack(args.endpoint, args.project, args.region, args.state_dir, args.environment, args.url)
    for stage in args.stages:
        try:
            CHECKS[stage](stack)
        except AssertionError as error:
            print(f"FAILED: {stage}: {error!r}", file=sys.stderr)
            raise
        print(f"ok: {stage}")
    if args.mark:
        args.mark.parent.mkdir(parents=True, exist_ok=True)
        args.mark.touch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
