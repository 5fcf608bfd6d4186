"""What the deployment exposes, HTTPS with a certificate, and a teardown that spares look-alikes.

One emulator and one deployment for the module: the AWS stages of site.yml (the stages that
start local processes or need Docker are skipped: runtime, verify, dags, image) with
``loadbalancer_certificate_arn`` set to a self-signed certificate imported into the emulator's
ACM. The same deployment serves the exposure checks and the HTTPS checks; the plain-HTTP case
(the ALB group opens tcp/80 only, one HTTP listener forwarding) is asserted by
tests/integration/test_site.py on its default deployment.

Last, resources of *another* project with names a sloppy prefix or name-tag match would catch
are created next to ours, teardown runs, and they must all survive while nothing of ours is left.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

import pytest
from aws_inventory import clients, leftovers
from conftest import ROOT, free_port, run_playbook, wait_for_health
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

pytestmark = pytest.mark.integration

PROJECT = "dagster-ecs"
OTHER = "dagster-ecs-other"
REGION = "ap-southeast-2"
ACCOUNT = "123456789012"
OPEN = {"0.0.0.0/0", "::/0"}
# The stages that start local processes (runtime, verify), publish DAGs or build an image (with
# Docker, when an engine answers): not needed to check what the AWS resources expose, and slow.
SKIP_LOCAL_STAGES = ("--skip-tags", "runtime,verify,dags,image")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A private emulator started here (so a certificate can be imported before site.yml runs)."""
    state = tmp_path_factory.mktemp("state")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = open(state / "emulator.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [sys.executable, "-m", "dagster_ecs_emulator", "serve", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        wait_for_health(endpoint)
        extra = {
            "dagster_ecs_aws_endpoint_url": endpoint,
            "dagster_ecs_state_dir": str(state),
            "local_runtime_proxy_port": free_port(),
        }
        yield {"endpoint": endpoint, "state": Path(state), "extra": extra}
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def aws(env):
    return clients(env["endpoint"], REGION)


def self_signed(domain: str) -> tuple[bytes, bytes]:
    """A throwaway certificate and its key (PEM), valid for a month."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), pem_key


@pytest.fixture(scope="module")
def certificate_arn(aws):
    cert, key = self_signed("dagster.example.test")
    arn = aws("acm").import_certificate(Certificate=cert, PrivateKey=key)["CertificateArn"]
    assert aws("acm").describe_certificate(CertificateArn=arn)["Certificate"]["Status"] == "ISSUED"
    return arn


@pytest.fixture(scope="module")
def deployed(env, certificate_arn):
    run = run_playbook(
        "site.yml", *SKIP_LOCAL_STAGES, extra_vars={**env["extra"], "loadbalancer_certificate_arn": certificate_arn}
    )
    assert run.returncode == 0, run.output[-6000:]
    return run


def _project_groups(ec2) -> dict[str, dict]:
    found = ec2.describe_security_groups(Filters=[{"Name": "tag:Project", "Values": [PROJECT]}])["SecurityGroups"]
    return {g["GroupName"].removeprefix(f"{PROJECT}-"): g for g in found}


def _vpc_id(ec2) -> str:
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Project", "Values": [PROJECT]}])["Vpcs"]
    assert len(vpcs) == 1
    return vpcs[0]["VpcId"]


def _ingress(group) -> list[tuple]:
    """(protocol, from port, to port, CIDRs, source groups) of each ingress permission."""
    return [
        (
            p["IpProtocol"],
            p.get("FromPort"),
            p.get("ToPort"),
            sorted([r["CidrIp"] for r in p.get("IpRanges", [])] + [r["CidrIpv6"] for r in p.get("Ipv6Ranges", [])]),
            sorted(u["GroupId"] for u in p.get("UserIdGroupPairs", [])),
        )
        for p in group["IpPermissions"]
    ]


def _only_from(group, source_id: str, port: int) -> bool:
    return _ingress(group) == [("tcp", port, port, [], [source_id])] and not any(
        p.get("PrefixListIds") for p in group["IpPermissions"]
    )


# --- Exposure ---------------------------------------------------------------------------


def test_deployment_with_a_certificate_succeeds(deployed):
    assert deployed.recap["failed"] == 0
    assert deployed.recap["changed"] > 20


def test_database_is_private_encrypted_and_reachable_from_the_tasks_only(deployed, aws):
    db = aws("rds").describe_db_instances(DBInstanceIdentifier=PROJECT)["DBInstances"][0]
    assert db["PubliclyAccessible"] is False
    assert db["StorageEncrypted"] is True
    groups = _project_groups(aws("ec2"))
    assert [g["VpcSecurityGroupId"] for g in db["VpcSecurityGroups"]] == [groups["database"]["GroupId"]]
    assert _only_from(groups["database"], groups["tasks"]["GroupId"], 5432), _ingress(groups["database"])


def test_file_system_is_encrypted_and_reachable_from_the_tasks_only(deployed, aws):
    efs = aws("efs")
    systems = efs.describe_file_systems(CreationToken=PROJECT)["FileSystems"]
    assert len(systems) == 1 and systems[0]["Encrypted"] is True
    groups = _project_groups(aws("ec2"))
    assert _only_from(groups["efs"], groups["tasks"]["GroupId"], 2049), _ingress(groups["efs"])
    targets = efs.describe_mount_targets(FileSystemId=systems[0]["FileSystemId"])["MountTargets"]
    assert len(targets) == 2
    for target in targets:
        found = efs.describe_mount_target_security_groups(MountTargetId=target["MountTargetId"])["SecurityGroups"]
        assert found == [groups["efs"]["GroupId"]]


def test_dag_bucket_is_private_encrypted_and_versioned(deployed, aws):
    s3 = aws("s3")
    bucket = f"{PROJECT}-dags-{ACCOUNT}-{REGION}"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
    )
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert [r["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules] in (["AES256"], ["aws:kms"])
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    grants = s3.get_bucket_acl(Bucket=bucket)["Grants"]
    assert not [g for g in grants if g["Grantee"].get("URI", "").endswith(("/AllUsers", "/AuthenticatedUsers"))]


def test_only_the_load_balancer_is_open_to_the_internet_and_only_on_80_and_443(deployed, aws):
    """Every group in the account (the project's, its VPC's default, the default VPC's) is checked.

    The default deployment (no certificate) opens tcp/80 only: test_site.py::test_security_groups_chain.
    """
    ec2 = aws("ec2")
    vpc_id = _vpc_id(ec2)
    everything = ec2.describe_security_groups()["SecurityGroups"]
    ours = _project_groups(ec2)
    in_our_vpc = {g["GroupName"] for g in everything if g["VpcId"] == vpc_id}
    assert in_our_vpc == {f"{PROJECT}-{name}" for name in ("alb", "tasks", "database", "efs")} | {"default"}
    open_to_all = {
        (g["GroupName"], proto, low, high)
        for g in everything
        for proto, low, high, cidrs, _ in _ingress(g)
        if OPEN & set(cidrs)
    }
    assert open_to_all == {(f"{PROJECT}-alb", "tcp", 80, 80), (f"{PROJECT}-alb", "tcp", 443, 443)}
    assert sorted(_ingress(ours["alb"])) == [
        ("tcp", 80, 80, ["0.0.0.0/0"], []),
        ("tcp", 443, 443, ["0.0.0.0/0"], []),
    ]
    tasks = _ingress(ours["tasks"])
    assert ("tcp", 8080, 8080, [], [ours["alb"]["GroupId"]]) in tasks
    assert all(not cidrs for _, _, _, cidrs, _ in tasks), f"the tasks must not accept any CIDR: {tasks}"
    assert all(set(sources) <= {ours["alb"]["GroupId"], ours["tasks"]["GroupId"]} for *_, sources in tasks)


# --- HTTPS ------------------------------------------------------------------------------


def test_https_listener_forwards_and_http_redirects(deployed, aws, certificate_arn):
    elb = aws("elbv2")
    lb = elb.describe_load_balancers(Names=[f"{PROJECT}-alb"])["LoadBalancers"][0]
    tg = elb.describe_target_groups(Names=[f"{PROJECT}-web"])["TargetGroups"][0]
    listeners = {li["Port"]: li for li in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]}
    assert set(listeners) == {80, 443}
    https = listeners[443]
    assert https["Protocol"] == "HTTPS"
    assert [c["CertificateArn"] for c in https["Certificates"]] == [certificate_arn]
    assert https["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert [(a["Type"], a.get("TargetGroupArn")) for a in https["DefaultActions"]] == [
        ("forward", tg["TargetGroupArn"])
    ]
    http = listeners[80]
    assert http["Protocol"] == "HTTP"
    assert [a["Type"] for a in http["DefaultActions"]] == ["redirect"], "port 80 must not forward in the clear"
    redirect = http["DefaultActions"][0]["RedirectConfig"]
    assert (redirect["Protocol"], redirect["Port"], redirect["StatusCode"]) == ("HTTPS", "443", "HTTP_301")
    assert (redirect["Host"], redirect["Path"], redirect["Query"]) == ("#{host}", "/#{path}", "#{query}")


def test_outputs_give_the_https_url(deployed, env):
    outputs = json.loads((env["state"] / "offline" / "outputs.json").read_text())
    assert outputs["alb_url"] == f"https://{outputs['load_balancer_dns_name']}"
    # On AWS load_balancer_url is this ALB URL (roles/outputs: local_runtime_url | default(loadbalancer_url)).
    # Offline it is the local runtime's nginx, as the emulated ALB's DNS name resolves nowhere.
    assert outputs["load_balancer_url"] == f"http://127.0.0.1:{env['extra']['local_runtime_proxy_port']}"


def test_second_run_with_the_certificate_changes_nothing(deployed, env, certificate_arn):
    """The stages the certificate shapes (the ALB group's ports, the listeners) converge.

    The whole of site.yml re-running with no change is test_site.py::test_second_run_changes_nothing.
    """
    again = run_playbook(
        "site.yml",
        "--tags",
        "security,loadbalancer",
        extra_vars={**env["extra"], "loadbalancer_certificate_arn": certificate_arn},
    )
    assert again.returncode == 0, again.output[-6000:]
    assert again.recap["changed"] == 0, f"changed on re-run: {again.changed_tasks()}"


# --- Teardown spares look-alikes ----------------------------------------------------------


def _tags(**extra) -> list[dict]:
    """Tags of another project's resource: even ManagedBy is the same, only Project differs."""
    return [{"Key": k, "Value": v} for k, v in {"Project": OTHER, "ManagedBy": "dagster-ecs-ansible", **extra}.items()]


def _ec2_tags(resource_type: str, **extra) -> list[dict]:
    return [{"ResourceType": resource_type, "Tags": _tags(**extra)}]


def create_look_alikes(aws) -> dict[str, list[str]]:
    """Another project's resources whose names or Name tags a prefix or name-tag match would take for ours."""
    ec2 = aws("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16", TagSpecifications=_ec2_tags("vpc", Name=PROJECT))["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(
            VpcId=vpc,
            CidrBlock=f"10.1.{i}.0/24",
            AvailabilityZone=f"{REGION}{az}",
            TagSpecifications=_ec2_tags("subnet", Name=f"{PROJECT}-public-{az}"),
        )["Subnet"]["SubnetId"]
        for i, az in ((1, "a"), (2, "b"))
    ]
    igw = ec2.create_internet_gateway(TagSpecifications=_ec2_tags("internet-gateway", Name=PROJECT))["InternetGateway"][
        "InternetGatewayId"
    ]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    table = ec2.create_route_table(VpcId=vpc, TagSpecifications=_ec2_tags("route-table", Name=f"{PROJECT}-public"))[
        "RouteTable"
    ]["RouteTableId"]
    group = ec2.create_security_group(
        GroupName=f"{PROJECT}-alb",
        Description="another project's load balancer",
        VpcId=vpc,
        TagSpecifications=_ec2_tags("security-group", Name=f"{PROJECT}-alb"),
    )["GroupId"]

    s3 = aws("s3")
    buckets = [f"{OTHER}-dags-{ACCOUNT}-{REGION}", f"{PROJECT}-dags-{ACCOUNT}-{REGION}-backup"]
    for bucket in buckets:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": _tags()})
        s3.put_object(Bucket=bucket, Key="keep.txt", Body=b"not yours")

    logs = aws("logs")
    log_groups = [f"/ecs/{OTHER}", f"/ecs/{PROJECT}/other"]
    for name in log_groups:
        logs.create_log_group(logGroupName=name, tags={t["Key"]: t["Value"] for t in _tags()})

    aws("ecr").create_repository(repositoryName=OTHER, tags=_tags())
    secrets = [f"{OTHER}/database", f"{OTHER}/basic-auth"]
    for name in secrets:
        aws("secretsmanager").create_secret(Name=name, SecretString='{"password": "not yours"}', Tags=_tags())

    iam = aws("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    roles = [f"{OTHER}-task", f"{PROJECT}-task-other"]
    for role in roles:
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust), Tags=_tags())

    ecs = aws("ecs")
    ecs.create_cluster(clusterName=OTHER, tags=[{"key": t["Key"], "value": t["Value"]} for t in _tags()])
    family = f"{PROJECT}-webserver-other"
    ecs.register_task_definition(
        family=family,
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        containerDefinitions=[{"name": "web", "image": "nginx", "essential": True}],
    )

    elb = aws("elbv2")
    elb.create_load_balancer(Name=f"{OTHER}-alb", Subnets=subnets, SecurityGroups=[group], Tags=_tags())
    elb.create_target_group(
        Name=f"{PROJECT}-web-other", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip", Tags=_tags()
    )

    rds = aws("rds")
    rds.create_db_subnet_group(
        DBSubnetGroupName=OTHER, DBSubnetGroupDescription="another project", SubnetIds=subnets, Tags=_tags()
    )
    rds.create_db_instance(
        DBInstanceIdentifier=OTHER,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        AllocatedStorage=20,
        MasterUsername="other",
        MasterUserPassword="not-yours-at-all",
        DBSubnetGroupName=OTHER,
        Tags=_tags(),
    )

    # Named like ours by its Name tag; the creation token (unique per account) is its own.
    file_system = aws("efs").create_file_system(CreationToken=OTHER, Encrypted=True, Tags=_tags(Name=PROJECT))[
        "FileSystemId"
    ]

    # A private DNS name space may share our name in another VPC.
    sd = aws("servicediscovery")
    operation = sd.create_private_dns_namespace(Name=f"{PROJECT}.local", Vpc=vpc, Tags=_tags())["OperationId"]
    namespace = sd.get_operation(OperationId=operation)["Operation"]["Targets"]["NAMESPACE"]
    service = sd.create_service(
        Name="webserver",
        NamespaceId=namespace,
        Description=f"{PROJECT} webserver tasks",
        DnsConfig={"DnsRecords": [{"Type": "A", "TTL": 10}]},
        Tags=_tags(),
    )["Service"]["Id"]

    return {
        "vpcs": [vpc],
        "subnets": sorted(subnets),
        "internet_gateways": [igw],
        "route_tables": [table],
        "security_groups": [group],
        "buckets": sorted(buckets),
        "log_groups": sorted(log_groups),
        "ecr_repositories": [OTHER],
        "secrets": sorted(secrets),
        "iam_roles": sorted(roles),
        "ecs_clusters": [OTHER],
        "task_definition_families": [family],
        "load_balancers": [f"{OTHER}-alb"],
        "target_groups": [f"{PROJECT}-web-other"],
        "db_subnet_groups": [OTHER],
        "db_instances": [OTHER],
        "file_systems": [file_system],
        "namespaces": [namespace],
        "discovery_services": [service],
    }


def surviving(aws, made: dict[str, list[str]]) -> dict[str, list[str]]:
    """Which of ``made`` still exist (and, for buckets, still hold their object)."""
    ec2 = aws("ec2")
    found = {}
    for kind, describe, result, id_key, id_filter in (
        ("vpcs", ec2.describe_vpcs, "Vpcs", "VpcId", "vpc-id"),
        ("subnets", ec2.describe_subnets, "Subnets", "SubnetId", "subnet-id"),
        (
            "internet_gateways",
            ec2.describe_internet_gateways,
            "InternetGateways",
            "InternetGatewayId",
            "internet-gateway-id",
        ),
        ("route_tables", ec2.describe_route_tables, "RouteTables", "RouteTableId", "route-table-id"),
        ("security_groups", ec2.describe_security_groups, "SecurityGroups", "GroupId", "group-id"),
    ):
        found[kind] = sorted(r[id_key] for r in describe(Filters=[{"Name": id_filter, "Values": made[kind]}])[result])
    s3 = aws("s3")
    existing = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    found["buckets"] = sorted(
        b for b in made["buckets"] if b in existing and s3.list_objects_v2(Bucket=b).get("KeyCount") == 1
    )
    groups = {g["logGroupName"] for g in aws("logs").describe_log_groups()["logGroups"]}
    found["log_groups"] = sorted(set(made["log_groups"]) & groups)
    found["ecr_repositories"] = sorted(
        set(made["ecr_repositories"])
        & {r["repositoryName"] for r in aws("ecr").describe_repositories()["repositories"]}
    )
    live = {s["Name"] for s in aws("secretsmanager").list_secrets()["SecretList"] if not s.get("DeletedDate")}
    found["secrets"] = sorted(set(made["secrets"]) & live)
    found["iam_roles"] = sorted(set(made["iam_roles"]) & {r["RoleName"] for r in aws("iam").list_roles()["Roles"]})
    ecs = aws("ecs")
    clusters = ecs.describe_clusters(clusters=made["ecs_clusters"])["clusters"]
    found["ecs_clusters"] = sorted(c["clusterName"] for c in clusters if c["status"] == "ACTIVE")
    found["task_definition_families"] = sorted(
        f for f in made["task_definition_families"] if ecs.list_task_definitions(familyPrefix=f)["taskDefinitionArns"]
    )
    elb = aws("elbv2")
    found["load_balancers"] = sorted(
        set(made["load_balancers"]) & {lb["LoadBalancerName"] for lb in elb.describe_load_balancers()["LoadBalancers"]}
    )
    found["target_groups"] = sorted(
        set(made["target_groups"]) & {tg["TargetGroupName"] for tg in elb.describe_target_groups()["TargetGroups"]}
    )
    rds = aws("rds")
    found["db_subnet_groups"] = sorted(
        set(made["db_subnet_groups"])
        & {g["DBSubnetGroupName"] for g in rds.describe_db_subnet_groups()["DBSubnetGroups"]}
    )
    found["db_instances"] = sorted(
        set(made["db_instances"]) & {d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]}
    )
    found["file_systems"] = sorted(
        set(made["file_systems"]) & {f["FileSystemId"] for f in aws("efs").describe_file_systems()["FileSystems"]}
    )
    sd = aws("servicediscovery")
    found["namespaces"] = sorted(set(made["namespaces"]) & {n["Id"] for n in sd.list_namespaces()["Namespaces"]})
    found["discovery_services"] = sorted(
        set(made["discovery_services"]) & {s["Id"] for s in sd.list_services()["Services"]}
    )
    return found


def test_teardown_deletes_ours_and_spares_look_alikes(deployed, env, aws):
    ours = leftovers(env["endpoint"], PROJECT)
    made = create_look_alikes(aws)
    assert surviving(aws, made) == made
    assert leftovers(env["endpoint"], PROJECT) == ours, "the inventory took a look-alike for ours"
    assert set(leftovers(env["endpoint"], OTHER)) >= {"vpcs", "buckets", "iam_roles", "secrets", "file_systems"}

    down = run_playbook("playbooks/teardown.yml", extra_vars=env["extra"])
    assert down.returncode == 0, down.output[-6000:]
    assert surviving(aws, made) == made, "teardown deleted another project's resources"
    assert leftovers(env["endpoint"], PROJECT) == {}
