"""Faults: AWS errors are retried, an interrupted run converges, a stopped emulator's state is gone.

One emulator at a time, each started by the offline profile itself (nothing listens on the chosen
port), in this order:

1. An emulator with something of ours in it (started by preflight; a bucket and a secret named
   like ours created through boto3), stopped by ``playbooks/down.yml``: its state goes with it.
2. Two ``site.yml`` runs, each the re-run of the one before, interrupted while a module is in
   flight: a rule throttles one call without end, and once the emulator has failed it the run's
   process group gets SIGINT (as Ctrl-C sends it) or SIGTERM. The first run starts a fresh,
   empty emulator, with that rule loaded at its start (``DAGSTER_ECS_EMULATOR_FAULTS``).
3. A re-run converges: one of each resource of the stack, nothing twice.

Throughout, fault rules throttle or fail with 5xx calls of every stage (``RETRIED``: each rule is
loaded on the run that makes its call, the first run's at the emulator's start): every rule must
have injected all its errors *and* then let the call through, which is what proves the call was
retried, and the runs must go on past them (to the interruption, or to success).
(That a further run changes nothing is each molecule scenario's idempotence, test_site's
certificate re-run and test_workload's check-mode re-run.)

Everything runs with ``--skip-tags local_runtime,verify,dags,image``: no local Dagster process, no
image build; every AWS resource of the stack is still provisioned.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
import uuid

import pytest
import yaml
from support import processes
from support.aws_inventory import clients, leftovers
from support.paths import BIN, ROOT
from support.playbook import RECAP, PlaybookRun, offline_environment, playbook_environment, run_playbook

pytestmark = pytest.mark.integration

PROJECT = "dagster-ecs"
REGION = "ap-southeast-2"
SKIP = ("--skip-tags", "local_runtime,verify,dags,image")
FAULTS = "/_dagster_ecs_emulator/faults"
BUCKET = r"^/dagster-ecs-dags-[^/?]+"

# The fault rules, by the run that makes their calls: the interrupted run of the network stage, the
# one interrupted in the ecs stage (security groups to task definitions), the converging re-run
# (the ECS services and their scaling). A count of 3 needs a fourth attempt: more than botocore's
# default (standard mode, 3 attempts in all), so those calls pass only thanks to the retry settings
# of the inventories (aws.yml: 10 attempts); without them each failed the run (their modules have
# no retry loop of their own for them). Counts of 2 are within botocore's default.
RETRIED = {
    "network": [
        {"service": "sts", "action": "GetCallerIdentity", "error": "throttle", "count": 2},
        {"service": "ec2", "action": "CreateVpc", "error": "throttle", "count": 2},
        {"service": "ec2", "action": "DescribeVpcs", "error": "internal", "count": 2},
    ],
    "ecs": [
        {"service": "ec2", "action": "CreateSecurityGroup", "error": "unavailable", "count": 2},
        {"service": "logs", "action": "CreateLogGroup", "error": "throttle", "count": 3},
        {"service": "s3", "method": "PUT", "path": BUCKET + "/?$", "error": "throttle", "count": 3},
        {"service": "s3", "method": "PUT", "path": BUCKET + r"/?\?versioning", "error": "internal", "count": 2},
        {"service": "s3", "method": "PUT", "path": BUCKET + r"/?\?policy", "error": "unavailable", "count": 2},
        {"service": "efs", "method": "POST", "path": r"^/2015-02-01/file-systems$", "error": "throttle", "count": 3},
        {"service": "ecr", "action": "CreateRepository", "error": "throttle", "count": 3},
        {"service": "secretsmanager", "action": "CreateSecret", "error": "throttle", "count": 3},
        {"service": "rds", "action": "CreateDBInstance", "error": "throttle", "count": 2},
        {"service": "iam", "action": "CreateRole", "error": "throttle", "count": 2},
        {"service": "elbv2", "action": "CreateLoadBalancer", "error": "throttle", "count": 2},
        {"service": "servicediscovery", "action": "CreateService", "error": "unavailable", "count": 2},
        {"service": "ecs", "action": "CreateCluster", "error": "throttle", "count": 3},
        {"service": "ecs", "action": "RegisterTaskDefinition", "error": "throttle", "count": 2},
    ],
    "converge": [
        {"service": "ecs", "action": "CreateService", "error": "internal", "count": 3},
        {"service": "application-autoscaling", "action": "PutScalingPolicy", "error": "unavailable", "count": 2},
    ],
}

# What tests/support/aws_inventory.py finds of a whole deployment (db_snapshots: the instance's automated backup).
EVERY_KIND = {
    "vpcs", "subnets", "security_groups", "route_tables", "internet_gateways", "buckets", "file_systems",
    "access_points", "ecr_repositories", "secrets", "db_instances", "db_subnet_groups", "db_snapshots", "iam_roles",
    "log_groups", "load_balancers", "target_groups", "ecs_clusters", "task_definitions", "namespaces",
    "discovery_services", "scalable_targets",
}  # fmt: skip

# Interruptions: (stage, the task in flight, the call held up meanwhile, signal).
INTERRUPTIONS = [
    ("network", "network : Create the public subnets", {"service": "ec2", "action": "CreateSubnet"}, signal.SIGINT),
    ("ecs", "ecs : Create or update the services", {"service": "ecs", "action": "CreateService"}, signal.SIGTERM),
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with offline_environment(tmp_path_factory) as environment:
        yield environment


def faults(endpoint, method="GET", payload=None):
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(f"{endpoint}{FAULTS}", data=data, method=method)
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def site(deployment, **kwargs) -> PlaybookRun:
    return run_playbook("site.yml", *SKIP, extra_vars=deployment["extra"], **kwargs)


def snapshot(endpoint) -> dict[str, list[str]]:
    """What exists of the project, by name, *with* duplicates (leftovers() de-duplicates names)."""
    c = clients(endpoint)
    ec2, tag = c("ec2"), [{"Name": "tag:Project", "Values": [PROJECT]}]
    found = {
        "vpcs": [v["CidrBlock"] for v in ec2.describe_vpcs(Filters=tag)["Vpcs"]],
        "subnets": [s["CidrBlock"] for s in ec2.describe_subnets(Filters=tag)["Subnets"]],
        "internet_gateways": ["igw" for _ in ec2.describe_internet_gateways(Filters=tag)["InternetGateways"]],
        "route_tables": ["rtb" for _ in ec2.describe_route_tables(Filters=tag)["RouteTables"]],
        "security_groups": [g["GroupName"] for g in ec2.describe_security_groups(Filters=tag)["SecurityGroups"]],
        "buckets": [b["Name"] for b in c("s3").list_buckets()["Buckets"] if b["Name"].startswith(f"{PROJECT}-")],
        "file_systems": [f["CreationToken"] for f in c("efs").describe_file_systems()["FileSystems"]],
        "access_points": [a["Name"] for a in c("efs").describe_access_points()["AccessPoints"]],
        "log_groups": [g["logGroupName"] for g in c("logs").describe_log_groups()["logGroups"]],
        "secrets": [s["Name"] for s in c("secretsmanager").list_secrets()["SecretList"]],
        "db_instances": [d["DBInstanceIdentifier"] for d in c("rds").describe_db_instances()["DBInstances"]],
        "iam_roles": [r["RoleName"] for r in c("iam").list_roles()["Roles"] if r["RoleName"].startswith(PROJECT)],
        "load_balancers": [lb["LoadBalancerName"] for lb in c("elbv2").describe_load_balancers()["LoadBalancers"]],
        "target_groups": [t["TargetGroupName"] for t in c("elbv2").describe_target_groups()["TargetGroups"]],
        "ecr_repositories": [r["repositoryName"] for r in c("ecr").describe_repositories()["repositories"]],
        "namespaces": [n["Name"] for n in c("servicediscovery").list_namespaces()["Namespaces"]],
        "discovery_services": [s["Name"] for s in c("servicediscovery").list_services()["Services"]],
    }
    ecs = c("ecs")
    found["ecs_clusters"] = [
        cl["clusterName"] for cl in ecs.describe_clusters(clusters=[PROJECT])["clusters"] if cl["status"] == "ACTIVE"
    ]
    # Every revision, ACTIVE or not: a re-run must not register revisions it does not need.
    found["task_definitions"] = [
        arn.rsplit("/", 1)[1]
        for family in ("webserver", "daemon")
        for status in ("ACTIVE", "INACTIVE")
        for arn in ecs.list_task_definitions(familyPrefix=f"{PROJECT}-{family}", status=status)["taskDefinitionArns"]
    ]
    found["ecs_services"] = (
        [arn.rsplit("/", 1)[1] for arn in ecs.list_services(cluster=PROJECT)["serviceArns"]]
        if found["ecs_clusters"]
        else []
    )
    found["scaling_policies"] = [
        p["PolicyName"]
        for p in c("application-autoscaling").describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]
    ]
    return {kind: sorted(items) for kind, items in found.items() if items}


def bucket_settings(endpoint) -> dict[str, object]:
    """The DAG bucket's versioning status and whether it has its policy ({} without a bucket)."""
    s3 = clients(endpoint)("s3")
    names = [b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith(f"{PROJECT}-dags-")]
    if not names:
        return {}
    try:
        has_policy = bool(s3.get_bucket_policy(Bucket=names[0])["Policy"])
    except s3.exceptions.ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchBucketPolicy", exc
        has_policy = False
    return {"versioning": s3.get_bucket_versioning(Bucket=names[0]).get("Status"), "policy": has_policy}


@pytest.fixture(scope="module")
def stopped(env):
    """An emulator with a bucket and a secret of ours, then make down: what it held must be gone."""
    started = run_playbook("playbooks/preflight.yml", extra_vars=env["extra"])
    assert started.returncode == 0, started.output[-3000:]
    pid_file = env["state"] / "localstack" / "emulator.pid"
    old_pid = pid_file.read_text().strip()
    c = clients(env["endpoint"])
    c("s3").create_bucket(Bucket=f"{PROJECT}-dags-stale", CreateBucketConfiguration={"LocationConstraint": REGION})
    c("secretsmanager").create_secret(Name=f"{PROJECT}/stale", SecretString="{}")
    assert set(snapshot(env["endpoint"])) == {"buckets", "secrets"}
    down = run_playbook("playbooks/down.yml", extra_vars=env["extra"])
    assert down.returncode == 0, down.output[-3000:]
    assert not pid_file.exists()
    return old_pid


class Interrupted:
    """ansible-playbook site.yml in its own process group, stopped with a signal mid-task."""

    MARK = "DAGSTER_ECS_TEST_INTERRUPTED_RUN"  # in the environment of every process the run starts, modules too

    def __init__(self, env, run_env=None):
        command = [str(BIN / "ansible-playbook"), "site.yml", *SKIP]
        for key, value in env["extra"].items():
            command += ["-e", f"{key}={value}"]
        token = uuid.uuid4().hex
        self.mark = f"{self.MARK}={token}".encode()  # as the entry reads in /proc/<pid>/environ
        environment = playbook_environment({**(run_env or {}), self.MARK: token})
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, condition, what, timeout=900):
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.proc.poll() is None, f"site.yml ended before {what}:\n{self.output[-6000:]}"
            assert time.monotonic() < deadline, f"no {what} within {timeout}s:\n{self.output[-6000:]}"
            time.sleep(0.2)

    def interrupt(self, sig) -> int:
        """Signal the run's process group, as Ctrl-C or kill does; wait for it and for every process of the run.

        Ansible's workers start sessions of their own (``os.setsid``): the signal reaches ansible-playbook,
        which then terminates its workers, and each worker its module, without waiting for them to go. A
        module still running when the test goes on (it removes the fault rules next) could make its held-up
        call after all: seen once in CI, a subnet created by the interrupted CreateSubnet's retry.
        """
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        deadline = time.monotonic() + 30
        while left := self.stragglers():
            if time.monotonic() > deadline:
                for pid in left:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        self.reader.join(10)
        return self.proc.returncode

    def stragglers(self) -> list[int]:
        """This run's Ansible processes still alive (workers, modules): the mark in their environment, Ansible in
        their command line (the emulator the run started carries the mark too, and must go on serving)."""
        return [
            pid
            for pid in processes.pids()
            if any(word in processes.cmdline(pid) for word in ("ansible-playbook", "AnsiballZ_"))
            and self.mark in processes.environ(pid)
        ]


@pytest.fixture(scope="module")
def interruptions(env, stopped, tmp_path_factory):
    """Two runs interrupted at two stages (SIGINT, SIGTERM), with their fault rules; what each left behind."""
    pid_file = env["state"] / "localstack" / "emulator.pid"
    results = []
    for n, (stage, task, held, sig) in enumerate(INTERRUPTIONS):
        # The held-up call's rule first: the wait below reads its counter as rule 0.
        rules = [dict(held, error="throttle", count=10_000), *RETRIED[stage]]
        run_env = {}
        if n == 0:  # the emulator this run starts has the rules from its first request
            path = tmp_path_factory.mktemp("faults") / f"{stage}.json"
            path.write_text(json.dumps(rules))
            run_env["DAGSTER_ECS_EMULATOR_FAULTS"] = str(path)
        else:
            faults(env["endpoint"], "POST", rules)
        run = Interrupted(env, run_env)
        try:
            run.wait_for(lambda run=run, task=task: f"TASK [{task}]" in run.output, f"task {task!r}")
            run.wait_for(lambda: faults(env["endpoint"])["rules"][0]["injected"] > 0, f"the held-up call of {task!r}")
        finally:  # never leave a playbook running behind a failed test
            returncode = run.interrupt(sig)
        counters = faults(env["endpoint"], "DELETE")["removed"][1:]  # the rules' final counters, held-up call's aside
        results.append(
            {
                "stage": stage,
                "task": task,
                "signal": sig.name,
                "returncode": returncode,
                "output": run.output,
                "counters": counters,
                "left": snapshot(env["endpoint"]),
                "bucket": bucket_settings(env["endpoint"]),
                "emulator_pid": pid_file.read_text().strip(),
            }
        )
    return {"old_pid": stopped, "runs": results}


def test_down_then_the_next_run_starts_an_empty_emulator(interruptions):
    first = interruptions["runs"][0]
    assert "(started now" in first["output"]
    assert first["emulator_pid"] != interruptions["old_pid"]
    # Only what the interrupted network stage built: nothing the stopped emulator held survived.
    assert first["left"] == {"vpcs": ["10.0.0.0/16"]}, first["left"]


def test_each_run_was_interrupted_mid_task(interruptions):
    for run in interruptions["runs"]:
        assert not RECAP.search(run["output"]), f"{run['stage']}: the run was not interrupted"
        assert run["returncode"] != 0, run["stage"]
        before = run["output"].split(f"TASK [{run['task']}]")[0]
        assert "fatal:" not in before, f"{run['stage']}: a task failed before the interruption"


def test_what_each_interruption_left(interruptions):
    _, ecs = (run["left"] for run in interruptions["runs"])
    # ecs: task definitions registered, the services (held up) not created; nothing after.
    assert ecs["task_definitions"] == [f"{PROJECT}-daemon:1", f"{PROJECT}-webserver:1"]
    assert "ecs_services" not in ecs and "scaling_policies" not in ecs
    assert len(ecs["db_instances"]) == 1 and len(ecs["load_balancers"]) == 1


@pytest.fixture(scope="module")
def converged(env, interruptions):
    faults(env["endpoint"], "POST", RETRIED["converge"])
    run = site(env)
    return {"run": run, "counters": faults(env["endpoint"], "DELETE")["removed"]}


def test_throttling_and_5xx_are_retried(interruptions, converged):
    """Every rule of every run met all its errors, then let the call through; the runs went on past them."""
    assert converged["run"].returncode == 0, converged["run"].output[-6000:]
    met = [*(rule for run in interruptions["runs"] for rule in run["counters"]), *converged["counters"]]
    expected = [rule for stage in ("network", "ecs", "converge") for rule in RETRIED[stage]]
    report = {
        f"{r['service']} {r.get('action') or r['method'] + ' ' + r['path']} {r['error']}": (r["injected"], r["passed"])
        for r in met
    }
    assert len(met) == len(expected), report
    for rule, spec in zip(met, expected, strict=True):
        assert rule["error"] == spec["error"], report
        assert rule["injected"] == spec["count"], f"not every fault was met: {report}"
        assert rule["passed"] >= 1, f"a failed call was never sent again: {report}"


def test_rerun_after_interruptions_converges_without_duplicates(converged, env):
    assert converged["run"].returncode == 0, converged["run"].output[-6000:]
    now = snapshot(env["endpoint"])
    duplicated = {kind: names for kind, names in now.items() if len(names) != len(set(names))}
    assert duplicated == {}, "built twice"
    assert set(leftovers(env["endpoint"], PROJECT)) == EVERY_KIND
    assert now["vpcs"] == ["10.0.0.0/16"] and len(now["subnets"]) == 2
    assert now["security_groups"] == sorted(f"{PROJECT}-{g}" for g in ("alb", "database", "efs", "tasks"))
    for kind in ("internet_gateways", "buckets", "file_systems", "db_instances", "load_balancers", "target_groups"):
        assert len(now[kind]) == 1, (kind, now[kind])
    assert len(now["secrets"]) == 2 and len(now["ecs_clusters"]) == 1
    # Task definitions stay at revision 1: the re-run finds the revision the interrupted run registered identical.
    assert now["task_definitions"] == [f"{PROJECT}-daemon:1", f"{PROJECT}-webserver:1"]
    assert len(now["ecs_services"]) == 2 and len(now["scaling_policies"]) == 2
    assert bucket_settings(env["endpoint"]) == {"versioning": "Enabled", "policy": True}
    # The outputs file names the resources of this emulator.
    outputs = json.loads((env["state"] / "offline" / "outputs.json").read_text())
    secrets = clients(env["endpoint"])("secretsmanager").list_secrets()["SecretList"]
    assert sorted(outputs["secrets"].values()) == sorted(s["ARN"] for s in secrets)


def test_both_inventories_retry_alike():
    """The retry settings the faults above need are those real AWS gets too."""
    settings = [
        yaml.safe_load((ROOT / f"inventory/{name}/group_vars/all/aws.yml").read_text())["dagster_ecs_aws"]["aws_config"]
        for name in ("localstack", "production")
    ]
    assert settings[0] == settings[1] == {"retries": {"mode": "standard", "total_max_attempts": 10}}
