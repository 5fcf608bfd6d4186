"""What of a project exists in an AWS account (or the emulator), read through boto3.

Used by the integration tests to assert what site.yml created and that teardown left
nothing; also handy by hand: python tests/support/aws_inventory.py http://127.0.0.1:4566 dagster-ecs
"""

from __future__ import annotations

import json
import sys

import boto3

REGION = "ap-southeast-2"


def clients(endpoint: str, region: str = REGION):
    session = boto3.session.Session(
        aws_access_key_id="AKIAOFFLINEREHEARSAL",
        aws_secret_access_key="offline-rehearsal-not-a-secret",
        region_name=region,
    )

    def make(service):
        return session.client(service, endpoint_url=endpoint)

    return make


def _tags(tag_list, key="Key", value="Value"):
    return {t[key]: t[value] for t in tag_list or []}


def _claimed_by_another(tags, project: str) -> bool:
    """Whether a Project tag names another project (``dagster-ecs-other`` shares our name prefix)."""
    tags = tags if isinstance(tags, dict) else _tags(tags)
    return tags.get("Project", project) != project


def leftovers(endpoint: str, project: str, region: str = REGION) -> dict[str, list[str]]:
    """Every resource whose name or Project tag says it belongs to ``project``.

    Names are matched by prefix, so an untagged ``<project>-...`` counts as ours; a resource whose
    Project tag names another project (whose name may start like ours) does not.
    """
    c = clients(endpoint, region)
    found: dict[str, list[str]] = {}

    def add(kind, items):
        items = sorted(set(items))
        if items:
            found[kind] = items

    ec2 = c("ec2")
    project_filter = [{"Name": "tag:Project", "Values": [project]}]
    add("vpcs", [v["VpcId"] for v in ec2.describe_vpcs(Filters=project_filter)["Vpcs"]])
    add("subnets", [s["SubnetId"] for s in ec2.describe_subnets(Filters=project_filter)["Subnets"]])
    add(
        "security_groups",
        [g["GroupName"] for g in ec2.describe_security_groups(Filters=project_filter)["SecurityGroups"]],
    )
    add("route_tables", [r["RouteTableId"] for r in ec2.describe_route_tables(Filters=project_filter)["RouteTables"]])
    add(
        "internet_gateways",
        [i["InternetGatewayId"] for i in ec2.describe_internet_gateways(Filters=project_filter)["InternetGateways"]],
    )
    s3 = c("s3")

    def bucket_tags(name):
        try:
            return s3.get_bucket_tagging(Bucket=name)["TagSet"]
        except s3.exceptions.ClientError as error:
            if error.response["Error"]["Code"] == "NoSuchTagSet":
                return []
            raise

    add(
        "buckets",
        [
            b["Name"]
            for b in s3.list_buckets()["Buckets"]
            if b["Name"].startswith(f"{project}-") and not _claimed_by_another(bucket_tags(b["Name"]), project)
        ],
    )
    efs = c("efs")
    add(
        "file_systems",
        [
            f["FileSystemId"]
            for f in efs.describe_file_systems()["FileSystems"]
            if _tags(f.get("Tags")).get("Project") == project
        ],
    )
    add(
        "access_points",
        [
            a["AccessPointId"]
            for a in efs.describe_access_points()["AccessPoints"]
            if _tags(a.get("Tags")).get("Project") == project
        ],
    )
    add(
        "ecr_repositories",
        [
            r["repositoryName"]
            for r in c("ecr").describe_repositories()["repositories"]
            if r["repositoryName"] == project
        ],
    )
    add(
        "secrets",
        [s["Name"] for s in c("secretsmanager").list_secrets()["SecretList"] if s["Name"].startswith(f"{project}/")],
    )
    rds = c("rds")
    add(
        "db_instances",
        [
            d["DBInstanceIdentifier"]
            for d in rds.describe_db_instances()["DBInstances"]
            if d["DBInstanceIdentifier"] == project
        ],
    )
    add(
        "db_subnet_groups",
        [
            g["DBSubnetGroupName"]
            for g in rds.describe_db_subnet_groups()["DBSubnetGroups"]
            if g["DBSubnetGroupName"] == project
        ],
    )
    add(
        "db_snapshots",
        [
            s["DBSnapshotIdentifier"]
            for s in rds.describe_db_snapshots()["DBSnapshots"]
            if s["DBInstanceIdentifier"] == project
        ],
    )
    iam = c("iam")
    add(
        "iam_roles",
        [
            r["RoleName"]
            for r in iam.list_roles()["Roles"]
            if r["RoleName"].startswith(f"{project}-")
            and not _claimed_by_another(iam.list_role_tags(RoleName=r["RoleName"])["Tags"], project)
        ],
    )
    logs = c("logs")
    add(
        "log_groups",
        [
            g["logGroupName"]
            for g in logs.describe_log_groups(logGroupNamePrefix=f"/ecs/{project}")["logGroups"]
            if not _claimed_by_another(logs.list_tags_log_group(logGroupName=g["logGroupName"])["tags"], project)
        ],
    )
    elb = c("elbv2")

    def elb_tags(arn):
        return elb.describe_tags(ResourceArns=[arn])["TagDescriptions"][0]["Tags"]

    add(
        "load_balancers",
        [
            lb["LoadBalancerName"]
            for lb in elb.describe_load_balancers()["LoadBalancers"]
            if lb["LoadBalancerName"].startswith(f"{project}-")
            and not _claimed_by_another(elb_tags(lb["LoadBalancerArn"]), project)
        ],
    )
    add(
        "target_groups",
        [
            tg["TargetGroupName"]
            for tg in elb.describe_target_groups()["TargetGroups"]
            if tg["TargetGroupName"].startswith(f"{project}-")
            and not _claimed_by_another(elb_tags(tg["TargetGroupArn"]), project)
        ],
    )
    ecs = c("ecs")
    clusters = ecs.describe_clusters(clusters=[project])["clusters"]
    add("ecs_clusters", [cl["clusterName"] for cl in clusters if cl["status"] == "ACTIVE"])
    add(
        "task_definitions",
        [
            arn
            for family in ("webserver", "daemon", "run")
            for arn in ecs.list_task_definitions(familyPrefix=f"{project}-{family}", status="ACTIVE")[
                "taskDefinitionArns"
            ]
        ],
    )
    sd = c("servicediscovery")

    def sd_tags(arn):
        return sd.list_tags_for_resource(ResourceARN=arn)["Tags"]

    add(
        "namespaces",
        [
            n["Name"]
            for n in sd.list_namespaces()["Namespaces"]
            if n["Name"] == f"{project}.local" and not _claimed_by_another(sd_tags(n["Arn"]), project)
        ],
    )
    add(
        "discovery_services",
        [
            s["Name"] + "@" + s["Id"]
            for s in sd.list_services()["Services"]
            if s.get("Description", "").startswith(f"{project} ")
            and not _claimed_by_another(sd_tags(s["Arn"]), project)
        ],
    )
    aas = c("application-autoscaling")
    add(
        "scalable_targets",
        [
            t["ResourceId"]
            for t in aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
            if t["ResourceId"].startswith(f"service/{project}/")
        ],
    )
    return found


if __name__ == "__main__":
    print(json.dumps(leftovers(sys.argv[1], sys.argv[2]), indent=2))
