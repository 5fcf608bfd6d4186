"""Another project's resources, named so that a sloppy prefix or Name-tag match would take them for ours.

tests/integration/test_site.py creates them next to a deployment of ``dagster-ecs`` before its
teardown, which must delete everything of ours and none of these: their Project tag is
``dagster-ecs-other`` (which shares our prefix); even ManagedBy is the same.
"""

from __future__ import annotations

import json

PROJECT = "dagster-ecs"
OTHER = "dagster-ecs-other"
REGION = "ap-southeast-2"
ACCOUNT = "123456789012"


def other_tags(**extra) -> list[dict]:
    """Tags of another project's resource: even ManagedBy is the same, only Project differs."""
    return [{"Key": k, "Value": v} for k, v in {"Project": OTHER, "ManagedBy": "dagster-ecs-ansible", **extra}.items()]


def other_ec2_tags(resource_type: str, **extra) -> list[dict]:
    return [{"ResourceType": resource_type, "Tags": other_tags(**extra)}]


def create(aws) -> dict[str, list[str]]:
    """Another project's resources whose names or Name tags a prefix or name-tag match would take for ours."""
    ec2 = aws("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16", TagSpecifications=other_ec2_tags("vpc", Name=PROJECT))["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(
            VpcId=vpc,
            CidrBlock=f"10.1.{i}.0/24",
            AvailabilityZone=f"{REGION}{az}",
            TagSpecifications=other_ec2_tags("subnet", Name=f"{PROJECT}-public-{az}"),
        )["Subnet"]["SubnetId"]
        for i, az in ((1, "a"), (2, "b"))
    ]
    igw = ec2.create_internet_gateway(TagSpecifications=other_ec2_tags("internet-gateway", Name=PROJECT))[
        "InternetGateway"
    ]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    table = ec2.create_route_table(
        VpcId=vpc, TagSpecifications=other_ec2_tags("route-table", Name=f"{PROJECT}-public")
    )["RouteTable"]["RouteTableId"]
    group = ec2.create_security_group(
        GroupName=f"{PROJECT}-alb",
        Description="another project's load balancer",
        VpcId=vpc,
        TagSpecifications=other_ec2_tags("security-group", Name=f"{PROJECT}-alb"),
    )["GroupId"]

    s3 = aws("s3")
    buckets = [f"{OTHER}-dags-{ACCOUNT}-{REGION}", f"{PROJECT}-dags-{ACCOUNT}-{REGION}-backup"]
    for bucket in buckets:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": other_tags()})
        s3.put_object(Bucket=bucket, Key="keep.txt", Body=b"not yours")

    logs = aws("logs")
    log_groups = [f"/ecs/{OTHER}", f"/ecs/{PROJECT}/other"]
    for name in log_groups:
        logs.create_log_group(logGroupName=name, tags={t["Key"]: t["Value"] for t in other_tags()})

    aws("ecr").create_repository(repositoryName=OTHER, tags=other_tags())
    secrets = [f"{OTHER}/database", f"{OTHER}/basic-auth"]
    for name in secrets:
        aws("secretsmanager").create_secret(Name=name, SecretString='{"password": "not yours"}', Tags=other_tags())

    iam = aws("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    roles = [f"{OTHER}-task", f"{PROJECT}-task-other"]
    for role in roles:
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust), Tags=other_tags())

    ecs = aws("ecs")
    ecs.create_cluster(clusterName=OTHER, tags=[{"key": t["Key"], "value": t["Value"]} for t in other_tags()])
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
    elb.create_load_balancer(Name=f"{OTHER}-alb", Subnets=subnets, SecurityGroups=[group], Tags=other_tags())
    elb.create_target_group(
        Name=f"{PROJECT}-web-other", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip", Tags=other_tags()
    )

    rds = aws("rds")
    rds.create_db_subnet_group(
        DBSubnetGroupName=OTHER, DBSubnetGroupDescription="another project", SubnetIds=subnets, Tags=other_tags()
    )
    rds.create_db_instance(
        DBInstanceIdentifier=OTHER,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        AllocatedStorage=20,
        MasterUsername="other",
        MasterUserPassword="not-yours-at-all",
        DBSubnetGroupName=OTHER,
        Tags=other_tags(),
    )

    # Named like ours by its Name tag; the creation token (unique per account) is its own.
    file_system = aws("efs").create_file_system(CreationToken=OTHER, Encrypted=True, Tags=other_tags(Name=PROJECT))[
        "FileSystemId"
    ]

    # A private DNS name space may share our name in another VPC.
    sd = aws("servicediscovery")
    operation = sd.create_private_dns_namespace(Name=f"{PROJECT}.local", Vpc=vpc, Tags=other_tags())["OperationId"]
    namespace = sd.get_operation(OperationId=operation)["Operation"]["Targets"]["NAMESPACE"]
    service = sd.create_service(
        Name="webserver",
        NamespaceId=namespace,
        Description=f"{PROJECT} webserver tasks",
        DnsConfig={"DnsRecords": [{"Type": "A", "TTL": 10}]},
        Tags=other_tags(),
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
