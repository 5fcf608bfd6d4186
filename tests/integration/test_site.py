"""The production inventory, with a certificate, on the emulator the offline profile starts.

One emulator for the module, started by the offline profile itself (nothing listens on the
chosen port). The production inventory (the code path real AWS takes: no emulator start,
credentials from the environment) then runs site.yml against it with only the endpoint
overridden and ``loadbalancer_certificate_arn`` set to a self-signed certificate imported into
the emulator's ACM. That one deployment serves:

- what it exposes: only the load balancer is open to the internet, on 80 and 443; the database,
  the file system and the DAG bucket are private and encrypted;
- HTTPS: the 443 listener forwards, port 80 redirects; the stages the certificate shapes converge;
- teardown: it refuses without confirmation; then, with resources of *another* project created
  next to ours under names a sloppy prefix or Name-tag match would catch (tests/support/look_alikes.py),
  it deletes everything of ours but the final snapshot and none of theirs.

The offline site.yml end to end (every stage's resources, the plain-HTTP listener, a check-mode
re-run) is tests/integration/test_workload.py's; each stage alone, its idempotence and teardown's
are the molecule scenarios' (tests/test_molecule.py).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from support import look_alikes
from support.aws_inventory import clients, leftovers
from support.emulator import OFFLINE_CREDENTIALS
from support.paths import ROOT
from support.playbook import offline_environment, run_playbook

pytestmark = pytest.mark.integration

PROJECT = look_alikes.PROJECT
REGION = look_alikes.REGION
ACCOUNT = look_alikes.ACCOUNT
OPEN = {"0.0.0.0/0", "::/0"}
# verify is the one stage that cannot pass here: it waits for Fargate tasks behind the ALB, and
# the emulator runs no task (the offline profile's local runtime does, not production's).
SKIP = ("--skip-tags", "verify")
DOMAIN = "dagster.example.test"  # the certificate's name (loadbalancer_domain_name)


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


@pytest.fixture(scope="module")
def aws(env, emulator):
    return clients(env["endpoint"], REGION)


def test_check_mode_on_an_empty_account_previews_the_first_stage_and_stops_there(env, aws):
    check = run_playbook("site.yml", "--check", "--diff", extra_vars=env["extra"])
    assert check.returncode == 0, check.output[-6000:]
    assert f"Check mode: VPC {PROJECT} does not exist yet, so what depends on it cannot be previewed." in check.output
    assert "TASK [network : Create the VPC]" in check.output  # what a real run would do first is shown
    assert "TASK [security_groups :" not in check.output  # later stages skip the host, without failing it
    vpcs = aws("ec2").describe_vpcs(Filters=[{"Name": "tag:Project", "Values": [PROJECT]}])["Vpcs"]
    assert vpcs == [], "check mode created a VPC"


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
    cert, key = self_signed(DOMAIN)
    arn = aws("acm").import_certificate(Certificate=cert, PrivateKey=key)["CertificateArn"]
    assert aws("acm").describe_certificate(CertificateArn=arn)["Certificate"]["Status"] == "ISSUED"
    return arn


@pytest.fixture(scope="module")
def production(env, certificate_arn):
    """How each run below calls ansible-playbook: the production inventory, only the endpoint overridden."""
    extra = {
        "dagster_ecs_aws_endpoint_url": env["endpoint"],
        "dagster_ecs_state_dir": str(env["state"]),
        "dagster_ecs_project": PROJECT,
        "loadbalancer_certificate_arn": certificate_arn,
        "loadbalancer_domain_name": DOMAIN,
    }

    def run(playbook, *args, **more):
        return run_playbook(
            playbook, *args, inventory="inventory/production", extra_vars={**extra, **more}, env=OFFLINE_CREDENTIALS
        )

    return run


@pytest.fixture(scope="module")
def deployed(env, production):
    assert leftovers(env["endpoint"], PROJECT) == {}
    return production("site.yml", *SKIP)


def test_production_inventory_deploys_with_a_certificate(deployed, env):
    """The code path real AWS takes: no emulator start, credentials from the environment."""
    assert deployed.returncode == 0, deployed.output[-6000:]
    assert deployed.recap["failed"] == 0 and deployed.recap["changed"] > 20
    assert "served by" not in deployed.output, "the production inventory must never start or probe an emulator"
    assert not (env["state"] / "production" / "runtime").exists(), "production must not start the local runtime"
    outputs = json.loads((env["state"] / "production" / "outputs.json").read_text())
    assert (outputs["environment"], outputs["project"]) == ("production", PROJECT)
    # The certificate's name, not the ALB's amazonaws.com one (which no certificate of the user covers).
    assert outputs["alb_url"] == f"https://{DOMAIN}"
    assert outputs["load_balancer_dns_name"].endswith(".elb.amazonaws.com")
    # Offline, load_balancer_url is the local runtime's nginx; on AWS it is the ALB's.
    assert outputs["load_balancer_url"] == outputs["alb_url"]


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

    Without a certificate the ALB group opens tcp/80 only (stage_checks.security_groups, after test_workload.py's
    deployment and in molecule's security_groups scenario).
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


def test_second_run_with_the_certificate_changes_nothing(deployed, production):
    """The stages the certificate shapes (the ALB group's ports, the listeners) converge.

    The whole of site.yml re-running with no change is each molecule scenario's idempotence.
    """
    again = production("site.yml", "--tags", "security_groups,loadbalancer")
    assert again.returncode == 0, again.output[-6000:]
    assert again.recap["changed"] == 0, f"changed on re-run: {again.changed_tasks()}"


# --- Teardown ---------------------------------------------------------------------------


def test_teardown_refuses_without_confirmation(deployed, env, production):
    refused = production("playbooks/teardown.yml")
    assert refused.returncode != 0
    assert f"teardown_confirm={PROJECT}" in refused.output
    assert leftovers(env["endpoint"], PROJECT), "an unconfirmed teardown deleted something"


def test_teardown_deletes_ours_and_spares_look_alikes(deployed, env, aws, production):
    ours = leftovers(env["endpoint"], PROJECT)
    made = look_alikes.create(aws)
    assert look_alikes.surviving(aws, made) == made
    assert leftovers(env["endpoint"], PROJECT) == ours, "the inventory took a look-alike for ours"
    other = leftovers(env["endpoint"], look_alikes.OTHER)
    assert set(other) >= {"vpcs", "buckets", "iam_roles", "secrets", "file_systems"}

    down = production("playbooks/teardown.yml", teardown_confirm=PROJECT)
    assert down.returncode == 0, down.output[-6000:]
    assert look_alikes.surviving(aws, made) == made, "teardown deleted another project's resources"
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
